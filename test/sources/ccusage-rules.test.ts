/**
 * Where tokentally and ccusage 20.0.24 count differently, pinned as tiny synthetic transcripts.
 *
 * Each case mirrors one of the rule fixtures p01-p20 of ../shared/reference/ccusage-study.md §b.9 (plus a
 * few rules from §b.2-§b.4 found while comparing the two tools on the shared fixtures). The comment on each
 * case says what ccusage does; the assertions pin tokentally's documented behaviour. The reasoning for
 * every difference is in docs/ccusage-differences.md. ccusage itself is not needed to run these tests.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isolatedEnv, runCli } from '../helpers/cli.js';

let seq = 0;

interface LineSpec {
  id?: string | null;
  /** `null` writes `"requestId":null`; `undefined` writes a fresh one; pass `omit` to leave it out. */
  req?: string | null | typeof OMIT;
  model?: string;
  ts?: string;
  usage?: Record<string, unknown>;
  extra?: Record<string, unknown>;
}
const OMIT = Symbol('omit');

/** One assistant line in Claude Code 2.1 shape with 100 input tokens unless told otherwise. */
function line(s: LineSpec = {}): string {
  seq++;
  const message: Record<string, unknown> = {
    type: 'message', role: 'assistant', model: s.model ?? 'claude-sonnet-4-5-20250929',
    content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn',
    usage: { input_tokens: 100, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, ...s.usage },
  };
  if (s.id !== null) message.id = s.id ?? `msg_rule_${seq}`;
  const out: Record<string, unknown> = {
    parentUuid: null, isSidechain: false, userType: 'external', cwd: '/home/dev/rules', sessionId: 'rules-session',
    version: '2.1.100', type: 'assistant', uuid: `uuid-rule-${seq}`, timestamp: s.ts ?? '2026-01-15T10:00:00.000Z', message,
  };
  if (s.req !== OMIT) out.requestId = s.req === undefined ? `req_rule_${seq}` : s.req;
  return JSON.stringify({ ...out, ...s.extra });
}

interface Run {
  totals: any;
  daily: any[];
  session: any;
  sync: any;
  table: string;
}

/** Write the lines as one transcript (or several files), sync once, and read the reports from that store. */
function run(files: string[][] | string[]): Run {
  const list = (Array.isArray(files[0]) ? files : [files]) as string[][];
  const root = mkdtempSync(join(tmpdir(), 'tt-rules-'));
  const dir = join(root, 'projects', '-home-dev-rules');
  mkdirSync(dir, { recursive: true });
  list.forEach((lines, i) => writeFileSync(join(dir, `rules-${i}.jsonl`), lines.map((l) => l + '\n').join('')));
  const env = isolatedEnv({ CLAUDE_CONFIG_DIR: root });
  const cli = (args: string[]) => {
    const r = runCli(args, env);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const sync = JSON.parse(cli(['sync', '--json', '--verbose']));
  const daily = JSON.parse(cli(['daily', '--json', '--no-sync', '--timezone', 'UTC']));
  const session = JSON.parse(cli(['session', '--json', '--no-sync']));
  const table = cli(['daily', '--no-sync', '--timezone', 'UTC']);
  return { totals: daily.totals, daily: daily.daily, session, sync, table };
}

const tokens = (t: any) => [t.inputTokens, t.outputTokens, t.cacheCreationTokens, t.cacheReadTokens];
const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-6, `${a} != ${b}`);

describe('ccusage rule cases: de-duplication', () => {
  it('p01: copies of one response (same id and requestId) count once, the largest copy wins', () => {
    // ccusage 20.0.24: same (output 500). ccusage <= 17 kept the first copy (output 5).
    const r = run([
      line({ id: 'm1', req: 'r1', usage: { output_tokens: 5 } }),
      line({ id: 'm1', req: 'r1', usage: { output_tokens: 500 } }),
      line({ id: 'm1', req: 'r1', usage: { output_tokens: 50 } }),
    ]);
    assert.deepEqual(tokens(r.totals), [100, 500, 0, 0]);
    assert.equal(r.totals.requests, 1);
    assert.equal(r.sync.requestLines, 3);
  });

  it('p02: the same message.id with two requestIds is one response (keyed by message.id)', () => {
    // ccusage keys by (message.id, requestId): 200 input tokens, two requests.
    const r = run([line({ id: 'm1', req: 'r1' }), line({ id: 'm1', req: 'r2' })]);
    assert.deepEqual(tokens(r.totals), [100, 0, 0, 0]);
    assert.equal(r.totals.requests, 1);
  });

  it('p03: a sidechain replay of a parent message merges with it; the larger copy wins, main thread keeps it', () => {
    // ccusage prefers the non-sidechain copy whatever its size: 100 input, 0 cache read.
    const r = run([
      line({ id: 'm1', req: 'r1' }),
      line({ id: 'm1', req: 'r2', usage: { cache_read_input_tokens: 50_000 }, extra: { isSidechain: true } }),
    ]);
    assert.deepEqual(tokens(r.totals), [100, 0, 0, 50_000]);
    assert.equal(r.totals.requests, 1);
  });

  it('p04: the same message.id without requestId counts once', () => {
    // ccusage: same.
    const r = run([line({ id: 'm1', req: OMIT }), line({ id: 'm1', req: OMIT })]);
    assert.equal(r.totals.inputTokens, 100);
    assert.equal(r.totals.requests, 1);
  });

  it('p05: lines without message.id and requestId are distinct requests (one per line uuid)', () => {
    // ccusage never de-duplicates without message.id: same here (200).
    const r = run([line({ id: null, req: OMIT }), line({ id: null, req: OMIT })]);
    assert.equal(r.totals.inputTokens, 200);
    assert.equal(r.totals.requests, 2);
  });

  it('p05b: lines without message.id but with the same requestId count once', () => {
    // ccusage: no message.id means no de-duplication at all (200).
    const r = run([line({ id: null, req: 'r1' }), line({ id: null, req: 'r1' })]);
    assert.equal(r.totals.inputTokens, 100);
    assert.equal(r.totals.requests, 1);
  });

  it('p05c: the very same id-less line copied into a fork (same uuid) counts once', () => {
    // ccusage: twice.
    const l = line({ id: null, req: OMIT });
    const r = run([[l], [l]]);
    assert.equal(r.totals.inputTokens, 100);
    assert.equal(r.totals.requests, 1);
  });

  it('p20: message.id with a requestId, then the same id without one, count once', () => {
    // ccusage: (id, r1) and (id, none) are different keys: 200.
    const r = run([line({ id: 'm1', req: 'r1' }), line({ id: 'm1', req: OMIT })]);
    assert.equal(r.totals.inputTokens, 100);
    assert.equal(r.totals.requests, 1);
  });
});

describe('ccusage rule cases: which lines are read', () => {
  it('p10: "requestId": null is treated as absent; the line counts', () => {
    // ccusage drops any line with a literal null in id/cwd/model/speed/costUSD/version/sessionId/requestId/...
    const r = run([line({ req: null })]);
    assert.equal(r.totals.inputTokens, 100);
  });

  it('other null fields (cwd, speed, cache_read_input_tokens) are treated as absent; the lines count', () => {
    // ccusage: each of these lines is dropped (null rejection).
    const r = run([
      line({ extra: { cwd: null } }),
      line({ usage: { speed: null } }),
      line({ usage: { cache_read_input_tokens: null } }),
    ]);
    assert.equal(r.totals.inputTokens, 300);
    assert.equal(r.totals.requests, 3);
  });

  it('p11: a truncated line is skipped and reported with its line number; the next line counts', () => {
    // ccusage: skipped silently.
    const r = run([line().slice(0, 80), line()]);
    assert.equal(r.totals.inputTokens, 100);
    assert.equal(r.sync.skipped.invalid_json, 1);
    assert.deepEqual(r.sync.skippedLines.map((s: any) => [s.line, s.reason]), [[1, 'invalid_json']]);
    assert.match(r.sync.skippedLines[0].file, /rules-0\.jsonl$/);
  });

  it('p12: a non-numeric version ("dev") does not drop the line', () => {
    // ccusage drops lines whose version is not digits.digits...
    const r = run([line({ extra: { version: 'dev' } })]);
    assert.equal(r.totals.inputTokens, 100);
  });

  it('p15: usage without output_tokens counts its other tokens', () => {
    // ccusage requires input_tokens and output_tokens: the line is dropped.
    const r = run([line({ usage: { output_tokens: undefined, cache_read_input_tokens: 7 } })]);
    assert.deepEqual(tokens(r.totals), [100, 0, 0, 7]);
  });

  it('p17: "usage": { with a space (pretty JSON) is still read', () => {
    // ccusage pre-filters lines on the exact bytes "usage":{ and never sees this one.
    const spaced = line().replace('"usage":{', '"usage": {');
    assert.ok(spaced.includes('"usage": {'));
    const r = run([spaced, JSON.stringify(JSON.parse(line()), null, 1).replace(/\n/g, ' ')]);
    assert.equal(r.totals.inputTokens, 200);
  });

  it('timestamps: any fraction length and offsets are accepted; days follow the instant', () => {
    // ccusage accepts only no fraction or exactly 3 digits: the 6-digit line is dropped.
    const r = run([
      line({ ts: '2026-01-15T10:00:00.123456Z' }),
      line({ ts: '2026-01-15T10:00:00Z' }),
      line({ ts: '2026-01-15T08:00:00.000+09:00' }),
    ]);
    assert.equal(r.totals.inputTokens, 300);
    assert.deepEqual(r.daily.map((d) => [d.date, d.inputTokens]), [['2026-01-14', 100], ['2026-01-15', 200]]);
  });

  it('a line whose timestamp cannot be read is skipped and reported, not dated "now"', () => {
    // ccusage: dropped silently.
    const r = run([line({ ts: '[trimmed for fixture]' }), line()]);
    assert.equal(r.totals.inputTokens, 100);
    assert.equal(r.sync.skipped.bad_timestamp, 1);
  });

  it('empty-string ids and model are treated as absent; the line counts', () => {
    // ccusage drops lines whose sessionId, requestId, message.id or model is "".
    const r = run([line({ id: '', req: '', extra: { sessionId: '' } })]);
    assert.equal(r.totals.inputTokens, 100);
  });

  it('agent progress lines (Claude Code 2.1.17-2.1.81) count in every report, not only daily', () => {
    // ccusage 20.0.24 reads progress lines only in daily: daily 2020, session 20.
    const progress = JSON.stringify({
      type: 'progress', timestamp: '2026-01-15T10:00:01.000Z', sessionId: 'rules-session', cwd: '/home/dev/rules',
      version: '2.1.50', uuid: 'progress-1', toolUseID: 'toolu_1', parentToolUseID: 'toolu_1',
      data: { type: 'agent_progress', agentId: 'a1', message: JSON.parse(line({ id: 'm-sub', req: 'r-sub', usage: { input_tokens: 2000 } })) },
    });
    const r = run([line({ usage: { input_tokens: 20 } }), progress]);
    assert.equal(r.totals.inputTokens, 2020);
    assert.equal(r.session.totals.inputTokens, 2020);
    assert.equal(r.session.session.length, 1);
  });
});

describe('ccusage rule cases: cost', () => {
  it('p06: costUSD on a line is ignored; cost comes from tokens', () => {
    // ccusage (default auto mode) reports the line's costUSD: $42.
    const r = run([line({ model: 'claude-sonnet-4-6', ts: '2026-06-01T10:00:00.000Z', usage: { input_tokens: 1_000_000 }, extra: { costUSD: 42 } })]);
    close(r.totals.totalCost, 3);
  });

  it('p07: a Sonnet 4.5 request over 200K prompt tokens is priced entirely at the long-context rates', () => {
    // ccusage tiers each token class separately: 200K x $3 + 100K x $6 = $1.20.
    const r = run([line({ usage: { input_tokens: 300_000 } })]);
    close(r.totals.totalCost, 1.8);
  });

  it('p07b: exactly 200K prompt tokens is not over the threshold', () => {
    const r = run([line({ usage: { input_tokens: 200_000 } })]);
    close(r.totals.totalCost, 0.6);
  });

  it('p08: the threshold counts input + cache reads + cache writes together', () => {
    // ccusage: 150K input and 150K cache reads are each under 200K: $0.495 (no premium).
    const r = run([line({ usage: { input_tokens: 150_000, cache_read_input_tokens: 150_000 } })]);
    close(r.totals.totalCost, 150_000 * 6e-6 + 150_000 * 0.6e-6);
  });

  it('p09: speed "fast" on Opus 4.6 uses the fast rates; the model keeps its name', () => {
    // ccusage: same $30, but labels the model "claude-opus-4-6-fast".
    const r = run([line({ model: 'claude-opus-4-6', ts: '2026-06-01T10:00:00.000Z', usage: { input_tokens: 1_000_000, speed: 'fast' } })]);
    close(r.totals.totalCost, 30);
    assert.deepEqual(r.daily[0].modelsUsed, ['claude-opus-4-6']);
  });

  it('p13: <synthetic> lines count their tokens at $0 and leave the cost complete', () => {
    // ccusage: tokens counted, $0, no model listed.
    const r = run([line({ model: '<synthetic>', req: OMIT, usage: { input_tokens: 100, output_tokens: 100 } })]);
    assert.equal(r.totals.totalTokens, 200);
    assert.equal(r.totals.totalCost, 0);
    assert.equal(r.totals.costComplete, true);
    assert.deepEqual(r.totals.unknownModels, []);
  });

  it('p14: the 5m/1h split is trusted over cache_creation_input_tokens; 1h writes cost 2x input', () => {
    // ccusage: same (2M cache writes, $9.75 on a $3 model).
    const r = run([line({
      model: 'claude-sonnet-4-6', ts: '2026-06-01T10:00:00.000Z',
      usage: { input_tokens: 0, cache_creation_input_tokens: 999, cache_creation: { ephemeral_5m_input_tokens: 1_000_000, ephemeral_1h_input_tokens: 1_000_000 } },
    })]);
    assert.equal(r.totals.cacheCreation5mTokens, 1_000_000);
    assert.equal(r.totals.cacheCreation1hTokens, 1_000_000);
    close(r.totals.totalCost, 3.75 + 6);
  });

  it('p16: an unknown model is "unknown", never $0', () => {
    // ccusage prices it at $0.00 without a word.
    const r = run([line({ model: 'claude-imaginary-9', usage: { input_tokens: 1_000_000 } }), line({ usage: { input_tokens: 1000 } })]);
    assert.equal(r.totals.unknownCostTokens, 1_000_000);
    assert.equal(r.totals.costComplete, false);
    assert.deepEqual(r.totals.unknownModels, ['claude-imaginary-9']);
    const bd = r.daily[0].modelBreakdowns.find((m: any) => m.modelName === 'claude-imaginary-9');
    assert.equal(bd.cost, null);
    close(r.totals.totalCost, 0.003);
    assert.match(r.table, /\+\?|unknown/);
  });

  it('p18: a dated Haiku 4.5 id is priced', () => {
    const r = run([line({ model: 'claude-haiku-4-5-20251001', usage: { input_tokens: 1_000_000 } })]);
    close(r.totals.totalCost, 1);
  });

  it('p19: Opus 4.6 over 200K is flat from 2026-03-13, long-context priced before', () => {
    // ccusage: flat ($1.50) at any date.
    const after = run([line({ model: 'claude-opus-4-6', ts: '2026-06-01T10:00:00.000Z', usage: { input_tokens: 300_000 } })]);
    close(after.totals.totalCost, 1.5);
    const beforeCut = run([line({ model: 'claude-opus-4-6', ts: '2026-02-20T10:00:00.000Z', usage: { input_tokens: 300_000 } })]);
    close(beforeCut.totals.totalCost, 3);
  });

  it('inference_geo "us" costs x1.1 on Claude 4.6 and later', () => {
    // ccusage ignores inference_geo: $5.00.
    const r = run([line({ model: 'claude-opus-4-7', usage: { input_tokens: 1_000_000, inference_geo: 'us' } })]);
    close(r.totals.totalCost, 5.5);
  });
});

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatStatusline, parseStatuslineInput, type StatuslineData } from '../../src/surfaces/statusline/run.js';
import { PriceBook, priceFingerprint } from '../../src/core/pricing/pricebook.js';
import { BUILTIN_MODELS } from '../../src/core/pricing/catalog.js';
import { repoRoot } from '../helpers/paths.js';
import { isolatedEnv, runCli } from '../helpers/cli.js';
import { sharedPath } from '../helpers/paths.js';
import { appendTranscript, assistantLine, toolResultLine } from '../helpers/transcripts.js';

const SESSION = '54518870-8f23-41b7-8800-ac63ca425b74';
// Opus 4.8 ($5 in, $25 out, $6.25 5m writes, $10 1h writes, $0.50 reads) over the session's 4 responses:
// 11/12/13/14 input, 1040/1050/1060/1070 5m writes, 204..207 1h writes, 12400..12700 reads, 24..27 output.
const SESSION_COST = (15395 + 15547.5 + 15700 + 15852.5) / 1e6;

/** The lab's transcripts in a temp CLAUDE_CONFIG_DIR, and the recorded statusLine inputs pointing at them. */
function lab() {
  const claude = mkdtempSync(join(tmpdir(), 'tt-sl-'));
  cpSync(sharedPath('fixtures', 'claude-code-lab', 'projects'), join(claude, 'projects'), { recursive: true });
  const inputs = readFileSync(sharedPath('fixtures', 'claude-code-lab', 'hooks', 'statusline.jsonl'), 'utf8')
    .trim().split('\n').map((l) => l.replaceAll('/home/dev/.claude', claude));
  const env = isolatedEnv({ CLAUDE_CONFIG_DIR: claude, TOKENTALLY_NOW: '2026-11-22T13:00:00Z' });
  return { claude, inputs, env, transcript: join(claude, 'projects', '-home-dev-demo-app', `${SESSION}.jsonl`) };
}

describe('tokentally statusline', () => {
  let L: ReturnType<typeof lab>;
  before(() => { L = lab(); });

  it('prints one line for every recorded Claude Code input: model, session cost (and CC\'s when it differs), today, block, context', () => {
    for (const [i, input] of L.inputs.entries()) {
      const r = runCli(['statusline'], L.env, input);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      const lines = r.stdout.split('\n');
      assert.equal(lines.length, 2, `one line expected: ${JSON.stringify(r.stdout)}`);
      const line = lines[0];
      assert.match(line, /^Opus 4\.8 \| \$0\.06 session/, line);
      assert.match(line, / \| \$\d+\.\d\d today \| \$\d+\.\d\d block, 4h00m left \| ctx 1[\d.]+K 1%$/, line);
      // Claude Code's own figure is shown only when it differs noticeably from ours ($0.0625).
      const cc = JSON.parse(input).cost.total_cost_usd as number;
      assert.equal(line.includes('(CC '), Math.abs(cc - SESSION_COST) >= 0.01, `input ${i}: ${line}`);
    }
  });

  it('reports the session cost from the transcript it imported, exactly, in --json', () => {
    const r = runCli(['statusline', '--json'], L.env, L.inputs[2]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.session.sessionId, SESSION);
    assert.equal(j.session.requests, 4);
    assert.ok(Math.abs(j.session.costUSD - SESSION_COST) < 1e-9, String(j.session.costUSD));
    assert.equal(j.session.claudeCodeCostUSD, 0.07773749999999999);
    assert.deepEqual(j.context, { tokens: 14 + 1277 + 12700, contextWindowSize: 1_000_000, percent: 1 });
    assert.equal(j.block.startTime, '2026-11-22T12:00:00.000Z');
    assert.equal(j.block.remainingMinutes, 240);
    assert.equal(j.today.date, '2026-11-22');
  });

  it('imports only the session\'s transcript, incrementally: appended lines show up in the next line', () => {
    const L2 = lab();
    const first = JSON.parse(runCli(['statusline', '--json'], L2.env, L2.inputs[2]).stdout);
    // Only this session was imported: "today" equals the session.
    assert.equal(first.today.requests, 4);
    appendTranscript(L2.transcript, [assistantLine({ sessionId: SESSION, model: 'claude-opus-4-8', timestamp: '2026-11-22T12:30:00.000Z',
      input: 1_000_000, output: 0 })]);
    const second = JSON.parse(runCli(['statusline', '--json'], L2.env, L2.inputs[2]).stdout);
    assert.equal(second.session.requests, 5);
    assert.ok(Math.abs(second.session.costUSD - (SESSION_COST + 5)) < 1e-9);
    const line = runCli(['statusline'], L2.env, L2.inputs[2]).stdout;
    assert.match(line, /\$5\.06 session \(CC \$0\.08\)/);
  });

  it('falls back to the last stored request for the context size when current_usage is null', () => {
    const j = JSON.parse(runCli(['statusline', '--json'], L.env, L.inputs[0]).stdout);
    assert.equal(j.context.tokens, 14 + 1277 + 12700);
  });

  it('never fails loudly: empty, invalid or partial stdin, a missing transcript, a corrupt database', () => {
    const cases: [string, string, NodeJS.ProcessEnv][] = [
      ['empty', '', L.env],
      ['not json', '{"session_id": ', L.env],
      ['array', '[1,2,3]', L.env],
      ['wrong types', '{"session_id": 5, "model": "x", "cost": "lots", "context_window": {"current_usage": 7}}', L.env],
      ['missing transcript', JSON.stringify({ session_id: 'nope', transcript_path: '/nonexistent/nope.jsonl' }), L.env],
    ];
    for (const [name, input, env] of cases) {
      const r = runCli(['statusline'], env, input);
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      assert.match(r.stdout, /^[^\n]*today \| [^\n]*\n$/, `${name}: ${r.stdout}`);
      assert.doesNotMatch(r.stdout + r.stderr, /\n\s+at /, name);
    }
    const corrupt = isolatedEnv();
    mkdirSync(corrupt.TOKENTALLY_HOME!, { recursive: true });
    writeFileSync(join(corrupt.TOKENTALLY_HOME!, 'tokentally.db'), 'this is not a database'.repeat(100));
    const r = runCli(['statusline'], corrupt, L.inputs[2]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'tokentally: unavailable\n');
    assert.equal(r.stderr, '');
    const unwritable = isolatedEnv({ TOKENTALLY_HOME: '/etc/passwd/tokentally' });
    const u = runCli(['statusline'], unwritable, L.inputs[2]);
    assert.equal(u.code, 0);
    assert.equal(u.stdout, 'tokentally: unavailable\n');
  });

  it('rejects unknown flags and time zones with exit 2, and --help goes through the full CLI', () => {
    const bad = runCli(['statusline', '--bogus'], L.env, '{}');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--bogus/);
    const tz = runCli(['statusline', '--timezone', 'Mars/Olympus'], L.env, '{}');
    assert.equal(tz.code, 2);
    const help = runCli(['statusline', '--help'], L.env);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /statusLine/);
  });

  it('counts "today" in --timezone', () => {
    const env = { ...L.env, TOKENTALLY_NOW: '2026-11-22T14:30:00Z' };
    const utc = JSON.parse(runCli(['statusline', '--json'], env, L.inputs[2]).stdout);
    assert.equal(utc.today.date, '2026-11-22');
    assert.equal(utc.today.requests, 4);
    // In Brisbane (UTC+10) it is 00:30 on the 23rd: the session's requests (12:00-12:12 UTC) were yesterday.
    const j = JSON.parse(runCli(['statusline', '--json', '--timezone', 'Australia/Brisbane'], env, L.inputs[2]).stdout);
    assert.equal(j.today.date, '2026-11-23');
    assert.equal(j.today.requests, 0);
  });

  it('reuses its last line while nothing changed, without loading SQLite, and recomputes after any change', () => {
    const L3 = lab();
    const first = runCli(['statusline'], L3.env, L3.inputs[2]);
    assert.match(first.stdout, /\$0\.06 today/);
    // Same input, same minute, same files: a cache hit loads no SQLite.
    const hit = runCli(['statusline'], { ...L3.env, NODE_DEBUG: 'module' }, L3.inputs[2]);
    assert.equal(hit.stdout, first.stdout);
    assert.doesNotMatch(hit.stderr, /better-sqlite3/);
    if (existsSync(join(repoRoot, 'dist', 'statusline-hit.cjs'))) {
      // ... nor the statusline's full bundle: the front (hit.ts, its own small bundle) answers; the full bundle
      // would have written its V8 code cache again.
      const codeCache = join(L3.env.TOKENTALLY_HOME!, 'cache', 'statusline-code.v8');
      rmSync(codeCache, { force: true });
      assert.equal(runCli(['statusline'], L3.env, L3.inputs[2]).stdout, first.stdout);
      assert.ok(!existsSync(codeCache));
    }
    // Another process imports the other sessions: the database changed, so "today" is recomputed.
    assert.equal(runCli(['sync'], L3.env).code, 0);
    const afterSync = runCli(['statusline'], { ...L3.env, NODE_DEBUG: 'module' }, L3.inputs[2]);
    assert.match(afterSync.stderr, /better-sqlite3/);
    assert.match(afterSync.stdout, /\$0\.71 today/);
    // A minute later the time left changes.
    const later = runCli(['statusline'], { ...L3.env, TOKENTALLY_NOW: '2026-11-22T13:01:00Z' }, L3.inputs[2]);
    assert.match(later.stdout, /block, 3h59m left/);
    // Different displayed input (Claude Code's cost) is a different line.
    const input = JSON.parse(L3.inputs[2]);
    input.cost.total_cost_usd = 9;
    assert.match(runCli(['statusline'], L3.env, JSON.stringify(input)).stdout, /\(CC \$9\.00\)/);
  });

  it('leaves its WAL for the next call, checkpointed once it is long, and every call\'s figures are exact', () => {
    const L4 = lab();
    const wal = join(L4.env.TOKENTALLY_HOME!, 'tokentally.db-wal');
    let cost = SESSION_COST;
    let largest = 0;
    let first = 0;
    for (let i = 0; i < 40; i++) {
      appendTranscript(L4.transcript, [assistantLine({ sessionId: SESSION, model: 'claude-opus-4-8',
        timestamp: `2026-11-22T12:${String(10 + i).padStart(2, '0')}:00.000Z`, input: 1_000_000, output: 0 })]);
      cost += 5;
      const j = JSON.parse(runCli(['statusline', '--json'], L4.env, L4.inputs[2]).stdout);
      assert.equal(j.session.requests, 5 + i);
      assert.ok(Math.abs(j.session.costUSD - cost) < 1e-6, `${i}: ${j.session.costUSD} != ${cost}`);
      assert.ok(existsSync(wal));
      if (i === 0) first = statSync(wal).size;
      largest = Math.max(largest, statSync(wal).size);
    }
    // Checkpointed and emptied once over 512 KB: never much larger (40 calls of ~29 KB would make ~1.4 MB).
    assert.ok(largest < 600 * 1024, `${largest} (first ${first})`);
    // A report (another connection) sees everything the statusline committed.
    const r = runCli(['session', '--json', '--no-sync'], L4.env);
    assert.equal(r.code, 0, r.stderr);
    const sj = JSON.parse(r.stdout);
    const s = (sj.sessions ?? sj.session).find((x: { sessionId: string }) => x.sessionId === SESSION);
    assert.ok(Math.abs(s.totalCost - cost) < 1e-6, String(s.totalCost));
  });

  it('after an assistant message, adds the new requests without SQLite, exactly as a full run counts them; falls back when it could not be exact', () => {
    // Two stores over the same transcripts: one with the store-free path, one always doing the full run.
    const F = lab();
    const fullEnv = { ...F.env, TOKENTALLY_HOME: mkdtempSync(join(tmpdir(), 'tt-sl-full-')), TOKENTALLY_STATUSLINE_FAST: '0' };
    const input = F.inputs[2];
    const db = join(F.env.TOKENTALLY_HOME!, 'tokentally.db');
    const stampOf = (p: string) => (existsSync(p) ? `${statSync(p).size}:${statSync(p).mtimeMs}` : '-');
    const both = (label: string) => {
      const before = `${stampOf(db)} ${stampOf(`${db}-wal`)}`;
      const fast = runCli(['statusline'], F.env, input);
      const full = runCli(['statusline'], fullEnv, input);
      assert.equal(fast.code, 0, fast.stderr);
      assert.equal(fast.stdout, full.stdout, label);
      return { line: fast.stdout, storeUntouched: before === `${stampOf(db)} ${stampOf(`${db}-wal`)}` };
    };
    both('first call: a full run in both');
    const steps: Array<{ label: string; lines: string[]; fast: boolean }> = [
      { label: 'a new response', fast: true, lines: [assistantLine({ sessionId: SESSION, model: 'claude-opus-4-8',
        timestamp: '2026-11-22T12:40:00.000Z', input: 1200, output: 300, cacheRead: 40_000, cacheWrite5m: 900 })] },
      { label: 'a response written as two lines (one per content block), then a tool result', fast: true, lines: [
        assistantLine({ sessionId: SESSION, model: 'claude-opus-4-8', messageId: 'msg_two_blocks', requestId: 'req_two_blocks',
          timestamp: '2026-11-22T12:41:00.000Z', input: 10, output: 5, cacheRead: 41_000 }),
        assistantLine({ sessionId: SESSION, model: 'claude-opus-4-8', messageId: 'msg_two_blocks', requestId: 'req_two_blocks',
          timestamp: '2026-11-22T12:41:02.000Z', input: 10, output: 250, cacheRead: 41_000, tools: [{ id: 'toolu_x', name: 'Bash' }] }),
        toolResultLine('toolu_x', 'ok', { sessionId: SESSION, timestamp: '2026-11-22T12:41:03.000Z' })] },
      { label: 'the same response again, a larger copy: a merge with a stored row, so a full run', fast: false, lines: [
        assistantLine({ sessionId: SESSION, model: 'claude-opus-4-8', messageId: 'msg_two_blocks', requestId: 'req_two_blocks',
          timestamp: '2026-11-22T12:41:04.000Z', input: 10, output: 900, cacheRead: 41_000 })] },
      { label: 'a model without a price: counted as unknown, never $0', fast: true, lines: [assistantLine({ sessionId: SESSION,
        model: 'claude-imaginary-9', timestamp: '2026-11-22T12:42:00.000Z', input: 5000, output: 50 })] },
      { label: 'two more responses at once', fast: true, lines: [
        assistantLine({ sessionId: SESSION, model: 'claude-haiku-4-5-20251001', timestamp: '2026-11-22T12:43:00.000Z', input: 90, output: 900 }),
        assistantLine({ sessionId: SESSION, model: 'claude-opus-4-8', timestamp: '2026-11-22T12:44:00.000Z', input: 10, output: 10, webSearches: 2 })] },
      { label: 'a half-written line is left for later, as the importer leaves it', fast: true, lines: [] },
    ];
    const bundled = existsSync(join(repoRoot, 'dist', 'statusline-fast.cjs'));
    const codeCache = join(F.env.TOKENTALLY_HOME!, 'cache', 'statusline-code.v8');
    for (const step of steps) {
      if (step.lines.length) appendTranscript(F.transcript, step.lines);
      else appendFileSync(F.transcript, '{"type":"assistant","message":{"id":"msg_partial"');
      rmSync(codeCache, { force: true });
      const r = both(step.label);
      assert.equal(r.storeUntouched, step.fast, `${step.label}: ${step.fast ? 'no store write expected' : 'a full run expected'}`);
      // The store-free path runs from its own bundle (quick.ts): the full bundle (which rewrites its missing V8
      // code cache) is loaded only for a full run.
      if (bundled) assert.equal(!existsSync(codeCache), step.fast, `${step.label}: full bundle loaded: ${!step.fast}`);
    }
    // Another writer (a report's sync) changes the store: the next call is a full run, still equal.
    assert.equal(runCli(['daily', '--json'], F.env).code, 0);
    assert.equal(runCli(['daily', '--json'], fullEnv).code, 0); // the same history in both stores
    appendFileSync(F.transcript, '}\n');
    appendTranscript(F.transcript, [assistantLine({ sessionId: SESSION, model: 'claude-opus-4-8', timestamp: '2026-11-22T12:45:00.000Z' })]);
    assert.equal(both('after another writer').storeUntouched, false);
    // That full run imported this session's new line and kept the state again: the next response is store-free.
    appendTranscript(F.transcript, [assistantLine({ sessionId: SESSION, model: 'claude-opus-4-8', timestamp: '2026-11-22T12:46:00.000Z',
      input: 700, output: 70 })]);
    assert.equal(both('a response after the full run').storeUntouched, true);
    // Another writer, with nothing new in this session: a full run that imports nothing (its checkpoints, read
    // once, go in the state), then store-free again.
    assert.equal(runCli(['daily', '--json'], F.env).code, 0);
    assert.equal(runCli(['daily', '--json'], fullEnv).code, 0);
    rmSync(codeCache, { force: true });
    assert.equal(both('after another writer, nothing new in the session').storeUntouched, true);
    if (bundled) assert.ok(existsSync(codeCache), 'a full run after another writer');
    appendTranscript(F.transcript, [assistantLine({ sessionId: SESSION, model: 'claude-opus-4-8', timestamp: '2026-11-22T12:47:00.000Z',
      input: 800, output: 80 })]);
    rmSync(codeCache, { force: true });
    assert.equal(both('a response after that').storeUntouched, true);
    if (bundled) assert.ok(!existsSync(codeCache), 'store-free after the full run that imported nothing');
  });

  it('the bundle carries the built-in price catalog\'s fingerprint, as computed from the catalog', () => {
    const bundle = join(repoRoot, 'dist', 'statusline.cjs');
    if (!existsSync(bundle)) return; // built without esbuild
    assert.equal(PriceBook.builtin().fingerprint, priceFingerprint(BUILTIN_MODELS));
    assert.ok(readFileSync(bundle, 'utf8').includes(JSON.stringify(priceFingerprint(BUILTIN_MODELS))));
  });

  it('loads neither commander nor the table renderer (the fast path in main.ts)', () => {
    const r = runCli(['statusline'], { ...L.env, NODE_DEBUG: 'module' }, L.inputs[2]);
    assert.equal(r.code, 0);
    assert.match(r.stderr, /better-sqlite3/); // the trace works
    assert.doesNotMatch(r.stderr, /node_modules\/(commander|cli-table3|cli-progress)\//);
  });
});

describe('statusline formatting', () => {
  const base: StatuslineData = {
    model: 'Claude Sonnet 4.6 (1M context)', session: { id: 's', cost: 1.234, unknownCostTokens: 0, requests: 3, ccCost: 1.24 },
    today: { date: '2026-11-22', cost: 12.4, unknownCostTokens: 0, requests: 50 },
    block: { start: 0, end: 5 * 3_600_000, cost: 3.1, unknownCostTokens: 0, remainingMs: 7_980_000, costPerHour: 1, projectedCost: 5 },
    context: { tokens: 123_456, size: 1_000_000, percent: 12.3 }, syncError: null,
  };

  it('hides a close Claude Code estimate and shows a different one; never prints $0 for unpriced usage', () => {
    assert.equal(formatStatusline(base), 'Sonnet 4.6 | $1.23 session | $12.40 today | $3.10 block, 2h13m left | ctx 123K 12%');
    assert.match(formatStatusline({ ...base, session: { ...base.session!, ccCost: 2 } }), /\$1\.23 session \(CC \$2\.00\)/);
    const unknown = formatStatusline({ ...base, session: { ...base.session!, cost: 0, unknownCostTokens: 10, ccCost: null },
      today: { ...base.today, unknownCostTokens: 5 }, block: null, context: null });
    assert.equal(unknown, 'Sonnet 4.6 | unknown session | $12.40+? today | no active block');
    assert.match(formatStatusline({ ...base, model: 'claude-opus-4-8[1m]' }), /^opus-4-8 \| /);
  });

  it('parses Claude Code\'s stdin JSON defensively', () => {
    assert.equal(parseStatuslineInput(''), null);
    assert.equal(parseStatuslineInput('nope'), null);
    const p = parseStatuslineInput(JSON.stringify({ session_id: 'a', model: { id: 'claude-opus-4-8[1m]' },
      context_window: { context_window_size: 200000, current_usage: { input_tokens: 1, cache_creation_input_tokens: 2, cache_read_input_tokens: 3 } } }))!;
    assert.equal(p.sessionId, 'a');
    assert.equal(p.modelId, 'claude-opus-4-8[1m]');
    assert.equal(p.contextTokens, 6);
    assert.equal(p.usedPercent, null);
    assert.equal(p.ccCost, null);
  });
});

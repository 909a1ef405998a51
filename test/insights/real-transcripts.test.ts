/**
 * The session audit, tool attribution and whatif on the shared real transcripts, checked against sums
 * computed here, independently, from the raw JSONL (deduplicated by message id, largest copy kept) and the
 * rate card literals.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isolatedEnv, runCli } from '../helpers/cli.js';
import { sharedPath } from '../helpers/paths.js';

const PUBLIC = () => sharedPath('fixtures', 'transcripts-public');
const LAB = () => sharedPath('fixtures', 'claude-code-lab');

/** USD per million tokens: input, output, 5m write, 1h write, read (docs/pricing.md). */
const RATES: Record<string, [number, number, number, number, number]> = {
  'claude-opus-4-7': [5, 25, 6.25, 10, 0.5],
  'claude-opus-4-5-20251101': [5, 25, 6.25, 10, 0.5],
  'claude-haiku-4-5-20251001': [1, 5, 1.25, 2, 0.1],
  'claude-haiku-4-5': [1, 5, 1.25, 2, 0.1],
  'claude-sonnet-4-20250514': [3, 15, 3.75, 6, 0.3],
  'claude-sonnet-4-5-20250929': [3, 15, 3.75, 6, 0.3],
  'claude-sonnet-4-5': [3, 15, 3.75, 6, 0.3],
};

interface RawRequest {
  key: string;
  ts: number;
  model: string;
  thread: string;
  input: number;
  output: number;
  w5: number;
  w1: number;
  read: number;
}

function jsonlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...jsonlFiles(p));
    else if (name.endsWith('.jsonl')) out.push(p);
  }
  return out.sort();
}

function rawLines(sessionId: string): Record<string, any>[] {
  const lines: Record<string, any>[] = [];
  for (const root of [PUBLIC(), LAB()]) {
    for (const f of jsonlFiles(join(root, 'projects'))) {
      for (const l of readFileSync(f, 'utf8').split('\n')) {
        if (!l.includes(sessionId)) continue;
        try {
          const j = JSON.parse(l);
          if (j && j.sessionId === sessionId) lines.push(j);
        } catch { /* malformed fixture lines */ }
      }
    }
  }
  return lines;
}

/** Requests of a session straight from the JSONL: one per message id, the largest copy's usage, the first copy's time. */
function rawRequests(sessionId: string): RawRequest[] {
  const byId = new Map<string, RawRequest & { total: number }>();
  for (const j of rawLines(sessionId)) {
    const m = j.message;
    if (j.type !== 'assistant' || !m?.usage || m.model === '<synthetic>') continue;
    const u = m.usage;
    const cc = u.cache_creation;
    const w5 = cc ? cc.ephemeral_5m_input_tokens ?? 0 : u.cache_creation_input_tokens ?? 0;
    const w1 = cc ? cc.ephemeral_1h_input_tokens ?? 0 : 0;
    const r: RawRequest & { total: number } = {
      key: `m:${m.id}`, ts: Date.parse(j.timestamp), model: m.model,
      thread: j.agentId ? `agent-${j.agentId}` : j.isSidechain ? 'sidechain' : 'main',
      input: u.input_tokens ?? 0, output: u.output_tokens ?? 0, w5, w1, read: u.cache_read_input_tokens ?? 0, total: 0,
    };
    r.total = r.input + r.output + r.w5 + r.w1 + r.read;
    const prev = byId.get(m.id);
    if (!prev) byId.set(m.id, r);
    else if (r.total > prev.total) byId.set(m.id, { ...r, ts: prev.ts });
  }
  return [...byId.values()].sort((a, b) => a.ts - b.ts || a.key.localeCompare(b.key));
}

const context = (r: RawRequest) => r.input + r.w5 + r.w1 + r.read;
function costAt(rates: [number, number, number, number, number], r: RawRequest): number {
  const [i, o, w5, w1, rd] = rates;
  return (r.input * i + r.output * o + r.w5 * w5 + r.w1 * w1 + r.read * rd) / 1e6;
}
function promptRate(r: RawRequest): number {
  const [i, , w5, w1, rd] = RATES[r.model];
  return context(r) > 0 ? (r.input * i + r.w5 * w5 + r.w1 * w1 + r.read * rd) / 1e6 / context(r) : 0;
}
const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b)), `${what}: ${a} != ${b}`);

let env: NodeJS.ProcessEnv;
function tt(args: string[]) {
  const r = runCli([...args, '--no-sync'], env);
  return r;
}
function json(args: string[]) {
  const r = tt([...args, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const AUDITED = [
  'ef958aa1-0e93-49f0-bb71-150f63befcd1', // Opus 4.7, 1h cache writes, main thread + one subagent file
  'a7da6a22-facc-4fcd-8bab-f83c87862004', // Opus 4.5 main thread + Haiku 4.5 subagent (2.0.x flat agent file)
  '37f83ec9-f2ea-42a9-925e-0d5c105cb6e8', // Sonnet 4, Claude Code 1.0.51 (no 5m/1h split)
  'cb2e607c-c758-415a-8b45-c49e4631906a', // Sonnet 4.5 + subagent
];

describe('session audit on the shared real transcripts', () => {
  before(() => {
    env = isolatedEnv({ CLAUDE_CONFIG_DIR: [PUBLIC(), LAB()].join(',') });
    const r = runCli(['sync'], env);
    assert.equal(r.code, 0, r.stderr);
  });

  for (const id of AUDITED) {
    it(`${id.slice(0, 8)}: per-request context, output, cost, hit rate, growth and cumulative cost match the raw JSONL`, () => {
      const raw = rawRequests(id);
      const a = json(['session', id]);
      assert.equal(a.sessionId, id);
      assert.equal(a.requests.length, raw.length);
      let cumulative = 0;
      const lastContext = new Map<string, number>();
      raw.forEach((r, i) => {
        const row = a.requests[i];
        assert.equal(row.key, r.key, `row ${i + 1} order`);
        assert.equal(row.n, i + 1);
        assert.equal(row.model, r.model);
        assert.equal(row.context, context(r), `context of ${r.key}`);
        assert.equal(row.output, r.output);
        assert.deepEqual([row.input, row.cacheWrite5m, row.cacheWrite1h, row.cacheRead], [r.input, r.w5, r.w1, r.read]);
        const cost = costAt(RATES[r.model], r);
        cumulative += cost;
        near(row.cost, cost, `cost of ${r.key}`);
        near(row.cumulativeCost, cumulative, `cumulative cost at ${r.key}`);
        near(row.cacheHitRate, context(r) > 0 ? r.read / context(r) : 0, 'hit rate');
        assert.equal(row.thread, r.thread);
        const prev = lastContext.get(r.thread);
        assert.equal(row.growth, prev === undefined ? null : context(r) - prev, `growth of ${r.key}`);
        lastContext.set(r.thread, context(r));
      });
      near(a.totals.cost, cumulative, 'total cost');
      assert.equal(a.totals.requests, raw.length);
      assert.equal(a.totals.output, raw.reduce((s, r) => s + r.output, 0));
      assert.equal(a.totals.context, raw.reduce((s, r) => s + context(r), 0));
      near(a.totals.cacheHitRate, raw.reduce((s, r) => s + r.read, 0) / raw.reduce((s, r) => s + context(r), 0), 'session hit rate');
      // Threads: one per context, with their own request counts.
      const threads = new Map<string, number>();
      for (const r of raw) threads.set(r.thread, (threads.get(r.thread) ?? 0) + 1);
      assert.deepEqual(Object.fromEntries(a.threads.map((t: { thread: string; requests: number }) => [t.thread, t.requests])),
        Object.fromEntries(threads));
      // And the per-session report agrees on the total.
      const report = json(['session']);
      const reported = report.session.find((s: { sessionId: string }) => s.sessionId === id).totalCost;
      assert.ok(Math.abs(reported - cumulative) <= 1e-6, `session report ${reported} vs ${cumulative}`);
    });

    it(`${id.slice(0, 8)}: tool attribution is consistent and its carried cost re-computes from the rows`, () => {
      const raw = rawRequests(id);
      const a = json(['session', id]);
      const t = a.tools;
      const sum = (xs: { tokens: number }[]) => xs.reduce((s, x) => s + x.tokens, 0);
      assert.ok(t.results.length > 0);
      assert.equal(sum(t.byTool), sum(t.results));
      assert.equal(sum(t.byGroup), sum(t.results));
      assert.equal(t.totals.tokens, sum(t.results));
      assert.equal(t.totals.exactTokens + t.totals.estimatedTokens, t.totals.tokens);
      near(t.byTool.reduce((s: number, x: { carriedCost: number }) => s + x.carriedCost, 0), t.totals.carriedCost, 'carried by tool');
      // Tool calls recorded = tool_use blocks in the raw lines (deduplicated by id).
      const callIds = new Set<string>();
      for (const j of rawLines(id)) {
        if (j.type === 'assistant' && Array.isArray(j.message?.content)) {
          for (const b of j.message.content) if (b?.type === 'tool_use') callIds.add(b.id);
        }
      }
      assert.equal(t.totals.calls, callIds.size);

      const rowsByThread = new Map<string, RawRequest[]>();
      for (const r of raw) rowsByThread.set(r.thread, [...(rowsByThread.get(r.thread) ?? []), r]);
      const nOf = new Map(raw.map((r, i) => [r.key, i + 1]));
      const exactAt = new Map<string, number>();
      for (const x of t.results) {
        // Estimated sizes are characters / 4.
        if (x.method === 'estimated') assert.equal(x.tokens, Math.round(x.chars / 4));
        if (x.firstSentN === null) {
          assert.equal(x.carriedCost, 0);
          continue;
        }
        const rows = rowsByThread.get(x.thread)!;
        const first = rows.findIndex((r) => nOf.get(r.key) === x.firstSentN);
        assert.ok(first >= 0, `first send of ${x.toolUseId} is in its thread`);
        near(x.firstSendCost, x.tokens * promptRate(rows[first]), `first send of ${x.toolUseId}`);
        let carried = 0;
        for (let j = first + 1; j < first + x.sentIn; j++) carried += x.tokens * promptRate(rows[j]);
        near(x.carriedCost, carried, `carried cost of ${x.toolUseId}`);
        if (x.method === 'exact') exactAt.set(`${x.thread}#${first}`, (exactAt.get(`${x.thread}#${first}`) ?? 0) + x.tokens);
      }
      // Exact sizes: the results first sent in a request add up to prompt(r) - prompt(previous) - output(previous),
      // and only where the previous request's recorded output covers at least half its tool inputs' characters / 4.
      const inputChars = new Map<string, number>();
      const seenCalls = new Set<string>();
      for (const j of rawLines(id)) {
        if (j.type !== 'assistant' || !Array.isArray(j.message?.content)) continue;
        for (const b of j.message.content) {
          if (b?.type !== 'tool_use' || seenCalls.has(b.id)) continue;
          seenCalls.add(b.id);
          const k = `m:${j.message.id}`;
          inputChars.set(k, (inputChars.get(k) ?? 0) + JSON.stringify(b.input ?? {}).length);
        }
      }
      assert.ok(exactAt.size > 0);
      for (const [k, tokens] of exactAt) {
        const [thread, idx] = k.split('#');
        const rows = rowsByThread.get(thread)!;
        const j = Number(idx);
        assert.equal(tokens, context(rows[j]) - context(rows[j - 1]) - rows[j - 1].output, `exact sizes at ${k}`);
        assert.ok(rows[j - 1].output >= (inputChars.get(rows[j - 1].key) ?? 0) / 8, `output of ${rows[j - 1].key} recorded in full`);
      }
    });
  }

  it('shows compaction points where the transcripts have compact_boundary lines', () => {
    for (const id of ['1a9beabb-6589-4036-bedf-362d300a3f95', 'ses_stage0_small']) {
      const expected = rawLines(id).filter((j) => j.type === 'system' && j.subtype === 'compact_boundary')
        .map((j) => ({ time: new Date(Date.parse(j.timestamp)).toISOString(), trigger: j.compactMetadata?.trigger ?? null,
          preTokens: j.compactMetadata?.preTokens ?? null }));
      assert.ok(expected.length > 0, `${id} has a compact_boundary line`);
      const a = json(['session', id]);
      assert.deepEqual(a.compactions.filter((c: { kind: string }) => c.kind === 'compaction')
        .map((c: { time: string; trigger: string; preTokens: number }) => ({ time: c.time, trigger: c.trigger, preTokens: c.preTokens })), expected);
      const text = tt(['session', id]).stdout;
      assert.match(text, /Compaction points:\n\s+(#\d+|after the last request) main \d\d:\d\d:\d\d: compaction \((manual|auto)\)/);
    }
  });

  it('whatif --model equals re-pricing the session\'s raw tokens by hand', () => {
    for (const [id, target] of [[AUDITED[0], 'claude-sonnet-4-5'], [AUDITED[1], 'claude-haiku-4-5']]) {
      const raw = rawRequests(id);
      const before = raw.reduce((s, r) => s + costAt(RATES[r.model], r), 0);
      const after = raw.reduce((s, r) => s + costAt(RATES[target], r), 0);
      const w = json(['whatif', '--session', id, '--model', target]);
      near(w.before, before, 'before');
      near(w.after, after, 'after');
      near(w.saving, before - after, 'saving');
      near(w.savingPct, (before - after) / before, 'saving %');
      assert.equal(w.requests, raw.length);
      assert.equal(w.unpricedRequests, 0);
      assert.ok(w.assumptions.some((x: string) => x.includes('same tokens')));
      const text = tt(['whatif', '--session', id.slice(0, 8), '--model', target]).stdout;
      assert.match(text, /Before\s+\$[\d.]+\n\s+After\s+\$[\d.]+\n\s+Saving\s+\$[\d.]+ \(\d+\.\d%\)/);
      assert.match(text, /Assumptions:/);
    }
  });

  it('whatif --no-cache, --compact-after and --clear-every never make a session cheaper than its output alone, and --no-cache costs more', () => {
    const id = AUDITED[1];
    const raw = rawRequests(id);
    const noCache = json(['whatif', '--session', id, '--no-cache']);
    const byHand = raw.reduce((s, r) => {
      const [i, o] = RATES[r.model];
      return s + (context(r) * i + r.output * o) / 1e6;
    }, 0);
    near(noCache.after, byHand, 'no-cache by hand');
    assert.ok(noCache.saving < 0);
    for (const flag of ['--compact-after', '--clear-every']) {
      const w = json(['whatif', '--session', id, flag, '20']);
      assert.ok(w.after <= w.before && w.after > 0, flag);
      assert.ok(w.tokens.promptAfter < w.tokens.promptBefore, flag);
    }
  });

  it('insights ranks findings by dollars, each with numbers behind it', () => {
    const x = json(['insights']);
    assert.ok(x.findings.length >= 5);
    for (let i = 1; i < x.findings.length; i++) assert.ok(x.findings[i - 1].dollars >= x.findings[i].dollars);
    for (const f of x.findings) {
      assert.ok(f.explanation.length > 0 && Object.keys(f.numbers).length > 0 && f.sessions.length > 0, f.title);
    }
    const top = x.findings.find((f: { kind: string }) => f.kind === 'top-session');
    const report = json(['session']);
    const expensive = report.session[0];
    assert.equal(top.sessions[0], expensive.sessionId);
    assert.ok(Math.abs(top.dollars - expensive.totalCost) <= 1e-6, `top session cost ${top.dollars} vs ${expensive.totalCost}`);
    assert.ok(x.notes.some((n: string) => /proxy/.test(n)), 'retries need proxy records: said so');
    const kinds = new Set(x.findings.map((f: { kind: string }) => f.kind));
    for (const k of ['top-session', 'tool-cost', 'repeated-reads', 'cache-expiry', 'expensive-model', 'long-sessions']) assert.ok(kinds.has(k), k);
  });

  it('tools across all sessions: per-tool sums equal the per-result list', () => {
    const t = json(['tools']);
    const sum = (xs: { tokens: number }[]) => xs.reduce((s, x) => s + x.tokens, 0);
    assert.equal(sum(t.byTool), sum(t.results));
    assert.equal(sum(t.byGroup), sum(t.results));
    assert.equal(t.totals.tokens, sum(t.results));
    assert.ok(t.repeatedReads.length > 0);
    for (const r of t.repeatedReads) assert.ok(r.reads >= 2);
  });

  it('text output fits 80 columns', () => {
    for (const args of [['session', AUDITED[0]], ['insights'], ['tools'], ['whatif', '--model', 'claude-sonnet-4-5']]) {
      const r = tt(args);
      assert.equal(r.code, 0, r.stderr);
      for (const l of r.stdout.split('\n')) assert.ok(l.length <= 80, `${args.join(' ')}: ${JSON.stringify(l)}`);
    }
  });

  it('session without an id stays the per-session report; latest and prefixes work; unknown ids exit 1', () => {
    const report = json(['session']);
    assert.ok(Array.isArray(report.session) && report.session.length > 5);
    const latest = json(['session', 'latest']);
    const newest = [...report.session].sort((a, b) => Date.parse(b.lastActivity) - Date.parse(a.lastActivity))[0];
    assert.equal(latest.sessionId, newest.sessionId);
    assert.equal(json(['session', 'ef958aa1']).sessionId, AUDITED[0]);
    const unknown = tt(['session', 'no-such-session']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no session with id "no-such-session"/);
    assert.doesNotMatch(unknown.stderr, /at .*\.js/);
  });

  it('bad usage exits 2 naming the flag', () => {
    const cases: [string[], RegExp][] = [
      [['whatif'], /choose a policy/],
      [['whatif', '--model', 'claude-nope-9'], /--model/],
      [['whatif', '--model', 'claude-haiku-4-5', '--route', '*=claude-haiku-4-5'], /--model and --route/],
      [['whatif', '--compact-after', '0'], /--compact-after/],
      [['whatif', '--clear-every', 'ten'], /--clear-every/],
      [['whatif', '--route', 'output<=800'], /--route/],
      [['whatif', '--route', 'output<800=claude-nope-9'], /--route/],
      [['whatif', '--no-cache', '--session', 'latest', '--since', '2026-01-01'], /--session/],
      [['insights', '--since', '2026-13-01'], /--since/],
      [['tools', '--limit', '-1'], /--limit/],
      [['session', AUDITED[0], '--csv'], /--csv/],
    ];
    for (const [args, msg] of cases) {
      const r = tt(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, msg, args.join(' '));
    }
  });
});

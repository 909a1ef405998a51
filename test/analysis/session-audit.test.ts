import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import { emptyUsage, type Usage } from '../../src/core/types.js';
import type { Compaction, ToolCall, ToolResult } from '../../src/core/session-facts.js';
import type { StoredRequest } from '../../src/store/store.js';
import { buildSessionModel } from '../../src/analysis/session-model.js';
import { auditSession, TTL_5M_MS } from '../../src/analysis/session-audit.js';
import { attributeTools, resultCosts } from '../../src/analysis/tool-attribution.js';
import { whatIf } from '../../src/analysis/whatif.js';
import { parseRouteRules, routeModel } from '../../src/analysis/route-rules.js';
import { buildInsights, cheaperSibling, findRetries } from '../../src/analysis/insights.js';

const prices = PriceBook.builtin();
const T0 = Date.parse('2026-11-20T10:00:00Z');
const MTOK = 1_000_000;
const close = (a: number, b: number, msg?: string) => assert.ok(Math.abs(a - b) < 1e-12, `${msg ?? ''} ${a} != ${b}`);

let n = 0;
function req(s: Partial<Usage> & { ts: number; key?: string; model?: string; agentId?: string; isSubagent?: boolean;
  tools?: string[]; proxy?: StoredRequest['proxy']; sessionId?: string }): StoredRequest {
  n++;
  const usage = { ...emptyUsage(), ...s };
  const model = s.model ?? 'claude-sonnet-4-6';
  return {
    key: s.key ?? `m:msg_${n}`, requestId: null, messageId: (s.key ?? `m:msg_${n}`).slice(2), ts: s.ts,
    sessionId: s.sessionId ?? 's1', project: '/p', agentId: s.agentId ?? null, isSubagent: s.isSubagent ?? Boolean(s.agentId),
    model, usage, stopReason: null, tools: s.tools ?? [], clientVersion: null, sources: s.proxy ? 2 : 1,
    cost: prices.price(model, s.ts, usage).cost, ...(s.proxy ? { proxy: s.proxy } : {}),
  };
}
function call(id: string, requestKey: string, ts: number, name = 'Read', target: string | null = '/p/log.txt', agentId: string | null = null): ToolCall {
  return { toolUseId: id, requestKey, sessionId: 's1', agentId, ts, name, inputChars: 20, target };
}
function result(id: string, ts: number, chars: number, agentId: string | null = null): ToolResult {
  return { toolUseId: id, sessionId: 's1', agentId, ts, resultChars: chars, isError: false };
}
const sec = (s: number) => T0 + s * 1000;

describe('carried cost: the hand-worked example', () => {
  // Sonnet 4.6: input $3, 5m write $3.75, read $0.30, output $15 per MTok.
  // r0 (20,000-token prompt, all written) calls Read; the 40,000-character result comes back;
  // r1 sends it: prompt 30,100 = 20,000 read + 10,100 written (r0's 100 output tokens + the result).
  // Exact size: prompt(r1) - prompt(r0) - output(r0) = 30,100 - 20,000 - 100 = 10,000 tokens.
  // r2, r3, r4 are pure cache reads (promptRate = $0.30/MTok), then a compaction, then r5.
  // Carried cost = 3 later requests x 10,000 tokens x $0.30/MTok = $0.009.
  const r0 = req({ key: 'm:r0', ts: sec(0), cacheWrite5m: 20_000, output: 100, tools: ['Read'] });
  const r1 = req({ key: 'm:r1', ts: sec(10), cacheRead: 20_000, cacheWrite5m: 10_100, output: 50 });
  const r2 = req({ key: 'm:r2', ts: sec(20), cacheRead: 30_150, output: 50 });
  const r3 = req({ key: 'm:r3', ts: sec(30), cacheRead: 30_200, output: 50 });
  const r4 = req({ key: 'm:r4', ts: sec(40), cacheRead: 30_250, output: 50, tools: ['Bash'] });
  const compaction: Compaction = { sessionId: 's1', agentId: null, ts: sec(45), trigger: 'manual', preTokens: 30_300 };
  const r5 = req({ key: 'm:r5', ts: sec(50), cacheRead: 5_000, cacheWrite5m: 3_000, output: 50 });
  const model = buildSessionModel({
    sessionId: 's1', requests: [r5, r3, r1, r0, r4, r2],
    calls: [call('t1', 'm:r0', sec(0)), call('t2', 'm:r4', sec(40), 'Bash', null)],
    results: [result('t1', sec(5), 40_000), result('t2', sec(44), 8_000)],
    compactions: [compaction],
  }, prices);

  it('measures the result exactly from the usage delta and carries it until the compaction', () => {
    const [read, bash] = model.results;
    assert.equal(read.tokens, 10_000);
    assert.equal(read.method, 'exact');
    assert.equal(read.firstSent, 1);
    assert.equal(read.end, 5);
    assert.equal(read.endReason, 'compaction');
    // The Bash result came back just before the compaction: r5 follows it but after the compaction.
    assert.equal(bash.method, 'estimated');
    assert.equal(bash.tokens, 8_000 / 4);
    assert.equal(bash.endReason, 'never-sent');
  });

  it('charges 3 x 10,000 x $0.30/MTok = $0.009 for the three later pure-read requests', () => {
    const [read, bash] = resultCosts(model);
    close(read.carriedCost, 0.009);
    // First send at r1's average context price: (10,100 x 3.75 + 20,000 x 0.30) / 30,100 per MTok.
    close(read.firstSendCost, 10_000 * ((10_100 * 3.75 + 20_000 * 0.3) / 30_100) / MTOK);
    close(read.totalCost, read.firstSendCost + 0.009);
    assert.equal(read.sentIn, 4);
    assert.equal(read.firstSentN, 2);
    assert.equal(bash.carriedCost, 0);
    assert.equal(bash.firstSendCost, 0);
  });

  it('audits per request: context, growth, cost, hit rate, cumulative cost, compaction point', () => {
    const a = auditSession(model, prices);
    assert.deepEqual(a.rows.map((r) => r.key), ['m:r0', 'm:r1', 'm:r2', 'm:r3', 'm:r4', 'm:r5']);
    assert.deepEqual(a.rows.map((r) => r.context), [20_000, 30_100, 30_150, 30_200, 30_250, 8_000]);
    assert.deepEqual(a.rows.map((r) => r.growth), [null, 10_100, 50, 50, 50, -22_250]);
    const costs = [
      (20_000 * 3.75 + 100 * 15) / MTOK,
      (20_000 * 0.3 + 10_100 * 3.75 + 50 * 15) / MTOK,
      (30_150 * 0.3 + 50 * 15) / MTOK,
      (30_200 * 0.3 + 50 * 15) / MTOK,
      (30_250 * 0.3 + 50 * 15) / MTOK,
      (5_000 * 0.3 + 3_000 * 3.75 + 50 * 15) / MTOK,
    ];
    let cum = 0;
    a.rows.forEach((r, i) => {
      cum += costs[i];
      close(r.cost!, costs[i], `cost of #${r.n}`);
      close(r.cumulativeCost, cum, `cumulative at #${r.n}`);
    });
    close(a.rows[2].cacheHitRate, 1);
    assert.equal(a.rows[1].toolResultTokens, 10_000);
    assert.deepEqual(a.rows[5].notes, ['compaction']);
    assert.equal(a.compactions.length, 1);
    assert.equal(a.compactions[0].contextBefore, 30_250);
    assert.equal(a.compactions[0].contextAfter, 8_000);
    assert.equal(a.compactions[0].n, 6);
    close(a.totals.cost, cum);
    assert.equal(a.cacheExpiries.length, 0);
    assert.equal(a.prefixChanges.length, 0);
  });

  it('sums per tool equal the per-result list', () => {
    const t = attributeTools([model]);
    assert.equal(t.byTool.reduce((s, x) => s + x.tokens, 0), t.results.reduce((s, x) => s + x.tokens, 0));
    assert.equal(t.totals.tokens, 12_000);
    assert.equal(t.totals.exactTokens, 10_000);
    assert.equal(t.totals.estimatedTokens, 2_000);
    close(t.byTool.find((x) => x.tool === 'Read')!.carriedCost, 0.009);
  });
});

describe('exact result sizes', () => {
  it('splits the usage delta over the results of one request in proportion to characters, summing exactly', () => {
    const r0 = req({ key: 'm:a0', ts: sec(0), cacheWrite5m: 10_000, output: 1_000 });
    const r1 = req({ key: 'm:a1', ts: sec(5), cacheRead: 10_000, cacheWrite5m: 2_001, output: 10 });
    const m = buildSessionModel({
      sessionId: 's1', requests: [r0, r1],
      calls: [call('x', 'm:a0', sec(0)), call('y', 'm:a0', sec(0)), call('z', 'm:a0', sec(0))],
      results: [result('x', sec(1), 100), result('y', sec(1), 100), result('z', sec(1), 100)],
      compactions: [],
    }, prices);
    // delta = 12,001 - 10,000 - 1,000 = 1,001 over three equal results: 334 + 334 + 333.
    assert.deepEqual(m.results.map((x) => x.tokens), [334, 334, 333]);
    assert.ok(m.results.every((x) => x.method === 'exact'));
  });

  it('falls back to characters / 4 when the delta is not positive', () => {
    const r0 = req({ key: 'm:b0', ts: sec(0), cacheWrite5m: 10_000, output: 500 });
    const r1 = req({ key: 'm:b1', ts: sec(5), cacheRead: 10_000, cacheWrite5m: 100, output: 10 });
    const m = buildSessionModel({
      sessionId: 's1', requests: [r0, r1], calls: [call('x', 'm:b0', sec(0))], results: [result('x', sec(1), 4_000)], compactions: [],
    }, prices);
    assert.equal(m.results[0].method, 'estimated');
    assert.equal(m.results[0].tokens, 1_000);
  });

  it('does not trust a delta when the previous request\'s output was recorded truncated (stream not finished)', () => {
    // r0 wrote a 40,000-character file (about 10,000 tokens) but its transcript line says 3 output tokens.
    const r0 = req({ key: 'm:t0', ts: sec(0), cacheWrite5m: 10_000, output: 3 });
    const r1 = req({ key: 'm:t1', ts: sec(5), cacheRead: 10_000, cacheWrite5m: 10_100, output: 10 });
    const c = { ...call('w', 'm:t0', sec(0), 'Write'), inputChars: 40_000 };
    const m = buildSessionModel({ sessionId: 's1', requests: [r0, r1], calls: [c], results: [result('w', sec(1), 80)], compactions: [] }, prices);
    assert.equal(m.results[0].method, 'estimated');
    assert.equal(m.results[0].tokens, 20);
  });

  it('keeps subagent threads separate: results and growth follow the thread of the calling request', () => {
    const main0 = req({ key: 'm:c0', ts: sec(0), cacheWrite5m: 20_000, output: 100 });
    const sub0 = req({ key: 'm:c1', ts: sec(2), cacheWrite5m: 8_000, output: 50, agentId: 'aa' });
    const sub1 = req({ key: 'm:c2', ts: sec(4), cacheRead: 8_000, cacheWrite5m: 1_050, output: 50, agentId: 'aa' });
    const main1 = req({ key: 'm:c3', ts: sec(6), cacheRead: 20_000, cacheWrite5m: 600, output: 10 });
    const m = buildSessionModel({
      sessionId: 's1', requests: [main0, sub0, sub1, main1],
      calls: [call('s', 'm:c1', sec(2), 'Grep', null, 'aa'), call('t', 'm:c0', sec(0), 'Task', 'general-purpose')],
      results: [result('s', sec(3), 4_000, 'aa'), result('t', sec(5), 2_000)],
      compactions: [],
    }, prices);
    const a = auditSession(m, prices);
    assert.deepEqual(a.rows.map((r) => [r.thread, r.growth]), [['main', null], ['agent-aa', null], ['agent-aa', 1_050], ['main', 600]]);
    assert.deepEqual(m.results.map((x) => [x.thread, x.tokens, x.method]), [['agent-aa', 1_000, 'exact'], ['main', 500, 'exact']]);
  });
});

describe('cache heuristics', () => {
  it('flags an idle gap beyond the 5-minute lifetime followed by a re-write as a paid cache expiry', () => {
    const r0 = req({ key: 'm:d0', ts: sec(0), cacheWrite5m: 50_000, output: 100 });
    const r1 = req({ key: 'm:d1', ts: sec(0) + TTL_5M_MS + 60_000, cacheWrite5m: 50_200, output: 100 });
    const a = auditSession(buildSessionModel({ sessionId: 's1', requests: [r0, r1], calls: [], results: [], compactions: [] }, prices), prices);
    assert.equal(a.cacheExpiries.length, 1);
    const e = a.cacheExpiries[0];
    assert.equal(e.rewrittenTokens, 50_000);
    // 50,000 tokens written at $3.75 instead of read at $0.30.
    close(e.extraCost!, 50_000 * (3.75 - 0.3) / MTOK);
    assert.deepEqual(a.rows[1].notes, ['cache-expiry']);
    assert.equal(a.idleGaps.length, 1);
    assert.equal(a.prefixChanges.length, 0);
  });

  it('uses the 1-hour lifetime after 1h writes', () => {
    const r0 = req({ key: 'm:e0', ts: sec(0), cacheWrite1h: 50_000, output: 100 });
    const r1 = req({ key: 'm:e1', ts: sec(20 * 60), cacheRead: 50_000, cacheWrite1h: 200, output: 100 });
    const a = auditSession(buildSessionModel({ sessionId: 's1', requests: [r0, r1], calls: [], results: [], compactions: [] }, prices), prices);
    assert.equal(a.idleGaps.length, 0);
    assert.equal(a.cacheExpiries.length, 0);
  });

  it('flags a write of a similar-size prefix within the lifetime as a write that should have been a read', () => {
    const r0 = req({ key: 'm:f0', ts: sec(0), cacheWrite5m: 30_000, output: 100 });
    const r1 = req({ key: 'm:f1', ts: sec(5), cacheWrite5m: 33_000, output: 100 });
    const r2 = req({ key: 'm:f2', ts: sec(10), cacheRead: 33_000, cacheWrite5m: 300, output: 100, model: 'claude-opus-4-6' });
    const a = auditSession(buildSessionModel({ sessionId: 's1', requests: [r0, r1, r2], calls: [], results: [], compactions: [] }, prices), prices);
    assert.equal(a.prefixChanges.length, 1);
    assert.equal(a.prefixChanges[0].n, 2);
    assert.equal(a.prefixChanges[0].rewrittenTokens, 30_000);
    close(a.prefixChanges[0].extraCost!, 30_000 * (3.75 - 0.3) / MTOK);
    assert.deepEqual(a.rows[2].notes, ['model-change']);
  });
});

describe('whatif', () => {
  const r0 = req({ key: 'm:w0', ts: sec(0), input: 1_000, cacheWrite5m: 9_000, output: 500, model: 'claude-opus-4-6' });
  const r1 = req({ key: 'm:w1', ts: sec(10), input: 10, cacheRead: 9_000, cacheWrite5m: 2_490, output: 200, model: 'claude-opus-4-6' });
  const r2 = req({ key: 'm:w2', ts: sec(20), input: 10, cacheRead: 11_490, cacheWrite5m: 500, output: 2_000, model: 'claude-opus-4-6' });
  const model = buildSessionModel({
    sessionId: 's1', requests: [r0, r1, r2], calls: [call('q', 'm:w0', sec(0))], results: [result('q', sec(5), 8_000)], compactions: [],
  }, prices);

  it('--model re-prices the same tokens at the other model\'s rates', () => {
    const w = whatIf([model], { model: 'claude-haiku-4-5' }, prices);
    const opus = (u: number[]) => (u[0] * 5 + u[1] * 6.25 + u[2] * 0.5 + u[3] * 25) / MTOK;
    const haiku = (u: number[]) => (u[0] * 1 + u[1] * 1.25 + u[2] * 0.1 + u[3] * 5) / MTOK;
    const toks = [[1_000, 9_000, 0, 500], [10, 2_490, 9_000, 200], [10, 500, 11_490, 2_000]];
    close(w.before, toks.reduce((s, u) => s + opus(u), 0));
    close(w.after, toks.reduce((s, u) => s + haiku(u), 0));
    close(w.saving, w.before - w.after);
    assert.equal(w.moves.length, 1);
  });

  it('--no-cache prices cache reads and writes as input', () => {
    const w = whatIf([model], { noCache: true }, prices);
    close(w.after, ((10_000 + 11_500 + 12_000) * 5 + (500 + 200 + 2_000) * 25) / MTOK);
  });

  it('--compact-after 1 drops the result from requests two and more after its first send', () => {
    // The result (exact: prompt(r1) - prompt(r0) - output(r0) = 11,500 - 10,000 - 500) is first sent in r1, dropped in r2.
    const x = model.results[0];
    assert.equal(x.tokens, 11_500 - 10_000 - 500);
    const w = whatIf([model], { compactAfter: 1 }, prices);
    assert.equal(w.tokens.promptBefore, 10_000 + 11_500 + 12_000);
    assert.equal(w.tokens.promptAfter, 10_000 + 11_500 + 12_000 - 1_000);
    assert.ok(w.saving > 0);
  });

  it('--clear-every 2 restarts the context at the first request size', () => {
    // r2 starts block 2: prompt = first (10,000) + growth since block start (0) = 10,000 instead of 12,000.
    const w = whatIf([model], { clearEvery: 2 }, prices);
    assert.equal(w.tokens.promptAfter, 10_000 + 11_500 + 10_000);
  });

  it('--route applies the first matching rule', () => {
    const rules = parseRouteRules('output<300&prompt<20k=claude-haiku-4-5, model~opus=claude-sonnet-4-6');
    assert.equal(routeModel(rules, 'claude-opus-4-6', r1.usage), 'claude-haiku-4-5');
    assert.equal(routeModel(rules, 'claude-opus-4-6', r2.usage), 'claude-sonnet-4-6');
    assert.equal(routeModel(rules, 'claude-sonnet-4-6', { ...r2.usage }), null);
    assert.throws(() => parseRouteRules('output<=800'), /CONDITIONS=MODEL/);
    assert.throws(() => parseRouteRules('tokens<5=claude-haiku-4-5'), /unknown field/);
    const w = whatIf([model], { route: rules }, prices);
    assert.deepEqual(w.moves.map((m) => [m.to, m.requests]).sort(), [['claude-haiku-4-5', 1], ['claude-sonnet-4-6', 2]]);
  });
});

describe('insights helpers', () => {
  it('maps an Opus-class model to the same generation\'s Sonnet', () => {
    assert.equal(cheaperSibling('claude-opus-4-5-20251101', prices), 'claude-sonnet-4-5-20250929');
    assert.equal(cheaperSibling('claude-opus-4-7', prices), 'claude-sonnet-4-6');
    assert.equal(cheaperSibling('claude-opus-4-20250514', prices), 'claude-sonnet-4-20250514');
    assert.equal(cheaperSibling('claude-3-opus-20240229', prices), 'claude-3-sonnet-20240229');
    assert.equal(cheaperSibling('claude-fable-5-2', prices), 'claude-sonnet-5');
    assert.equal(cheaperSibling('claude-sonnet-4-6', prices), null);
  });

  it('finds retries: a failed proxy attempt followed by a success of the same request size', () => {
    const proxy = (status: string, bytes: number) => ({
      endpoint: '/v1/messages', modelRequested: 'claude-sonnet-4-6', stream: true, status, errorType: status === '200' ? null : 'overloaded_error',
      latencyMs: 1500, ttftMs: null, requestBytes: bytes, messageCount: 3, userAgent: null, keyHash: null,
    });
    const failed = req({ key: 'r:f', ts: sec(0), proxy: proxy('529', 12_345) });
    const ok = req({ key: 'm:ok', ts: sec(3), cacheRead: 10_000, output: 10, proxy: proxy('200', 12_345) });
    const other = req({ key: 'm:other', ts: sec(4), cacheRead: 10_000, output: 10, proxy: proxy('200', 999) });
    const m = buildSessionModel({ sessionId: 's1', requests: [failed, ok, other], calls: [], results: [], compactions: [] }, prices);
    assert.equal(m.failed.length, 1);
    assert.equal(m.requests.length, 2);
    const retries = findRetries([m]);
    assert.equal(retries.length, 1);
    assert.equal(retries[0].success.key, 'm:ok');
    const ins = buildInsights([m], prices);
    assert.ok(ins.findings.some((f) => f.kind === 'retries'));
    assert.ok(!ins.notes.some((x) => /No proxy records/.test(x)));
  });

  it('says retries need proxy records when there are none', () => {
    const m = buildSessionModel({ sessionId: 's1', requests: [req({ ts: sec(0), input: 10, output: 10 })], calls: [], results: [], compactions: [] }, prices);
    assert.ok(buildInsights([m], prices).notes.some((x) => /No proxy records/.test(x)));
  });
});

describe('unknown prices', () => {
  it('shows an unpriced request as unknown, never $0, and marks costs that depend on it incomplete', () => {
    const r0 = req({ key: 'm:u0', ts: sec(0), cacheWrite5m: 10_000, output: 100 });
    const r1 = req({ key: 'm:u1', ts: sec(5), cacheRead: 10_000, cacheWrite5m: 1_100, output: 10, model: 'claude-opus-9-experimental' });
    const r2 = req({ key: 'm:u2', ts: sec(9), cacheRead: 11_100, output: 10 });
    const m = buildSessionModel({
      sessionId: 's1', requests: [r0, r1, r2], calls: [call('k', 'm:u0', sec(0))], results: [result('k', sec(1), 4_000)], compactions: [],
    }, prices);
    const a = auditSession(m, prices);
    assert.equal(a.rows[1].cost, null);
    close(a.rows[1].cumulativeCost, a.rows[0].cost!);
    assert.equal(a.totals.unpricedRequests, 1);
    assert.deepEqual(a.totals.unpricedModels, ['claude-opus-9-experimental']);
    const [x] = resultCosts(m);
    assert.equal(x.costComplete, false);
    close(x.carriedCost, x.tokens * 0.3 / MTOK);
    const w = whatIf([m], { model: 'claude-sonnet-4-6' }, prices);
    assert.equal(w.unpricedRequests, 1);
    assert.equal(w.requests, 3);
  });
});

describe('tool groups', () => {
  it('groups MCP tools by server and Task/Agent as subagents (with the subagents\' own requests)', () => {
    const r0 = req({ key: 'm:g0', ts: sec(0), cacheWrite5m: 10_000, output: 100 });
    const s0 = req({ key: 'm:g1', ts: sec(1), cacheWrite5m: 5_000, output: 100, agentId: 'zz' });
    const r1 = req({ key: 'm:g2', ts: sec(5), cacheRead: 10_000, cacheWrite5m: 3_100, output: 100 });
    const m = buildSessionModel({
      sessionId: 's1', requests: [r0, s0, r1],
      calls: [call('a', 'm:g0', sec(0), 'mcp__github__get_issue', null), call('b', 'm:g0', sec(0), 'mcp__github__list_prs', null),
        call('c', 'm:g0', sec(0), 'Task', 'Explore')],
      results: [result('a', sec(3), 4_000), result('b', sec(3), 4_000), result('c', sec(4), 4_000)],
      compactions: [],
    }, prices);
    const t = attributeTools([m]);
    const gh = t.byGroup.find((g) => g.group === 'mcp:github')!;
    assert.deepEqual(gh.tools, ['mcp__github__get_issue', 'mcp__github__list_prs']);
    assert.equal(gh.calls, 2);
    assert.equal(gh.tokens, 2_000);
    const sub = t.byGroup.find((g) => g.group === 'subagents')!;
    close(sub.subagentRequestCost, s0.cost!);
    close(sub.totalCost, sub.resultCost + s0.cost!);
    assert.equal(t.byGroup.reduce((s, g) => s + g.tokens, 0), t.totals.tokens);
  });
});

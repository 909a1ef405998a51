import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import { emptyUsage } from '../../src/core/types.js';
import { prepareLedger, recordAlerts, refreshLedger } from '../../src/policy/evaluate.js';
import { BudgetLedger, CHARS_PER_TOKEN, estimatePromptTokens, estimateRequestCostUsd } from '../../src/policy/reservations.js';
import type { RequestContext, SpendTotal } from '../../src/policy/budgets.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { budget } from './fixtures.js';

const prices = PriceBook.builtin();
const T = (iso: string) => Date.parse(iso);
const ctx: RequestContext = { sessionId: 's1', project: '/p', model: 'claude-sonnet-4-6', keyHash: null };
const spend = (cost: number, firstTs: number | null = null): SpendTotal => ({ cost, requests: cost > 0 ? 1 : 0, unknownCostRequests: 0, firstTs, lastTs: firstTs });

/** A ledger whose slots for `ctx` start from the given baseline. */
function ledgerWith(budgets: ReturnType<typeof budget>[], baseline: number, now: () => number): BudgetLedger {
  const l = new BudgetLedger(budgets, { prices, now });
  for (const n of l.baselineNeeds(ctx)) l.setBaseline(n.slot, spend(baseline, now() - 60_000));
  return l;
}

describe('cost estimate', () => {
  it('prices body bytes / 4 as input and max_tokens as output at the model price', () => {
    assert.equal(CHARS_PER_TOKEN, 4);
    assert.equal(estimatePromptTokens(86_082), 21_521);
    // Opus 4.8 ($5 / $25 per MTok): 21,521 x 5e-6 + 64,000 x 25e-6 = 0.107605 + 1.6
    const est = estimateRequestCostUsd(prices, 'claude-opus-4-8', 86_082, 64_000, T('2026-11-20T00:00:00Z'))!;
    assert.ok(Math.abs(est - 1.707605) < 1e-9, String(est));
    assert.equal(estimateRequestCostUsd(prices, 'claude-unknown-1', 1000, 10, 0), null);
    assert.equal(estimateRequestCostUsd(prices, null, 1000, 10, 0), null);
  });
});

describe('reservation ledger', () => {
  it('blocks once settled + reserved reaches the limit, and never reserves for a blocked request', () => {
    let now = T('2026-11-20T12:00:00Z');
    const l = ledgerWith([budget({ limitUsd: 10 })], 9, () => now);
    const a = l.admit(ctx, 0.6);
    assert.equal(a.decision, 'allow');
    assert.equal(a.checks[0].settledUsd, 9);
    const b = l.admit(ctx, 0.6);
    assert.equal(b.decision, 'allow', '9 + 0.6 reserved < 10');
    const c = l.admit(ctx, 0.6);
    assert.equal(c.decision, 'block', '9 + 1.2 reserved >= 10');
    assert.equal(c.token, null);
    assert.equal(c.deciding!.reservedUsd, 1.2);
    assert.equal(l.inFlight(), 2);
    l.settle(a.token!, 0.2);
    l.release(b.token!);
    const d = l.admit(ctx, 0.6);
    assert.equal(d.decision, 'allow', 'released reservations free the budget again');
    assert.ok(Math.abs(d.checks[0].settledUsd - 9.2) < 1e-9);
    now += 1;
  });

  it('50 concurrent requests at the limit overshoot by at most the requests already in flight', async () => {
    const limit = 10;
    const baseline = 9;
    const estimate = 0.4;
    const run = async (mode: 'ledger' | 'naive', actual: number) => {
      const l = ledgerWith([budget({ limitUsd: limit })], baseline, Date.now);
      let naiveSettled = baseline;
      let inFlight = 0;
      let maxInFlightAtLimit = 0;
      let admitted = 0;
      let spent = baseline;
      await Promise.all(Array.from({ length: 50 }, async (_, i) => {
        await sleep(i % 5); // arrivals spread over a few ms, all before any upstream answer
        let token = null;
        if (mode === 'ledger') {
          const adm = l.admit(ctx, estimate);
          if (adm.decision === 'block') return;
          token = adm.token;
        } else if (naiveSettled >= limit) return; // check settled spend only: the LiteLLM-style race
        admitted++;
        inFlight++;
        await sleep(20 + (i % 7)); // upstream latency
        spent += actual;
        if (spent >= limit) maxInFlightAtLimit = Math.max(maxInFlightAtLimit, inFlight);
        inFlight--;
        if (token) l.settle(token, actual);
        naiveSettled += actual;
      }));
      return { admitted, spent, overshoot: Math.max(0, spent - limit) };
    };
    // Each admitted request reserves $0.40: 9, 9.4, 9.8 pass; at 10.2 the rest are blocked.
    const exact = await run('ledger', 0.3);
    assert.equal(exact.admitted, 3);
    assert.ok(Math.abs(exact.spent - 9.9) < 1e-9);
    assert.equal(exact.overshoot, 0);
    // Actual costs above the estimate: the overshoot is bounded by the three requests that were in flight.
    const over = await run('ledger', 0.5);
    assert.equal(over.admitted, 3);
    assert.ok(over.overshoot <= over.admitted * 0.5 + 1e-9, JSON.stringify(over));
    // Without reservations all 50 pass the check before any settles.
    const naive = await run('naive', 0.3);
    assert.equal(naive.admitted, 50);
    assert.ok(naive.overshoot > 14, JSON.stringify(naive));
  });

  it('holds under concurrency when baselines come from the store (the proxy flow: await prepare, then admit)', async () => {
    const store = SqliteStore.open(':memory:', prices);
    const now = Date.now();
    // $9 already spent today by transcript imports: 3M Sonnet 4.6 input tokens.
    await store.upsertRequests([{
      key: 'm:pre', requestId: null, messageId: 'pre', ts: now - 1000, sessionId: 's1', project: '/p', agentId: null, isSubagent: false,
      model: 'claude-sonnet-4-6', usage: { ...emptyUsage(), input: 3_000_000 }, stopReason: null, tools: [], clientVersion: null, sources: 1,
    }]);
    const l = new BudgetLedger([budget({ limitUsd: 10, timeZone: 'UTC' })], { prices });
    const results = await Promise.all(Array.from({ length: 50 }, async () => {
      await prepareLedger(l, store, ctx);
      const adm = l.admit(ctx, 0.4);
      if (adm.token) {
        await sleep(5);
        l.settle(adm.token, 0.3);
      }
      return adm.decision;
    }));
    assert.equal(results.filter((d) => d === 'allow').length, 3);
    await store.close();
  });

  it('clearForAny: true only while every budget has one loaded, unexhausted slot (nothing per session or per project, the 5-hour block located)', () => {
    const now = () => T('2026-11-20T12:00:00Z');
    assert.equal(new BudgetLedger([], { prices, now }).clearForAny(), true, 'no budgets');
    const day = budget({ name: 'day', limitUsd: 10 });
    const opus = budget({ name: 'opus', limitUsd: 10, scope: 'model:claude-opus-*', action: 'downgrade' });
    const l = new BudgetLedger([day, opus], { prices, now });
    assert.equal(l.clearForAny(), false, 'baselines not loaded');
    for (const n of l.baselineNeeds({ ...ctx, model: 'claude-opus-4-8' })) l.setBaseline(n.slot, spend(9.5));
    assert.equal(l.clearForAny(), true);
    // $9.50 + a $0.60 reservation reaches the day budget's $10: the next request must be checked first.
    const a = l.admit(ctx, 0.6);
    assert.equal(a.decision, 'allow');
    assert.equal(l.clearForAny(), false, 'settled + reserved reached a limit');
    l.settle(a.token!, 0.4);
    assert.equal(l.clearForAny(), true, '$9.90 of $10');
    for (const scope of ['session', 'project:/p']) {
      const other = budget({ name: 'other', limitUsd: 10, scope });
      const m = new BudgetLedger([other], { prices, now });
      for (const n of m.baselineNeeds(ctx)) m.setBaseline(n.slot, spend(0));
      assert.equal(m.clearForAny(), false, scope);
    }
    const block = new BudgetLedger([budget({ name: 'block', limitUsd: 10, period: 'block5h' })], { prices, now });
    assert.equal(block.clearForAny(), false, 'the 5-hour block is not located yet');
    block.setRecentTimes([now() - 3_600_000]);
    for (const n of block.baselineNeeds(ctx)) block.setBaseline(n.slot, spend(1));
    assert.equal(block.clearForAny(), true);
  });

  it('combines budgets: block beats downgrade beats warn; a budget that does not apply is ignored', () => {
    const now = () => T('2026-11-20T12:00:00Z');
    const l = ledgerWith([
      budget({ name: 'w', action: 'warn', limitUsd: 1 }),
      budget({ name: 'd', action: 'downgrade', limitUsd: 1 }),
      budget({ name: 'k', action: 'block', limitUsd: 100 }),
      budget({ name: 'other', action: 'block', limitUsd: 0.01, scope: 'project:/elsewhere' }),
    ], 2, now);
    const a = l.admit(ctx, 0.1);
    assert.equal(a.decision, 'downgrade');
    assert.equal(a.deciding!.budget.name, 'd');
    assert.deepEqual(a.checks.map((c) => [c.budget.name, c.exhausted]), [['w', true], ['d', true], ['k', false]]);
    assert.ok(a.token);
    const onlyWarn = ledgerWith([budget({ name: 'w', action: 'warn', limitUsd: 1 })], 2, now).check(ctx);
    assert.equal(onlyWarn.decision, 'warn');
  });

  it('fires each threshold once per period, and again in the next period', () => {
    let now = T('2026-11-20T12:00:00Z');
    const l = ledgerWith([budget({ limitUsd: 10, action: 'warn' })], 4, () => now);
    const settle = (usd: number) => l.settle(l.admit(ctx, 0).token!, usd).map((a) => a.threshold);
    assert.deepEqual(settle(0.5), []); // 4.5
    assert.deepEqual(settle(0.5), [50]); // 5.0
    assert.deepEqual(settle(0.5), []); // 5.5: 50% already fired
    assert.deepEqual(settle(3.5), [80]); // 9.0
    assert.deepEqual(settle(1), [100]); // 10.0
    assert.deepEqual(settle(1), []); // 11.0
    // A jump over several thresholds fires each of them once.
    const j = ledgerWith([budget({ limitUsd: 10, action: 'warn' })], 0, () => now);
    assert.deepEqual(j.settle(j.admit(ctx, 0).token!, 8.5).map((a) => a.threshold), [50, 80]);
    now += 1;
  });

  it('rolls over to a new period: the next day starts from its own baseline and fires again', () => {
    let now = T('2026-11-20T23:00:00Z');
    const l = new BudgetLedger([budget({ limitUsd: 10, action: 'block' })], { prices, now: () => now });
    // The store says $9.50 spent and 50% and 80% fired earlier today (another process).
    for (const n of l.baselineNeeds(ctx)) l.setBaseline(n.slot, spend(9.5), [50, 80]);
    assert.deepEqual(l.settle(l.admit(ctx, 0.1).token!, 0.6).map((a) => [a.threshold, a.periodKey]), [[100, 'day:2026-11-20']]);
    assert.equal(l.check(ctx).decision, 'block');
    now = T('2026-11-21T00:00:01Z');
    const needs = l.baselineNeeds(ctx);
    assert.equal(needs.length, 1);
    assert.deepEqual(needs[0].filter, { fromTs: T('2026-11-21T00:00:00Z'), toTs: T('2026-11-22T00:00:00Z') });
    l.setBaseline(needs[0].slot, spend(0));
    assert.equal(l.check(ctx).decision, 'allow');
    assert.deepEqual(l.settle(l.admit(ctx, 0).token!, 5).map((a) => [a.threshold, a.periodKey]), [[50, 'day:2026-11-21']]);
  });

  it('keeps per-session budgets apart and skips them without a session id', () => {
    const now = () => T('2026-11-20T12:00:00Z');
    const l = new BudgetLedger([budget({ period: 'session', limitUsd: 1 })], { prices, now });
    const s1 = { ...ctx, sessionId: 'one' };
    const s2 = { ...ctx, sessionId: 'two' };
    for (const c of [s1, s2]) for (const n of l.baselineNeeds(c)) l.setBaseline(n.slot, spend(c === s1 ? 1.5 : 0.2));
    assert.equal(l.check(s1).decision, 'block');
    assert.equal(l.check(s2).decision, 'allow');
    assert.equal(l.check({ ...ctx, sessionId: null }).checks.length, 0);
  });

  it('refresh replaces the baseline and keeps only costs settled too recently to be stored', () => {
    let now = T('2026-11-20T12:00:00Z');
    const l = new BudgetLedger([budget({ limitUsd: 100 })], { prices, now: () => now, persistLagMs: 10_000 });
    for (const n of l.baselineNeeds(ctx)) l.setBaseline(n.slot, spend(1));
    l.settle(l.admit(ctx, 1).token!, 2); // settled at 12:00:00
    now += 30_000;
    l.settle(l.admit(ctx, 1).token!, 3); // settled at 12:00:30
    const [t] = l.refreshTargets();
    // The store now holds the first (2) but maybe not the second: 1 + 2 = 3 stored, query at 12:00:35.
    l.applyRefresh([{ slot: t.slot, spend: spend(3) }], now + 5_000);
    assert.equal(l.check(ctx).checks[0].settledUsd, 6, 'the 12:00:30 cost is kept until it is surely stored (counted once or twice, never missed)');
  });

  it('locates the 5-hour block from recent request times and follows new requests', async () => {
    let now = T('2026-11-20T15:55:00Z');
    const l = new BudgetLedger([budget({ period: 'block5h', limitUsd: 5 })], { prices, now: () => now });
    assert.ok(l.needsRecentTimes());
    l.setRecentTimes(['10:45', '14:50', '15:50'].map((h) => T(`2026-11-20T${h}:00Z`)));
    const [need] = l.baselineNeeds(ctx);
    assert.equal(need.window.key, 'block:2026-11-20T15:00:00.000Z');
    l.setBaseline(need.slot, spend(1));
    l.settle(l.admit(ctx, 0).token!, 1);
    now = T('2026-11-20T20:10:00Z'); // past 20:00: the next request opens the 20:00 block
    const [next] = l.baselineNeeds(ctx);
    assert.equal(next.window.key, 'block:2026-11-20T20:00:00.000Z');

    const store = SqliteStore.open(':memory:', prices);
    await refreshLedger(l, store, now);
    await recordAlerts(store, []);
    await store.close();
  });
});

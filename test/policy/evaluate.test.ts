import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import { emptyUsage, SOURCE_PROXY, SOURCE_TRANSCRIPT, type RequestRecord } from '../../src/core/types.js';
import { thresholdsToFire } from '../../src/policy/alerts.js';
import { evaluateBudgets, recordDueAlerts } from '../../src/policy/evaluate.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { budget } from './fixtures.js';

const prices = PriceBook.builtin();
const T = (iso: string) => Date.parse(iso);

/** A request costing `usd` on Sonnet 4.6 ($3 per million input tokens). */
function req(key: string, iso: string, usd: number, over: Partial<RequestRecord> = {}): RequestRecord {
  return {
    key, requestId: null, messageId: null, ts: T(iso), sessionId: 's1', project: '/home/dev/app', agentId: null, isSubagent: false,
    model: 'claude-sonnet-4-6', usage: { ...emptyUsage(), input: Math.round((usd / 3) * 1_000_000) }, stopReason: null, tools: [],
    clientVersion: null, sources: SOURCE_TRANSCRIPT, ...over,
  };
}

describe('thresholdsToFire', () => {
  it('returns each reached threshold not fired yet, ascending', () => {
    assert.deepEqual(thresholdsToFire([50, 80, 100], [], 49.9), []);
    assert.deepEqual(thresholdsToFire([50, 80, 100], [], 50), [50]);
    assert.deepEqual(thresholdsToFire([100, 50, 80], [], 85), [50, 80]);
    assert.deepEqual(thresholdsToFire([50, 80, 100], [50, 80], 85), []);
    assert.deepEqual(thresholdsToFire([50, 80, 100], new Set([50]), 150), [80, 100]);
  });
});

describe('budget evaluation against the store', () => {
  it('computes status numbers from stored spend of every source (hand-computed)', async () => {
    const store = SqliteStore.open(':memory:', prices);
    await store.upsertRequests([
      req('m:1', '2026-11-20T09:00:00Z', 2),
      req('m:2', '2026-11-20T11:00:00Z', 3, { sources: SOURCE_PROXY, project: '/home/dev/app/sub' }),
      req('m:3', '2026-11-19T23:59:59Z', 50), // yesterday
      req('m:4', '2026-11-20T10:00:00Z', 7, { project: '/home/dev/other', sessionId: 's2' }),
    ]);
    const now = T('2026-11-20T12:00:00Z');
    const [all, proj, sess] = await evaluateBudgets(store, [
      budget({ name: 'all', limitUsd: 20 }),
      budget({ name: 'proj', limitUsd: 10, scope: 'project:/home/dev/app' }),
      budget({ name: 'sess', limitUsd: 4, period: 'session' }),
    ], now, { prices, sessionId: 's1' });
    // all: 2 + 3 + 7 = $12 of $20 = 60%; first request 09:00 -> 3 h -> $4/h; 12 h left -> 12 + 48 = $60
    assert.ok(Math.abs(all.spentUsd - 12) < 1e-6);
    assert.ok(Math.abs(all.percent - 60) < 1e-4);
    assert.ok(Math.abs(all.burnRatePerHour! - 4) < 1e-6);
    assert.ok(Math.abs(all.projectedUsd! - 60) < 1e-5);
    assert.equal(all.msToReset, 12 * 3_600_000);
    // proj: the project and its subfolder: $5 of $10, $5 / 3 h, 12 h left -> 5 + 20 = $25
    assert.ok(Math.abs(proj.spentUsd - 5) < 1e-6);
    assert.ok(Math.abs(proj.projectedUsd! - 25) < 1e-5);
    // sess: session s1 over its whole life, including yesterday's $50: exhausted, never resets
    assert.ok(Math.abs(sess.spentUsd - 55) < 1e-5);
    assert.equal(sess.exhausted, true);
    assert.equal(sess.resetsAt, null);
    assert.equal(sess.window.key, 'session|s:s1');
    assert.equal(sess.window.start, T('2026-11-19T23:59:59Z'));

    // With a request context (the hook), only the budgets that apply are evaluated.
    const hook = await evaluateBudgets(store, [budget({ name: 'proj', scope: 'project:/home/dev/app' }), budget({ name: 'x', scope: 'project:/x' })],
      now, { prices, ctx: { sessionId: 's1', project: '/home/dev/app', model: null, keyHash: null } });
    assert.deepEqual(hook.map((s) => s.budget.name), ['proj']);
    await store.close();
  });

  it('fires each threshold once per period, and again in the next period', async () => {
    const store = SqliteStore.open(':memory:', prices);
    const b = budget({ name: 'daily', limitUsd: 10 });
    const fire = async (iso: string) => {
      const now = T(iso);
      return (await recordDueAlerts(store, await evaluateBudgets(store, [b], now, { prices }), now, 'test')).map((a) => a.threshold);
    };
    await store.upsertRequests([req('m:a', '2026-11-20T08:00:00Z', 4)]);
    assert.deepEqual(await fire('2026-11-20T08:01:00Z'), []);
    await store.upsertRequests([req('m:b', '2026-11-20T09:00:00Z', 1.5)]);
    assert.deepEqual(await fire('2026-11-20T09:01:00Z'), [50]);
    assert.deepEqual(await fire('2026-11-20T09:02:00Z'), [], '50% fired already this period');
    await store.upsertRequests([req('m:c', '2026-11-20T10:00:00Z', 5)]);
    assert.deepEqual(await fire('2026-11-20T10:01:00Z'), [80, 100]);
    assert.deepEqual(await fire('2026-11-20T10:02:00Z'), []);
    // Next day: a new period.
    await store.upsertRequests([req('m:d', '2026-11-21T08:00:00Z', 8.5)]);
    assert.deepEqual(await fire('2026-11-21T08:01:00Z'), [50, 80]);
    const listed = await store.listAlerts({ budget: 'daily' });
    assert.deepEqual(listed.map((a) => `${a.periodKey} ${a.threshold}`).sort(),
      ['day:2026-11-20 100', 'day:2026-11-20 50', 'day:2026-11-20 80', 'day:2026-11-21 50', 'day:2026-11-21 80']);
    const hundred = listed.find((a) => a.threshold === 100)!;
    assert.match(hundred.message, /budget "daily" \(daily, scope all\) reached: spent \$10\.50 of \$10\.00; resets 2026-11-21 00:00 UTC/);
    assert.match(hundred.message, /requests are now blocked/);
    // A redefined budget (new version) fires again in the same period.
    const changed = { ...b, limitUsd: 20, updatedAt: 2 };
    const again = await recordDueAlerts(store, await evaluateBudgets(store, [changed], T('2026-11-21T08:05:00Z'), { prices }), T('2026-11-21T08:05:00Z'), 'test');
    assert.deepEqual(again.map((a) => a.threshold), []); // $8.50 of $20 = 42.5%
    await store.close();
  });
});

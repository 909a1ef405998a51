import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BLOCK_MS, clockNow, findActiveBlock, identifyBlocks } from '../../src/analysis/blocks.js';
import { emptyUsage } from '../../src/core/types.js';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { UsagePoint } from '../../src/store/store.js';
import { record } from '../store/common.case.js';

const T = (hm: string, day = '2026-11-20') => Date.parse(`${day}T${hm}:00Z`);
const pt = (ts: number, over: Partial<UsagePoint> = {}): UsagePoint => ({
  ts, sessionId: 's', model: 'claude-sonnet-4-6', input: 100, output: 50, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0, cost: 0.01, ...over,
});

describe('5-hour blocks (ccusage rules, ccusage-study.md §b.6)', () => {
  it('reproduces ccusage\'s verified example: 10:45, 14:50, 15:50, 21:00 UTC', () => {
    const blocks = identifyBlocks([pt(T('10:45')), pt(T('14:50')), pt(T('15:50')), pt(T('21:00'))], { now: T('23:00', '2026-11-21') });
    assert.deepEqual(blocks.map((b) => [b.id, b.isGap, b.requests, new Date(b.endTs).toISOString()]), [
      ['2026-11-20T10:00:00.000Z', false, 2, '2026-11-20T15:00:00.000Z'],
      ['2026-11-20T15:00:00.000Z', false, 1, '2026-11-20T20:00:00.000Z'],
      ['gap-2026-11-20T20:50:00.000Z', true, 0, '2026-11-20T21:00:00.000Z'],
      ['2026-11-20T21:00:00.000Z', false, 1, '2026-11-21T02:00:00.000Z'],
    ]);
    assert.ok(blocks.every((b) => !b.isActive));
  });

  it('starts a new block more than 5 h after the block start even without an idle gap, and floors to the UTC hour', () => {
    const blocks = identifyBlocks([pt(T('09:59')), pt(T('12:00')), pt(T('14:00')), pt(T('14:30'))], { now: T('20:00') });
    // 14:30 - 09:00 > 5 h: new block at 14:00, no gap block (the previous request was 30 min before).
    assert.deepEqual(blocks.map((b) => [b.id, b.requests]), [['2026-11-20T09:00:00.000Z', 3], ['2026-11-20T14:00:00.000Z', 1]]);
  });

  it('sums tokens and known cost, counts unpriced tokens apart, and computes burn rate and projection for the active block', () => {
    const pts = [
      pt(T('10:10'), { input: 1000, output: 500, cacheWrite5m: 200, cacheWrite1h: 300, cacheRead: 4000, cost: 0.5 }),
      pt(T('10:40'), { input: 1000, output: 500, cacheRead: 1000, cost: 1.0 }),
      pt(T('10:25'), { model: 'claude-opus-9', input: 100, output: 100, cost: null }),
    ];
    const [b] = identifyBlocks(pts, { now: T('11:10') });
    assert.equal(b.requests, 3);
    assert.deepEqual(b.tokens, { input: 2100, output: 1100, cacheCreation: 500, cacheRead: 5000, total: 8700 });
    assert.equal(b.cost, 1.5);
    assert.equal(b.unknownCostTokens, 200);
    assert.equal(b.unknownCostRequests, 1);
    assert.deepEqual(b.models, ['claude-opus-9', 'claude-sonnet-4-6']);
    assert.equal(b.isActive, true);
    // 30 minutes between the first and last request.
    assert.equal(b.burnRate!.tokensPerMinute, 8700 / 30);
    assert.equal(b.burnRate!.inputOutputTokensPerMinute, 3200 / 30);
    assert.equal(b.burnRate!.costPerHour, 3);
    // Block ends 15:00; 230 minutes left at 11:10.
    assert.equal(b.projection!.remainingMinutes, 230);
    assert.equal(b.projection!.projectedTokens, Math.round(8700 + (8700 / 30) * 230));
    assert.equal(b.projection!.projectedCost, Math.round((1.5 + 3 / 60 * 230) * 100) / 100);
  });

  it('has no burn rate for a one-request block and no projection for an inactive one', () => {
    const [b] = identifyBlocks([pt(T('10:10'))], { now: T('10:20') });
    assert.equal(b.burnRate, null);
    assert.equal(b.isActive, true);
    assert.equal(b.projection!.projectedCost, 0.01);
    const [old] = identifyBlocks([pt(T('10:10')), pt(T('10:20'))], { now: T('16:00') });
    assert.equal(old.isActive, false);
    assert.equal(old.projection, null);
    assert.ok(old.burnRate);
  });

  it('honours a custom block length', () => {
    const blocks = identifyBlocks([pt(T('10:00')), pt(T('11:30'))], { now: T('12:00'), blockMs: 3_600_000 });
    assert.equal(blocks.filter((b) => !b.isGap).length, 2);
  });
});

describe('findActiveBlock', () => {
  const store = () => SqliteStore.open(':memory:', PriceBook.builtin());
  const rec = (key: string, ts: number) => record({ key, ts, usage: { ...emptyUsage(), input: 1_000_000, output: 0 } });

  it('finds the block holding now from recent requests only, and none after 5 idle hours', async () => {
    const s = store();
    await s.upsertRequests([rec('m:1', T('01:00')), rec('m:2', T('09:30')), rec('m:3', T('10:15'))]);
    const b = await findActiveBlock(s, T('11:00'));
    assert.equal(b?.id, '2026-11-20T09:00:00.000Z');
    assert.equal(b?.requests, 2);
    assert.ok(Math.abs(b!.cost - 6) < 1e-9); // 2 x 1M Sonnet 4.6 input
    assert.equal(await findActiveBlock(s, T('15:16')), null);
    assert.equal(await findActiveBlock(s, T('00:30')), null);
    await s.close();
  });

  it('matches the full replay when usage never pauses for 5 h (exact mode), and bounds its look-back by default', async () => {
    const s = store();
    const recs = [];
    // A request every 3 hours for 4 days: the blocks chain without an idle reset, so the window must grow.
    for (let i = 0; i < 32; i++) recs.push(rec(`m:c${i}`, T('00:20', '2026-11-17') + i * 3 * 3_600_000));
    await s.upsertRequests(recs);
    const now = recs[recs.length - 1].ts + 30 * 60_000;
    const full = identifyBlocks(await s.listUsage({}), { now });
    const expected = full.at(-1)!;
    assert.equal(expected.isActive, true);
    const exact = await findActiveBlock(s, now, { lookbackMs: Infinity });
    assert.deepEqual(exact, expected);
    // Bounded (the statusline's 24 h): the chain starts at the first request of the last 24 h.
    const times = (await s.listRequestTimes(now - 24 * 3_600_000, now + 1));
    const bounded = identifyBlocks((await s.listUsage({ fromTs: times[0], toTs: now + 1 })), { now }).at(-1)!;
    assert.deepEqual(await findActiveBlock(s, now), bounded);
    await s.close();
  });

  it('sums the active block exactly like the full replay (tokens, unknown costs, models, burn, projection)', async () => {
    const s = store();
    await s.upsertRequests([
      rec('m:a', T('08:00')),
      record({ key: 'm:b', ts: T('10:05'), model: 'claude-opus-9', usage: { ...emptyUsage(), input: 10, output: 20, cacheRead: 5 } }),
      record({ key: 'm:c', ts: T('10:35'), usage: { ...emptyUsage(), input: 1000, output: 2000, cacheWrite5m: 30, cacheWrite1h: 40, cacheRead: 500 } }),
    ]);
    const now = T('11:00');
    const expected = identifyBlocks(await s.listUsage({}), { now }).at(-1)!;
    assert.equal(expected.requests, 3);
    assert.deepEqual(await findActiveBlock(s, now), expected);
    await s.close();
  });

  it('reads the clock from TOKENTALLY_NOW when set', () => {
    assert.equal(clockNow({ TOKENTALLY_NOW: '2026-11-20T10:00:00Z' }), T('10:00'));
    assert.equal(clockNow({ TOKENTALLY_NOW: String(T('10:00')) }), T('10:00'));
    assert.ok(Math.abs(clockNow({}) - Date.now()) < 1000);
    assert.equal(BLOCK_MS, 5 * 3_600_000);
  });
});

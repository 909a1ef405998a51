import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildForecast } from '../../src/analysis/forecast.js';
import { emptyUsage } from '../../src/core/types.js';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { record } from '../store/common.case.js';

// 1M Sonnet 4.6 input tokens = $3.
const dollars3 = (key: string, iso: string) => record({ key, ts: Date.parse(iso), usage: { ...emptyUsage(), input: 1_000_000, output: 0 } });
const NOW = Date.parse('2026-11-20T12:00:00Z');
const near = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);

async function storeWith(isos: string[]) {
  const s = SqliteStore.open(':memory:', PriceBook.builtin());
  await s.upsertRequests(isos.map((iso, i) => dollars3(`m:${i}`, iso)));
  return s;
}

describe('forecast', () => {
  // Basis days 11-13..11-19 cost 3, 0, 6, 3, 0, 3, 6 (mean 3, sd sqrt(6)); plus $3 on 11-05, $3 today, $3 on 10-31 23:00Z.
  const isos = [
    '2026-10-31T23:00:00Z', '2026-11-05T10:00:00Z',
    '2026-11-13T10:00:00Z', '2026-11-15T09:00:00Z', '2026-11-15T15:00:00Z', '2026-11-16T10:00:00Z',
    '2026-11-18T10:00:00Z', '2026-11-19T08:00:00Z', '2026-11-19T20:00:00Z', '2026-11-20T09:00:00Z',
  ];

  it('projects month-to-date + mean daily burn x days left, with an ~80% range from the spread', async () => {
    const s = await storeWith(isos);
    const f = await buildForecast(s, { now: NOW, timeZone: 'UTC', lookbackDays: 7 });
    assert.equal(f.month, '2026-11');
    assert.equal(f.daysInMonth, 30);
    near(f.monthToDate.cost, 27);
    assert.equal(f.monthToDate.requests, 9);
    assert.equal(f.basis.kind, 'recent-days');
    assert.deepEqual(f.basis.days.map((d) => [d.date, Math.round(d.cost)]),
      [['2026-11-13', 3], ['2026-11-14', 0], ['2026-11-15', 6], ['2026-11-16', 3], ['2026-11-17', 0], ['2026-11-18', 3], ['2026-11-19', 6]]);
    near(f.basis.meanPerDay, 3);
    near(f.basis.stdevPerDay, Math.sqrt(6));
    assert.equal(f.basis.activeDays, 5);
    near(f.basis.meanPerActiveDay, 21 / 5);
    near(f.daysRemaining, 10.5);
    near(f.projection.remaining, 31.5);
    near(f.projection.total, 58.5);
    const spread = 1.2816 * Math.sqrt(6) * Math.sqrt(10.5 + 10.5 * 10.5 / 7);
    near(f.projection.low, 58.5 - spread);
    near(f.projection.high, 58.5 + spread);
    assert.equal(f.costComplete, true);
    await s.close();
  });

  it('counts days in --timezone: 10-31 23:00 UTC is November 1st in Tokyo', async () => {
    const s = await storeWith(isos);
    const f = await buildForecast(s, { now: NOW, timeZone: 'Asia/Tokyo', lookbackDays: 7 });
    near(f.monthToDate.cost, 30);
    await s.close();
  });

  it('uses the days since the first request when the history is younger than the lookback', async () => {
    const s = await storeWith(['2026-11-18T10:00:00Z', '2026-11-19T10:00:00Z', '2026-11-19T11:00:00Z']);
    const f = await buildForecast(s, { now: NOW, timeZone: 'UTC', lookbackDays: 7 });
    assert.deepEqual(f.basis.days.map((d) => d.date), ['2026-11-18', '2026-11-19']);
    near(f.basis.meanPerDay, 4.5);
    await s.close();
  });

  it('extrapolates today when there is no complete day, and projects $0 with no data', async () => {
    const s = await storeWith(['2026-11-20T06:00:00Z']);
    const f = await buildForecast(s, { now: NOW, timeZone: 'UTC', lookbackDays: 7 });
    assert.equal(f.basis.kind, 'today-so-far');
    near(f.basis.meanPerDay, 6); // $3 in half a day
    near(f.projection.low, 3);
    await s.close();
    const empty = SqliteStore.open(':memory:', PriceBook.builtin());
    const g = await buildForecast(empty, { now: NOW, timeZone: 'UTC', lookbackDays: 7 });
    assert.equal(g.basis.kind, 'no-data');
    assert.equal(g.projection.total, 0);
    assert.equal(g.projection.high, 0);
  });

  it('flags unpriced usage instead of counting it as $0', async () => {
    const s = await storeWith(['2026-11-19T10:00:00Z']);
    await s.upsertRequests([record({ key: 'm:x', ts: Date.parse('2026-11-20T08:00:00Z'), model: 'claude-opus-9' })]);
    const f = await buildForecast(s, { now: NOW, timeZone: 'UTC', lookbackDays: 7 });
    assert.equal(f.costComplete, false);
    assert.equal(f.monthToDate.unknownCostTokens, 150);
    await s.close();
  });
});

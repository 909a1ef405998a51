import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import {
  block5hWindow, budgetStatus, describeExhausted, parseScope, periodWindow, PolicyValidationError, scopeMatches, spendFilter,
  sumRequests, validateBudget,
} from '../../src/policy/budgets.js';
import { budget } from './fixtures.js';

const prices = PriceBook.builtin();
const T = (iso: string) => Date.parse(iso);

function refused(input: Parameters<typeof validateBudget>[0], field: string, pattern: RegExp): void {
  assert.throws(() => validateBudget(input, { prices }), (err: unknown) => {
    assert.ok(err instanceof PolicyValidationError, String(err));
    assert.equal(err.field, field);
    assert.ok(err.message.startsWith(`${field}: `), err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('budget definitions', () => {
  it('accepts a full definition and fills defaults', () => {
    const b = validateBudget({ name: 'daily', limit: '$12.50', period: 'week', scope: 'model:claude-opus-4-6-20260205', action: 'downgrade',
      alerts: '80, 50,100', webhook: 'https://hooks.slack.com/services/x', timezone: 'Europe/Paris', startOfWeek: 'sunday' }, { prices, now: 42 });
    assert.deepEqual(b, {
      name: 'daily', limitUsd: 12.5, period: 'week', scope: 'model:claude-opus-4-6', action: 'downgrade', alerts: [50, 80, 100],
      webhook: 'https://hooks.slack.com/services/x', timeZone: 'Europe/Paris', weekStart: 0, createdAt: 42, updatedAt: 42,
    });
    const d = validateBudget({ name: 'x', limit: 3 }, { now: 1 });
    assert.deepEqual([d.period, d.scope, d.action, d.alerts, d.webhook, d.timeZone, d.weekStart], ['day', 'all', 'warn', [50, 80, 100], null, 'UTC', 1]);
    assert.deepEqual(validateBudget({ name: 'x', limit: 3, alerts: 'none' }).alerts, []);
  });

  it('refuses invalid definitions with a message naming the field', () => {
    refused({ name: 'x', limit: 'abc' }, '--limit', /expected a positive number of USD, got "abc"/);
    refused({ name: 'x', limit: '0' }, '--limit', /positive number of USD/);
    refused({ name: 'x', limit: -5 }, '--limit', /positive/);
    refused({ name: 'x' }, '--limit', /got nothing/);
    refused({ name: 'bad name!', limit: 1 }, 'name', /letters, digits/);
    refused({ name: 'x', limit: 1, period: 'fortnight' }, '--period', /day, week, month, block5h, session/);
    refused({ name: 'x', limit: 1, action: 'explode' }, '--action', /warn, block, downgrade/);
    refused({ name: 'x', limit: 1, scope: 'team:a' }, '--scope', /all, project:<path>, session, model:<id> or key:<hash>/);
    refused({ name: 'x', limit: 1, scope: 'project:' }, '--scope', /needs a path/);
    refused({ name: 'x', limit: 1, scope: 'model:gpt-4' }, '--scope', /unknown model "gpt-4"/);
    refused({ name: 'x', limit: 1, scope: 'key:ABC' }, '--scope', /12 lowercase hex digits/);
    refused({ name: 'x', limit: 1, alerts: '50,abc' }, '--alerts', /got "abc"/);
    refused({ name: 'x', limit: 1, alerts: '0' }, '--alerts', /between 0 and 1000/);
    refused({ name: 'x', limit: 1, webhook: 'ftp://x' }, '--webhook', /http:\/\/ or https:\/\/ URL/);
    refused({ name: 'x', limit: 1, timezone: 'Mars/Olympus' }, '--timezone', /unknown time zone "Mars\/Olympus"/);
    refused({ name: 'x', limit: 1, startOfWeek: 'someday' }, '--start-of-week', /monday/);
  });
});

describe('period windows', () => {
  it('day in a zone, across a DST change (Europe/Paris, 23-hour day)', () => {
    const w = periodWindow(budget({ timeZone: 'Europe/Paris' }), T('2026-03-29T12:00:00Z'));
    assert.deepEqual(w, { start: T('2026-03-28T23:00:00Z'), end: T('2026-03-29T22:00:00Z'), key: 'day:2026-03-29' });
  });

  it('week from the configured first day, month in the zone', () => {
    const sunday = T('2026-11-22T13:00:00Z');
    assert.deepEqual(periodWindow(budget({ period: 'week' }), sunday),
      { start: T('2026-11-16T00:00:00Z'), end: T('2026-11-23T00:00:00Z'), key: 'week:2026-11-16' });
    assert.deepEqual(periodWindow(budget({ period: 'week', weekStart: 0 }), sunday),
      { start: T('2026-11-22T00:00:00Z'), end: T('2026-11-29T00:00:00Z'), key: 'week:2026-11-22' });
    // 03:00Z on Nov 1 is still Oct 31 in New York (EDT, UTC-4).
    assert.deepEqual(periodWindow(budget({ period: 'month', timeZone: 'America/New_York' }), T('2026-11-01T03:00:00Z')),
      { start: T('2026-10-01T04:00:00Z'), end: T('2026-11-01T04:00:00Z'), key: 'month:2026-10' });
    assert.deepEqual(periodWindow(budget({ period: 'month' }), T('2026-12-31T23:59:00Z')),
      { start: T('2026-12-01T00:00:00Z'), end: T('2027-01-01T00:00:00Z'), key: 'month:2026-12' });
  });

  it('5-hour blocks as ccusage draws them', () => {
    // ccusage study: entries 10:45, 14:50, 15:50, 21:00 UTC -> blocks 10:00-15:00, 15:00-20:00, 21:00-02:00.
    const times = ['10:45', '14:50', '15:50', '21:00'].map((h) => T(`2026-11-20T${h}:00Z`));
    assert.deepEqual(block5hWindow(times, T('2026-11-20T14:55:00Z')), { start: T('2026-11-20T10:00:00Z'), end: T('2026-11-20T15:00:00Z'), active: true });
    assert.deepEqual(block5hWindow(times, T('2026-11-20T15:55:00Z')), { start: T('2026-11-20T15:00:00Z'), end: T('2026-11-20T20:00:00Z'), active: true });
    assert.deepEqual(block5hWindow(times, T('2026-11-20T21:30:00Z')), { start: T('2026-11-20T21:00:00Z'), end: T('2026-11-21T02:00:00Z'), active: true });
    // After the block ends and before a new request: the block the next request would open.
    assert.deepEqual(block5hWindow(times, T('2026-11-20T20:30:00Z')), { start: T('2026-11-20T20:00:00Z'), end: T('2026-11-21T01:00:00Z'), active: false });
    assert.deepEqual(block5hWindow([], T('2026-11-20T08:10:00Z')).start, T('2026-11-20T08:00:00Z'));
    const w = periodWindow(budget({ period: 'block5h' }), T('2026-11-20T15:55:00Z'), { recentTimes: times });
    assert.equal(w.key, 'block:2026-11-20T15:00:00.000Z');
  });

  it('session budgets are per session and never reset', () => {
    const b = budget({ period: 'session' });
    const w = periodWindow(b, T('2026-11-20T12:00:00Z'), { sessionId: 's9', sessionStart: T('2026-11-20T09:00:00Z') });
    assert.deepEqual(w, { start: T('2026-11-20T09:00:00Z'), end: null, key: 'session|s:s9' });
    assert.deepEqual(spendFilter(b, w, 's9'), { sessionId: 's9' });
    assert.equal(spendFilter(b, w, null), null);
    const perSessionDay = periodWindow(budget({ scope: 'session' }), T('2026-11-20T12:00:00Z'), { sessionId: 's9' });
    assert.equal(perSessionDay.key, 'day:2026-11-20|s:s9');
  });
});

describe('scopes', () => {
  const ctx = { sessionId: 's1', project: '/home/dev/app/sub', model: 'claude-opus-4-6-20260205', keyHash: 'abcdefabcdef' };
  it('matches requests by project path, model (aliases, prefix), key and session', () => {
    assert.ok(scopeMatches(budget({ scope: 'project:/home/dev/app' }), ctx));
    assert.ok(!scopeMatches(budget({ scope: 'project:/home/dev/ap' }), ctx), 'a sibling prefix is another project');
    assert.ok(scopeMatches(budget({ scope: 'model:claude-opus-4-6' }), ctx, prices));
    assert.ok(scopeMatches(budget({ scope: 'model:claude-opus-*' }), ctx));
    assert.ok(!scopeMatches(budget({ scope: 'model:claude-sonnet-4-6' }), ctx, prices));
    assert.ok(scopeMatches(budget({ scope: 'key:abcdefabcdef' }), ctx));
    assert.ok(!scopeMatches(budget({ scope: 'key:abcdefabcdef' }), { ...ctx, keyHash: null }), 'a hook has no key: key budgets do not apply');
    assert.ok(!scopeMatches(budget({ scope: 'session' }), { ...ctx, sessionId: null }));
    assert.deepEqual(parseScope('project:/x/'), { kind: 'project', path: '/x' });
  });

  it('sums the same requests in memory as the filter selects', () => {
    const rows = [
      { ts: T('2026-11-20T01:00:00Z'), cost: 1, sessionId: 'a', project: '/p', model: 'claude-opus-4-6', keyHash: null },
      { ts: T('2026-11-20T02:00:00Z'), cost: 2, sessionId: 'a', project: '/p/x', model: 'claude-opus-4-6-20260205', keyHash: null },
      { ts: T('2026-11-20T03:00:00Z'), cost: null, sessionId: 'b', project: '/q', model: 'claude-x', keyHash: null },
      { ts: T('2026-11-21T03:00:00Z'), cost: 4, sessionId: 'b', project: '/p', model: 'claude-opus-4-6', keyHash: null },
    ];
    const b = budget({ scope: 'model:claude-opus-4-6' });
    const f = spendFilter(b, periodWindow(b, T('2026-11-20T12:00:00Z')), null, prices)!;
    assert.deepEqual(sumRequests(rows, f), { cost: 3, requests: 2, unknownCostRequests: 0, firstTs: rows[0].ts, lastTs: rows[1].ts });
    const all = budget();
    assert.deepEqual(sumRequests(rows, spendFilter(all, periodWindow(all, T('2026-11-20T12:00:00Z')), null)!).unknownCostRequests, 1);
  });
});

describe('budget status', () => {
  it('spent, percent, time to reset and projected spend from hand-computed numbers', () => {
    const b = budget({ limitUsd: 10 });
    const now = T('2026-11-20T12:00:00Z');
    const w = periodWindow(b, now);
    // $2 at 09:00 and $3 at 11:00: $5 in 3 h since the first request = $1.6667/h; 12 h to midnight -> 5 + 20 = $25.
    const s = budgetStatus(b, w, { cost: 5, requests: 2, unknownCostRequests: 0, firstTs: T('2026-11-20T09:00:00Z'), lastTs: T('2026-11-20T11:00:00Z') }, now);
    assert.equal(s.percent, 50);
    assert.equal(s.remainingUsd, 5);
    assert.equal(s.exhausted, false);
    assert.equal(s.resetsAt, T('2026-11-21T00:00:00Z'));
    assert.equal(s.msToReset, 12 * 3_600_000);
    assert.ok(Math.abs(s.burnRatePerHour! - 5 / 3) < 1e-9);
    assert.ok(Math.abs(s.projectedUsd! - 25) < 1e-9);
    // A first request 2 minutes ago is averaged over 10 minutes: $1 -> $6/h.
    const early = budgetStatus(b, w, { cost: 1, requests: 1, unknownCostRequests: 0, firstTs: now - 120_000, lastTs: now - 120_000 }, now);
    assert.ok(Math.abs(early.burnRatePerHour! - 6) < 1e-9);
    const over = budgetStatus(b, w, { cost: 10.5, requests: 9, unknownCostRequests: 0, firstTs: now - 3_600_000, lastTs: now }, now);
    assert.ok(over.exhausted);
    assert.equal(describeExhausted(over),
      'tokentally budget "b" (daily, scope all) reached: spent $10.50 of $10.00; resets 2026-11-21 00:00 UTC (in 12h 00m)');
    const sess = budgetStatus(budget({ period: 'session' }), { start: now - 1000, end: null, key: 'session|s:x' },
      { cost: 1, requests: 1, unknownCostRequests: 0, firstTs: now - 1000, lastTs: now - 1000 }, now, 'x');
    assert.equal(sess.projectedUsd, null);
    assert.equal(sess.msToReset, null);
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import { emptyUsage, type RequestRecord } from '../../src/core/types.js';
import { isBillable, PolicyGate, type GateRequest } from '../../src/policy/gate.js';
import { EMPTY_ROUTING, parseRoutingConfig } from '../../src/policy/routing.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { budget } from './fixtures.js';

const prices = PriceBook.builtin();
const NOW = Date.parse('2026-11-20T12:00:00Z');

/** A store holding `usd` of Sonnet 4.6 spend today ($3 per million input tokens). */
async function storeWithSpend(usd: number) {
  const store = SqliteStore.open(':memory:', prices);
  const r: RequestRecord = {
    key: 'm:pre', requestId: null, messageId: 'pre', ts: NOW - 3_600_000, sessionId: 's1', project: '/p', agentId: null, isSubagent: false,
    model: 'claude-sonnet-4-6', usage: { ...emptyUsage(), input: Math.round((usd / 3) * 1e6) }, stopReason: null, tools: [], clientVersion: null, sources: 1,
  };
  if (usd > 0) await store.upsertRequests([r]);
  return store;
}

function req(model: string, over: Partial<GateRequest> = {}, extra: Record<string, unknown> = {}): GateRequest {
  const body = Buffer.from(JSON.stringify({ model, max_tokens: 1000, messages: [{ role: 'user', content: 'hello there' }], ...extra }));
  return { method: 'POST', path: '/v1/messages', headers: {}, body, keyHash: 'abcdefabcdef', sessionId: 's1', project: '/p', ...over };
}

describe('PolicyGate (what the proxy calls per request)', () => {
  it('knows which calls are billable', () => {
    assert.ok(isBillable('POST', '/v1/messages'));
    assert.ok(!isBillable('POST', '/v1/messages/count_tokens'));
    assert.ok(!isBillable('GET', '/v1/models'));
    assert.ok(!isBillable('HEAD', '/'));
  });

  it('blocks an exhausted block budget with the 429 billing_error, but never count_tokens', async () => {
    const store = await storeWithSpend(10.5);
    const gate = new PolicyGate({ store, prices, budgets: [budget({ name: 'daily', limitUsd: 10 })], routing: EMPTY_ROUTING, now: () => NOW });
    const g = await gate.before(req('claude-opus-4-8'));
    assert.equal(g.kind, 'respond');
    if (g.kind !== 'respond') return;
    assert.equal(g.response.status, 429);
    assert.equal(g.response.headers['x-should-retry'], 'false');
    assert.equal(g.response.headers['retry-after'], String(12 * 3600));
    assert.equal(JSON.parse(g.response.body).error.type, 'billing_error');
    const ct = await gate.before(req('claude-opus-4-8', { path: '/v1/messages/count_tokens' }));
    assert.equal(ct.kind, 'forward');
    assert.equal(gate.ledger.inFlight(), 0);
    // `tokentally budget set daily --limit 20` from another process: picked up by refresh().
    await store.saveBudget(budget({ name: 'daily', limitUsd: 20, updatedAt: 2 }));
    await gate.refresh();
    assert.equal((await gate.before(req('claude-opus-4-8'))).kind, 'forward');
    await store.close();
  });

  it('warns with a header and lets the request through unchanged', async () => {
    const store = await storeWithSpend(10.5);
    const gate = new PolicyGate({ store, prices, budgets: [budget({ name: 'soft', limitUsd: 10, action: 'warn' })], routing: EMPTY_ROUTING, now: () => NOW });
    const r = req('claude-opus-4-8');
    const g = await gate.before(r);
    assert.equal(g.kind, 'forward');
    if (g.kind !== 'forward') return;
    assert.equal(g.body, r.body);
    assert.match(g.addHeaders['x-tokentally-budget-warning'], /^budget "soft" \(day\) at 1\d\d%: \$10\.50 of \$10\.00/);
    // Already over when first seen: the thresholds fire once, as log lines, and not again.
    assert.equal((await gate.after(g.ticket, { costUsd: 0.01 })).length, 3);
    const g2 = await gate.before(r);
    assert.ok(g2.kind === 'forward');
    assert.deepEqual(await gate.after(g2.ticket, { costUsd: 0.01 }), []);
    await store.close();
  });

  it('downgrades to the next cheaper model, records both models, and settles the actual saving', async () => {
    const store = await storeWithSpend(10.5);
    const gate = new PolicyGate({ store, prices, budgets: [budget({ name: 'cap', limitUsd: 10, action: 'downgrade' })], routing: EMPTY_ROUTING, now: () => NOW });
    const g = await gate.before(req('claude-opus-4-6'));
    assert.equal(g.kind, 'forward');
    if (g.kind !== 'forward') return;
    assert.equal(JSON.parse(g.body.toString()).model, 'claude-sonnet-4-6');
    assert.equal(g.addHeaders['x-tokentally-model-rewrite'], 'claude-opus-4-6 -> claude-sonnet-4-6 (budget "cap")');
    assert.deepEqual([g.ticket.modelRequested, g.ticket.modelSent], ['claude-opus-4-6', 'claude-sonnet-4-6']);
    const usage = { ...emptyUsage(), input: 1_000_000, output: 0 };
    await gate.after(g.ticket, { costUsd: 3, usage, requestKey: 'm:x' });
    const [d] = await store.listRouteDecisions({});
    // Sonnet 4.6 answered 1M input tokens for $3; Opus 4.6 would have cost $5.
    assert.deepEqual([d.kind, d.rule, d.outcome, d.modelFrom, d.modelTo, d.requestKey, d.costActual, d.costAlternative],
      ['downgrade', 'cap', 'routed', 'claude-opus-4-6', 'claude-sonnet-4-6', 'm:x', 3, 5]);
    // A request the cheaper models cannot take (1M-context conversation, 200K-window ladder) goes through as is.
    const narrow = new PolicyGate({ store, prices, budgets: [budget({ name: 'cap', limitUsd: 10, action: 'downgrade' })],
      routing: parseRoutingConfig({ ladder: [['claude-opus-4-6', 'claude-sonnet-4-5', 'claude-haiku-4-5']] }, prices), now: () => NOW });
    const big = req('claude-opus-4-6', {}, { padding: 'x'.repeat(1_000_000) });
    const g2 = await narrow.before(big);
    assert.equal(g2.kind, 'forward');
    if (g2.kind !== 'forward') return;
    assert.equal(g2.body, big.body);
    assert.match(g2.addHeaders['x-tokentally-budget-warning'], /not downgraded: .*context window/);
    await store.close();
  });

  it('routes by rules, records dry runs without rewriting, and skips everything when idle', async () => {
    const store = await storeWithSpend(0);
    const routing = parseRoutingConfig({
      rules: [
        { name: 'small', match: { model: 'claude-opus-*', maxInputTokens: 1000 }, target: 'claude-haiku-4-5' },
        { name: 'try-sonnet', match: { model: 'claude-fable-*' }, target: 'claude-sonnet-4-6', dryRun: true },
      ],
    }, prices);
    const gate = new PolicyGate({ store, prices, budgets: [], routing, now: () => NOW });
    const g = await gate.before(req('claude-opus-4-8'));
    assert.ok(g.kind === 'forward' && JSON.parse(g.body.toString()).model === 'claude-haiku-4-5-20251001');
    const r = req('claude-fable-5');
    const dry = await gate.before(r);
    assert.ok(dry.kind === 'forward' && dry.body === r.body);
    const rows = await store.listRouteDecisions({});
    assert.deepEqual(rows.map((x) => `${x.rule} ${x.outcome}`).sort(), ['small routed', 'try-sonnet dry-run']);
    const idle = new PolicyGate({ store, prices, budgets: [], routing: EMPTY_ROUTING });
    assert.ok(idle.idle);
    await store.close();
  });

  it('lets 3 of 50 concurrent requests through at the limit and fires the alerts once', async () => {
    const store = await storeWithSpend(9);
    const gate = new PolicyGate({ store, prices, budgets: [budget({ name: 'daily', limitUsd: 10, action: 'block' })], routing: EMPTY_ROUTING, now: () => NOW });
    // Opus 4.8, max_tokens 16,000: $0.40 of output (+ a few input tokens) reserved per request; $9 spent already.
    const r = req('claude-opus-4-8', {}, { max_tokens: 16_000 });
    const lines: string[] = [];
    const results = await Promise.all(Array.from({ length: 50 }, async () => {
      const g = await gate.before(r);
      if (g.kind === 'respond') return 'block';
      await new Promise((res) => setTimeout(res, 10));
      lines.push(...await gate.after(g.ticket, { costUsd: 0.5 }));
      return 'allow';
    }));
    // 9 -> 9.4 -> 9.8 reserved: the third still had budget left; the other 47 were blocked before forwarding.
    assert.equal(results.filter((x) => x === 'allow').length, 3);
    // Settled 9.5 (50% and 80% reached), 10.0 (100%), 10.5: each alert once, as a log line.
    assert.equal(lines.length, 3, lines.join('\n'));
    assert.match(lines.find((l) => /reached/.test(l))!, /^alert: tokentally budget "daily" \(daily, scope all\) reached: spent \$10\.00 of \$10\.00/);
    assert.deepEqual((await store.listAlerts({})).map((a) => a.threshold).sort((a, b) => a - b), [50, 80, 100]);
    await store.close();
  });
});

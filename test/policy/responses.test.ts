import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Anthropic from '@anthropic-ai/sdk';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import { billingErrorResponse, blockMessage, warningHeader } from '../../src/policy/responses.js';
import { BudgetLedger } from '../../src/policy/reservations.js';
import { budget } from './fixtures.js';

const prices = PriceBook.builtin();
const ctx = { sessionId: 's1', project: '/p', model: 'claude-opus-4-8', keyHash: null };

function exhaustedCheck(now: number, over = {}) {
  const l = new BudgetLedger([budget({ name: 'daily', limitUsd: 10, ...over })], { prices, now: () => now });
  for (const n of l.baselineNeeds(ctx)) l.setBaseline(n.slot, { cost: 10.25, requests: 3, unknownCostRequests: 0, firstTs: now - 1000, lastTs: now });
  const adm = l.admit(ctx, 1);
  return adm;
}

describe('billing_error response', () => {
  it('is a 429 in Anthropic\'s error format naming the budget, spent, limit and reset, with x-should-retry false', () => {
    const now = Date.parse('2026-11-20T21:30:00Z');
    const adm = exhaustedCheck(now);
    assert.equal(adm.decision, 'block');
    const r = billingErrorResponse(adm.deciding!, now);
    assert.equal(r.status, 429);
    assert.equal(r.headers['x-should-retry'], 'false');
    assert.equal(r.headers['retry-after'], String(2.5 * 3600));
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers['content-length'], String(Buffer.byteLength(r.body)));
    assert.deepEqual(JSON.parse(r.body), {
      type: 'error',
      error: {
        type: 'billing_error',
        message: 'spend limit reached (daily; resets 2026-11-21 00:00 UTC (in 2h 30m)): tokentally budget "daily" (scope all) spent $10.25 of $10.00',
      },
    });
    // A session budget never resets: no retry-after.
    const sess = exhaustedCheck(now, { period: 'session' });
    const rs = billingErrorResponse(sess.deciding!, now);
    assert.equal(rs.headers['retry-after'], undefined);
    assert.match(blockMessage(sess.deciding!, now), /per-session budget: start a new session/);
    const [name, value] = warningHeader(exhaustedCheck(now, { action: 'warn' }).deciding!);
    assert.equal(name, 'x-tokentally-budget-warning');
    assert.equal(value, 'budget "daily" (day) at 102%: $10.25 of $10.00, resets 2026-11-21T00:00:00.000Z');
  });

  it('is not retried by @anthropic-ai/sdk, which surfaces the message', async () => {
    const now = Date.now();
    const block = billingErrorResponse(exhaustedCheck(now).deciding!, now);
    let hits = 0;
    const server: Server = createServer((req, res) => {
      hits++;
      req.resume();
      req.on('end', () => {
        res.writeHead(block.status, block.headers);
        res.end(block.body);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const client = new Anthropic({ apiKey: 'sk-ant-test', baseURL: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, maxRetries: 5, timeout: 10_000 });
      const err = await client.messages.create({ model: 'claude-opus-4-8', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })
        .then(() => null, (e: unknown) => e);
      assert.ok(err instanceof Anthropic.RateLimitError, String(err));
      assert.equal(err.status, 429);
      assert.equal((err.error as { error: { type: string } }).error.type, 'billing_error');
      assert.match(err.message, /spend limit reached \(daily; resets .*budget \\"daily\\" \(scope all\) spent \$10\.25 of \$10\.00/);
      assert.equal(hits, 1, 'x-should-retry: false stops the SDK\'s retries');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

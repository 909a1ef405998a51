import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import type { AlertRecord } from '../../src/policy/alerts.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { deliverAlerts, desktopNotify, postWebhook } from '../../src/surfaces/notify.js';
import { budget } from './fixtures.js';

/** A 127.0.0.1 server that answers `statuses` in turn (then 200), recording each JSON body. */
async function flakyServer(statuses: number[]) {
  const bodies: unknown[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      bodies.push(JSON.parse(data));
      const status = statuses[bodies.length - 1] ?? 200;
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(status === 200 ? 'ok' : 'fail');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    bodies,
    close: () => new Promise((r) => server.close(r)),
  };
}

const alert = (over: Partial<AlertRecord> = {}): AlertRecord => ({
  ts: Date.parse('2026-11-20T10:00:00Z'), budget: 'daily', budgetVersion: 1, period: 'day', periodKey: 'day:2026-11-20', threshold: 80,
  spentUsd: 8.123, limitUsd: 10, percent: 81.23, resetsAt: Date.parse('2026-11-21T00:00:00Z'), source: 'test',
  message: 'tokentally budget "daily" at 81%', delivery: null, ...over,
});

describe('alert delivery', () => {
  it('retries a webhook that fails twice, then succeeds, with a Slack-compatible JSON body', async () => {
    const srv = await flakyServer([500, 503]);
    try {
      const r = await postWebhook(srv.url, { text: 'x', budget: 'b', spent: 1, limit: 2, percent: 50, period: 'day', threshold: 50, periodKey: 'k', resetsAt: null },
        { baseDelayMs: 10 });
      assert.deepEqual(r, { ok: true, attempts: 3, status: 200, error: null });
      assert.equal(srv.bodies.length, 3);
    } finally {
      await srv.close();
    }
  });

  it('gives up after the bounded number of attempts, and does not retry a 4xx', async () => {
    const srv = await flakyServer([500, 500, 500, 500, 500]);
    try {
      const r = await postWebhook(srv.url, { text: 'x' }, { attempts: 3, baseDelayMs: 5 });
      assert.deepEqual([r.ok, r.attempts, r.status], [false, 3, 500]);
    } finally {
      await srv.close();
    }
    const bad = await flakyServer([404]);
    try {
      const r = await postWebhook(bad.url, { text: 'x' }, { baseDelayMs: 5 });
      assert.deepEqual([r.ok, r.attempts, r.status], [false, 1, 404]);
    } finally {
      await bad.close();
    }
    const closed = await flakyServer([]);
    await closed.close();
    const refused = await postWebhook(closed.url, { text: 'x' }, { attempts: 2, baseDelayMs: 5 });
    assert.deepEqual([refused.ok, refused.attempts, refused.error], [false, 2, 'ECONNREFUSED']);
  });

  it('delivers stored alerts (the highest threshold per budget and period) and records the outcome', async () => {
    const srv = await flakyServer([500, 500]);
    const store = SqliteStore.open(':memory:', PriceBook.builtin());
    try {
      const b = budget({ name: 'daily', webhook: srv.url });
      const a50 = (await store.recordAlert(alert({ threshold: 50, message: 'at 50%' })))!;
      const a80 = (await store.recordAlert(alert({ threshold: 80 })))!;
      const out = await deliverAlerts(store, [a50, a80], [b], { webhook: { baseDelayMs: 5 }, env: { TOKENTALLY_DESKTOP_NOTIFY: '0' } });
      assert.deepEqual(out.map((o) => o.delivery).sort(), ['superseded by 80%', 'webhook:ok(3) desktop:skipped']);
      assert.equal(srv.bodies.length, 3);
      assert.deepEqual(srv.bodies[2], {
        text: 'tokentally budget "daily" at 81%', budget: 'daily', spent: 8.12, limit: 10, percent: 81.2, period: 'day', threshold: 80,
        periodKey: 'day:2026-11-20', resetsAt: '2026-11-21T00:00:00.000Z',
      });
      assert.equal((await store.listAlerts({ pending: true })).length, 0);
    } finally {
      await store.close();
      await srv.close();
    }
  });

  it('skips desktop notifications where there is no tool or no session', () => {
    assert.equal(desktopNotify('t', 'b', { TOKENTALLY_DESKTOP_NOTIFY: '0', DISPLAY: ':0' }, 'linux'), 'skipped');
    assert.equal(desktopNotify('t', 'b', { PATH: '/nonexistent' }, 'linux'), 'skipped');
    assert.equal(desktopNotify('t', 'b', { PATH: '/nonexistent', DISPLAY: ':0' }, 'linux'), 'skipped');
    assert.equal(desktopNotify('t', 'b', { PATH: '/nonexistent' }, 'darwin'), 'skipped');
    assert.equal(desktopNotify('t', 'b', {}, 'win32'), 'skipped');
  });
});

/**
 * The proxy never breaks traffic: a locked store or a full disk costs no request (records are spooled,
 * or held, and written later), odd bodies pass untouched, aborted exchanges leave nothing behind.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import { emptyUsage, SOURCE_PROXY, type RequestRecord } from '../../src/core/types.js';
import { Recorder } from '../../src/sources/proxy/recorder.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { StoreError, type Store } from '../../src/store/store.js';
import { RECORDED, recordedSse } from '../helpers/mock-anthropic.js';
import { sleep, startStack } from './harness.js';

const params = { model: 'claude-opus-4-8', max_tokens: 100, messages: [{ role: 'user' as const, content: 'hi' }] };

function rec(i: number): RequestRecord {
  return {
    key: `r:req_${i}`, requestId: `req_${i}`, messageId: null, ts: Date.parse('2026-11-22T12:00:00Z') + i, sessionId: 'spool',
    project: null, agentId: null, isSubagent: false, model: 'claude-opus-4-8', usage: { ...emptyUsage(), input: 100 + i, output: 10 },
    stopReason: 'end_turn', tools: [], clientVersion: null, sources: SOURCE_PROXY,
  };
}

/** POST raw bytes through `base` with node:http (control over chunked bodies); resolves status, headers and body. */
function rawPost(base: string, path: string, body: Buffer, opts: { chunked?: boolean; headers?: Record<string, string> } = {}) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    const u = new URL(base);
    const req = http.request({ host: u.hostname, port: u.port, method: 'POST', path, agent: false,
      headers: { 'x-api-key': 'sk-ant-test', 'content-type': 'application/json', ...(opts.chunked ? {} : { 'content-length': String(body.length) }), ...opts.headers } },
    (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.chunked) {
      for (let i = 0; i < body.length; i += 7000) req.write(body.subarray(i, i + 7000));
      req.end();
    } else req.end(body);
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('store locked or disk full: traffic flows, records are kept', () => {
  it('a locked database: requests go through at full speed, records are spooled, then written exactly once', async () => {
    const stack = await startStack({ busyTimeoutMs: 100, mock: { uniqueIds: true } });
    // Create the schema, then hold the write lock from another connection (as a long sync would).
    SqliteStore.open(stack.dbPath, PriceBook.builtin()).close();
    const locker = new Database(stack.dbPath);
    locker.pragma('busy_timeout = 0');
    locker.exec('BEGIN IMMEDIATE');
    try {
      const client = new Anthropic({ apiKey: 'sk-ant-test', baseURL: stack.url, maxRetries: 0 });
      for (let i = 0; i < 5; i++) {
        const t0 = performance.now();
        const msg = await client.messages.create({ ...params, metadata: { user_id: JSON.stringify({ session_id: 'locked' }) } });
        assert.equal(msg.usage.output_tokens, 23);
        assert.ok(performance.now() - t0 < 1000, 'the lock never delays a request');
      }
      await stack.settle(5);
      const spooled = readdirSync(stack.spoolDir).filter((f) => f.endsWith('.jsonl'));
      assert.ok(spooled.length >= 1, 'records went to the spool');
      assert.equal(stack.sink.stats().spooled, 5);
      assert.equal((locker.prepare('SELECT COUNT(*) AS n FROM requests').get() as { n: number }).n, 0);
    } finally {
      locker.exec('COMMIT');
      locker.close();
    }
    try {
      await stack.sink.replay();
      const rows = (await stack.rows()).filter((r) => r.sessionId === 'locked');
      assert.equal(rows.length, 5, 'every spooled record is in the store, once');
      assert.equal(readdirSync(stack.spoolDir).filter((f) => f.endsWith('.jsonl') || f.endsWith('.replaying')).length, 0);
      await stack.sink.replay();
      assert.equal((await stack.rows()).filter((r) => r.sessionId === 'locked').length, 5, 'replaying again changes nothing');
    } finally {
      await stack.close();
    }
  });

  it('records spooled by an earlier run are written when the next one starts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tt-spool-'));
    const spoolDir = join(dir, 'spool');
    mkdirSync(spoolDir);
    writeFileSync(join(spoolDir, '1000-2147480-old.jsonl'), [rec(1), rec(2)].map((r) => JSON.stringify(r)).join('\n') + '\n{"torn line');
    const store = SqliteStore.open(join(dir, 'db.sqlite'), PriceBook.builtin());
    const recorder = new Recorder({ openStore: () => store, spoolDir });
    await recorder.start();
    assert.equal((await store.listRequests({ sessionId: 'spool' })).length, 2);
    assert.deepEqual(readdirSync(spoolDir), []);
    await recorder.close();
  });

  it('disk full: the store and the spool both refuse; records are held in memory and written when space returns', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tt-full-'));
    writeFileSync(join(dir, 'not-a-dir'), '');
    const real = SqliteStore.open(':memory:', PriceBook.builtin());
    let full = true;
    const flaky: Store = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop === 'upsertRequests') {
          return async (records: RequestRecord[]) => {
            if (full) throw new StoreError('cannot write the database (SQLITE_FULL: database or disk is full)');
            return target.upsertRequests(records);
          };
        }
        return Reflect.get(target, prop, receiver);
      },
    });
    const problems: string[] = [];
    // The spool directory cannot be created (a file is in the way), as when the disk is full.
    const recorder = new Recorder({ openStore: () => flaky, spoolDir: join(dir, 'not-a-dir', 'spool'), onProblem: (m) => problems.push(m) });
    for (let i = 0; i < 3; i++) recorder.add(rec(i));
    await recorder.flush();
    assert.equal(recorder.stats().held, 3);
    assert.ok(problems.some((p) => /SQLITE_FULL/.test(p)) && problems.some((p) => /spool/.test(p)));
    assert.equal((await real.listRequests({})).length, 0);
    full = false;
    recorder.add(rec(3));
    await recorder.flush();
    assert.equal(recorder.stats().held, 0);
    assert.equal((await real.listRequests({})).length, 4);
    await recorder.close();
  });

  it('a store that cannot be opened: records are spooled and replayed once it can', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tt-open-'));
    const spoolDir = join(dir, 'spool');
    let broken = true;
    const store = SqliteStore.open(join(dir, 'db.sqlite'), PriceBook.builtin());
    const recorder = new Recorder({ spoolDir, replayMs: 10, openStore: () => {
      if (broken) throw new StoreError('the database is locked by another process');
      return store;
    } });
    recorder.add(rec(1));
    recorder.add(rec(2));
    await recorder.flush();
    assert.equal(recorder.stats().spooled, 2);
    broken = false;
    await sleep(30);
    await recorder.replaySpool();
    assert.equal((await store.listRequests({ sessionId: 'spool' })).length, 2);
    await recorder.close();
  });
});

describe('bodies pass through untouched', () => {
  it('a non-JSON body reaches the upstream byte for byte; its 400 reaches the client as is; a record is kept', async () => {
    const stack = await startStack();
    try {
      const body = Buffer.from('this is {not json\u0000\u00ff', 'latin1');
      const direct = await rawPost(stack.mock.url, '/v1/messages', body);
      const proxied = await rawPost(stack.url, '/v1/messages', body, { headers: { 'x-claude-code-session-id': 'odd' } });
      assert.equal(stack.mock.lastRequest!.bodySha256, sha(body));
      assert.equal(proxied.status, 400);
      assert.equal(proxied.body.toString().replace(/req_\w+/, 'ID'), direct.body.toString().replace(/req_\w+/, 'ID'));
      await stack.settle(1);
      const [row] = await stack.rows();
      assert.equal(row.proxy!.status, '400');
      assert.equal(row.proxy!.errorType, 'invalid_request_error');
      assert.equal(row.proxy!.requestBytes, body.length);
      assert.equal(row.proxy!.modelRequested, null);
      assert.equal(row.proxy!.messageCount, null);
      assert.equal(row.sessionId, 'odd');
      assert.equal(row.model, null);
    } finally {
      await stack.close();
    }
  });

  it('an oversized body (over the inspection limit) streams through chunked, untouched, and is recorded without model', async () => {
    const stack = await startStack({ proxy: { maxInspectBytes: 64 * 1024 } });
    try {
      const big = Buffer.from(JSON.stringify({ ...params, stream: true, messages: [{ role: 'user', content: 'x'.repeat(300_000) }] }));
      const res = await rawPost(stack.url, '/v1/messages?beta=true', big, { chunked: true });
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), recordedSse());
      assert.equal(stack.mock.lastRequest!.bodySha256, sha(big));
      assert.equal(stack.mock.lastRequest!.headers['transfer-encoding'], 'chunked');
      await stack.settle(1);
      const [row] = await stack.rows();
      assert.equal(row.proxy!.requestBytes, big.length);
      assert.equal(row.proxy!.modelRequested, null, 'not inspected');
      assert.equal(row.model, 'claude-opus-4-8', 'the answer still names it');
      assert.equal(row.usage.output, 23);
    } finally {
      await stack.close();
    }
  });
});

describe('aborted exchanges leave nothing behind', () => {
  it('200 streams aborted at random points: every one recorded, the upstream aborted, nothing in flight', async () => {
    const stack = await startStack({ mock: { uniqueIds: true, eventDelayMs: 2 } });
    try {
      const n = 200;
      const jobs: Promise<void>[] = [];
      for (let i = 0; i < n; i++) {
        jobs.push((async () => {
          const ctrl = new AbortController();
          const res = await fetch(`${stack.url}/v1/messages`, { method: 'POST', signal: ctrl.signal,
            headers: { 'x-api-key': 'k', 'content-type': 'application/json', 'x-claude-code-session-id': 'mass-abort' },
            body: JSON.stringify({ ...params, stream: true }) });
          const reader = res.body!.getReader();
          const stopAfter = 1 + (i % 10);
          for (let k = 0; k < stopAfter; k++) if ((await reader.read()).done) break;
          ctrl.abort();
          await reader.cancel().catch(() => undefined);
        })().catch(() => undefined));
        if (jobs.length % 25 === 0) await Promise.all(jobs.splice(0));
      }
      await Promise.all(jobs);
      await stack.settle(n, 10_000);
      const st = stack.proxy.stats();
      assert.equal(st.inFlight, 0);
      assert.equal(st.recorded, n);
      const rows = (await stack.rows()).filter((r) => r.sessionId === 'mass-abort');
      assert.equal(rows.length, n);
      assert.ok(rows.every((r) => r.proxy!.status === 'client_aborted' || r.proxy!.status === '200'));
      assert.ok(rows.filter((r) => r.proxy!.status === 'client_aborted').length > n / 2);
      const aborted = rows.filter((r) => r.proxy!.status === 'client_aborted').length;
      // The upstream was cut for every abort that came before the mock had sent its last event.
      await stack.mock.waitForAborts(aborted, 1000);
      assert.ok(stack.mock.clientAborts > n / 4 && stack.mock.clientAborts <= aborted, `mock saw ${stack.mock.clientAborts} aborts of ${aborted}`);
      assert.ok(rows.every((r) => r.messageId === null || r.messageId.startsWith('msg_01Mock')));
    } finally {
      await stack.close();
    }
  });

  it('a client that gives up before any answer: recorded as client_aborted, upstream request aborted', async () => {
    const stack = await startStack({ mock: { plan: [{ kind: 'hang' }] } });
    try {
      const ctrl = new AbortController();
      const p = fetch(`${stack.url}/v1/messages`, { method: 'POST', signal: ctrl.signal,
        headers: { 'x-api-key': 'k', 'content-type': 'application/json' }, body: JSON.stringify({ ...params, stream: true }) });
      await sleep(100);
      ctrl.abort();
      await p.catch(() => undefined);
      assert.equal(await stack.mock.waitForAborts(1, 3000), true);
      await stack.settle(1);
      const [row] = await stack.rows();
      assert.equal(row.proxy!.status, 'client_aborted');
      assert.equal(row.requestId, null);
      assert.ok(row.key.startsWith('x:'));
      assert.equal(row.proxy!.stream, true, 'from the request body');
      assert.ok(existsSync(stack.dbPath));
      void RECORDED;
    } finally {
      await stack.close();
    }
  });
});

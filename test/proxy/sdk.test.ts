/**
 * The proxy driven by the official @anthropic-ai/sdk (1.12.0, which authenticates with `authorization:
 * Bearer`) and by raw fetch (`x-api-key`), against the mock Messages API, with a real SQLite store behind
 * the store worker. Every recorded field is checked.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import Anthropic from '@anthropic-ai/sdk';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import type { StoredRequest } from '../../src/store/store.js';
import { RECORDED, recordedSse } from '../helpers/mock-anthropic.js';
import { closedPort, sleep, startStack, type Stack } from './harness.js';

const KEY = 'sk-ant-test';
const KEY_HASH = createHash('sha256').update(KEY).digest('hex').slice(0, 12);
const prices = PriceBook.builtin();
const params = { model: 'claude-opus-4-8', max_tokens: 1000, messages: [{ role: 'user' as const, content: 'say hi' }] };

function client(baseURL: string, extra: Partial<ConstructorParameters<typeof Anthropic>[0]> = {}): Anthropic {
  return new Anthropic({ apiKey: KEY, baseURL, maxRetries: 0, timeout: 10_000, ...extra });
}

function byRequestId(rows: StoredRequest[], requestId: string): StoredRequest {
  const row = rows.find((r) => r.requestId === requestId);
  assert.ok(row, `no stored row with request id ${requestId}`);
  return row;
}

/** The recorded response's final usage, as stored. */
function assertRecordedUsage(row: StoredRequest): void {
  assert.deepEqual(row.usage, {
    input: 10, output: 23, cacheWrite5m: 1030, cacheWrite1h: 203, cacheRead: 12300, webSearches: 0, webFetches: 0,
    speed: null, inferenceGeo: null, serviceTier: 'standard',
  });
  // Opus 4.8: 10 x $5 + 1030 x $6.25 + 203 x $10 + 12,300 x $0.50 + 23 x $25 per MTok.
  assert.ok(Math.abs(row.cost! - 0.0152425) < 1e-12, `cost ${row.cost}`);
  assert.equal(row.cost, prices.price(row.model, row.ts, row.usage).cost);
}

describe('proxy with the official SDK against the mock Messages API', () => {
  let stack: Stack;
  before(async () => { stack = await startStack(); });
  after(async () => { await stack.close(); });

  it('streams a response unchanged and records every field of it', async () => {
    const before = Date.now();
    const stream = client(stack.url).messages.stream({
      ...params,
      metadata: { user_id: JSON.stringify({ device_id: 'dev', account_uuid: '', session_id: 'meta-session' }) },
    }, { headers: { 'x-claude-code-session-id': 'b0fc82b9-641d-47bd-970d-4d8f8ca2c404', 'x-claude-code-agent-id': 'a148e86f38bc66d75' } });
    const events: string[] = [];
    for await (const ev of stream) events.push(ev.type);
    const final = await stream.finalMessage();
    const after = Date.now();
    assert.equal(final.id, RECORDED.messageId);
    assert.equal(final.usage.output_tokens, 23);
    assert.deepEqual(final.content.map((b) => b.type), ['thinking', 'text', 'tool_use']);
    assert.equal(events.length, RECORDED.events - 1, 'every event but the ping reaches the SDK');
    const seen = stack.mock.lastRequest!;
    assert.equal(seen.headers.authorization, `Bearer ${KEY}`, 'the key reaches the upstream');

    await stack.settle(1);
    const row = byRequestId(await stack.rows(), seen.requestId);
    assert.equal(row.key, `m:${RECORDED.messageId}`);
    assert.equal(row.messageId, RECORDED.messageId);
    assert.ok(row.ts >= before && row.ts <= after);
    assert.equal(row.sessionId, 'b0fc82b9-641d-47bd-970d-4d8f8ca2c404', 'the header wins over metadata');
    assert.equal(row.agentId, 'a148e86f38bc66d75');
    assert.equal(row.isSubagent, true);
    assert.equal(row.project, null);
    assert.equal(row.model, 'claude-opus-4-8');
    assertRecordedUsage(row);
    assert.equal(row.stopReason, 'tool_use');
    assert.deepEqual(row.tools, ['Bash']);
    assert.equal(row.sources, 2);
    assert.equal(row.clientVersion, null);
    const p = row.proxy!;
    assert.equal(p.endpoint, '/v1/messages');
    assert.equal(p.modelRequested, 'claude-opus-4-8');
    assert.equal(p.stream, true);
    assert.equal(p.status, '200');
    assert.equal(p.errorType, null);
    assert.ok(p.latencyMs >= 0 && p.latencyMs <= after - before + 1, `latency ${p.latencyMs}`);
    assert.ok(p.ttftMs !== null && p.ttftMs >= 0 && p.ttftMs <= p.latencyMs + 1, `ttft ${p.ttftMs}`);
    assert.equal(p.requestBytes, seen.bodyBytes);
    assert.equal(p.messageCount, 1);
    assert.match(p.userAgent ?? '', /^Anthropic\/JS /);
    assert.equal(p.keyHash, KEY_HASH);
  });

  it('records a non-streamed response, with the session from metadata.user_id', async () => {
    const msg = await client(stack.url).messages.create({
      ...params,
      messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'user', content: 'c' }],
      metadata: { user_id: JSON.stringify({ device_id: 'dev', account_uuid: '', session_id: 'meta-session-2' }) },
    });
    assert.equal(msg.id, RECORDED.messageId);
    const seen = stack.mock.lastRequest!;
    await stack.settle(2);
    const rows = await stack.rows();
    // Same message id as the first test's stream: one row (m: key), merged, never two.
    assert.equal(rows.filter((r) => r.messageId === RECORDED.messageId).length, 1);
    const row = rows.find((r) => r.messageId === RECORDED.messageId)!;
    assertRecordedUsage(row);
    // Earlier copy keeps its attribution; the new facts only fill gaps.
    assert.equal(row.sessionId, 'b0fc82b9-641d-47bd-970d-4d8f8ca2c404');
    assert.ok(seen.bodyBytes > 0);
  });

  it('gives every failed attempt (529, 429) its own record with status, error type and zero usage', async () => {
    stack.mock.setPlan([
      { kind: 'error', status: 529, headers: { 'retry-after-ms': '1' } },
      { kind: 'error', status: 529, headers: { 'retry-after-ms': '1' } },
    ]);
    const startCount = stack.mock.count;
    const recordedBefore = stack.proxy.stats().recorded;
    const c = client(stack.url, { maxRetries: 2 });
    const msg = await c.messages.create({ ...params, metadata: { user_id: JSON.stringify({ session_id: 'retry-session' }) } });
    assert.equal(msg.id, RECORDED.messageId, 'the third attempt succeeds');
    assert.equal(stack.mock.count - startCount, 3);

    stack.mock.setPlan([{ kind: 'error', status: 429 }]);
    const err = await c.messages.create({ ...params, metadata: { user_id: JSON.stringify({ session_id: 'retry-session' }) } }, { maxRetries: 0 })
      .then(() => null, (e: unknown) => e);
    assert.ok(err instanceof Anthropic.RateLimitError, `got ${String(err)}`);
    const seen429 = stack.mock.lastRequest!;
    assert.equal(err.status, 429);
    assert.equal(err.requestID, seen429.requestId, 'the upstream request-id reaches the client');
    assert.equal(err.headers?.get('retry-after'), '1');
    assert.equal(err.headers?.get('anthropic-ratelimit-requests-remaining'), '3999');
    assert.deepEqual((err.error as { error: { type: string } }).error.type, 'rate_limit_error');

    await stack.settle(recordedBefore + 4);
    const rows = (await stack.rows()).filter((r) => r.sessionId === 'retry-session');
    const failed = rows.filter((r) => r.proxy?.status !== '200');
    assert.deepEqual(failed.map((r) => `${r.proxy!.status} ${r.proxy!.errorType}`).sort(),
      ['429 rate_limit_error', '529 overloaded_error', '529 overloaded_error']);
    for (const r of failed) {
      assert.ok(r.key.startsWith('r:req_011CMock'), r.key);
      assert.equal(r.messageId, null);
      assert.equal(r.model, 'claude-opus-4-8', 'attributed to the model requested');
      assert.equal(r.proxy!.modelRequested, 'claude-opus-4-8');
      assert.equal(r.usage.input + r.usage.output + r.usage.cacheRead + r.usage.cacheWrite5m + r.usage.cacheWrite1h, 0);
      assert.equal(r.cost, 0);
      assert.equal(r.proxy!.stream, false);
      assert.equal(r.proxy!.ttftMs, null);
      assert.equal(r.proxy!.keyHash, KEY_HASH);
    }
  });

  it('records a client that disconnects mid-stream as client_aborted, with the usage seen so far, and aborts the upstream', async (t) => {
    // A stack of its own: the mock answers with the recorded message id, which would merge with earlier rows.
    const stack = await startStack();
    t.after(() => stack.close());
    const recordedBefore = stack.proxy.stats().recorded;
    const abortsBefore = stack.mock.clientAborts;
    const stream = client(stack.url).messages.stream({ ...params, metadata: { user_id: JSON.stringify({ session_id: 'abort-session' }) } },
      { headers: { 'x-mock-event-delay-ms': '40' } });
    let deltas = 0;
    try {
      for await (const ev of stream) {
        if (ev.type === 'content_block_delta' && ++deltas === 1) stream.abort();
      }
    } catch (e) {
      assert.ok(e instanceof Anthropic.APIUserAbortError, `got ${String(e)}`);
    }
    assert.equal(await stack.mock.waitForAborts(abortsBefore + 1, 3000), true, 'the upstream request was aborted too');
    await stack.settle(recordedBefore + 1);
    const [row] = (await stack.rows()).filter((r) => r.sessionId === 'abort-session');
    assert.equal(row.proxy!.status, 'client_aborted');
    assert.equal(row.messageId, RECORDED.messageId);
    // message_start numbers: output_tokens 1 until message_delta.
    assert.deepEqual([row.usage.input, row.usage.output, row.usage.cacheWrite5m, row.usage.cacheWrite1h, row.usage.cacheRead], [10, 1, 1030, 203, 12300]);
    assert.equal(row.stopReason, null);
    assert.deepEqual(row.tools, []);
    assert.ok(row.proxy!.ttftMs !== null && row.proxy!.ttftMs >= 40, `ttft ${row.proxy!.ttftMs}`);
    assert.equal(row.proxy!.stream, true);
  });

  it('an upstream reset mid-stream reaches the client as a broken stream and is recorded as upstream_error', async (t) => {
    const stack = await startStack();
    t.after(() => stack.close());
    const recordedBefore = stack.proxy.stats().recorded;
    stack.mock.setPlan([{ kind: 'reset-after-events', events: 4, delayMs: 5 }]);
    const stream = client(stack.url).messages.stream({ ...params, metadata: { user_id: JSON.stringify({ session_id: 'reset-session' }) } });
    const err = await stream.finalMessage().then(() => null, (e: unknown) => e);
    assert.ok(err instanceof Error, 'the SDK sees the stream break');
    assert.ok(!(err instanceof Anthropic.APIUserAbortError));
    await stack.settle(recordedBefore + 1);
    const [row] = (await stack.rows()).filter((r) => r.sessionId === 'reset-session');
    assert.equal(row.proxy!.status, 'upstream_error');
    assert.equal(row.proxy!.errorType, 'ECONNRESET');
    assert.equal(row.requestId, stack.mock.lastRequest!.requestId);
    assert.deepEqual([row.usage.input, row.usage.output, row.usage.cacheRead], [10, 1, 12300]);
  });

  it('raw fetch with x-api-key: bytes and headers pass unchanged, pings included, and the key hashes like the bearer token', async (t) => {
    const stack = await startStack();
    t.after(() => stack.close());
    const body = JSON.stringify({ ...params, stream: true });
    const headers = {
      'x-api-key': KEY, 'content-type': 'application/json', 'anthropic-version': '2023-06-01',
      'anthropic-beta': 'claude-code-20250219,context-1m-2025-08-07,interleaved-thinking-2025-05-14',
      'user-agent': 'claude-cli/2.1.197 (external, sdk-cli)', 'x-claude-code-session-id': 'fetch-session', 'x-app': 'cli',
    };
    const direct = await fetch(`${stack.mock.url}/v1/messages?beta=true`, { method: 'POST', headers, body });
    const directText = await direct.text();
    const directSeen = stack.mock.lastRequest!;
    const recordedBefore = stack.proxy.stats().recorded;
    const proxied = await fetch(`${stack.url}/v1/messages?beta=true`, { method: 'POST', headers, body });
    const proxiedText = await proxied.text();
    const proxiedSeen = stack.mock.lastRequest!;
    assert.equal(proxiedText, recordedSse(), 'the stream is the recorded bytes exactly');
    assert.equal(directText, proxiedText);
    assert.equal(proxied.status, 200);
    const strip = (h: Headers) => [...h.entries()].filter(([k]) => !['date', 'connection', 'keep-alive', 'transfer-encoding', 'request-id'].includes(k));
    assert.deepEqual(strip(proxied.headers), strip(direct.headers));
    assert.equal(proxied.headers.get('request-id'), proxiedSeen.requestId);
    // What the upstream received: same url (with ?beta=true), same headers except host/connection, same body.
    assert.equal(proxiedSeen.url, '/v1/messages?beta=true');
    const upstreamView = (h: Record<string, unknown>) => Object.entries(h).filter(([k]) => !['host', 'connection'].includes(k));
    assert.deepEqual(upstreamView(proxiedSeen.headers), upstreamView(directSeen.headers));
    assert.equal(proxiedSeen.bodySha256, directSeen.bodySha256);
    await stack.settle(recordedBefore + 1);
    const row = byRequestId(await stack.rows(), proxiedSeen.requestId);
    assert.equal(row.proxy!.keyHash, KEY_HASH);
    assert.equal(row.clientVersion, '2.1.197');
    assert.equal(row.proxy!.userAgent, 'claude-cli/2.1.197 (external, sdk-cli)');
  });

  it('passes other endpoints through: HEAD /, GET /v1/models, count_tokens, batches, unknown paths (404 body intact)', async () => {
    const recordedBefore = stack.proxy.stats().recorded;
    const head = await fetch(`${stack.url}/`, { method: 'HEAD' });
    assert.equal(head.status, 404);
    const models = await client(stack.url).models.list();
    assert.equal(models.data[0].id, 'claude-opus-4-8');
    const count = await client(stack.url).messages.countTokens({ model: 'claude-opus-4-8', messages: params.messages });
    assert.equal(count.input_tokens, 2095);
    const batch = await fetch(`${stack.url}/v1/messages/batches`, { method: 'POST', headers: { 'x-api-key': KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ requests: [{ custom_id: 'a', params }] }) });
    assert.equal(((await batch.json()) as { id: string }).id, 'msgbatch_01Mock');
    const missing = await fetch(`${stack.url}/v1/nope?x=1`, { headers: { 'x-api-key': KEY } });
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { error: { type: string } }).error.type, 'not_found_error');
    // count_tokens and batches are recorded (free, zero usage: count_tokens' input_tokens is not billed usage);
    // HEAD /, /v1/models and unknown paths are only forwarded.
    await stack.settle(recordedBefore + 2);
    await sleep(50);
    assert.equal(stack.proxy.stats().recorded, recordedBefore + 2);
    const rows = await stack.rows();
    const ct = rows.find((r) => r.proxy?.endpoint === '/v1/messages/count_tokens')!;
    assert.equal(ct.proxy!.status, '200');
    assert.equal(ct.usage.input, 0);
    assert.equal(ct.cost, 0);
    assert.equal(ct.proxy!.modelRequested, 'claude-opus-4-8');
    assert.ok(rows.some((r) => r.proxy?.endpoint === '/v1/messages/batches'));
  });

  it('retries once, transparently, when a pooled keep-alive socket turns out dead before any answer', async () => {
    // Warm the pool, then make the next request's socket die without an answer.
    await client(stack.url).messages.create(params);
    const before = stack.mock.count;
    const retriesBefore = stack.proxy.stats().staleSocketRetries;
    stack.mock.setPlan([{ kind: 'reset' }]);
    const msg = await client(stack.url).messages.create(params);
    assert.equal(msg.id, RECORDED.messageId);
    assert.equal(stack.mock.count - before, 2);
    assert.equal(stack.proxy.stats().staleSocketRetries, retriesBefore + 1);
  });

  it('stored rows never contain the key or the prompt', async () => {
    await stack.sink.flush();
    const { readFileSync } = await import('node:fs');
    const db = readFileSync(stack.dbPath).toString('latin1') + (() => {
      try { return readFileSync(stack.dbPath + '-wal').toString('latin1'); } catch { return ''; }
    })();
    assert.ok(!db.includes(KEY), 'API key found in the database');
    assert.ok(!db.includes('say hi'), 'prompt text found in the database');
    assert.ok(stack.problems.length === 0, stack.problems.join('; '));
  });
});

describe('upstream that refuses or resets before answering', () => {
  it('refused: the client gets a connection error as it would directly, and a record is kept', async () => {
    const port = await closedPort();
    const stack = await startStack({ upstream: `http://127.0.0.1:${port}` });
    try {
      const direct = await client(`http://127.0.0.1:${port}`).messages.create(params).then(() => null, (e: unknown) => e);
      const proxied = await client(stack.url).messages.create({ ...params, metadata: { user_id: JSON.stringify({ session_id: 'refused' }) } })
        .then(() => null, (e: unknown) => e);
      assert.ok(direct instanceof Anthropic.APIConnectionError, `direct: ${String(direct)}`);
      assert.ok(proxied instanceof Anthropic.APIConnectionError, `proxied: ${String(proxied)}`);
      await stack.settle(1);
      const [row] = await stack.rows();
      assert.equal(row.proxy!.status, 'upstream_error');
      assert.equal(row.proxy!.errorType, 'ECONNREFUSED');
      assert.ok(row.key.startsWith('x:'));
      assert.equal(row.requestId, null);
      assert.equal(row.sessionId, 'refused');
      assert.equal(row.model, 'claude-opus-4-8');
      assert.equal(row.cost, 0);
    } finally {
      await stack.close();
    }
  });

  it('reset on a fresh connection: the client sees a connection error, not a made-up response', async () => {
    const stack = await startStack({ mock: { plan: [{ kind: 'reset' }] } });
    try {
      const err = await client(stack.url).messages.create(params).then(() => null, (e: unknown) => e);
      assert.ok(err instanceof Anthropic.APIConnectionError, String(err));
      await stack.settle(1);
      const [row] = await stack.rows();
      assert.equal(row.proxy!.status, 'upstream_error');
      assert.equal(row.proxy!.errorType, 'ECONNRESET');
      assert.equal(stack.mock.count, 1, 'no retry on a fresh connection');
    } finally {
      await stack.close();
    }
  });
});

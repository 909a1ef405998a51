/** Compressed answers pass through as the exact compressed bytes; the proxy decodes a copy to read usage. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import type { RequestRecord } from '../../src/core/types.js';
import { createProxy } from '../../src/sources/proxy/server.js';
import type { RecordSink } from '../../src/sources/proxy/recorder.js';
import { recordedMessageJson, recordedSse } from '../helpers/mock-anthropic.js';
import { sleep } from './harness.js';

function memorySink(): RecordSink & { records: RequestRecord[] } {
  const records: RequestRecord[] = [];
  return { records, add: (r) => records.push(r), flush: async () => {}, close: async () => {},
    stats: () => ({ queued: 0, written: records.length, spooled: 0, replayed: 0, held: 0, dropped: 0, lastError: null }) };
}

function get(url: string, path: string, headers: Record<string, string>) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    const u = new URL(url);
    const req = http.request({ host: u.hostname, port: u.port, path, method: 'POST', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ model: 'claude-opus-4-8', messages: [] }));
  });
}

describe('compressed responses', () => {
  it('gzip SSE, brotli JSON: the client gets the same compressed bytes, the record has the usage; zstd is not offered upstream', async () => {
    const sse = zlib.gzipSync(recordedSse());
    const json = zlib.brotliCompressSync(JSON.stringify(recordedMessageJson()));
    const seenEncodings: string[] = [];
    const upstream = http.createServer((req, res) => {
      seenEncodings.push(String(req.headers['accept-encoding']));
      req.resume();
      req.on('end', () => {
        const stream = req.url!.includes('stream');
        res.writeHead(200, { 'content-type': stream ? 'text/event-stream' : 'application/json', 'content-encoding': stream ? 'gzip' : 'br',
          'request-id': stream ? 'req_gzip' : 'req_br' });
        // Split the compressed stream in small writes, as a real server flushes events.
        const body = stream ? sse : json;
        for (let i = 0; i < body.length; i += 97) res.write(body.subarray(i, i + 97));
        res.end();
      });
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
    const sink = memorySink();
    const proxy = createProxy({ upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, sink });
    const { url } = await proxy.listen(0, '127.0.0.1');
    try {
      const headers = { 'x-api-key': 'k', 'content-type': 'application/json', 'accept-encoding': 'gzip, deflate, br, zstd' };
      const a = await get(url, '/v1/messages?stream', headers);
      assert.deepEqual(a.body, sse, 'compressed bytes unchanged');
      assert.equal(a.headers['content-encoding'], 'gzip');
      const b = await get(url, '/v1/messages', headers);
      assert.deepEqual(b.body, json);
      for (let i = 0; i < 100 && sink.records.length < 2; i++) await sleep(10);
      const byId = Object.fromEntries(sink.records.map((r) => [r.requestId, r]));
      for (const id of ['req_gzip', 'req_br']) {
        assert.equal(byId[id].usage.output, 23, id);
        assert.equal(byId[id].usage.cacheWrite1h, 203, id);
        assert.deepEqual(byId[id].tools, ['Bash']);
      }
      assert.ok(byId.req_gzip.proxy!.ttftMs !== null);
      const zlibHasZstd = typeof (zlib as unknown as { createZstdDecompress?: unknown }).createZstdDecompress === 'function';
      assert.equal(seenEncodings[0], zlibHasZstd ? 'gzip, deflate, br, zstd' : 'gzip, deflate, br');
    } finally {
      await proxy.close(500);
      upstream.close();
    }
  });
});

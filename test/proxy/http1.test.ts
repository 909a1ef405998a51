/**
 * The proxy's own HTTP/1.1 layer (src/sources/proxy/http1.ts + server.ts): message heads, body framing and
 * the connection handling that node:http used to do for it — keep-alive, pipelining, chunked bodies split at
 * every byte, HTTP/1.0 clients, close-delimited responses, 100-continue, and the refusals that stop request
 * smuggling. Clients here are raw sockets (what a careless or hostile client can send); upstreams are raw
 * sockets too where the test needs exact control of the bytes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import {
  BodyReader, HttpParseError, parseRequestHead, parseResponseHead, requestFraming, responseFraming, wantsClose,
} from '../../src/sources/proxy/http1.js';
import { recordedSse, RECORDED } from '../helpers/mock-anthropic.js';
import { sleep, startStack } from './harness.js';

const head = (s: string) => Buffer.from(s.replace(/\n/g, '\r\n') + '\r\n', 'latin1');

describe('HTTP/1.1 heads and framing (unit)', () => {
  it('parses a request head: method, target, version, fields in order and spelling', () => {
    const h = parseRequestHead(head('POST /v1/messages?beta=true HTTP/1.1\nHost: x\nX-Api-Key:  sk-1 \nanthropic-beta: a,b\n'));
    assert.equal(h.method, 'POST');
    assert.equal(h.target, '/v1/messages?beta=true');
    assert.equal(h.minor, 1);
    assert.deepEqual(h.raw, ['Host', 'x', 'X-Api-Key', 'sk-1', 'anthropic-beta', 'a,b']);
    assert.equal(parseRequestHead(head('GET / HTTP/1.0\n')).minor, 0);
  });

  it('refuses what lets two parsers disagree: bare LF, line folding, spaces before the colon, control bytes, bad versions', () => {
    const bad: Array<[string, number]> = [
      ['GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nX: a\r\n  folded\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nX : a\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\n: a\r\n\r\n', 400],
      ['GET / HTTP/2.0\r\n\r\n', 505],
      ['GET /a b HTTP/1.1\r\n\r\n', 400],
      ['G(T / HTTP/1.1\r\n\r\n', 400],
    ];
    for (const [text, status] of bad) {
      assert.throws(() => parseRequestHead(Buffer.from(text, 'latin1')), (e: unknown) => e instanceof HttpParseError && e.status === status, JSON.stringify(text));
    }
  });

  it('decides request framing by RFC 9112 §6.3 and refuses ambiguous lengths', () => {
    assert.deepEqual(requestFraming(['Content-Length', '12']), { kind: 'length', length: 12 });
    assert.deepEqual(requestFraming(['Content-Length', '12, 12']), { kind: 'length', length: 12 });
    assert.deepEqual(requestFraming(['Content-Length', '0']), { kind: 'none' });
    assert.deepEqual(requestFraming([]), { kind: 'none' });
    assert.deepEqual(requestFraming(['Transfer-Encoding', 'chunked']), { kind: 'chunked' });
    assert.throws(() => requestFraming(['Content-Length', '5', 'Transfer-Encoding', 'chunked']), /both/);
    assert.throws(() => requestFraming(['Content-Length', '5', 'content-length', '6']), /conflicting/);
    assert.throws(() => requestFraming(['Content-Length', '-1']), /invalid/);
    assert.throws(() => requestFraming(['Content-Length', '1e3']), /invalid/);
    assert.throws(() => requestFraming(['Transfer-Encoding', 'gzip']), (e: unknown) => (e as HttpParseError).status === 501);
    assert.throws(() => requestFraming(['Transfer-Encoding', 'chunked, gzip']), (e: unknown) => (e as HttpParseError).status === 501);
  });

  it('decides response framing from the status, the request method and the fields', () => {
    assert.deepEqual(responseFraming(['Content-Length', '9'], 200, 'HEAD'), { kind: 'none' });
    assert.deepEqual(responseFraming(['Content-Length', '9'], 204, 'GET'), { kind: 'none' });
    assert.deepEqual(responseFraming(['Content-Length', '9'], 304, 'GET'), { kind: 'none' });
    assert.deepEqual(responseFraming(['Content-Length', '9'], 200, 'GET'), { kind: 'length', length: 9 });
    assert.deepEqual(responseFraming(['Transfer-Encoding', 'chunked'], 200, 'POST'), { kind: 'chunked' });
    assert.deepEqual(responseFraming(['Transfer-Encoding', 'gzip'], 200, 'POST'), { kind: 'close' });
    assert.deepEqual(responseFraming([], 200, 'GET'), { kind: 'close' });
    const r = parseResponseHead(head('HTTP/1.1 529 Overloaded\nrequest-id: req_1\n'));
    assert.equal(r.status, 529);
    assert.equal(r.reason, 'Overloaded');
    assert.equal(parseResponseHead(head('HTTP/1.1 200\n')).reason, '');
    assert.throws(() => parseResponseHead(head('HTTP/1.1 20 OK\n')), HttpParseError);
  });

  it('reads keep-alive intent like node does', () => {
    assert.equal(wantsClose([], 1), false);
    assert.equal(wantsClose(['Connection', 'close'], 1), true);
    assert.equal(wantsClose(['Connection', 'Keep-Alive, Upgrade'], 1), false);
    assert.equal(wantsClose([], 0), true);
    assert.equal(wantsClose(['connection', 'keep-alive'], 0), false);
  });

  it('reads a chunked body (extensions, trailers) split at every byte boundary, stopping exactly at its end', () => {
    const wire = Buffer.from('5;name=value\r\nhello\r\n1A\r\n' + 'x'.repeat(26) + '\r\n0\r\nX-Trailer: t\r\n\r\n', 'latin1');
    const next = Buffer.from('GET / HTTP/1.1\r\n\r\n');
    const all = Buffer.concat([wire, next]);
    for (let split = 1; split <= all.length; split++) {
      const out: Buffer[] = [];
      const r = new BodyReader({ kind: 'chunked' }, (b, s, e) => out.push(Buffer.from(b.subarray(s, e))));
      let consumed = 0;
      for (let i = 0; i < all.length && !r.done; i += split) consumed += r.push(all.subarray(i, Math.min(all.length, i + split)));
      assert.equal(r.done, true, `split ${split}`);
      assert.equal(Buffer.concat(out).toString(), 'hello' + 'x'.repeat(26), `split ${split}`);
      assert.ok(consumed >= wire.length, `split ${split}`);
    }
    // Whole buffer at once: consumes exactly the body, leaves the next request.
    const r = new BodyReader({ kind: 'chunked' }, null);
    assert.equal(r.push(all), wire.length);
    assert.equal(r.payloadBytes, 31);
  });

  it('refuses malformed chunk framing', () => {
    for (const bad of ['zz\r\n', '5\r\nhelloX\r\n', '5\nhello\r\n', '1234567890123\r\n']) {
      const r = new BodyReader({ kind: 'chunked' }, null);
      assert.throws(() => r.push(Buffer.from(bad, 'latin1')), HttpParseError, JSON.stringify(bad));
    }
  });

  it('reads length-framed bodies exactly and close-delimited ones until the end of the stream', () => {
    const r = new BodyReader({ kind: 'length', length: 4 }, null);
    assert.equal(r.push(Buffer.from('ab')), 2);
    assert.equal(r.push(Buffer.from('cdEXTRA')), 2);
    assert.equal(r.done, true);
    const c = new BodyReader({ kind: 'close' }, null);
    assert.equal(c.push(Buffer.from('anything')), 8);
    assert.equal(c.done, false);
    c.endOfStream();
    assert.equal(c.done, true);
  });
});

/** Write raw bytes to the proxy; collect everything until the connection closes or `until` matches. */
function rawExchange(port: number, send: Array<Buffer | string>, opts: { until?: (got: string) => boolean; gapMs?: number; timeoutMs?: number } = {}): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    let closed = false;
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text: got, closed });
    }, opts.timeoutMs ?? 3000);
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (opts.until?.(got)) {
        clearTimeout(timer);
        s.destroy();
        resolve({ text: got, closed });
      }
    });
    s.on('close', () => {
      closed = true;
      clearTimeout(timer);
      resolve({ text: got, closed });
    });
    s.on('error', reject);
    void (async () => {
      for (const part of send) {
        s.write(part);
        if (opts.gapMs) await sleep(opts.gapMs);
      }
    })();
  });
}

/** A node:http upstream that answers every request with what it received (method, url, headers, body hash). */
async function echoUpstream() {
  const connections = new Set<net.Socket>();
  let connectionCount = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const answer = JSON.stringify({
        method: req.method, url: req.url, headers: req.headers, bytes: body.length,
        sha: createHash('sha256').update(body).digest('hex'),
      });
      if (req.url?.includes('chunked')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(answer.slice(0, 10));
        res.end(answer.slice(10));
      } else {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
        res.end(req.method === 'HEAD' ? undefined : answer);
      }
    });
  });
  server.on('connection', (s) => {
    connectionCount++;
    connections.add(s);
    s.on('close', () => connections.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => connectionCount,
    close: () => new Promise<void>((r) => {
      for (const s of connections) s.destroy();
      server.close(() => r());
    }),
  };
}

/** A raw upstream: `answer(socket, requestText)` writes whatever bytes the test wants. */
async function rawUpstream(answer: (s: net.Socket, request: string) => void | Promise<void>) {
  const server = net.createServer((s) => {
    let got = '';
    let answered = false;
    s.on('data', (d) => {
      got += d.toString('latin1');
      const end = got.indexOf('\r\n\r\n');
      if (end === -1 || answered) return;
      const len = /content-length: (\d+)/i.exec(got.slice(0, end));
      if (len && got.length < end + 4 + Number(len[1])) return;
      answered = true;
      void answer(s, got);
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const portOf = (url: string) => Number(new URL(url).port);
/** The bodies of a run of responses (Content-Length framed, or the rest of the text for the last). */
function bodies(text: string): string[] {
  const out: string[] = [];
  let rest = text;
  while (rest.length) {
    const end = rest.indexOf('\r\n\r\n');
    if (end === -1) break;
    const len = /content-length: (\d+)/i.exec(rest.slice(0, end));
    const n = len ? Number(len[1]) : rest.length - end - 4;
    out.push(rest.slice(end + 4, end + 4 + n));
    rest = rest.slice(end + 4 + n);
  }
  return out;
}

describe('the proxy speaks HTTP/1.1 itself', () => {
  it('keeps client and upstream connections alive and answers pipelined requests in order', async () => {
    const up = await echoUpstream();
    const stack = await startStack({ upstream: up.url });
    try {
      const port = portOf(stack.url);
      const a = 'GET /v1/models?n=1 HTTP/1.1\r\nHost: localhost\r\n\r\n';
      const b = 'POST /v1/messages/count_tokens HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello';
      const c = 'GET /v1/models?n=3 HTTP/1.1\r\nHost: localhost\r\n\r\n';
      const { text } = await rawExchange(port, [a + b + c], { until: (t) => (t.match(/"method"/g) ?? []).length === 3 });
      const answers = bodies(text).map((x) => JSON.parse(x));
      assert.deepEqual(answers.map((x) => x.url), ['/v1/models?n=1', '/v1/messages/count_tokens', '/v1/models?n=3']);
      assert.equal(answers[1].sha, createHash('sha256').update('hello').digest('hex'));
      assert.equal(answers[0].headers.host, new URL(up.url).host, 'Host names the upstream');
      assert.equal(up.connections(), 1, 'one upstream connection, reused');
    } finally {
      await stack.close();
      await up.close();
    }
  });

  it('forwards a chunked request body arriving one byte at a time, framing and all', async () => {
    const up = await echoUpstream();
    const stack = await startStack({ upstream: up.url });
    try {
      const payload = Buffer.from(JSON.stringify({ model: 'claude-opus-4-8', messages: [] }));
      const wire = `POST /v1/messages/count_tokens HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n`
        + `${(10).toString(16)}\r\n${payload.subarray(0, 10)}\r\n${(payload.length - 10).toString(16)};ext=1\r\n${payload.subarray(10)}\r\n0\r\n\r\n`;
      const bytes = [...Buffer.from(wire, 'latin1')].map((b) => Buffer.from([b]));
      const { text } = await rawExchange(portOf(stack.url), bytes, { until: (t) => t.includes('"sha"') && t.trimEnd().endsWith('}') });
      const echo = JSON.parse(bodies(text)[0]);
      assert.equal(echo.sha, createHash('sha256').update(payload).digest('hex'));
      assert.equal(echo.headers['transfer-encoding'], 'chunked');
      await stack.settle(1);
      const [row] = await stack.rows();
      assert.equal(row.proxy!.requestBytes, payload.length, 'payload bytes, not wire bytes');
      assert.equal(row.proxy!.modelRequested, 'claude-opus-4-8', 'the de-chunked body was inspected');
    } finally {
      await stack.close();
      await up.close();
    }
  });

  it('sends an HTTP/1.0 client a chunked answer de-chunked, then closes', async () => {
    const up = await echoUpstream();
    const stack = await startStack({ upstream: up.url });
    try {
      const { text, closed } = await rawExchange(portOf(stack.url), ['GET /v1/models/chunked HTTP/1.0\r\n\r\n']);
      assert.ok(closed);
      const [h, body] = text.split('\r\n\r\n');
      assert.doesNotMatch(h, /transfer-encoding/i);
      assert.match(h, /connection: close/i);
      assert.equal(JSON.parse(body).url, '/v1/models/chunked');
    } finally {
      await stack.close();
      await up.close();
    }
  });

  it('passes a close-delimited answer through and closes the client connection after it', async () => {
    const up = await rawUpstream((s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ');
      setTimeout(() => s.end('part two'), 20);
    });
    const stack = await startStack({ upstream: up.url });
    try {
      const { text, closed } = await rawExchange(portOf(stack.url), ['GET /v1/models HTTP/1.1\r\nHost: h\r\n\r\n']);
      assert.ok(closed, 'the client learns the end from the close');
      assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(text, /\r\nconnection: close\r\n/i);
      assert.ok(text.endsWith('\r\n\r\npart one, part two'));
    } finally {
      await stack.close();
      await up.close();
    }
  });

  it('streams SSE that the upstream writes one byte at a time, unchanged, and records its usage', async () => {
    const sse = recordedSse();
    let chunked = '';
    for (const piece of sse.match(/[\s\S]{1,40}/g)!) chunked += `${Buffer.byteLength(piece).toString(16)}\r\n${piece}\r\n`;
    chunked += '0\r\n\r\n';
    const up = await rawUpstream(async (s) => {
      const all = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nrequest-id: ${RECORDED.requestId}\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`);
      for (let i = 0; i < all.length; i++) {
        s.write(all.subarray(i, i + 1));
        if (i % 64 === 0) await new Promise((r) => setImmediate(r));
      }
    });
    const stack = await startStack({ upstream: up.url });
    try {
      const body = JSON.stringify({ model: 'claude-opus-4-8', stream: true, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
      const { text } = await rawExchange(portOf(stack.url), [`POST /v1/messages HTTP/1.1\r\nHost: h\r\nContent-Length: ${body.length}\r\n\r\n${body}`],
        { until: (t) => t.endsWith('0\r\n\r\n') });
      const [, rawBody] = text.split(/\r\n\r\n([\s\S]*)/);
      assert.equal(rawBody, chunked, 'chunk framing forwarded as received');
      await stack.settle(1);
      const [row] = await stack.rows();
      assert.equal(row.requestId, RECORDED.requestId);
      assert.equal(row.usage.output, 23);
      assert.equal(row.proxy!.status, '200');
    } finally {
      await stack.close();
      await up.close();
    }
  });

  it('answers 100 Continue to a client that waits for it', async () => {
    const up = await echoUpstream();
    const stack = await startStack({ upstream: up.url });
    try {
      const port = portOf(stack.url);
      const s = net.connect(port, '127.0.0.1');
      let got = '';
      const done = new Promise<void>((resolve) => s.on('data', (d) => {
        got += d;
        if (got.includes('100 Continue') && !got.includes('"sha"')) s.write('hello');
        if (got.includes('"sha"') && got.trimEnd().endsWith('}')) resolve();
      }));
      s.write('POST /v1/messages/count_tokens HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n');
      await done;
      s.destroy();
      assert.match(got, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
      const echo = JSON.parse(got.split('\r\n\r\n')[2]);
      assert.equal(echo.bytes, 5);
      assert.equal(echo.headers.expect, undefined, 'Expect is answered here, not forwarded');
    } finally {
      await stack.close();
      await up.close();
    }
  });

  it('refuses smuggling-shaped and oversized requests without forwarding anything', async () => {
    const up = await echoUpstream();
    const stack = await startStack({ upstream: up.url });
    try {
      const port = portOf(stack.url);
      const cases: Array<[string, RegExp]> = [
        ['POST /v1/messages HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', /^HTTP\/1\.1 400 /],
        ['POST /v1/messages HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde', /^HTTP\/1\.1 400 /],
        ['GET /v1/models HTTP/1.1\r\nHost: h\r\nX: a\nY: b\r\n\r\n', /^HTTP\/1\.1 400 /],
        ['GET /v1/models HTTP/1.1\r\nX-Big: ' + 'a'.repeat(70_000) + '\r\n\r\n', /^HTTP\/1\.1 431 /],
        ['POST /v1/messages HTTP/1.1\r\nTransfer-Encoding: gzip, chunked, identity\r\n\r\n', /^HTTP\/1\.1 501 /],
        ['CONNECT api.anthropic.com:443 HTTP/1.1\r\n\r\n', /^HTTP\/1\.1 400 /],
      ];
      for (const [req, expected] of cases) {
        const { text, closed } = await rawExchange(port, [req]);
        assert.match(text, expected, JSON.stringify(req.slice(0, 80)));
        assert.ok(closed, 'the connection is closed after a refusal');
      }
      assert.equal(up.connections(), 0, 'nothing reached the upstream');
      assert.equal(stack.proxy.stats().requests, 0);
    } finally {
      await stack.close();
      await up.close();
    }
  });

  it('knows a HEAD answer and a 204 have no body, and keeps going on the same connection', async () => {
    const up = await rawUpstream((s, req) => {
      const answers = req.startsWith('HEAD')
        ? 'HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n'
        : 'HTTP/1.1 204 No Content\r\n\r\n';
      s.write(answers);
    });
    const stack = await startStack({ upstream: up.url });
    try {
      const { text } = await rawExchange(portOf(stack.url), ['HEAD / HTTP/1.1\r\nHost: h\r\n\r\n'], { until: (t) => t.includes('1234\r\n\r\n') });
      assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(text, /Content-Length: 1234/);
    } finally {
      await stack.close();
      await up.close();
    }
  });

  it('carries 24 MB each way between slow readers intact (backpressure both ways, nothing lost or reordered)', async () => {
    const big = Buffer.alloc(24 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    // Upstream: reads the upload slowly, then answers with the same bytes, chunked.
    const server = http.createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => {
        parts.push(c);
        req.pause();
        setTimeout(() => req.resume(), 1);
      });
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const body = Buffer.concat(parts);
        let off = 0;
        const pump = () => {
          while (off < body.length) {
            const ok = res.write(body.subarray(off, off + 256 * 1024));
            off += 256 * 1024;
            if (!ok) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const stack = await startStack({ upstream: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, proxy: { maxInspectBytes: 1024 * 1024 } });
    try {
      const got = await new Promise<Buffer>((resolve, reject) => {
        const req = http.request(`${stack.url}/v1/files`, { method: 'POST', headers: { 'content-length': String(big.length) } }, (res) => {
          const parts: Buffer[] = [];
          res.on('data', (c: Buffer) => {
            parts.push(c);
            res.pause();
            setTimeout(() => res.resume(), 1);
          });
          res.on('end', () => resolve(Buffer.concat(parts)));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(big);
      });
      assert.equal(got.length, big.length);
      assert.equal(sha(got), sha(big));
    } finally {
      await stack.close();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('a client that leaves in the middle of a head costs nothing, and the proxy keeps serving', async () => {
    const up = await echoUpstream();
    const stack = await startStack({ upstream: up.url });
    try {
      const s = net.connect(portOf(stack.url), '127.0.0.1');
      await new Promise((r) => s.once('connect', r));
      s.write('GET /v1/mod');
      await sleep(50);
      s.destroy();
      await sleep(50);
      assert.equal(stack.proxy.stats().requests, 0);
      assert.equal(stack.proxy.stats().inFlight, 0);
      // Still serving.
      const { text } = await rawExchange(portOf(stack.url), ['GET /v1/models HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n']);
      assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(text, /connection: close/i);
    } finally {
      await stack.close();
      await up.close();
    }
  });
});

/**
 * An https upstream (what api.anthropic.com is): the proxy's own TLS client verifies the certificate for the
 * upstream's name (SNI), speaks HTTP/1.1 over it (ALPN), keeps the connection for the next request and resumes
 * the TLS session on a new one. The upstream is a local https server with a certificate made by openssl for
 * `localhost`, trusted through the proxy's `upstreamCa` option; the client is the official SDK.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import Anthropic from '@anthropic-ai/sdk';
import { RECORDED, recordedSse } from '../helpers/mock-anthropic.js';
import { startStack } from './harness.js';

function selfSigned(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tt-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], { stdio: 'ignore' });
  return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
}

describe('https upstream', () => {
  const pem = selfSigned();
  let server: https.Server;
  let url = '';
  const handshakes: Array<{ servername: string | false; alpn: string | false | null; resumed: boolean }> = [];
  let requests = 0;

  before(async () => {
    server = https.createServer({ key: pem.key, cert: pem.cert, ALPNProtocols: ['http/1.1'] }, (req, res) => {
      requests++;
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'request-id': `${RECORDED.requestId}${requests}` });
        res.end(recordedSse());
      });
    });
    server.on('secureConnection', (s: TLSSocket) => {
      handshakes.push({ servername: (s as TLSSocket & { servername: string | false }).servername, alpn: s.alpnProtocol, resumed: s.isSessionReused() });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://localhost:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('verifies the certificate, sends SNI and ALPN http/1.1, reuses the connection, and records the stream', async () => {
    const stack = await startStack({ upstream: url, proxy: { upstreamCa: pem.cert } });
    try {
      const client = new Anthropic({ apiKey: 'sk-ant-tls', baseURL: stack.url, maxRetries: 0 });
      for (let i = 0; i < 2; i++) {
        const final = await client.messages.stream({ model: 'claude-opus-4-8', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }).finalMessage();
        assert.equal(final.usage.output_tokens, 23);
      }
      assert.equal(handshakes.length, 1, 'one TLS connection for both requests');
      assert.deepEqual(handshakes[0], { servername: 'localhost', alpn: 'http/1.1', resumed: false });
      await stack.settle(2);
      assert.equal(stack.proxy.stats().recorded, 2);
      // Both answers carry the recorded message id: one response as far as billing goes, stored once.
      const rows = await stack.rows();
      assert.equal(rows.length, 1);
      assert.equal(rows[0].usage.output, 23);
      assert.equal(rows[0].proxy!.status, '200');
    } finally {
      await stack.close();
    }
  });

  it('refuses an upstream whose certificate it cannot verify: the client gets a broken connection, the record says why', async () => {
    const stack = await startStack({ upstream: url });
    try {
      const client = new Anthropic({ apiKey: 'sk-ant-tls', baseURL: stack.url, maxRetries: 0 });
      await assert.rejects(client.messages.create({ model: 'claude-opus-4-8', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
        (e: Error) => e.constructor.name === 'APIConnectionError');
      await stack.settle(1);
      const [row] = await stack.rows();
      assert.equal(row.proxy!.status, 'upstream_error');
      assert.equal(row.proxy!.errorType, 'DEPTH_ZERO_SELF_SIGNED_CERT');
    } finally {
      await stack.close();
    }
  });
});

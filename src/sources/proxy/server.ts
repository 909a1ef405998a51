import http from 'node:http';
import https from 'node:https';
import { isIP, type AddressInfo, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import zlib from 'node:zlib';
import type { RequestRecord } from '../../core/types.js';
import { isBillable, type GateResult, type GateTicket } from '../../policy/gate.js';
import type { PolicyResponse } from '../../policy/responses.js';
import type { ProxyPolicy } from './policy.js';
import { buildRecord, inspectRequestBody, inspectRequestDoc, keyHash, type Outcome, type RequestInfo } from './record.js';
import type { RecordSink } from './recorder.js';
import { factsFromJson, ResponseFacts, SseUsageScanner } from './sse-usage.js';

export interface ProxyOptions {
  /** Base URL requests are forwarded to, e.g. `https://api.anthropic.com` (a path prefix is kept). */
  upstream: string;
  sink: RecordSink;
  /** Request bodies up to this size are kept in memory to read model/metadata (and to retry on a stale socket). */
  maxInspectBytes?: number;
  /** JSON response bodies up to this size are parsed for usage. */
  maxResponseInspectBytes?: number;
  /** Called with each record after it is handed to the sink (verbose logging; never holds keys or prompts). */
  onRecord?: (record: RequestRecord) => void;
  onProblem?: (message: string) => void;
  /** Reported by `GET /__tokentally/health`. */
  version?: string;
  /** Extra fields for the health answer (e.g. the database path). */
  health?: () => Record<string, unknown>;
  /**
   * Budgets and routing (src/sources/proxy/policy.ts). Billable requests (POST /v1/messages) are then read
   * whole, checked, and maybe answered with a 429 or rewritten before they are forwarded; while the policy is
   * idle (no budgets, no rules) nothing changes: bodies stream through as without it.
   */
  policy?: ProxyPolicy;
}

export interface ProxyStats {
  requests: number;
  inFlight: number;
  recorded: number;
  clientAborts: number;
  upstreamErrors: number;
  staleSocketRetries: number;
  /** Requests answered by the proxy itself with a budget's 429 (never forwarded). */
  blocked: number;
  /** Requests whose model a budget (downgrade) or a routing rule rewrote. */
  rewritten: number;
}

export interface ProxyHandle {
  readonly server: http.Server;
  readonly upstream: string;
  listen(port: number, host: string): Promise<{ host: string; port: number; url: string }>;
  /** Stop accepting, let in-flight exchanges finish for `graceMs`, then cut them (recorded as `proxy_shutdown`). */
  close(graceMs?: number): Promise<void>;
  stats(): ProxyStats;
}

/** Reserved local path: answered by the proxy itself, never forwarded. */
export const HEALTH_PATH = '/__tokentally/health';
export const PROXY_SERVICE_NAME = 'tokentally-proxy';

const DEFAULT_INSPECT = 32 * 1024 * 1024;
/** Hop-by-hop headers (RFC 9110 §7.6.1) plus the ones node sets itself; every other header passes unchanged. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);
const STALE_SOCKET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);
/** Encodings whose bytes we can decode (a copy) to read usage; others are removed from `accept-encoding`. */
const DECODERS: Record<string, (() => zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress) | undefined> = {
  gzip: () => zlib.createGunzip(),
  'x-gzip': () => zlib.createGunzip(),
  deflate: () => zlib.createInflate(),
  br: () => zlib.createBrotliDecompress(),
};
const zstdDecoder = (zlib as unknown as { createZstdDecompress?: () => zlib.Gunzip }).createZstdDecompress;
if (zstdDecoder) DECODERS.zstd = () => zstdDecoder();

export function createProxy(options: ProxyOptions): ProxyHandle {
  const up = new URL(options.upstream);
  if (up.protocol !== 'http:' && up.protocol !== 'https:') throw new Error(`upstream must be an http(s) URL, got ${options.upstream}`);
  const isHttps = up.protocol === 'https:';
  const transport = isHttps ? https : http;
  const agent = new transport.Agent({ keepAlive: true, keepAliveMsecs: 15_000, maxFreeSockets: 256, scheduling: 'lifo' });
  const upstreamHost = up.hostname.replace(/^\[|\]$/g, '');
  const upstreamPort = up.port ? Number(up.port) : isHttps ? 443 : 80;
  const hostHeader = up.host;
  const basePath = up.pathname.replace(/\/+$/, '');
  const maxInspect = options.maxInspectBytes ?? DEFAULT_INSPECT;
  const maxResponseInspect = options.maxResponseInspectBytes ?? DEFAULT_INSPECT;
  const started = Date.now();
  const stats: ProxyStats = { requests: 0, inFlight: 0, recorded: 0, clientAborts: 0, upstreamErrors: 0, staleSocketRetries: 0, blocked: 0, rewritten: 0 };
  const live = new Set<Exchange>();
  let shuttingDown = false;

  const problem = (m: string) => {
    try {
      options.onProblem?.(m);
    } catch { /* diagnostics never break traffic */ }
  };

  /** One request/response pair going through the proxy. */
  class Exchange {
    readonly startedAt = Date.now();
    readonly t0 = performance.now();
    readonly endpoint: string;
    readonly recordable: boolean;
    readonly usageEndpoint: boolean;
    upReq: http.ClientRequest | null = null;
    ures: http.IncomingMessage | null = null;
    done = false;
    reqEnded = false;
    requestBytes = 0;
    body: Buffer[] | null = [];
    bodyKept = 0;
    retries = 0;
    httpStatus: number | null = null;
    responseRequestId: string | null = null;
    streamed = false;
    scanner: SseUsageScanner | null = null;
    jsonChunks: Buffer[] | null = null;
    jsonBytes = 0;
    decoder: zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress | null = null;
    decoderDone: Promise<void> | null = null;
    ttftMs: number | null = null;
    info: RequestInfo | null = null;
    /** `info` was read before forwarding (policy path): the body is only dropped, not inspected again. */
    infoPreset = false;
    /** Budget reservation and routing decisions to settle once the record is built. */
    ticket: GateTicket | null = null;
    /** Headers the policy adds to the response (warning, model rewrite). */
    addHeaders: Record<string, string> | null = null;
    /** Length of a rewritten body (its content-length replaces the client's). */
    sendLength: number | null = null;
    modelSent: string | null = null;
    corked = false;
    readonly uncork = () => {
      this.corked = false;
      if (!this.res.writableEnded) this.res.uncork();
    };

    constructor(readonly req: http.IncomingMessage, readonly res: http.ServerResponse) {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      this.endpoint = q === -1 ? url : url.slice(0, q);
      this.recordable = this.endpoint.includes('/v1/messages');
      this.usageEndpoint = req.method === 'POST' && this.endpoint.endsWith('/v1/messages');
    }

    /**
     * Once the body is complete and the upstream has answered (no retry can need it any more), read
     * model/messages/metadata from it and let it go, so long streams do not keep prompts in memory.
     */
    maybeInspect(): void {
      if (this.infoPreset) {
        if (this.reqEnded && (this.ures || this.done)) this.body = null;
        return;
      }
      if (this.info !== null || !this.reqEnded || (!this.ures && !this.done)) return;
      const body = this.body;
      this.body = null;
      if (!this.recordable) {
        this.info = inspectRequestBody(null);
        return;
      }
      this.info = inspectRequestBody(null);
      if (body === null) return;
      setImmediate(() => {
        this.info = inspectRequestBody(body.length === 1 ? body[0] : Buffer.concat(body));
      });
    }

    start(): void {
      const { req, res } = this;
      this.sendUpstream();
      req.on('data', (chunk: Buffer) => {
        this.requestBytes += chunk.length;
        if (this.body) {
          if (this.bodyKept + chunk.length <= maxInspect) {
            this.body.push(chunk);
            this.bodyKept += chunk.length;
          } else {
            this.body = null; // too large to inspect: forwarded untouched, recorded without model/messages
          }
        }
        this.forwardChunk(chunk);
      });
      req.on('end', () => {
        this.reqEnded = true;
        const upReq = this.upReq;
        if (upReq && !upReq.destroyed) upReq.end();
        this.maybeInspect();
      });
      res.on('close', () => {
        if (!this.done) this.clientGone();
      });
    }

    /** Write a request chunk upstream, pausing the client while the upstream socket is full (backpressure). */
    private forwardChunk(chunk: Buffer): void {
      const upReq = this.upReq;
      if (upReq && !upReq.destroyed && !upReq.writableEnded && !upReq.write(chunk)) {
        this.req.pause();
        upReq.once('drain', () => this.req.resume());
      }
    }

    /**
     * A billable request while budgets or rules are active: read the whole body, let the policy decide, then
     * answer the 429 here or forward the (maybe rewritten) body. A body too large to hold is forwarded as it
     * streams, unchecked (the API refuses such bodies anyway).
     */
    startGated(policy: ProxyPolicy): void {
      const { req, res } = this;
      const chunks: Buffer[] = [];
      let kept = 0;
      let streaming = false;
      req.on('data', (chunk: Buffer) => {
        this.requestBytes += chunk.length;
        if (!streaming && kept + chunk.length <= maxInspect) {
          chunks.push(chunk);
          kept += chunk.length;
          return;
        }
        if (!streaming) {
          streaming = true;
          this.body = null;
          problem(`request body over ${maxInspect} bytes: forwarded without a budget check`);
          this.sendUpstream();
          for (const c of chunks) this.upReq!.write(c);
          chunks.length = 0;
        }
        this.forwardChunk(chunk);
      });
      req.on('end', () => {
        this.reqEnded = true;
        if (streaming) {
          const upReq = this.upReq;
          if (upReq && !upReq.destroyed) upReq.end();
          this.maybeInspect();
          return;
        }
        this.body = chunks;
        void this.applyPolicy(policy, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
      });
      res.on('close', () => {
        if (!this.done) this.clientGone();
      });
    }

    async applyPolicy(policy: ProxyPolicy, body: Buffer): Promise<void> {
      let doc: unknown = null;
      if (body.length > 0) {
        try {
          doc = JSON.parse(body.toString('utf8'));
        } catch { /* not JSON: forwarded as is, the API answers the error */ }
      }
      this.info = inspectRequestDoc(doc);
      this.infoPreset = true;
      this.body = [body];
      let result: GateResult | null = null;
      try {
        const h = this.req.headers;
        const sid = h['x-claude-code-session-id'];
        const sessionId = (typeof sid === 'string' && sid.trim() ? sid.trim().slice(0, 200) : null) ?? this.info.metadataSession;
        const project = policy.needsProject && sessionId ? await policy.projectOf(sessionId) : null;
        result = await policy.before({
          method: this.req.method ?? 'POST', path: this.endpoint, headers: h, body, doc, keyHash: keyHash(h), sessionId, project,
        });
      } catch (err) {
        // Fail open: a policy that cannot be evaluated (store unavailable) never breaks traffic.
        problem(`budget/routing check failed, request forwarded unchanged: ${(err as Error).message}`);
      }
      if (this.done) {
        // The client left while the policy decided.
        if (result?.kind === 'forward') policy.after(result.ticket, null);
        return;
      }
      if (result?.kind === 'respond') {
        this.answerLocally(result.response);
        return;
      }
      if (result?.kind === 'forward') {
        this.ticket = result.ticket;
        if (Object.keys(result.addHeaders).length) this.addHeaders = result.addHeaders;
        if (result.body !== body) {
          this.body = [result.body];
          this.sendLength = result.body.length;
          stats.rewritten++;
        }
        if (result.ticket.modelSent && result.ticket.modelSent !== result.ticket.modelRequested) this.modelSent = result.ticket.modelSent;
      }
      try {
        this.sendUpstream();
        this.upReq!.end(this.body![0]);
      } catch (err) {
        problem(`forwarding: ${(err as Error).message}`);
        this.upstreamFailed(Object.assign(err as Error, { code: (err as NodeJS.ErrnoException).code ?? 'EPROXY' }));
      }
    }

    /** The policy's own answer (a budget's 429 billing_error): recorded like an upstream error, never forwarded. */
    answerLocally(r: PolicyResponse): void {
      const { res } = this;
      this.done = true;
      this.httpStatus = r.status;
      this.jsonChunks = [Buffer.from(r.body)];
      stats.blocked++;
      res.writeHead(r.status, r.headers);
      res.end(r.body);
      this.finish('complete', null);
    }

    sendUpstream(): void {
      const { req } = this;
      let headers = upstreamHeaders(req.rawHeaders, hostHeader);
      if (this.sendLength !== null) headers = withContentLength(headers, this.sendLength);
      const upReq = transport.request({
        agent, host: upstreamHost, port: upstreamPort, method: req.method, path: basePath + (req.url ?? '/'),
        headers, setHost: false,
        servername: isHttps && !isIP(upstreamHost) ? upstreamHost : undefined,
      } as http.RequestOptions);
      this.upReq = upReq;
      upReq.setNoDelay(true);
      upReq.on('response', (ures) => {
        if (this.upReq === upReq) this.onResponse(ures);
        else ures.resume();
      });
      upReq.on('error', (err: NodeJS.ErrnoException) => {
        if (this.upReq === upReq) this.upstreamFailed(err);
      });
    }

    onResponse(ures: http.IncomingMessage): void {
      if (this.done) {
        ures.destroy();
        return;
      }
      const { res } = this;
      this.ures = ures;
      const status = ures.statusCode ?? 502;
      this.httpStatus = status;
      const rid = ures.headers['request-id'];
      this.responseRequestId = typeof rid === 'string' && rid ? rid.slice(0, 200) : null;
      const type = String(ures.headers['content-type'] ?? '');
      this.streamed = type.startsWith('text/event-stream');
      if (this.recordable) this.prepareScan(ures, type);
      this.maybeInspect();

      const headers = responseHeaders(ures.rawHeaders);
      if (this.addHeaders) for (const k of Object.keys(this.addHeaders)) headers.push(k, this.addHeaders[k]);
      try {
        res.writeHead(status, ures.statusMessage, headers as unknown as http.OutgoingHttpHeaders);
      } catch (err) {
        // A header node refuses to send: the client gets a reset, as from a broken upstream.
        problem(`response headers rejected: ${(err as Error).message}`);
        this.upstreamFailed(Object.assign(new Error('bad upstream headers'), { code: 'EBADHEADER' }));
        return;
      }
      // Headers go out now if no body follows at once (an event stream that starts later).
      setImmediate(() => {
        if (!res.headersSent && !res.destroyed) res.flushHeaders();
      });
      ures.on('data', (chunk: Buffer) => {
        // Chunks read in the same poll phase go out in one write (they arrived together anyway); the
        // write happens right after this phase, never later: no buffering across time.
        if (!this.corked) {
          this.corked = true;
          res.cork();
          setImmediate(this.uncork);
        }
        if (!res.write(chunk)) {
          ures.pause();
          res.once('drain', () => ures.resume());
        }
        this.inspect(chunk);
      });
      ures.on('end', () => {
        if (this.done) return;
        this.done = true;
        res.end();
        this.finish('complete', null);
      });
      ures.on('error', (err: NodeJS.ErrnoException) => this.upstreamFailed(err));
      ures.on('aborted', () => this.upstreamFailed(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })));
    }

    prepareScan(ures: http.IncomingMessage, type: string): void {
      const enc = String(ures.headers['content-encoding'] ?? '').trim().toLowerCase();
      const sse = this.streamed && this.usageEndpoint;
      const json = type.includes('json') && (this.usageEndpoint || (ures.statusCode ?? 0) >= 400);
      if (!sse && !json) return;
      if (sse) {
        this.scanner = new SseUsageScanner(() => {
          this.ttftMs = performance.now() - this.t0;
        });
      } else {
        this.jsonChunks = [];
      }
      if (enc && enc !== 'identity') {
        const make = DECODERS[enc];
        if (!make) {
          this.scanner = null;
          this.jsonChunks = null;
          return;
        }
        const decoder = make();
        this.decoder = decoder;
        this.decoderDone = new Promise<void>((resolve) => {
          decoder.on('data', (d: Buffer) => this.consume(d));
          decoder.on('end', resolve);
          decoder.on('error', () => {
            this.scanner = null;
            this.jsonChunks = null;
            resolve();
          });
          decoder.on('close', resolve);
        });
      }
    }

    /** A copy of response bytes that were already forwarded. */
    inspect(chunk: Buffer): void {
      if (this.decoder) this.decoder.write(chunk);
      else if (this.scanner || this.jsonChunks) this.consume(chunk);
    }

    consume(data: Buffer): void {
      try {
        if (this.scanner) this.scanner.push(data);
        else if (this.jsonChunks) {
          this.jsonBytes += data.length;
          if (this.jsonBytes > maxResponseInspect) this.jsonChunks = null;
          else this.jsonChunks.push(data);
        }
      } catch (err) {
        problem(`reading the response: ${(err as Error).message}`);
        this.scanner = null;
        this.jsonChunks = null;
      }
    }

    upstreamFailed(err: NodeJS.ErrnoException): void {
      if (this.done) return;
      const upReq = this.upReq;
      // A pooled keep-alive socket the upstream closed while idle: retry once on a new one, as a direct
      // client would have opened a fresh connection. Only before any response, with the whole body at hand.
      if (!this.ures && upReq?.reusedSocket && this.retries === 0 && STALE_SOCKET_CODES.has(err.code ?? '')
        && this.body !== null && !shuttingDown) {
        this.retries++;
        stats.staleSocketRetries++;
        this.sendUpstream();
        for (const chunk of this.body) this.upReq!.write(chunk);
        if (this.reqEnded) this.upReq!.end();
        // The upload may have been paused for the dead socket's 'drain', which never comes.
        else if (this.req.isPaused()) this.req.resume();
        return;
      }
      this.done = true;
      stats.upstreamErrors++;
      upReq?.destroy();
      this.ures?.destroy();
      // The client gets what it would have got directly: a broken connection, not a made-up response.
      resetSocket(this.res.socket);
      this.res.destroy();
      this.finish('upstream_error', err.code ?? 'upstream_error');
    }

    clientGone(): void {
      if (this.done) return;
      this.done = true;
      stats.clientAborts++;
      // Abort the upstream request too: it stops generating (and billing) and its socket is not reused.
      this.upReq?.destroy();
      this.ures?.destroy();
      this.finish('client_aborted', shuttingDown ? 'proxy_shutdown' : null);
    }

    finish(outcome: Outcome, errorCode: string | null): void {
      live.delete(this);
      stats.inFlight--;
      const latencyMs = performance.now() - this.t0;
      if (!this.recordable) {
        this.release();
        return;
      }
      if (this.decoder) {
        this.decoder.end();
        void this.decoderDone!.then(() => this.record(outcome, errorCode, latencyMs));
      } else {
        // Parsing the request body and building the record happen after the response is out.
        setImmediate(() => this.record(outcome, errorCode, latencyMs));
      }
    }

    record(outcome: Outcome, errorCode: string | null, latencyMs: number): void {
      try {
        let facts: ResponseFacts | null = null;
        if (this.scanner) {
          this.scanner.end();
          facts = this.scanner.facts;
        } else if (this.jsonChunks && outcome === 'complete') {
          facts = factsFromJson(Buffer.concat(this.jsonChunks));
        }
        if (this.info === null) {
          // The exchange ended before the upstream answered: inspect what arrived if it is complete.
          const body = this.body && this.reqEnded ? Buffer.concat(this.body) : null;
          this.info = inspectRequestBody(body);
        }
        const record = buildRecord({
          startedAt: this.startedAt, method: this.req.method ?? 'GET', endpoint: this.endpoint, headers: this.req.headers,
          requestBytes: this.requestBytes, info: this.info,
          httpStatus: this.httpStatus, outcome, errorCode, responseRequestId: this.responseRequestId,
          streamed: this.streamed, facts: this.usageEndpoint ? facts : facts && onlyError(facts), latencyMs,
          ttftMs: this.streamed ? this.ttftMs : null, modelSent: this.modelSent,
        });
        this.release();
        options.sink.add(record);
        stats.recorded++;
        this.settle(record.model, record.ts, facts?.usageSeen ? record.usage : null, record.key);
        options.onRecord?.(record);
      } catch (err) {
        problem(`recording a request: ${(err as Error).message}`);
        this.release();
        this.settle(null, this.startedAt, null, null);
      }
    }

    /** Hand the reservation back to the policy with the answer's usage (none: released). */
    settle(model: string | null, ts: number, usage: RequestRecord['usage'] | null, requestKey: string | null): void {
      const t = this.ticket;
      if (!t || !options.policy) return;
      this.ticket = null;
      options.policy.after(t, usage ? { model: model ?? this.modelSent, ts, usage, requestKey } : null);
    }

    release(): void {
      this.body = null;
      this.scanner = null;
      this.jsonChunks = null;
      this.decoder = null;
      this.upReq = null;
      this.ures = null;
    }
  }

  const server = http.createServer({ requestTimeout: 0, maxHeaderSize: 64 * 1024 }, (req, res) => {
    if (req.url === HEALTH_PATH || req.url?.startsWith(HEALTH_PATH + '?')) {
      serveHealth(req, res);
      return;
    }
    stats.requests++;
    stats.inFlight++;
    const ex = new Exchange(req, res);
    live.add(ex);
    try {
      const policy = options.policy;
      if (policy && !policy.idle && isBillable(req.method ?? '', ex.endpoint)) ex.startGated(policy);
      else ex.start();
    } catch (err) {
      problem(`forwarding: ${(err as Error).message}`);
      ex.upstreamFailed(Object.assign(err as Error, { code: (err as NodeJS.ErrnoException).code ?? 'EPROXY' }));
    }
  });
  server.keepAliveTimeout = 30_000;
  server.headersTimeout = 60_000;
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (socket.writable && err.code !== 'ECONNRESET') socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  function serveHealth(req: http.IncomingMessage, res: http.ServerResponse): void {
    // `?gc=1` collects garbage first when node runs with --expose-gc (the benchmark's memory figures).
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc && req.url?.includes('gc=1')) gc();
    const mem = process.memoryUsage();
    const body = JSON.stringify({
      service: PROXY_SERVICE_NAME, version: options.version ?? null, pid: process.pid, upstream: options.upstream,
      uptimeMs: Date.now() - started, ...stats, recorder: options.sink.stats(),
      memory: { rss: mem.rss, heapUsed: mem.heapUsed, external: mem.external, arrayBuffers: mem.arrayBuffers },
      ...(options.health?.() ?? {}),
    });
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  return {
    server,
    upstream: options.upstream,
    listen(port, host) {
      return new Promise((resolve, reject) => {
        const onError = (err: Error) => reject(err);
        server.once('error', onError);
        server.listen(port, host, () => {
          server.off('error', onError);
          const a = server.address() as AddressInfo;
          const h = a.family === 'IPv6' ? `[${a.address}]` : a.address;
          resolve({ host: a.address, port: a.port, url: `http://${h}:${a.port}` });
        });
      });
    },
    async close(graceMs = 5000) {
      shuttingDown = true;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        const deadline = Date.now() + graceMs;
        const tick = setInterval(() => {
          server.closeIdleConnections();
          if (live.size === 0 || Date.now() >= deadline) {
            clearInterval(tick);
            server.closeAllConnections();
          }
        }, 25);
        tick.unref();
      });
      agent.destroy();
      // Let the last records reach the sink (they are built on setImmediate).
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
    },
    stats: () => ({ ...stats }),
  };
}

/** Facts of a non-usage endpoint keep only the error type (a count_tokens answer is not billed usage). */
function onlyError(f: ResponseFacts): ResponseFacts {
  const out = new ResponseFacts();
  out.errorType = f.errorType;
  return out;
}

/** Request headers for the upstream: all of them, in order and spelling, minus hop-by-hop; Host names the upstream. */
export function upstreamHeaders(raw: string[], host: string): string[] {
  const out: string[] = [];
  const dropped = connectionTokens(raw);
  let hostSet = false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i];
    const lower = name.toLowerCase();
    if (lower === 'host') {
      if (!hostSet) out.push(name, host);
      hostSet = true;
      continue;
    }
    if (HOP_BY_HOP.has(lower) || lower === 'expect' || dropped?.has(lower)) continue;
    if (lower === 'accept-encoding') {
      const v = decodableEncodings(raw[i + 1]);
      if (v) out.push(name, v);
      continue;
    }
    out.push(name, raw[i + 1]);
  }
  if (!hostSet) out.unshift('Host', host);
  return out;
}

/** Headers with the content-length replaced (a rewritten body). */
function withContentLength(raw: string[], length: number): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i].toLowerCase() !== 'content-length') out.push(raw[i], raw[i + 1]);
  out.push('content-length', String(length));
  return out;
}

/** Response headers for the client: all of them minus hop-by-hop (node frames the body itself). */
export function responseHeaders(raw: string[]): string[] {
  const out: string[] = [];
  const dropped = connectionTokens(raw);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const lower = raw[i].toLowerCase();
    if (HOP_BY_HOP.has(lower) || dropped?.has(lower)) continue;
    out.push(raw[i], raw[i + 1]);
  }
  return out;
}

function connectionTokens(raw: string[]): Set<string> | null {
  let set: Set<string> | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i].length === 10 && raw[i].toLowerCase() === 'connection') {
      for (const t of raw[i + 1].split(',')) {
        const v = t.trim().toLowerCase();
        if (v && v !== 'close' && v !== 'keep-alive') (set ??= new Set()).add(v);
      }
    }
  }
  return set;
}

/**
 * Keep only encodings whose copy we can decode to read usage (node 20 has no zstd): the upstream then
 * picks one of those, and the client, which offered them, decodes the unchanged bytes itself.
 */
function decodableEncodings(value: string): string {
  if (!value.includes('zstd') || DECODERS.zstd) return value;
  return value.split(',').filter((p) => p.trim().split(';')[0].trim().toLowerCase() !== 'zstd').map((p) => p.trim()).join(', ');
}

function resetSocket(socket: Socket | null): void {
  if (!socket || socket.destroyed) return;
  const s = socket as Socket & { resetAndDestroy?: () => Socket };
  try {
    if (typeof s.resetAndDestroy === 'function') s.resetAndDestroy();
    else s.destroy();
  } catch {
    socket.destroy();
  }
}

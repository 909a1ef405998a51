/**
 * The proxy's HTTP/1.1 front: a net.Server that reads each request head, forwards the request's bytes to a
 * keep-alive upstream connection as they arrive, and forwards the response's bytes back the same way.
 *
 * Why raw sockets rather than node:http: a node:http pass-through (server + client) costs ~0.35 ms per request
 * and halves throughput on a 2-core machine (bench/proxy), most of it building IncomingMessage/ServerResponse
 * objects and re-framing bodies. Here bodies are never re-framed: a chunked response goes to the client with
 * its chunk framing as received, so each upstream read is one client write. The proxy reads the framing only
 * to find where messages end (http1.ts) and copies out the payload it inspects for usage.
 *
 * Heads are rewritten: Host names the upstream; hop-by-hop fields (Connection and the fields it lists,
 * Keep-Alive, Proxy-Connection, TE, Upgrade, Expect) are dropped each way; every other field passes in order
 * and spelling. Authentication headers are forwarded, never stored (records keep a short hash).
 */
import { isIP, type AddressInfo, type Server, type Socket } from 'node:net';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import zlib from 'node:zlib';
import type { IncomingHttpHeaders } from 'node:http';
import type { RequestRecord } from '../../core/types.js';
import { isBillable, type GateRequest, type GateResult, type GateTicket } from '../../policy/gate.js';
import type { PolicyResponse } from '../../policy/responses.js';
import {
  BodyReader, headEnd, headerObject, HttpParseError, parseRequestHead, parseResponseHead, requestFraming,
  responseFraming, serializeHead, wantsClose, type Framing, type RequestHead,
} from './http1.js';
import type { ProxyPolicy } from './policy.js';
import { buildRecord, inspectRequestBody, inspectRequestDoc, keyHash, type Outcome, type RequestInfo } from './record.js';
import type { RecordSink } from './recorder.js';
import { factsFromJson, ResponseFacts, SseUsageScanner } from './sse-usage.js';
import { UpstreamPool, type UpstreamConn, type UpstreamOwner } from './upstream-pool.js';

export interface ProxyOptions {
  /** Base URL requests are forwarded to, e.g. `https://api.anthropic.com` (a path prefix is kept). */
  upstream: string;
  sink: RecordSink;
  /** Extra trusted CA certificates (PEM) for an https upstream, e.g. a company gateway; default: Node's roots. */
  upstreamCa?: string | Buffer;
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
  /** Budgeted requests forwarded before they were read, no budget being able to refuse any request then (then reserved). */
  forwardedFirst: number;
}

export interface ProxyHandle {
  readonly server: Server;
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
const MAX_HEAD = 64 * 1024;
/** A client connection with no request in progress is closed after this long (node's keepAliveTimeout). */
const CLIENT_IDLE_MS = 30_000;
/** A request head must be complete within this long once it started (node's headersTimeout). */
const HEAD_TIMEOUT_MS = 60_000;
/** Dropped from heads in both directions (RFC 9110 §7.6.1); Expect is answered here (100 Continue). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'upgrade', 'expect']);
/** Lengths of the names that may need dropping or rewriting: other names skip the lower-casing. */
const HOP_LENGTHS = new Set([...HOP_BY_HOP].map((n) => n.length));
const REQUEST_SPECIAL_LENGTHS = new Set([...HOP_LENGTHS, 'host'.length, 'accept-encoding'.length]);
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

const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
/**
 * Request bodies from this size on are read by the sink (its worker thread) rather than here: a JSON.parse of
 * 16 KB takes 10-40 µs on the forwarding thread, Claude Code's 100 KB-1 MB conversations 0.5-2 ms; smaller bodies
 * (titles, probes, count_tokens) cost less to read here than to hand over.
 */
const READ_ELSEWHERE_BYTES = 16 * 1024;

export function createProxy(options: ProxyOptions): ProxyHandle {
  const up = new URL(options.upstream);
  if (up.protocol !== 'http:' && up.protocol !== 'https:') throw new Error(`upstream must be an http(s) URL, got ${options.upstream}`);
  const isHttps = up.protocol === 'https:';
  const upstreamHost = up.hostname.replace(/^\[|\]$/g, '');
  const pool = new UpstreamPool({
    host: upstreamHost, port: up.port ? Number(up.port) : isHttps ? 443 : 80, tls: isHttps,
    servername: isHttps && !isIP(upstreamHost) ? upstreamHost : undefined,
    ca: options.upstreamCa,
  });
  const hostHeader = up.host;
  const basePath = up.pathname.replace(/\/+$/, '');
  const maxInspect = options.maxInspectBytes ?? DEFAULT_INSPECT;
  const maxResponseInspect = options.maxResponseInspectBytes ?? DEFAULT_INSPECT;
  const started = Date.now();
  const stats: ProxyStats = { requests: 0, inFlight: 0, recorded: 0, clientAborts: 0, upstreamErrors: 0, staleSocketRetries: 0, blocked: 0, rewritten: 0, forwardedFirst: 0 };
  const live = new Set<Exchange>();
  /** Request bodies being read by the sink (records wait for them; `close` too). */
  const reading = new Set<Promise<void>>();
  const conns = new Set<ClientConn>();
  let shuttingDown = false;

  const problem = (m: string) => {
    try {
      options.onProblem?.(m);
    } catch { /* diagnostics never break traffic */ }
  };

  /**
   * One client connection: reads request heads one after another (keep-alive; pipelined requests wait their
   * turn), hands each to an Exchange, and feeds it that request's body bytes.
   */
  class ClientConn {
    pending: Buffer | null = null;
    exchange: Active | null = null;
    /** Request bytes after the current request's end wait here until its response is done. */
    private paused = false;
    closing = false;

    constructor(readonly socket: Socket) {
      socket.on('data', (chunk: Buffer) => this.onData(chunk));
      socket.on('drain', () => this.exchange?.onClientDrain());
      socket.on('error', () => { /* 'close' follows */ });
      socket.on('close', () => this.onClose());
    }

    /** Since when the connection has had no request in progress (the sweep closes it after CLIENT_IDLE_MS). */
    idleSince = Date.now();

    /** Called by the sweep: close a connection idle too long, or stuck in an unfinished head. */
    sweep(now: number): void {
      if (this.exchange || this.closing) return;
      if (now - this.idleSince > (this.pending === null ? CLIENT_IDLE_MS : HEAD_TIMEOUT_MS)) {
        this.closing = true;
        this.socket.destroy();
      }
    }

    onData(chunk: Buffer): void {
      this.pending = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
      this.process();
    }

    /** Consume what is pending: the current request's body, or the next head when no exchange is active. */
    process(): void {
      while (this.pending !== null && !this.closing) {
        const ex = this.exchange;
        if (ex) {
          if (ex.requestDone) {
            // A pipelined request: hold it (reading no more meanwhile) until this response is done.
            if (!this.paused && this.pending.length > MAX_HEAD) {
              this.paused = true;
              this.socket.pause();
            }
            return;
          }
          const buf = this.pending;
          const n = ex.onRequestBytes(buf);
          this.pending = n >= buf.length ? null : buf.subarray(n);
          continue;
        }
        const buf = this.pending;
        const end = headEnd(buf);
        if (end === -1 || end > MAX_HEAD) {
          if (buf.length > MAX_HEAD) this.reject(431, 'Request Header Fields Too Large');
          return;
        }
        let head: RequestHead;
        let framing;
        try {
          head = parseRequestHead(end === buf.length ? buf : buf.subarray(0, end));
          framing = requestFraming(head.raw);
        } catch (err) {
          const e = err as HttpParseError;
          this.reject(e.status ?? 400, e.status === 505 ? 'HTTP Version Not Supported' : e.status === 501 ? 'Not Implemented' : 'Bad Request');
          return;
        }
        this.pending = end >= buf.length ? null : buf.subarray(end);
        this.begin(head, framing);
        // (begin consumed what it could of `pending` for the new request.)
      }
    }

    private begin(head: RequestHead, framing: Framing): void {
      const path = head.target;
      if (path === HEALTH_PATH || path.startsWith(HEALTH_PATH + '?')) {
        const answer = new LocalAnswer(this, head, framing);
        this.exchange = answer;
        if (answer.reader.done) answer.answer();
        return;
      }
      if (head.method === 'CONNECT' || !path.startsWith('/')) {
        this.reject(400, 'Bad Request');
        return;
      }
      stats.requests++;
      stats.inFlight++;
      const ex = new Exchange(this, head, framing);
      this.exchange = ex;
      live.add(ex);
      try {
        const policy = options.policy;
        if (policy && !policy.idle && isBillable(head.method, ex.endpoint)) ex.gated = policy;
        // Body bytes that came with the head go upstream in the same write as the head.
        const initial = this.pending;
        this.pending = null;
        const n = ex.start(initial);
        if (initial && n < initial.length && !this.closing) this.pending = this.pending === null ? initial.subarray(n) : Buffer.concat([initial.subarray(n), this.pending]);
      } catch (err) {
        problem(`forwarding: ${(err as Error).message}`);
        ex.upstreamFailed(Object.assign(err as Error, { code: (err as NodeJS.ErrnoException).code ?? 'EPROXY' }));
      }
    }

    /** The exchange is over; read the next request unless the connection closes now. */
    exchangeDone(keepAlive: boolean): void {
      this.exchange = null;
      if (!keepAlive || shuttingDown) {
        this.closing = true;
        this.socket.end();
        return;
      }
      this.idleSince = Date.now();
      if (this.paused) {
        this.paused = false;
        this.socket.resume();
      }
      if (this.pending) this.process();
    }

    reject(status: number, reason: string): void {
      this.closing = true;
      this.pending = null;
      if (this.socket.writable) this.socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      else this.socket.destroy();
    }

    onClose(): void {
      conns.delete(this);
      this.closing = true;
      this.pending = null;
      this.exchange?.clientGone();
    }
  }

  /** Common shape of what a ClientConn drives. */
  interface Active {
    requestDone: boolean;
    onRequestBytes(buf: Buffer): number;
    onClientDrain(): void;
    clientGone(): void;
  }

  /** `GET /__tokentally/health`: answered here, never forwarded. */
  class LocalAnswer implements Active {
    requestDone = false;
    readonly reader: BodyReader;
    constructor(readonly conn: ClientConn, readonly head: RequestHead, framing: Framing) {
      this.reader = new BodyReader(framing, null);
    }

    onRequestBytes(buf: Buffer): number {
      const n = this.reader.push(buf);
      if (this.reader.done) this.answer();
      return n;
    }

    answer(): void {
      this.requestDone = true;
      // `?gc=1` collects garbage first when node runs with --expose-gc (the benchmark's memory figures).
      const gc = (globalThis as { gc?: () => void }).gc;
      if (gc && this.head.target.includes('gc=1')) gc();
      const mem = process.memoryUsage();
      const body = Buffer.from(JSON.stringify({
        service: PROXY_SERVICE_NAME, version: options.version ?? null, pid: process.pid, upstream: options.upstream,
        uptimeMs: Date.now() - started, ...stats, recorder: options.sink.stats(),
        memory: { rss: mem.rss, heapUsed: mem.heapUsed, external: mem.external, arrayBuffers: mem.arrayBuffers },
        ...(options.health?.() ?? {}),
      }));
      const close = wantsClose(this.head.raw, this.head.minor);
      const head = serializeHead('HTTP/1.1 200 OK', [
        'Content-Type', 'application/json', 'Cache-Control', 'no-store', 'Content-Length', String(body.length),
        'Connection', close ? 'close' : 'keep-alive',
      ]);
      this.conn.socket.write(Buffer.concat([head, this.head.method === 'HEAD' ? Buffer.alloc(0) : body]));
      this.conn.exchangeDone(!close);
    }

    onClientDrain(): void { /* small answer */ }
    clientGone(): void { /* nothing to record */ }
  }

  /** One request/response pair going through the proxy. */
  class Exchange implements Active, UpstreamOwner {
    readonly startedAt = Date.now();
    readonly t0 = performance.now();
    readonly endpoint: string;
    readonly recordable: boolean;
    readonly usageEndpoint: boolean;
    readonly headers: Record<string, string>;
    /** The client asked to close after this exchange (or speaks HTTP/1.0 without keep-alive). */
    readonly clientClose: boolean;
    gated: ProxyPolicy | null = null;
    /** Gated requests are held until the policy decides; a body too large to hold streams through unchecked. */
    holding = false;
    upstream: UpstreamConn | null = null;
    done = false;
    requestDone = false;
    /** Every request byte has been written upstream (the upstream socket can be reused after the response). */
    requestSent = false;
    /** Request wire bytes kept for inspection and for a retry on a stale socket (null: too large, or let go). */
    wire: Buffer[] | null = [];
    wireKept = 0;
    /** Decoded payload of a chunked request body (its wire bytes carry the chunk framing). */
    chunkedPayload: Buffer[] | null = null;
    retries = 0;
    httpStatus: number | null = null;
    responseRequestId: string | null = null;
    streamed = false;
    /** Response bytes received from the upstream (a stale keep-alive socket answers none). */
    responseBytes = 0;
    respPending: Buffer | null = null;
    respReader: BodyReader | null = null;
    /** The upstream's final response head has arrived. */
    answered = false;
    /** HTTP/1.0 client and a chunked response: send the payload only, the end is the connection's close. */
    dechunk = false;
    closeAfter = false;
    upstreamReusable = true;
    scanner: SseUsageScanner | null = null;
    jsonChunks: Buffer[] | null = null;
    jsonBytes = 0;
    decoder: zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress | null = null;
    decoderDone: Promise<void> | null = null;
    ttftMs: number | null = null;
    info: RequestInfo | null = null;
    /** `info` was read before forwarding (policy path). */
    infoPreset = false;
    ticket: GateTicket | null = null;
    addHeaders: Record<string, string> | null = null;
    /** A rewritten body replaces the client's (sent with its own Content-Length). */
    sendBody: Buffer | null = null;
    modelSent: string | null = null;
    upstreamPaused = false;
    clientPaused = false;

    readonly reqReader: BodyReader;

    constructor(readonly conn: ClientConn, readonly head: RequestHead, framing: Framing) {
      const url = head.target;
      const q = url.indexOf('?');
      this.endpoint = q === -1 ? url : url.slice(0, q);
      this.recordable = this.endpoint.includes('/v1/messages');
      this.usageEndpoint = head.method === 'POST' && this.endpoint.endsWith('/v1/messages');
      this.headers = headerObject(head.raw);
      this.clientClose = wantsClose(head.raw, head.minor);
      if (framing.kind === 'chunked') this.chunkedPayload = [];
      this.reqReader = new BodyReader(framing, framing.kind === 'chunked' ? (b, s, e) => this.keepPayload(b.subarray(s, e)) : null);
    }

    /** Begin with `initial`, bytes that followed the head (maybe the body, maybe more); returns how many it took. */
    start(initial: Buffer | null): number {
      if (this.headers.expect?.toLowerCase() === '100-continue' && !this.reqReader.done && !initial) this.conn.socket.write(CONTINUE);
      if (this.gated && initial && this.reqReader.framing.kind === 'length' && this.reqReader.framing.length > 0
        && this.reqReader.framing.length <= initial.length && this.gated.clearForAny()) {
        // The whole body is here and no budget can refuse or rewrite any request now: forward first, then
        // read the body and reserve its estimate in the same synchronous step (no other request in between).
        const policy = this.gated;
        this.gated = null;
        stats.forwardedFirst++;
        const n = this.reqReader.push(initial);
        const wire = n === initial.length ? initial : initial.subarray(0, n);
        this.keepWire(wire);
        this.connect(false, [wire]);
        this.reserveForwarded(policy, wire);
        this.requestEnded();
        return n;
      }
      if (this.gated) {
        this.holding = true;
        if (this.reqReader.done) {
          this.requestEnded();
          return 0;
        }
        return initial ? this.onRequestBytes(initial) : 0;
      }
      let n = 0;
      let first: Buffer[] | null = null;
      if (initial && !this.reqReader.done) {
        n = this.reqReader.push(initial);
        const wire = n === initial.length ? initial : initial.subarray(0, n);
        first = [wire];
        this.keepWire(wire);
      }
      this.connect(false, first);
      if (this.reqReader.done) this.requestEnded();
      return n;
    }

    /** Keep a copy of request wire bytes (inspection, stale-socket retry) while they fit the limit. */
    private keepWire(wire: Buffer): boolean {
      if (!this.wire) return false;
      if (this.wireKept + wire.length <= maxInspect) {
        this.wire.push(wire);
        this.wireKept += wire.length;
        return true;
      }
      this.wire = null; // too large to inspect: forwarded untouched, recorded without model/messages
      this.chunkedPayload = null;
      return false;
    }

    /** Open (or reuse) the upstream connection and send the head plus `held` body bytes (or the whole `sendBody`). */
    connect(fresh: boolean, held: Buffer[] | null): void {
      const conn = pool.acquire(this, fresh);
      this.upstream = conn;
      this.lastConnReused = conn.reused;
      this.responseBytes = 0;
      let raw = upstreamHeaders(this.head.raw, hostHeader);
      if (this.sendBody) raw = withContentLength(raw, this.sendBody.length);
      const head = serializeHead(`${this.head.method} ${basePath}${this.head.target} HTTP/1.1`, raw);
      if (this.sendBody) {
        conn.write(Buffer.concat([head, this.sendBody]));
        this.requestSent = true;
        return;
      }
      // One write for the head and the body bytes at hand (small: one copy is cheaper than a writev).
      if (held && held.length) {
        let size = head.length;
        for (const b of held) size += b.length;
        if (size <= 64 * 1024) {
          conn.write(Buffer.concat([head, ...held], size));
        } else {
          conn.socket.cork();
          conn.write(head);
          for (const b of held) conn.write(b);
          conn.socket.uncork();
        }
      } else {
        conn.write(head);
      }
      if (this.requestDone) this.requestSent = true;
    }

    /** Request body bytes from the client (`buf` may hold more than this request: returns how many it took). */
    onRequestBytes(buf: Buffer): number {
      const n = this.reqReader.push(buf);
      const wire = n === buf.length ? buf : buf.subarray(0, n);
      if (this.holding && this.wireKept + n > maxInspect) {
        // Too large to hold for a budget check: from here on it streams through unchecked.
        problem(`request body over ${maxInspect} bytes: forwarded without a budget check`);
        this.holding = false;
        this.gated = null;
        const held = this.wire ?? [];
        held.push(wire);
        this.wire = null;
        this.chunkedPayload = null;
        this.connect(false, held);
      } else {
        this.keepWire(wire);
        if (!this.holding && this.upstream && !this.done) this.forward(wire);
      }
      if (this.reqReader.done) this.requestEnded();
      return n;
    }

    private keepPayload(d: Buffer): void {
      if (this.chunkedPayload) this.chunkedPayload.push(d);
    }

    /** Write request bytes upstream, pausing the client while the upstream socket is full (backpressure). */
    private forward(wire: Buffer): void {
      const upc = this.upstream!;
      if (!upc.write(wire) && !this.clientPaused) {
        this.clientPaused = true;
        this.conn.socket.pause();
      }
    }

    onUpstreamDrain(): void {
      if (this.clientPaused) {
        this.clientPaused = false;
        this.conn.socket.resume();
      }
    }

    requestEnded(): void {
      this.requestDone = true;
      if (this.holding) {
        const body = this.body();
        void this.applyPolicy(this.gated!, body ?? Buffer.alloc(0));
        return;
      }
      if (this.upstream && !this.done) this.requestSent = true;
      this.maybeInspect();
    }

    /** The request payload as one buffer, when it was kept whole. */
    body(): Buffer | null {
      const parts = this.chunkedPayload ?? this.wire;
      if (parts === null) return null;
      return parts.length === 1 ? parts[0] : Buffer.concat(parts);
    }

    /**
     * Once the body is complete and the upstream has answered (no retry can need it any more), read
     * model/messages/metadata from it and let it go, so long streams do not keep prompts in memory.
     */
    maybeInspect(): void {
      if (!this.requestDone || (!this.answered && !this.done)) return;
      if (this.infoPreset || this.info !== null || this.infoWait) {
        this.wire = null;
        this.chunkedPayload = null;
        return;
      }
      const body = this.recordable ? this.body() : null;
      this.wire = null;
      this.chunkedPayload = null;
      if (body !== null && body.length >= READ_ELSEWHERE_BYTES && options.sink.readBody) {
        // Read on the sink's thread: parsing a large body here would hold every other stream meanwhile.
        const wait = options.sink.readBody(body).then((info) => {
          this.info = info;
        }, () => {
          this.info = inspectRequestBody(null);
        });
        this.infoWait = wait;
        reading.add(wait);
        void wait.finally(() => reading.delete(wait));
        return;
      }
      this.info = inspectRequestBody(null);
      if (body === null) return;
      setImmediate(() => {
        this.info = inspectRequestBody(body);
      });
    }

    /** The request body is being read by the sink (`maybeInspect`); the record waits for it. */
    infoWait: Promise<void> | null = null;

    /** Parse the body once (its request info is read from the same parse) and describe it for the policy. */
    private gateRequest(body: Buffer): GateRequest {
      let doc: unknown = null;
      if (body.length > 0) {
        try {
          doc = JSON.parse(body.toString('utf8'));
        } catch { /* not JSON: forwarded as is, the API answers the error */ }
      }
      this.info = inspectRequestDoc(doc);
      this.infoPreset = true;
      const h = this.headers;
      const sid = h['x-claude-code-session-id'];
      const sessionId = (typeof sid === 'string' && sid.trim() ? sid.trim().slice(0, 200) : null) ?? this.info.metadataSession;
      return {
        method: this.head.method, path: this.endpoint, headers: h as IncomingHttpHeaders, body, doc,
        keyHash: keyHash(h as IncomingHttpHeaders), sessionId, project: null,
      };
    }

    /** The reservation of a request forwarded before it was read (see `start`). */
    private reserveForwarded(policy: ProxyPolicy, body: Buffer): void {
      try {
        const result = policy.beforeForwarded(this.gateRequest(body));
        if (result.kind === 'forward') {
          this.ticket = result.ticket;
          if (Object.keys(result.addHeaders).length) this.addHeaders = result.addHeaders;
        }
      } catch (err) {
        problem(`budget check failed, request forwarded unchanged: ${(err as Error).message}`);
      }
    }

    async applyPolicy(policy: ProxyPolicy, body: Buffer): Promise<void> {
      let result: GateResult | null = null;
      try {
        const req = this.gateRequest(body);
        if (policy.needsProject && req.sessionId) req.project = await policy.projectOf(req.sessionId);
        result = await policy.before(req);
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
      // The body goes up whole with its own Content-Length (a chunked request's framing is not kept).
      this.sendBody = body;
      if (result?.kind === 'forward') {
        this.ticket = result.ticket;
        if (Object.keys(result.addHeaders).length) this.addHeaders = result.addHeaders;
        if (result.body !== body) {
          this.sendBody = result.body;
          stats.rewritten++;
        }
        if (result.ticket.modelSent && result.ticket.modelSent !== result.ticket.modelRequested) this.modelSent = result.ticket.modelSent;
      }
      this.holding = false;
      this.wire = [body];
      this.chunkedPayload = null;
      try {
        this.connect(false, null);
      } catch (err) {
        problem(`forwarding: ${(err as Error).message}`);
        this.upstreamFailed(Object.assign(err as Error, { code: (err as NodeJS.ErrnoException).code ?? 'EPROXY' }));
      }
    }

    /** The policy's own answer (a budget's 429 billing_error): recorded like an upstream error, never forwarded. */
    answerLocally(r: PolicyResponse): void {
      this.done = true;
      this.httpStatus = r.status;
      const body = Buffer.from(r.body);
      this.jsonChunks = [body];
      stats.blocked++;
      const raw: string[] = [];
      let hasLength = false;
      for (const [k, v] of Object.entries(r.headers)) {
        if (k.toLowerCase() === 'content-length') hasLength = true;
        raw.push(k, v);
      }
      if (!hasLength) raw.push('content-length', String(body.length));
      raw.push('connection', this.clientClose ? 'close' : 'keep-alive');
      this.conn.socket.write(Buffer.concat([serializeHead(`HTTP/1.1 ${r.status} ${statusText(r.status)}`, raw), body]));
      this.finish('complete', null);
      this.conn.exchangeDone(!this.clientClose);
    }

    onUpstreamData(chunk: Buffer): void {
      if (this.done) return;
      this.responseBytes += chunk.length;
      try {
        if (!this.respReader) {
          this.respPending = this.respPending === null ? chunk : Buffer.concat([this.respPending, chunk]);
          if (!this.readResponseHead()) return;
          chunk = this.respPending!;
          this.respPending = null;
          this.maybeInspect();
        }
        this.passResponseBytes(chunk);
      } catch (err) {
        const e = err as HttpParseError;
        problem(`upstream response: ${e.message}`);
        this.upstreamFailed(Object.assign(new Error(e.message), { code: 'HPE_INVALID_RESPONSE' }));
      }
    }

    /** Parse heads from `respPending` (1xx interim ones are passed on); true once the final head is sent. */
    private readResponseHead(): boolean {
      for (;;) {
        const buf = this.respPending!;
        const end = headEnd(buf);
        if (end === -1) {
          if (buf.length > MAX_HEAD) throw new HttpParseError('response head too large');
          return false;
        }
        const head = parseResponseHead(buf.subarray(0, end));
        this.respPending = buf.subarray(end);
        if (head.status === 101) throw new HttpParseError('unexpected protocol switch');
        if (head.status < 200) {
          if (this.head.minor === 1) this.conn.socket.write(buf.subarray(0, end));
          if (this.respPending.length === 0) {
            this.respPending = null;
            return false;
          }
          continue;
        }
        this.onResponseHead(head.status, head.reason, head.minor, head.raw);
        return true;
      }
    }

    onResponseHead(status: number, reason: string, minor: number, raw: string[]): void {
      const framing = responseFraming(raw, status, this.head.method);
      this.httpStatus = status;
      let rid: string | null = null;
      let type = '';
      let encoding = '';
      for (let i = 0; i + 1 < raw.length; i += 2) {
        const n = raw[i];
        if (n.length === 10 && n.toLowerCase() === 'request-id') rid ??= raw[i + 1];
        else if (n.length === 12 && n.toLowerCase() === 'content-type') type ||= raw[i + 1];
        else if (n.length === 16 && n.toLowerCase() === 'content-encoding') encoding ||= raw[i + 1];
      }
      this.responseRequestId = rid ? rid.slice(0, 200) : null;
      this.streamed = type.startsWith('text/event-stream');
      if (this.recordable) this.prepareScan(status, type, encoding);
      this.upstreamReusable = !wantsClose(raw, minor) && framing.kind !== 'close';
      this.dechunk = framing.kind === 'chunked' && this.head.minor === 0;
      this.closeAfter = this.clientClose || framing.kind === 'close' || this.dechunk || !this.requestDone || shuttingDown;
      this.respReader = new BodyReader(framing, this.scanner || this.jsonChunks || this.decoder || this.dechunk
        ? (b, s, e) => this.onResponsePayload(b, s, e) : null);
      const out = responseHeaders(raw, this.dechunk);
      if (this.addHeaders) for (const k of Object.keys(this.addHeaders)) out.push(k, this.addHeaders[k]);
      if (this.closeAfter) out.push('connection', 'close');
      else if (this.head.minor === 0) out.push('connection', 'keep-alive');
      this.responseHead = serializeHead(`HTTP/1.1 ${status} ${reason}`, out);
      this.answered = true;
    }

    responseHead: Buffer | null = null;

    /**
     * Forward response bytes (the head goes out with the first of them, or alone at once when none came with
     * it: an event stream that starts later) and feed the payload to the usage reader.
     */
    private passResponseBytes(chunk: Buffer): void {
      const reader = this.respReader!;
      const n = reader.push(chunk);
      if (n < chunk.length) this.upstreamReusable = false; // bytes after the response: out of step
      const wire = n === chunk.length ? chunk : chunk.subarray(0, n);
      const socket = this.conn.socket;
      let ok = true;
      if (this.dechunk) {
        // The payload went out piecewise in onResponsePayload (head first).
        ok = !socket.writableNeedDrain;
      } else if (this.responseHead) {
        ok = socket.write(wire.length ? Buffer.concat([this.responseHead, wire]) : this.responseHead);
        this.responseHead = null;
      } else if (wire.length) {
        ok = socket.write(wire);
      }
      if (!ok && !this.upstreamPaused && this.upstream) {
        this.upstreamPaused = true;
        this.upstream.socket.pause();
      }
      const ranges = this.inspectRanges;
      if (ranges.length) {
        const b = this.inspectBuf!;
        for (let i = 0; i < ranges.length; i += 2) this.inspect(b, ranges[i], ranges[i + 1]);
        ranges.length = 0;
        this.inspectBuf = null;
      }
      if (reader.done) this.responseEnded();
    }

    onResponsePayload(buf: Buffer, start: number, end: number): void {
      if (this.dechunk) {
        if (this.responseHead) {
          this.conn.socket.write(this.responseHead);
          this.responseHead = null;
        }
        const d = buf.subarray(start, end);
        this.conn.socket.write(d);
        this.inspect(d, 0, d.length);
        return;
      }
      // Read for usage after the bytes are written to the client (scanning is off the latency path). Every range
      // of one read lies in the same buffer: keep the buffer once and the ranges as numbers.
      if (this.scanner || this.jsonChunks || this.decoder) {
        this.inspectBuf = buf;
        this.inspectRanges.push(start, end);
      }
    }

    /** Payload ranges of the current read (in `inspectBuf`), inspected once the read has been forwarded. */
    inspectBuf: Buffer | null = null;
    readonly inspectRanges: number[] = [];

    onClientDrain(): void {
      if (this.upstreamPaused) {
        this.upstreamPaused = false;
        this.upstream?.socket.resume();
      }
    }

    /** The response is complete (or the upstream closed a close-delimited one). */
    responseEnded(): void {
      if (this.done) return;
      if (this.responseHead) {
        this.conn.socket.write(this.responseHead);
        this.responseHead = null;
      }
      this.done = true;
      if (this.clientPaused) {
        // The upload waited for an upstream 'drain' that this exchange will no longer see.
        this.clientPaused = false;
        this.conn.socket.resume();
      }
      const upc = this.upstream;
      this.upstream = null;
      if (upc) {
        if (this.upstreamPaused) upc.socket.resume();
        if (this.upstreamReusable && this.requestSent && !upc.ended) pool.release(upc);
        else upc.destroy();
      }
      this.finish('complete', null);
      this.conn.exchangeDone(!this.closeAfter);
    }

    onUpstreamEnd(err: NodeJS.ErrnoException | null): void {
      this.upstream = null;
      if (this.done) return;
      const reader = this.respReader;
      if (reader && reader.framing.kind === 'close' && !err) {
        reader.endOfStream();
        this.responseEnded();
        return;
      }
      this.upstreamFailed(err ?? Object.assign(new Error('upstream closed the connection'), { code: 'ECONNRESET' }));
    }

    prepareScan(status: number, type: string, encoding: string): void {
      const enc = encoding.trim().toLowerCase();
      const sse = this.streamed && this.usageEndpoint;
      const json = type.includes('json') && (this.usageEndpoint || status >= 400);
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
          decoder.on('data', (d: Buffer) => this.consume(d, 0, d.length));
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

    /** Read response payload that was already forwarded (`buf[start..end]`). */
    inspect(buf: Buffer, start: number, end: number): void {
      if (this.decoder) this.decoder.write(buf.subarray(start, end));
      else if (this.scanner || this.jsonChunks) this.consume(buf, start, end);
    }

    consume(buf: Buffer, start: number, end: number): void {
      try {
        if (this.scanner) this.scanner.pushRange(buf, start, end);
        else if (this.jsonChunks) {
          this.jsonBytes += end - start;
          if (this.jsonBytes > maxResponseInspect) this.jsonChunks = null;
          else this.jsonChunks.push(start === 0 && end === buf.length ? buf : buf.subarray(start, end));
        }
      } catch (err) {
        problem(`reading the response: ${(err as Error).message}`);
        this.scanner = null;
        this.jsonChunks = null;
      }
    }

    upstreamFailed(err: NodeJS.ErrnoException): void {
      if (this.done) return;
      const upc = this.upstream;
      // A pooled keep-alive socket the upstream closed while idle: retry once on a new one, as a direct
      // client would have opened a fresh connection. Only before any response, with the whole body at hand.
      if (this.lastConnReused && this.responseBytes === 0 && this.retries === 0
        && STALE_SOCKET_CODES.has(err.code ?? '') && this.wire !== null && !shuttingDown) {
        this.retries++;
        stats.staleSocketRetries++;
        upc?.destroy();
        this.upstream = null;
        if (this.clientPaused) {
          // The upload waited for the dead socket's 'drain', which never comes.
          this.clientPaused = false;
          this.conn.socket.resume();
        }
        this.connect(true, this.wire);
        return;
      }
      this.done = true;
      stats.upstreamErrors++;
      upc?.destroy();
      this.upstream = null;
      // The client gets what it would have got directly: a broken connection, not a made-up response.
      resetSocket(this.conn.socket);
      this.finish('upstream_error', err.code ?? 'upstream_error');
    }

    /** The current upstream connection came from the pool (it may have been closed while idle). */
    lastConnReused = false;

    clientGone(): void {
      if (this.done) return;
      this.done = true;
      stats.clientAborts++;
      // Abort the upstream request too: it stops generating (and billing) and its socket is not reused.
      this.upstream?.destroy();
      this.upstream = null;
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
      if (this.infoWait) {
        const wait = this.infoWait;
        this.infoWait = null;
        void wait.then(() => this.record(outcome, errorCode, latencyMs));
        return;
      }
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
          this.info = inspectRequestBody(this.requestDone ? this.body() : null);
        }
        const record = buildRecord({
          startedAt: this.startedAt, method: this.head.method, endpoint: this.endpoint, headers: this.headers as IncomingHttpHeaders,
          requestBytes: this.reqReader.payloadBytes, info: this.info,
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
      this.wire = null;
      this.chunkedPayload = null;
      this.sendBody = null;
      this.scanner = null;
      this.jsonChunks = null;
      this.decoder = null;
    }
  }

  // Idle timeouts by a sweep once a second rather than a socket timer per request (re-arming timers on every
  // exchange is a measurable share of the proxy's per-request cost).
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const c of conns) c.sweep(now);
    pool.sweep(now);
  }, 1000);
  sweeper.unref();

  const server = net.createServer({ noDelay: true }, (socket) => {
    if (shuttingDown) {
      socket.destroy();
      return;
    }
    conns.add(new ClientConn(socket));
  });

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
      const closeIdle = () => {
        for (const c of conns) {
          if (!c.exchange && c.pending === null) {
            c.closing = true;
            c.socket.destroy();
          }
        }
      };
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        closeIdle();
        const deadline = Date.now() + graceMs;
        const tick = setInterval(() => {
          closeIdle();
          if (live.size === 0 || Date.now() >= deadline) {
            clearInterval(tick);
            for (const c of conns) c.socket.destroy();
          }
        }, 25);
        tick.unref();
      });
      clearInterval(sweeper);
      pool.destroy();
      // Let the last records reach the sink (they are built on setImmediate, some once their body is read).
      await new Promise((r) => setImmediate(r));
      // (A store worker stuck on a locked database answers late: wait a while, not forever.)
      const readDeadline = Date.now() + 10_000;
      while (reading.size && Date.now() < readDeadline) {
        await Promise.race([Promise.all([...reading]), new Promise((r) => setTimeout(r, 100).unref())]);
      }
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

/**
 * Request fields for the upstream: all of them, in order and spelling, minus hop-by-hop ones (the body's
 * framing fields stay: its bytes are forwarded as they came); Host names the upstream.
 */
export function upstreamHeaders(raw: string[], host: string): string[] {
  const out: string[] = [];
  const dropped = connectionTokens(raw);
  let hostSet = false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i];
    if (dropped === null && !REQUEST_SPECIAL_LENGTHS.has(name.length)) {
      out.push(name, raw[i + 1]);
      continue;
    }
    const lower = name.toLowerCase();
    if (lower === 'host') {
      if (!hostSet) out.push(name, host);
      hostSet = true;
      continue;
    }
    if (HOP_BY_HOP.has(lower) || dropped?.has(lower)) continue;
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

/** Fields with the body's framing replaced by a Content-Length (a body sent whole, maybe rewritten). */
function withContentLength(raw: string[], length: number): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const lower = raw[i].toLowerCase();
    if (lower !== 'content-length' && lower !== 'transfer-encoding') out.push(raw[i], raw[i + 1]);
  }
  out.push('content-length', String(length));
  return out;
}

/** Response fields for the client: all of them minus hop-by-hop ones (and Transfer-Encoding when de-chunking). */
export function responseHeaders(raw: string[], dechunk = false): string[] {
  const out: string[] = [];
  const dropped = connectionTokens(raw);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i];
    if (dropped !== null || HOP_LENGTHS.has(name.length) || (dechunk && name.length === 17)) {
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower) || dropped?.has(lower) || (dechunk && lower === 'transfer-encoding')) continue;
    }
    out.push(name, raw[i + 1]);
  }
  return out;
}

function connectionTokens(raw: string[]): Set<string> | null {
  let set: Set<string> | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i].length === 10 && raw[i].toLowerCase() === 'connection') {
      for (const t of raw[i + 1].split(',')) {
        const v = t.trim().toLowerCase();
        // Framing fields are never dropped on a Connection header's say-so: they describe the bytes forwarded.
        if (v && v !== 'close' && v !== 'keep-alive' && v !== 'content-length' && v !== 'transfer-encoding') (set ??= new Set()).add(v);
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

const STATUS_TEXT: Record<number, string> = { 200: 'OK', 400: 'Bad Request', 402: 'Payment Required', 403: 'Forbidden', 429: 'Too Many Requests', 500: 'Internal Server Error', 529: 'Overloaded' };
function statusText(status: number): string {
  return STATUS_TEXT[status] ?? 'Status';
}

function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  const s = socket as Socket & { resetAndDestroy?: () => Socket };
  try {
    if (typeof s.resetAndDestroy === 'function') s.resetAndDestroy();
    else s.destroy();
  } catch {
    socket.destroy();
  }
}

/**
 * A faithful local mock of the Anthropic Messages API, built from the wire samples recorded against
 * Claude Code 2.1.197 (../shared/fixtures/claude-code-lab/wire/). Streams are sent exactly as recorded
 * (`recordedSse()` is the byte-for-byte file), one write per event.
 *
 * Configure it with options (defaults for every request), a `plan` (one step per POST /v1/messages, in
 * order), or per request with `x-mock-*` headers (they reach it through a proxy untouched):
 *   x-mock-event-delay-ms: N      pause N ms between events
 *   x-mock-reset-after-events: N  send N events then reset the connection (TCP RST)
 *   x-mock-status: 529            answer with Anthropic's error JSON for that status
 *   x-mock-stream: sse20          the 20-event stream used by the proxy benchmark
 * Listens on 127.0.0.1, port 0 by default. Used by test/proxy, test/e2e and bench/proxy.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { sharedPath } from './paths.js';

export type MockStep =
  /** Anthropic error JSON with this status (`type` defaults from the status: 529 overloaded_error, 429 rate_limit_error...). */
  | { kind: 'error'; status: number; type?: string; message?: string; headers?: Record<string, string> }
  /** Reset the connection before any response. */
  | { kind: 'reset' }
  /** Stream `events` events of the recorded SSE, then reset the connection. */
  | { kind: 'reset-after-events'; events: number; delayMs?: number }
  /** A stream: the recorded one, or `body` (raw SSE text). */
  | { kind: 'sse'; body?: string; delayMs?: number }
  /** Answer as if `stream` were false (the recorded message as one JSON body). */
  | { kind: 'json' }
  /** Never answer (the client has to give up). */
  | { kind: 'hang' };

export interface MockOptions {
  port?: number;
  host?: string;
  /** Pause between SSE events (default 0: every event is still its own write). */
  eventDelayMs?: number;
  /** Give every response its own message id (same length as the recorded one); default false = exact bytes. */
  uniqueIds?: boolean;
  /**
   * `recorded` (default): every message request gets the recorded tool_use stream (or its JSON form).
   * `claude-code`: a two-turn Claude Code exchange: the recorded tool_use stream, then, once the request
   * carries the tool_result, a final text answer; a request without tools (session title) gets a title.
   */
  scenario?: 'recorded' | 'claude-code';
  plan?: MockStep[];
  /** Reject message requests without `x-api-key` / `authorization` (401), as the API does. Default true. */
  requireKey?: boolean;
  /** Keep request bodies up to this size in `requests[i].body` (default 1 MiB). */
  keepBodyBytes?: number;
  /** Larger message bodies get Anthropic's 413 `request_too_large` (default 32 MiB). */
  maxBodyBytes?: number;
  /** Extra response headers on every message answer. */
  headers?: Record<string, string>;
  /** Answer with the model the request asked for (in message_start / the JSON message) instead of the recorded one. */
  echoModel?: boolean;
  /** `request-id`s to answer with, in order (e.g. the recorded `req_011Cwx2JJ3KWZxxT0Xb7m27jNpsD`); then generated ones. */
  requestIds?: string[];
}

export interface SeenRequest {
  n: number;
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  bodyBytes: number;
  bodySha256: string;
  /** The body, when small enough (see keepBodyBytes). */
  body: Buffer | null;
  /** `request-id` the mock answered with. */
  requestId: string;
}

export interface MockAnthropic {
  url: string;
  port: number;
  /** Every request seen (any path), most recent last; capped to the last 500. */
  requests: SeenRequest[];
  /** Requests seen in total. */
  readonly count: number;
  /** POST /v1/messages requests seen. */
  readonly messageCount: number;
  /** Responses whose client went away before the mock finished sending them. */
  readonly clientAborts: number;
  readonly lastRequest: SeenRequest | undefined;
  /** Replace the remaining plan. */
  setPlan(plan: MockStep[]): void;
  /** Resolves when `n` client aborts have been seen (bounded by `timeoutMs`). */
  waitForAborts(n: number, timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

const WIRE = ['fixtures', 'claude-code-lab', 'wire'];
let recordedCache: string | null = null;

/** The recorded stream, byte for byte (`response-sse-tool_use.txt`). */
export function recordedSse(): string {
  recordedCache ??= readFileSync(sharedPath(...WIRE, 'response-sse-tool_use.txt'), 'utf8');
  return recordedCache;
}

/** The recorded stream split into its events, each with its trailing blank line. */
export function sseEvents(body: string = recordedSse()): string[] {
  const out: string[] = [];
  let rest = body;
  for (let i = 0; i < 10_000 && rest.length > 0; i++) {
    const at = rest.indexOf('\n\n');
    if (at === -1) {
      out.push(rest);
      break;
    }
    out.push(rest.slice(0, at + 2));
    rest = rest.slice(at + 2);
  }
  return out;
}

export const RECORDED = {
  messageId: 'msg_01wDw7NQJXOvn7EeRxfmAMJUds',
  /** `request-id` of the recorded response (as in the transcript Claude Code wrote). */
  requestId: 'req_011Cwx2JJ3KWZxxT0Xb7m27jNpsD',
  sessionId: 'b0fc82b9-641d-47bd-970d-4d8f8ca2c404',
  toolId: 'toolu_01LS32HRgaHX1mrj5MxlJcetbX',
  model: 'claude-opus-4-8',
  /** Final usage of the recorded response (message_start, overwritten by message_delta). */
  usage: { input: 10, output: 23, cacheWrite5m: 1030, cacheWrite1h: 203, cacheRead: 12300, serviceTier: 'standard' },
  stopReason: 'tool_use',
  tools: ['Bash'],
  events: 17,
};

/** The benchmark's stream: the recorded 17 events plus 3 more text deltas = 20 events. */
export function benchSse(): string {
  const ev = sseEvents();
  const extra = [' It', ' is', ' fast.'].map((t) => 'event: content_block_delta\ndata: '
    + JSON.stringify({ type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: t } }) + '\n\n');
  // After the second text delta of block 1 (events: 0 start, 1 ping, 2-5 thinking, 6 start, 7-8 deltas).
  return [...ev.slice(0, 9), ...extra, ...ev.slice(9)].join('');
}

/** The recorded response as a non-streamed JSON message (what `stream: false` returns). */
export function recordedMessageJson(messageId = RECORDED.messageId): Record<string, unknown> {
  return {
    id: messageId, type: 'message', role: 'assistant', model: RECORDED.model,
    content: [
      { type: 'thinking', thinking: 'The user wants a short answer. Mock thinking.', signature: 'EqMBCkYIBxgCKkBmockSignaturepvialIYjUeoVkPdA' },
      { type: 'text', text: "I'll run a quick command." },
      { type: 'tool_use', id: RECORDED.toolId, name: 'Bash', input: { command: 'echo hi', description: 'Print hi' } },
    ],
    stop_reason: 'tool_use', stop_sequence: null,
    usage: {
      input_tokens: 10, cache_creation_input_tokens: 1233, cache_read_input_tokens: 12300,
      cache_creation: { ephemeral_5m_input_tokens: 1030, ephemeral_1h_input_tokens: 203 },
      output_tokens: 23, service_tier: 'standard', server_tool_use: { web_search_requests: 0, web_fetch_requests: 0 },
    },
  };
}

interface TextAnswer {
  id: string;
  text: string;
  usage: { input: number; cacheWrite5m: number; cacheWrite1h: number; cacheRead: number; output: number };
}

/** A text-only stream in the recorded format (message_start, ping, one text block, message_delta, message_stop). */
export function textSse(a: TextAnswer): string {
  const ev = (name: string, data: unknown) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
  const u = a.usage;
  const cacheCreation = u.cacheWrite5m + u.cacheWrite1h;
  const parts = a.text.match(/.{1,12}/gs) ?? [''];
  return [
    ev('message_start', { type: 'message_start', message: { id: a.id, type: 'message', role: 'assistant', model: RECORDED.model, content: [], stop_reason: null, stop_sequence: null,
      usage: { input_tokens: u.input, cache_creation_input_tokens: cacheCreation, cache_read_input_tokens: u.cacheRead,
        cache_creation: { ephemeral_5m_input_tokens: u.cacheWrite5m, ephemeral_1h_input_tokens: u.cacheWrite1h }, output_tokens: 1, service_tier: 'standard' } } }),
    ev('ping', { type: 'ping' }),
    ev('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    ...parts.map((t) => ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: t } })),
    ev('content_block_stop', { type: 'content_block_stop', index: 0 }),
    ev('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: { input_tokens: u.input, cache_creation_input_tokens: cacheCreation, cache_read_input_tokens: u.cacheRead, output_tokens: u.output,
        server_tool_use: { web_search_requests: 0, web_fetch_requests: 0 } } }),
    ev('message_stop', { type: 'message_stop' }),
  ].join('');
}

const ERROR_TYPES: Record<number, [string, string]> = {
  400: ['invalid_request_error', 'Invalid request'],
  401: ['authentication_error', 'invalid x-api-key'],
  403: ['permission_error', 'Permission denied'],
  404: ['not_found_error', 'Not found'],
  413: ['request_too_large', 'Request exceeds the maximum allowed number of bytes.'],
  429: ['rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit'],
  500: ['api_error', 'Internal server error'],
  529: ['overloaded_error', 'Overloaded'],
};

/** `msg_01` + a counter, padded to the recorded id's length. */
function uniqueMessageId(n: number): string {
  return `msg_01Mock${n.toString(36).padStart(RECORDED.messageId.length - 10, '0')}`;
}

export async function startMockAnthropic(options: MockOptions = {}): Promise<MockAnthropic> {
  const requests: SeenRequest[] = [];
  let plan = [...(options.plan ?? [])];
  const requestIds = [...(options.requestIds ?? [])];
  let count = 0;
  let messageCount = 0;
  let clientAborts = 0;
  const abortWaiters: (() => void)[] = [];
  const sockets = new Set<Socket>();
  const requireKey = options.requireKey ?? true;
  const keepBody = options.keepBodyBytes ?? 1024 * 1024;
  const maxBody = options.maxBodyBytes ?? 32 * 1024 * 1024;
  let bench: string | null = null;
  let recordedUsed = false;

  const baseHeaders = (requestId: string): Record<string, string> => ({
    'request-id': requestId,
    'anthropic-organization-id': '00000000-0000-4000-8000-000000000000',
    'anthropic-ratelimit-requests-limit': '4000',
    'anthropic-ratelimit-requests-remaining': '3999',
    'anthropic-ratelimit-requests-reset': '2026-11-22T12:00:15Z',
    'anthropic-ratelimit-input-tokens-limit': '2000000',
    'anthropic-ratelimit-input-tokens-remaining': '1999000',
    'anthropic-ratelimit-output-tokens-limit': '400000',
    'anthropic-ratelimit-output-tokens-remaining': '399000',
    'x-robots-tag': 'none',
    ...(options.headers ?? {}),
  });

  const sendError = (res: http.ServerResponse, requestId: string, status: number, type?: string, message?: string, headers: Record<string, string> = {}) => {
    const [t, m] = ERROR_TYPES[status] ?? ['api_error', 'Error'];
    const body = JSON.stringify({ type: 'error', error: { type: type ?? t, message: message ?? m }, request_id: requestId });
    const extra: Record<string, string> = status === 429 ? { 'retry-after': '1' } : status === 529 || status >= 500 ? { 'x-should-retry': 'true' } : {};
    res.writeHead(status, { ...baseHeaders(requestId), 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...extra, ...headers });
    res.end(body);
  };

  const stream = (req: http.IncomingMessage, res: http.ServerResponse, requestId: string, body: string, delayMs: number, resetAfter: number | null) => {
    res.writeHead(200, { ...baseHeaders(requestId), 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    const events = sseEvents(body);
    let i = 0;
    const next = () => {
      if (res.destroyed) return;
      if (resetAfter !== null && i >= resetAfter) {
        const s = res.socket as (Socket & { resetAndDestroy?: () => void }) | null;
        if (s?.resetAndDestroy) s.resetAndDestroy();
        else s?.destroy();
        return;
      }
      if (i >= events.length) {
        res.end();
        return;
      }
      res.write(events[i++]);
      if (delayMs > 0) setTimeout(next, delayMs);
      else next();
    };
    if (delayMs > 0) res.flushHeaders();
    next();
  };

  const server = http.createServer({ keepAliveTimeout: 30_000 } as http.ServerOptions, (req, res) => {
    const n = ++count;
    const requestId = requestIds.shift() ?? `req_011CMock${String(n).padStart(18, '0')}`;
    const chunks: Buffer[] = [];
    let bytes = 0;
    const hash = createHash('sha256');
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      hash.update(c);
      if (bytes <= maxBody) chunks.push(c);
    });
    req.on('end', () => {
      const body = bytes <= maxBody ? Buffer.concat(chunks) : null;
      const seen: SeenRequest = {
        n, method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders,
        bodyBytes: bytes, bodySha256: hash.digest('hex'), body: bytes <= keepBody ? body : null, requestId,
      };
      requests.push(seen);
      if (requests.length > 500) requests.shift();
      res.on('close', () => {
        if (!res.writableFinished) {
          clientAborts++;
          for (const w of abortWaiters.splice(0)) w();
        }
      });
      try {
        route(req, res, seen, body);
      } catch (err) {
        sendError(res, requestId, 500, 'api_error', (err as Error).message);
      }
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  const route = (req: http.IncomingMessage, res: http.ServerResponse, seen: SeenRequest, body: Buffer | null) => {
    const path = seen.url.split('?')[0];
    const { requestId } = seen;
    if (req.method === 'HEAD' && path === '/') {
      // Claude Code's preflight; the recorded mock answered 404 and the CLI did not mind.
      res.writeHead(404, { 'content-length': '0' });
      res.end();
      return;
    }
    const keyed = Boolean(req.headers['x-api-key'] || req.headers.authorization);
    if (path.startsWith('/v1/') && requireKey && !keyed) {
      sendError(res, requestId, 401);
      return;
    }
    if (req.method === 'GET' && path === '/v1/models') {
      const body = JSON.stringify({ data: [{ type: 'model', id: RECORDED.model, display_name: 'Claude Opus 4.8', created_at: '2026-08-01T00:00:00Z' }],
        has_more: false, first_id: RECORDED.model, last_id: RECORDED.model });
      res.writeHead(200, { ...baseHeaders(requestId), 'content-type': 'application/json' });
      res.end(body);
      return;
    }
    if (req.method === 'POST' && path === '/v1/messages/count_tokens') {
      res.writeHead(200, { ...baseHeaders(requestId), 'content-type': 'application/json' });
      res.end(JSON.stringify({ input_tokens: 2095 }));
      return;
    }
    if (req.method === 'POST' && path === '/v1/messages/batches') {
      res.writeHead(200, { ...baseHeaders(requestId), 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'msgbatch_01Mock', type: 'message_batch', processing_status: 'in_progress',
        request_counts: { processing: 1, succeeded: 0, errored: 0, canceled: 0, expired: 0 }, created_at: '2026-11-22T12:00:00Z' }));
      return;
    }
    if (req.method !== 'POST' || path !== '/v1/messages') {
      sendError(res, requestId, 404, 'not_found_error', `${req.method} ${path} not found`);
      return;
    }
    messageCount++;
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse((body ?? Buffer.alloc(0)).toString('utf8')) as Record<string, unknown>;
      if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('not an object');
    } catch {
      sendError(res, requestId, body === null ? 413 : 400, undefined, body === null ? undefined : 'There was an error parsing the body of your request');
      return;
    }
    const h = (name: string) => {
      const v = req.headers[name];
      return typeof v === 'string' ? v : undefined;
    };
    const delay = Number(h('x-mock-event-delay-ms') ?? options.eventDelayMs ?? 0) || 0;
    const step: MockStep | undefined = plan.shift()
      ?? (h('x-mock-status') ? { kind: 'error', status: Number(h('x-mock-status')) }
        : h('x-mock-reset-after-events') ? { kind: 'reset-after-events', events: Number(h('x-mock-reset-after-events')) } : undefined);
    const wantsStream = doc.stream === true;
    const asked = typeof doc.model === 'string' ? doc.model : null;
    const echo = (b: string): string => (options.echoModel && asked ? b.replace(`"model":"${RECORDED.model}"`, `"model":${JSON.stringify(asked)}`) : b);
    const pickBody = (): string => {
      if (h('x-mock-stream') === 'sse20') {
        bench ??= benchSse();
        return options.uniqueIds ? bench.replace(RECORDED.messageId, uniqueMessageId(messageCount)) : bench;
      }
      if (options.scenario === 'claude-code') return claudeCodeAnswer(doc);
      return options.uniqueIds ? recordedSse().replace(RECORDED.messageId, uniqueMessageId(messageCount)) : recordedSse();
    };
    const claudeCodeAnswer = (d: Record<string, unknown>): string => {
      const id = uniqueMessageId(messageCount);
      if (!Array.isArray(d.tools) || d.tools.length === 0) {
        return textSse({ id, text: '{"title":"Say hi"}', usage: { input: 180, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0, output: 9 } });
      }
      const msgs = Array.isArray(d.messages) ? d.messages : [];
      const last = msgs[msgs.length - 1] as { content?: unknown } | undefined;
      const afterTool = Array.isArray(last?.content) && last!.content.some((b) => (b as { type?: string })?.type === 'tool_result');
      if (afterTool || recordedUsed || messageCount > 20) {
        return textSse({ id, text: 'The command ran and printed: hi. Done!', usage: { input: 11, cacheWrite5m: 1040, cacheWrite1h: 204, cacheRead: 12400, output: 24 } });
      }
      recordedUsed = true;
      return recordedSse();
    };
    switch (step?.kind) {
      case 'error':
        sendError(res, requestId, step.status, step.type, step.message, step.headers);
        return;
      case 'reset': {
        const s = res.socket as (Socket & { resetAndDestroy?: () => void }) | null;
        if (s?.resetAndDestroy) s.resetAndDestroy();
        else s?.destroy();
        return;
      }
      case 'hang':
        return;
      case 'reset-after-events':
        stream(req, res, requestId, echo(recordedSse()), step.delayMs ?? delay, step.events);
        return;
      case 'json':
        break;
      case 'sse':
        stream(req, res, requestId, echo(step.body ?? pickBody()), step.delayMs ?? delay, null);
        return;
      default:
        if (wantsStream) {
          stream(req, res, requestId, echo(pickBody()), delay, null);
          return;
        }
    }
    const id = options.uniqueIds ? uniqueMessageId(messageCount) : RECORDED.messageId;
    const json = JSON.stringify({ ...recordedMessageJson(id), ...(options.echoModel && asked ? { model: asked } : {}) });
    res.writeHead(200, { ...baseHeaders(requestId), 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(json)) });
    res.end(json);
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    get count() { return count; },
    get messageCount() { return messageCount; },
    get clientAborts() { return clientAborts; },
    get lastRequest() { return requests[requests.length - 1]; },
    setPlan(p) { plan = [...p]; },
    waitForAborts(n, timeoutMs = 5000) {
      return new Promise((resolve) => {
        if (clientAborts >= n) return resolve(true);
        const t = setTimeout(() => resolve(clientAborts >= n), timeoutMs);
        const check = () => {
          if (clientAborts >= n) {
            clearTimeout(t);
            resolve(true);
          } else abortWaiters.push(check);
        };
        abortWaiters.push(check);
      });
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}

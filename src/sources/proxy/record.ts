import { createHash, randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { RequestRecord } from '../../core/types.js';
import { emptyUsage, requestKey, SOURCE_PROXY } from '../../core/types.js';
import type { ResponseFacts } from './sse-usage.js';

/** What the proxy reads from a request body: never the prompt itself. */
export interface RequestInfo {
  modelRequested: string | null;
  messageCount: number | null;
  /** `session_id` inside `metadata.user_id`. */
  metadataSession: string | null;
  streamRequested: boolean | null;
}

const NO_INFO: RequestInfo = { modelRequested: null, messageCount: null, metadataSession: null, streamRequested: null };

/**
 * Read model, messages count, stream flag and the metadata session from a JSON request body.
 * Anything else (not JSON, not an object, odd types) yields nulls: the body was forwarded untouched anyway.
 */
export function inspectRequestBody(body: Buffer | null): RequestInfo {
  if (!body || body.length === 0) return NO_INFO;
  // Cheap rejection of bodies that cannot be a JSON object.
  let i = 0;
  while (i < body.length && (body[i] === 0x20 || body[i] === 0x0a || body[i] === 0x0d || body[i] === 0x09)) i++;
  if (body[i] !== 0x7b /* { */) return NO_INFO;
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return NO_INFO;
  }
  return inspectRequestDoc(doc);
}

/** `inspectRequestBody` of a body already parsed (the policy path parses it once before forwarding). */
export function inspectRequestDoc(doc: unknown): RequestInfo {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return NO_INFO;
  const d = doc as Record<string, unknown>;
  const meta = d.metadata;
  const userId = typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>).user_id : undefined;
  return {
    modelRequested: typeof d.model === 'string' && d.model ? d.model.slice(0, 200) : null,
    messageCount: Array.isArray(d.messages) ? d.messages.length : null,
    metadataSession: typeof userId === 'string' ? sessionFromUserId(userId) : null,
    streamRequested: typeof d.stream === 'boolean' ? d.stream : null,
  };
}

const UUIDISH = /^[0-9A-Za-z][0-9A-Za-z_-]{0,127}$/;

/**
 * Claude Code's `metadata.user_id` is a JSON string `{"device_id":…,"account_uuid":…,"session_id":…}`
 * (2.1.x); older versions wrote `user_<hash>_account_<uuid>_session_<uuid>`.
 */
export function sessionFromUserId(userId: string): string | null {
  const t = userId.trim();
  if (t.startsWith('{')) {
    try {
      const o = JSON.parse(t) as Record<string, unknown>;
      const s = o?.session_id;
      return typeof s === 'string' && UUIDISH.test(s) ? s : null;
    } catch {
      return null;
    }
  }
  const m = /_session_([0-9A-Za-z-]{8,128})$/.exec(t);
  return m ? m[1] : null;
}

/** Recent key -> hash pairs (a handful of keys are in use): the hash is not recomputed per request. */
const hashCache = new Map<string, string>();

/** First 12 hex of sha256 of the API key (`x-api-key`) or bearer token: the same key hashes the same either way. */
export function keyHash(headers: IncomingHttpHeaders): string | null {
  let key = first(headers['x-api-key']);
  if (!key) {
    const auth = first(headers.authorization);
    if (auth) key = auth.replace(/^\s*bearer\s+/i, '');
  }
  key = key?.trim();
  if (!key) return null;
  let h = hashCache.get(key);
  if (h === undefined) {
    h = createHash('sha256').update(key).digest('hex').slice(0, 12);
    if (hashCache.size >= 64) hashCache.clear();
    hashCache.set(key, h);
  }
  return h;
}

/** `claude-cli/2.1.197 (external, sdk-cli)` -> `2.1.197`. */
export function clientVersionOf(userAgent: string | null): string | null {
  const m = userAgent ? /^claude-cli\/(\d+\.\d+\.\d+[\w.-]*)/.exec(userAgent) : null;
  return m ? m[1] : null;
}

export type Outcome = 'complete' | 'client_aborted' | 'upstream_error';

/** Everything the proxy learned about one exchange, once it is over. */
export interface Exchange {
  /** Epoch ms when the request arrived. */
  startedAt: number;
  method: string;
  /** Path without the query string. */
  endpoint: string;
  headers: IncomingHttpHeaders;
  requestBytes: number;
  /** The request body when it was small enough to inspect, else null. */
  info: RequestInfo;
  httpStatus: number | null;
  outcome: Outcome;
  /** Socket error code (`ECONNRESET`, `ECONNREFUSED`...) when the exchange failed below HTTP. */
  errorCode: string | null;
  /** `request-id` response header. */
  responseRequestId: string | null;
  /** True when the response was an event stream. */
  streamed: boolean;
  facts: ResponseFacts | null;
  /** The model the proxy sent when a budget or route rewrote the request (`info.modelRequested` stays the client's). */
  modelSent?: string | null;
  latencyMs: number;
  ttftMs: number | null;
}

/**
 * Build the stored record of one exchange. Failed attempts (429, 529, resets) are records too, with zero
 * usage, so the retries that transcripts never show are counted. `model` is the model that answered, or
 * the model requested when no answer came (so a failed attempt is attributed, priced at $0).
 */
export function buildRecord(x: Exchange): RequestRecord {
  const f = x.facts;
  const requestId = x.responseRequestId;
  const messageId = f?.messageId ?? null;
  const userAgent = first(x.headers['user-agent'])?.slice(0, 300) ?? null;
  const agentId = clip(first(x.headers['x-claude-code-agent-id']));
  const status = x.outcome === 'complete' ? String(x.httpStatus ?? 0) : x.outcome;
  return {
    key: messageId || requestId ? requestKey(messageId, requestId, '') : requestKey(null, null, randomUUID()),
    requestId,
    messageId,
    ts: x.startedAt,
    sessionId: clip(first(x.headers['x-claude-code-session-id'])) ?? x.info.metadataSession,
    project: null,
    agentId,
    isSubagent: agentId !== null,
    model: f?.model ?? x.modelSent ?? x.info.modelRequested,
    usage: f && f.usageSeen ? f.usage() : emptyUsage(),
    stopReason: f?.stopReason ?? null,
    tools: f ? [...f.tools] : [],
    toolIds: f ? [...f.toolIds] : [],
    clientVersion: clientVersionOf(userAgent),
    sources: SOURCE_PROXY,
    proxy: {
      endpoint: x.endpoint.slice(0, 200),
      modelRequested: x.info.modelRequested,
      stream: x.httpStatus !== null ? x.streamed : x.info.streamRequested === true,
      status,
      errorType: f?.errorType ?? x.errorCode,
      latencyMs: Math.round(x.latencyMs * 1000) / 1000,
      ttftMs: x.ttftMs === null ? null : Math.round(x.ttftMs * 1000) / 1000,
      requestBytes: x.requestBytes,
      messageCount: x.info.messageCount,
      userAgent,
      keyHash: keyHash(x.headers),
    },
  };
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function clip(v: string | undefined): string | null {
  const t = v?.trim();
  return t ? t.slice(0, 200) : null;
}

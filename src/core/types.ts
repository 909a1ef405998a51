/** Token counts of one API request, as billed. */
export interface Usage {
  input: number;
  output: number;
  /** Cache writes with the 5-minute TTL (or unsplit cache writes from old transcripts). */
  cacheWrite5m: number;
  cacheWrite1h: number;
  cacheRead: number;
  webSearches: number;
  webFetches: number;
  /** `usage.speed`: "fast" selects fast-mode rates. */
  speed: string | null;
  /** `usage.inference_geo`: "us" costs x1.1 on Claude 4.6 and later. */
  inferenceGeo: string | null;
  /** `usage.service_tier`: "batch" halves token prices. */
  serviceTier: string | null;
}

export const SOURCE_TRANSCRIPT = 1;
export const SOURCE_PROXY = 2;
export const SOURCE_OTEL = 4;

/** One API request, from whichever source saw it. Records of the same request merge by `key`. */
export interface RequestRecord {
  /** Identity used to merge copies: `m:<message id>`, else `r:<request id>`, else `x:<synthetic>`. */
  key: string;
  requestId: string | null;
  messageId: string | null;
  /** Epoch milliseconds (UTC). */
  ts: number;
  sessionId: string | null;
  project: string | null;
  agentId: string | null;
  isSubagent: boolean;
  /** Model that answered, as written by the API (e.g. `claude-opus-4-8`). */
  model: string | null;
  usage: Usage;
  stopReason: string | null;
  /** Names of tools the response called, in order. */
  tools: string[];
  /** tool_use ids aligned with `tools`, used only to merge copies without double-counting calls. */
  toolIds?: string[];
  /** Claude Code version that wrote the line, when known. */
  clientVersion: string | null;
  sources: number;
  /** What the live proxy saw of the request; absent for records only imported from transcripts. */
  proxy?: ProxyDetails;
}

/** Per-request facts only the live proxy sees (columns added by migration 3). Never holds keys or prompt text. */
export interface ProxyDetails {
  /** Path without the query string, e.g. `/v1/messages`. */
  endpoint: string;
  /** `model` of the request body (the answer's model is `RequestRecord.model`). */
  modelRequested: string | null;
  stream: boolean;
  /** HTTP status as text (`"200"`, `"529"`), or `client_aborted` / `upstream_error`. */
  status: string;
  /** Anthropic error type (`overloaded_error`...) or a socket error code (`ECONNRESET`...). */
  errorType: string | null;
  /** From receiving the request to the end of the response. */
  latencyMs: number;
  /** From receiving the request to the first streamed content delta; null when not streamed. */
  ttftMs: number | null;
  requestBytes: number;
  messageCount: number | null;
  userAgent: string | null;
  /** First 12 hex digits of sha256 of the API key or bearer token: attribution without the secret. */
  keyHash: string | null;
}

export function emptyUsage(): Usage {
  return {
    input: 0, output: 0, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0,
    webSearches: 0, webFetches: 0, speed: null, inferenceGeo: null, serviceTier: null,
  };
}

export function totalTokens(u: Pick<Usage, 'input' | 'output' | 'cacheWrite5m' | 'cacheWrite1h' | 'cacheRead'>): number {
  return u.input + u.output + u.cacheWrite5m + u.cacheWrite1h + u.cacheRead;
}

/** The prompt size a request was billed for: what long-context thresholds compare against. */
export function promptTokens(u: Pick<Usage, 'input' | 'cacheWrite5m' | 'cacheWrite1h' | 'cacheRead'>): number {
  return u.input + u.cacheWrite5m + u.cacheWrite1h + u.cacheRead;
}

/** Key that merges every copy of one request: message id first (transcripts and proxy both see it). */
export function requestKey(messageId: string | null, requestId: string | null, fallback: string): string {
  if (messageId) return `m:${messageId}`;
  if (requestId) return `r:${requestId}`;
  return `x:${fallback}`;
}

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

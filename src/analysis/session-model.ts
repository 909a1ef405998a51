/**
 * The shared model behind the session audit, tool attribution, insights and what-if: one session's requests
 * split into threads (the main conversation and each subagent are separate contexts), ordered by time,
 * priced, with every tool result placed in the requests that re-sent it. Pure: arrays in, model out.
 * Definitions and formulas: docs/insights.md.
 */
import type { StoredRequest } from '../store/store.js';
import { CHARS_PER_TOKEN, type Compaction, type ToolCall, type ToolResult } from '../core/session-facts.js';
import type { PriceBook, PricedRequest } from '../core/pricing/pricebook.js';
import { SYNTHETIC_MODEL } from '../core/pricing/catalog.js';
import { promptTokens, type Usage } from '../core/types.js';

export const MAIN_THREAD = 'main';
/** Subagent lines written inline in the session file without an agent id (Claude Code 1.0.x). */
export const SIDECHAIN_THREAD = 'sidechain';

/** A context whose prompt falls below this share of the previous request's was reset (see docs/insights.md). */
export const CONTEXT_DROP_RATIO = 0.5;
/** ... and only when the previous prompt was at least this large (small prompts jump around legitimately). */
export const CONTEXT_DROP_MIN_TOKENS = 20_000;

export interface ModelRequest {
  req: StoredRequest;
  thread: string;
  /** Position in its thread (0-based). */
  index: number;
  /** Position in the session, all threads merged by time (0-based). */
  order: number;
  /** input + cache writes + cache reads: the context sent. */
  prompt: number;
  priced: PricedRequest;
  /** USD, null when the model has no price. */
  cost: number | null;
  /** USD of the prompt side only (input + cache writes + cache reads), null when unpriced. */
  promptCost: number | null;
  /** promptCost / prompt: the average price of one context token in this request (USD per token). */
  promptRate: number | null;
}

export type ResetKind = 'compaction' | 'context-drop';

export interface ThreadReset {
  /** Index of the first request of the thread sent after the reset. */
  index: number;
  kind: ResetKind;
  ts: number;
  compaction?: Compaction;
}

export interface ModelThread {
  id: string;
  agentId: string | null;
  requests: ModelRequest[];
  resets: ThreadReset[];
  /**
   * Inline sidechain lines without an agent id (Claude Code 1.0.x): parallel subagents may interleave in one
   * thread, so growth between consecutive requests is not one context's. No exact sizes, no cache heuristics.
   */
  interleaved: boolean;
}

export type TokenMethod = 'exact' | 'estimated';
export type CarryEnd = 'compaction' | 'context-drop' | 'thread-end' | 'never-sent';

export interface ModelResult {
  result: ToolResult;
  call: ToolCall | null;
  name: string;
  target: string | null;
  thread: string;
  chars: number;
  /** Tokens the result added to the context (integer). */
  tokens: number;
  method: TokenMethod;
  /** Index (in its thread) of the first request that sent the result, null when none did. */
  firstSent: number | null;
  /** Exclusive end: the result was in the context of requests [firstSent, end). */
  end: number;
  endReason: CarryEnd;
}

export interface SessionModel {
  sessionId: string;
  project: string | null;
  /** Every modelled request in session order. */
  requests: ModelRequest[];
  threads: ModelThread[];
  results: ModelResult[];
  calls: ToolCall[];
  compactions: Compaction[];
  /** Proxy records of failed attempts (status not 2xx): kept out of the threads, used to find retries. */
  failed: StoredRequest[];
  /** `<synthetic>` lines (Claude Code's local error messages): no usage, left out. */
  syntheticCount: number;
  /** Requests without a session id (some proxy records): priced one by one, never treated as one context. */
  unthreaded?: boolean;
}

export interface SessionInput {
  sessionId: string;
  requests: StoredRequest[];
  calls: ToolCall[];
  results: ToolResult[];
  compactions: Compaction[];
}

export function threadIdOf(r: { agentId: string | null; isSubagent: boolean }): string {
  if (r.agentId) return `agent-${r.agentId}`;
  return r.isSubagent ? SIDECHAIN_THREAD : MAIN_THREAD;
}

/** A proxy record of an attempt that did not succeed (HTTP status other than 2xx, aborted, upstream error). */
export function isFailedAttempt(r: StoredRequest): boolean {
  return r.proxy !== undefined && !/^2\d\d$/.test(r.proxy.status);
}

/** Cost of the prompt side of a priced request. */
export function promptCostOf(p: PricedRequest): number | null {
  if (!p.breakdown || p.cost === null) return null;
  const b = p.breakdown;
  return b.input + b.cacheWrite5m + b.cacheWrite1h + b.cacheRead;
}

export function estimateTokens(chars: number): number {
  return Math.round(chars / CHARS_PER_TOKEN);
}

export function buildSessionModel(input: SessionInput, prices: PriceBook): SessionModel {
  const failed: StoredRequest[] = [];
  let syntheticCount = 0;
  const kept: StoredRequest[] = [];
  for (const r of input.requests) {
    if (r.model === SYNTHETIC_MODEL) syntheticCount++;
    else if (isFailedAttempt(r)) failed.push(r);
    else kept.push(r);
  }
  kept.sort((a, b) => a.ts - b.ts || a.key.localeCompare(b.key));

  const threads = new Map<string, ModelThread>();
  // Inline sidechains are cut into segments at main-thread activity: a Task blocks the main thread, so a
  // subagent's context ends when the main conversation resumes.
  let segment = 0;
  let lastWasMain = true;
  const requests: ModelRequest[] = kept.map((req, order) => {
    let thread = threadIdOf(req);
    if (thread === SIDECHAIN_THREAD) {
      if (lastWasMain) segment++;
      thread = `${SIDECHAIN_THREAD}-${segment}`;
      lastWasMain = false;
    } else if (thread === MAIN_THREAD) lastWasMain = true;
    let t = threads.get(thread);
    if (!t) {
      threads.set(thread, (t = { id: thread, agentId: req.agentId, requests: [], resets: [], interleaved: thread.startsWith(SIDECHAIN_THREAD) }));
    }
    const priced = prices.price(req.model, req.ts, req.usage);
    const prompt = promptTokens(req.usage);
    const promptCost = promptCostOf(priced);
    const mr: ModelRequest = {
      req, thread, index: t.requests.length, order, prompt, priced, cost: priced.cost, promptCost,
      promptRate: promptCost === null ? null : prompt > 0 ? promptCost / prompt : 0,
    };
    t.requests.push(mr);
    return mr;
  });

  // Context resets: recorded compactions, and unrecorded drops (context editing, mixed inline sidechains).
  const compactions = [...input.compactions].sort((a, b) => a.ts - b.ts);
  for (const c of compactions) {
    const t = threads.get(c.agentId ? `agent-${c.agentId}` : MAIN_THREAD);
    if (!t) continue;
    const index = t.requests.findIndex((r) => r.req.ts > c.ts);
    if (index >= 0) t.resets.push({ index, kind: 'compaction', ts: c.ts, compaction: c });
  }
  for (const t of threads.values()) {
    for (let j = 1; j < t.requests.length && !t.interleaved; j++) {
      const prev = t.requests[j - 1].prompt;
      const cur = t.requests[j].prompt;
      if (prev >= CONTEXT_DROP_MIN_TOKENS && cur < prev * CONTEXT_DROP_RATIO && !t.resets.some((x) => x.index === j)) {
        t.resets.push({ index: j, kind: 'context-drop', ts: t.requests[j].req.ts });
      }
    }
    t.resets.sort((a, b) => a.index - b.index || a.ts - b.ts);
  }

  const byKey = new Map(requests.map((r) => [r.req.key, r]));
  const callsById = new Map(input.calls.map((c) => [c.toolUseId, c]));
  const results: ModelResult[] = [];
  for (const res of input.results) {
    const call = callsById.get(res.toolUseId) ?? null;
    const caller = call ? byKey.get(call.requestKey) : undefined;
    let thread: ModelThread | undefined;
    let firstSent: number | null = null;
    if (caller) {
      // The API requires tool results in the very next request of the conversation that called the tool.
      thread = threads.get(caller.thread)!;
      firstSent = caller.index + 1 < thread.requests.length ? caller.index + 1 : null;
    } else {
      thread = threads.get(res.agentId ? `agent-${res.agentId}` : MAIN_THREAD);
      if (thread) {
        const j = thread.requests.findIndex((r) => r.req.ts > res.ts);
        firstSent = j >= 0 ? j : null;
      }
    }
    const threadId = thread?.id ?? (res.agentId ? `agent-${res.agentId}` : MAIN_THREAD);
    let end = firstSent ?? 0;
    let endReason: CarryEnd = 'never-sent';
    if (thread && firstSent !== null) {
      const reset = thread.resets.find((x) => x.index > firstSent!
        || (x.index === firstSent && x.kind === 'compaction' && x.ts > res.ts));
      end = reset ? reset.index : thread.requests.length;
      endReason = end === firstSent ? 'never-sent' : reset ? reset.kind : 'thread-end';
    }
    results.push({
      result: res, call, name: call?.name ?? '(unknown tool)', target: call?.target ?? null, thread: threadId,
      chars: res.resultChars, tokens: estimateTokens(res.resultChars), method: 'estimated',
      firstSent: endReason === 'never-sent' ? null : firstSent, end, endReason,
    });
  }
  const callChars = new Map<string, number>();
  for (const c of input.calls) callChars.set(c.requestKey, (callChars.get(c.requestKey) ?? 0) + c.inputChars);
  measureExactTokens(threads, results, callChars);

  let project: string | null = null;
  for (const r of requests) if (r.req.project) { project = r.req.project; break; }
  return {
    sessionId: input.sessionId, project, requests, threads: [...threads.values()], results,
    calls: input.calls, compactions, failed, syntheticCount,
  };
}

/**
 * Some Claude Code versions write the output count of an unfinished stream to the transcript (a Write of
 * 22,000 characters recorded with 1 output token). Then prompt(r) - prompt(p) - output(p) also holds p's
 * unrecorded output and measures nothing: p's recorded output is trusted only when it is at least half of
 * its tool-call inputs' characters / CHARS_PER_TOKEN.
 */
export function outputRecorded(p: ModelRequest, callChars: Map<string, number>): boolean {
  return p.req.usage.output >= (callChars.get(p.req.key) ?? 0) / CHARS_PER_TOKEN / 2;
}

/**
 * Where the usage shows it, a result's size is exact: for request r after p in the same thread, the tokens
 * added between them are prompt(r) - prompt(p) - output(p); when positive (and p's output was recorded in
 * full, see outputRecorded) they are split over the results first sent in r in proportion to their
 * characters (largest remainder, so the parts sum to the whole).
 */
function measureExactTokens(threads: Map<string, ModelThread>, results: ModelResult[], callChars: Map<string, number>): void {
  const sentAt = new Map<string, ModelResult[]>();
  for (const x of results) {
    if (x.firstSent === null) continue;
    const k = `${x.thread}\u0000${x.firstSent}`;
    let list = sentAt.get(k);
    if (!list) sentAt.set(k, (list = []));
    list.push(x);
  }
  for (const [k, list] of sentAt) {
    const [threadId, idx] = k.split('\u0000');
    const j = Number(idx);
    const t = threads.get(threadId);
    if (!t || t.interleaved || j === 0 || t.resets.some((x) => x.index === j)) continue;
    const r = t.requests[j];
    const p = t.requests[j - 1];
    const delta = r.prompt - p.prompt - p.req.usage.output;
    if (delta <= 0 || !outputRecorded(p, callChars)) continue;
    const totalChars = list.reduce((s, x) => s + x.chars, 0);
    const shares = list.map((x) => (totalChars > 0 ? (delta * x.chars) / totalChars : delta / list.length));
    const parts = shares.map(Math.floor);
    let rest = delta - parts.reduce((s, x) => s + x, 0);
    const order = shares.map((s, i) => [s - Math.floor(s), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    for (const [, i] of order) {
      if (rest <= 0) break;
      parts[i]++;
      rest--;
    }
    list.forEach((x, i) => {
      x.tokens = parts[i];
      x.method = 'exact';
    });
  }
}

/** Re-price a request with other usage (and optionally another model); null when unpriced. */
export function repriced(prices: PriceBook, r: ModelRequest, usage: Usage, model: string | null = r.req.model): number | null {
  return prices.price(model, r.req.ts, usage).cost;
}

/** Scale a usage's prompt side to `newPrompt` tokens keeping its input / write / read mix (output unchanged). */
export function scalePrompt(u: Usage, newPrompt: number): Usage {
  const prompt = promptTokens(u);
  if (prompt <= 0 || newPrompt >= prompt) return { ...u };
  const f = Math.max(0, newPrompt) / prompt;
  const cacheRead = Math.round(u.cacheRead * f);
  const cacheWrite1h = Math.round(u.cacheWrite1h * f);
  const cacheWrite5m = Math.round(u.cacheWrite5m * f);
  const input = Math.max(0, Math.round(newPrompt) - cacheRead - cacheWrite1h - cacheWrite5m);
  return { ...u, input, cacheWrite5m, cacheWrite1h, cacheRead };
}

/** Move `tokens` cache-write tokens to cache reads, taken from the 5m and 1h classes in proportion. */
export function writesAsReads(u: Usage, tokens: number): Usage {
  const writes = u.cacheWrite5m + u.cacheWrite1h;
  const n = Math.min(writes, Math.max(0, Math.round(tokens)));
  if (n === 0) return { ...u };
  const from1h = Math.round((n * u.cacheWrite1h) / writes);
  const from5m = n - from1h;
  return { ...u, cacheWrite5m: u.cacheWrite5m - from5m, cacheWrite1h: u.cacheWrite1h - from1h, cacheRead: u.cacheRead + n };
}

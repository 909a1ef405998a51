/**
 * The turn-by-turn audit of one session: per request the context sent, output, cost, cache hit rate and
 * cumulative cost; context growth per thread; compaction points; paid cache expiries; cache writes that
 * should have been reads. Pure: a SessionModel (session-model.ts) and a PriceBook in, numbers out.
 * Heuristics and formulas: docs/insights.md.
 */
import type { PriceBook } from '../core/pricing/pricebook.js';
import type { Usage } from '../core/types.js';
import { writesAsReads, type ModelRequest, type ResetKind, type SessionModel } from './session-model.js';

export const TTL_5M_MS = 5 * 60_000;
export const TTL_1H_MS = 60 * 60_000;
/** Prefix change: the request wrote at least this share of its prompt to the cache ... */
export const PREFIX_WRITE_SHARE = 0.5;
/** ... while the previous request's prompt was at least this share of this one (a similar-size prefix) ... */
export const PREFIX_SIMILAR_SHARE = 0.5;
/** ... and read back less than this share of that previous prompt. */
export const PREFIX_READ_SHARE = 0.5;

export type RowNote = 'compaction' | 'context-drop' | 'cache-expiry' | 'prefix-change' | 'model-change';

export interface AuditRow {
  /** 1-based position in the session (all threads, by time). */
  n: number;
  key: string;
  messageId: string | null;
  ts: number;
  thread: string;
  model: string | null;
  input: number;
  output: number;
  cacheWrite5m: number;
  cacheWrite1h: number;
  cacheRead: number;
  /** Context sent: input + cache writes + cache reads. */
  context: number;
  /** context minus the previous request's in the same thread; null for a thread's first request. */
  growth: number | null;
  /** USD; null when the model has no price. */
  cost: number | null;
  /** Sum of the known costs of this and every earlier request of the session. */
  cumulativeCost: number;
  /** Cache reads / context. */
  cacheHitRate: number;
  /** Time since the previous request of the same thread. */
  gapMs: number | null;
  /** Tokens of the tool results this request sent for the first time. */
  toolResultTokens: number;
  tools: string[];
  notes: RowNote[];
}

export interface CacheEvent {
  kind: 'cache-expiry' | 'prefix-change';
  n: number;
  thread: string;
  ts: number;
  gapMs: number;
  ttlMs: number;
  /** Tokens written again that the previous request had already put in the cache. */
  rewrittenTokens: number;
  /** Cost of the request as it was. */
  cost: number | null;
  /** Cost had those tokens been cache reads. */
  costIfRead: number | null;
  extraCost: number | null;
  reason: string;
}

export interface IdleGap {
  n: number;
  thread: string;
  gapMs: number;
  ttlMs: number;
  cacheWrite: number;
  cacheRead: number;
  paidExpiry: boolean;
}

export interface CompactionPoint {
  kind: ResetKind;
  thread: string;
  ts: number;
  trigger: string | null;
  preTokens: number | null;
  /** Context of the thread's last request before the reset, and its first after (null when none). */
  contextBefore: number | null;
  contextAfter: number | null;
  /** Row number of the first request after the reset. */
  n: number | null;
}

export interface ThreadSummary {
  thread: string;
  agentId: string | null;
  /** Inline sidechain segment in which parallel subagents may interleave (growth approximate, no cache heuristics). */
  interleaved: boolean;
  models: string[];
  requests: number;
  cost: number;
  costComplete: boolean;
  firstContext: number;
  lastContext: number;
  peakContext: number;
  /** Mean of the per-request growth, resets excluded. */
  meanGrowth: number;
  resets: number;
}

export interface AuditTotals {
  requests: number;
  input: number;
  output: number;
  cacheWrite5m: number;
  cacheWrite1h: number;
  cacheRead: number;
  context: number;
  /** Known cost, USD. */
  cost: number;
  unpricedRequests: number;
  unpricedModels: string[];
  cacheHitRate: number;
  cacheExpiryCost: number;
  prefixChangeCost: number;
}

export interface SessionAudit {
  sessionId: string;
  project: string | null;
  firstTs: number | null;
  lastTs: number | null;
  models: string[];
  totals: AuditTotals;
  rows: AuditRow[];
  threads: ThreadSummary[];
  compactions: CompactionPoint[];
  cacheExpiries: CacheEvent[];
  prefixChanges: CacheEvent[];
  idleGaps: IdleGap[];
  /** Left out of the rows: Claude Code's local `<synthetic>` error lines, failed proxy attempts. */
  skipped: { synthetic: number; failedAttempts: number };
}

const writesOf = (u: Usage) => u.cacheWrite5m + u.cacheWrite1h;

export function auditSession(model: SessionModel, prices: PriceBook): SessionAudit {
  const rows: AuditRow[] = [];
  const rowOf = new Map<ModelRequest, AuditRow>();
  let cumulative = 0;
  for (const r of model.requests) {
    const u = r.req.usage;
    if (r.cost !== null) cumulative += r.cost;
    const row: AuditRow = {
      n: r.order + 1, key: r.req.key, messageId: r.req.messageId, ts: r.req.ts, thread: r.thread, model: r.req.model,
      input: u.input, output: u.output, cacheWrite5m: u.cacheWrite5m, cacheWrite1h: u.cacheWrite1h, cacheRead: u.cacheRead,
      context: r.prompt, growth: null, cost: r.cost, cumulativeCost: cumulative,
      cacheHitRate: r.prompt > 0 ? u.cacheRead / r.prompt : 0, gapMs: null, toolResultTokens: 0, tools: r.req.tools, notes: [],
    };
    rows.push(row);
    rowOf.set(r, row);
  }
  for (const x of model.results) {
    if (x.firstSent === null) continue;
    const t = model.threads.find((t) => t.id === x.thread);
    const r = t?.requests[x.firstSent];
    if (r) rowOf.get(r)!.toolResultTokens += x.tokens;
  }

  const cacheExpiries: CacheEvent[] = [];
  const prefixChanges: CacheEvent[] = [];
  const idleGaps: IdleGap[] = [];
  const compactions: CompactionPoint[] = [];
  const threads: ThreadSummary[] = [];

  for (const t of model.threads) {
    let ttl = TTL_5M_MS;
    const growths: number[] = [];
    for (let j = 0; j < t.requests.length; j++) {
      const r = t.requests[j];
      const row = rowOf.get(r)!;
      const u = r.req.usage;
      const reset = t.resets.find((x) => x.index === j);
      if (j > 0) {
        const p = t.requests[j - 1];
        row.growth = r.prompt - p.prompt;
        row.gapMs = r.req.ts - p.req.ts;
        if (reset) row.notes.push(reset.kind);
        else growths.push(row.growth);
        if (r.req.model !== p.req.model) row.notes.push('model-change');
        const writes = writesOf(u);
        const rewritten = Math.min(writes, Math.max(0, p.prompt - u.cacheRead));
        if (t.interleaved) {
          // several subagents may interleave here: no cache heuristics
        } else if (row.gapMs > ttl) {
          const paid = !reset && writes > 0 && u.cacheRead < writes && rewritten > 0;
          idleGaps.push({ n: row.n, thread: t.id, gapMs: row.gapMs, ttlMs: ttl, cacheWrite: writes, cacheRead: u.cacheRead, paidExpiry: paid });
          if (paid) {
            row.notes.push('cache-expiry');
            cacheExpiries.push(cacheEvent('cache-expiry', prices, r, row, ttl, rewritten,
              `idle ${formatGap(row.gapMs)} > cache lifetime ${ttl === TTL_1H_MS ? '1h' : '5m'}: ${rewritten} tokens written again`));
          }
        } else if (!reset && writes >= PREFIX_WRITE_SHARE * r.prompt && p.prompt >= PREFIX_SIMILAR_SHARE * r.prompt
          && writesOf(p.req.usage) + p.req.usage.cacheRead >= 0.5 * p.prompt && u.cacheRead < PREFIX_READ_SHARE * p.prompt
          && rewritten > 0) {
          row.notes.push('prefix-change');
          const reason = r.req.model !== p.req.model
            ? `model switched from ${p.req.model} (each model has its own cache)`
            : 'prompt prefix changed within the cache lifetime (tools, system prompt or earlier messages differ)';
          prefixChanges.push(cacheEvent('prefix-change', prices, r, row, ttl, rewritten, reason));
        }
      }
      // The cache lifetime that applies after this request: the TTL its writes used (reads refresh it).
      if (u.cacheWrite1h > 0 && u.cacheWrite1h >= u.cacheWrite5m) ttl = TTL_1H_MS;
      else if (u.cacheWrite5m > 0) ttl = TTL_5M_MS;
    }
    for (const reset of t.resets) {
      const after = t.requests[reset.index];
      const before = reset.index > 0 ? t.requests[reset.index - 1] : undefined;
      compactions.push({
        kind: reset.kind, thread: t.id, ts: reset.ts, trigger: reset.compaction?.trigger ?? null,
        preTokens: reset.compaction?.preTokens ?? null, contextBefore: before?.prompt ?? null,
        contextAfter: after?.prompt ?? null, n: after ? rowOf.get(after)!.n : null,
      });
    }
    const models = [...new Set(t.requests.map((r) => r.req.model ?? '(unknown model)'))];
    const prompts = t.requests.map((r) => r.prompt);
    threads.push({
      thread: t.id, agentId: t.agentId, interleaved: t.interleaved, models, requests: t.requests.length,
      cost: t.requests.reduce((s, r) => s + (r.cost ?? 0), 0),
      costComplete: t.requests.every((r) => r.cost !== null),
      firstContext: prompts[0] ?? 0, lastContext: prompts[prompts.length - 1] ?? 0,
      peakContext: prompts.reduce((a, b) => Math.max(a, b), 0),
      meanGrowth: growths.length ? growths.reduce((a, b) => a + b, 0) / growths.length : 0,
      resets: t.resets.length,
    });
  }
  // Compactions after a thread's last request reset nothing we can see, but they are still compaction points.
  for (const c of model.compactions) {
    const thread = c.agentId ? `agent-${c.agentId}` : 'main';
    if (compactions.some((x) => x.kind === 'compaction' && x.ts === c.ts && x.thread === thread)) continue;
    const t = model.threads.find((x) => x.id === thread);
    const before = t ? [...t.requests].reverse().find((r) => r.req.ts <= c.ts) : undefined;
    compactions.push({
      kind: 'compaction', thread, ts: c.ts, trigger: c.trigger, preTokens: c.preTokens,
      contextBefore: before?.prompt ?? null, contextAfter: null, n: null,
    });
  }
  compactions.sort((a, b) => a.ts - b.ts);
  cacheExpiries.sort((a, b) => a.n - b.n);
  prefixChanges.sort((a, b) => a.n - b.n);
  idleGaps.sort((a, b) => a.n - b.n);

  const totals: AuditTotals = {
    requests: rows.length, input: 0, output: 0, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0, context: 0, cost: 0,
    unpricedRequests: 0, unpricedModels: [], cacheHitRate: 0,
    cacheExpiryCost: cacheExpiries.reduce((s, e) => s + (e.extraCost ?? 0), 0),
    prefixChangeCost: prefixChanges.reduce((s, e) => s + (e.extraCost ?? 0), 0),
  };
  const unpriced = new Set<string>();
  for (const row of rows) {
    totals.input += row.input;
    totals.output += row.output;
    totals.cacheWrite5m += row.cacheWrite5m;
    totals.cacheWrite1h += row.cacheWrite1h;
    totals.cacheRead += row.cacheRead;
    totals.context += row.context;
    if (row.cost === null) {
      totals.unpricedRequests++;
      unpriced.add(row.model ?? '(unknown model)');
    } else totals.cost += row.cost;
  }
  totals.unpricedModels = [...unpriced].sort();
  totals.cacheHitRate = totals.context > 0 ? totals.cacheRead / totals.context : 0;
  return {
    sessionId: model.sessionId, project: model.project,
    firstTs: rows.length ? rows[0].ts : null, lastTs: rows.length ? rows[rows.length - 1].ts : null,
    models: [...new Set(rows.map((r) => r.model ?? '(unknown model)'))].sort(),
    totals, rows, threads, compactions, cacheExpiries, prefixChanges, idleGaps,
    skipped: { synthetic: model.syntheticCount, failedAttempts: model.failed.length },
  };
}

function cacheEvent(kind: CacheEvent['kind'], prices: PriceBook, r: ModelRequest, row: AuditRow, ttl: number,
  rewritten: number, reason: string): CacheEvent {
  const costIfRead = prices.price(r.req.model, r.req.ts, writesAsReads(r.req.usage, rewritten)).cost;
  return {
    kind, n: row.n, thread: row.thread, ts: row.ts, gapMs: row.gapMs ?? 0, ttlMs: ttl, rewrittenTokens: rewritten,
    cost: r.cost, costIfRead, extraCost: r.cost !== null && costIfRead !== null ? r.cost - costIfRead : null, reason,
  };
}

export function formatGap(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  return `${h}h${String(m % 60).padStart(2, '0')}m`;
}

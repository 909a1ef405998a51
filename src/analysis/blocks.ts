/**
 * 5-hour billing blocks, with ccusage's rules (../shared/reference/ccusage-study.md §b.6):
 * - requests sorted by time; the first opens a block starting at its time floored to the hour (UTC epoch
 *   hours, whatever the display time zone);
 * - a request starts a new block when more than 5 h passed since the block's start or since the previous
 *   request; when the gap since the previous request exceeds 5 h, a gap block from (previous + 5 h) to the
 *   new request is listed between them;
 * - a block ends at start + 5 h; it is active while now < end and now - last request < 5 h;
 * - burn rate = tokens / minutes and cost / hours between the block's first and last request;
 *   projection to the block end (active block only) = current + burn rate x minutes remaining.
 * Costs are sums of known prices; tokens of unpriced models are counted apart (never a silent $0).
 */
import type { Store, UsagePoint } from '../store/store.js';

export const BLOCK_MS = 5 * 3_600_000;
const HOUR = 3_600_000;

export interface BlockTokens {
  input: number;
  output: number;
  cacheCreation: number;
  cacheRead: number;
  total: number;
}

export interface BurnRate {
  /** All tokens (input, output, cache writes and reads) per minute. */
  tokensPerMinute: number;
  /** Input + output tokens per minute (what ccusage's burn indicator uses). */
  inputOutputTokensPerMinute: number;
  /** Known cost per hour, USD. */
  costPerHour: number;
}

export interface BlockProjection {
  remainingMinutes: number;
  projectedTokens: number;
  /** Known cost projected to the block end, USD. */
  projectedCost: number;
}

export interface Block {
  /** Start instant in ISO form; gap blocks are `gap-<start>`. */
  id: string;
  isGap: boolean;
  startTs: number;
  /** start + 5 h (for a gap block: the next request). */
  endTs: number;
  firstTs: number | null;
  /** Last request in the block (ccusage's actualEndTime). */
  lastTs: number | null;
  isActive: boolean;
  requests: number;
  tokens: BlockTokens;
  /** Sum of known costs, USD. */
  cost: number;
  /** Tokens of requests whose model has no price: the block's cost is incomplete when > 0. */
  unknownCostTokens: number;
  unknownCostRequests: number;
  models: string[];
  burnRate: BurnRate | null;
  projection: BlockProjection | null;
}

export interface BlockOptions {
  now: number;
  /** Block length, default 5 h. */
  blockMs?: number;
}

function emptyBlock(startTs: number, blockMs: number): Block {
  return {
    id: new Date(startTs).toISOString(), isGap: false, startTs, endTs: startTs + blockMs, firstTs: null, lastTs: null,
    isActive: false, requests: 0, tokens: { input: 0, output: 0, cacheCreation: 0, cacheRead: 0, total: 0 },
    cost: 0, unknownCostTokens: 0, unknownCostRequests: 0, models: [], burnRate: null, projection: null,
  };
}

const floorHour = (ts: number) => Math.floor(ts / HOUR) * HOUR;

/** Split requests (any order) into 5-hour blocks, oldest first, with gap blocks between idle stretches. */
export function identifyBlocks(points: UsagePoint[], opts: BlockOptions): Block[] {
  const blockMs = opts.blockMs ?? BLOCK_MS;
  const sorted = isSorted(points) ? points : [...points].sort((a, b) => a.ts - b.ts);
  const blocks: Block[] = [];
  let cur: Block | null = null;
  let models = new Set<string>();
  let prevTs = 0;
  const close = () => {
    if (!cur) return;
    cur.models = [...models].sort();
    finish(cur, opts.now, blockMs);
    blocks.push(cur);
  };
  for (const p of sorted) {
    if (!cur || p.ts - cur.startTs > blockMs || p.ts - prevTs > blockMs) {
      close();
      if (cur && p.ts - prevTs > blockMs) {
        const gapStart = prevTs + blockMs;
        blocks.push({ ...emptyBlock(gapStart, blockMs), id: `gap-${new Date(gapStart).toISOString()}`, isGap: true, endTs: p.ts });
      }
      cur = emptyBlock(floorHour(p.ts), blockMs);
      models = new Set();
    }
    add(cur, p);
    if (p.model) models.add(p.model);
    prevTs = p.ts;
  }
  close();
  return blocks;
}

function isSorted(points: UsagePoint[]): boolean {
  for (let i = 1; i < points.length; i++) if (points[i].ts < points[i - 1].ts) return false;
  return true;
}

function add(b: Block, p: UsagePoint): void {
  b.requests++;
  if (b.firstTs === null) b.firstTs = p.ts;
  b.lastTs = p.ts;
  b.tokens.input += p.input;
  b.tokens.output += p.output;
  b.tokens.cacheCreation += p.cacheWrite5m + p.cacheWrite1h;
  b.tokens.cacheRead += p.cacheRead;
  b.tokens.total += p.input + p.output + p.cacheWrite5m + p.cacheWrite1h + p.cacheRead;
  if (p.cost === null) {
    b.unknownCostRequests++;
    b.unknownCostTokens += p.input + p.output + p.cacheWrite5m + p.cacheWrite1h + p.cacheRead;
  } else {
    b.cost += p.cost;
  }
}

function finish(b: Block, now: number, blockMs: number): void {
  b.isActive = b.lastTs !== null && now - b.lastTs < blockMs && now < b.endTs;
  if (b.firstTs !== null && b.lastTs !== null && b.lastTs > b.firstTs) {
    const minutes = (b.lastTs - b.firstTs) / 60_000;
    b.burnRate = {
      tokensPerMinute: b.tokens.total / minutes,
      inputOutputTokensPerMinute: (b.tokens.input + b.tokens.output) / minutes,
      costPerHour: (b.cost / minutes) * 60,
    };
  }
  if (b.isActive) {
    const remainingMinutes = Math.max(0, Math.round((b.endTs - now) / 60_000));
    b.projection = {
      remainingMinutes,
      projectedTokens: Math.round(b.tokens.total + (b.burnRate?.tokensPerMinute ?? 0) * remainingMinutes),
      projectedCost: Math.round((b.cost + ((b.burnRate?.costPerHour ?? 0) / 60) * remainingMinutes) * 100) / 100,
    };
  }
}

/** How far back the hot paths (statusline, live) look for the start of the current block; budgets use the same. */
export const ACTIVE_BLOCK_LOOKBACK_MS = 24 * HOUR;

/**
 * The block holding `now`, or null when there is none (no request in the last 5 h). Reads request times only,
 * then sums the block with one grouped query. Blocks restart after any idle stretch longer than 5 h, so the
 * times are read back from `now` until one is found, up to `lookbackMs`: after more usage than that without a
 * 5-hour pause, the chain starts at the first request of the lookback window (what budgets' block5h windows
 * do too), which can differ from a full replay (`blocks`, or pass `lookbackMs: Infinity` for exactness).
 */
export async function findActiveBlock(store: Store, now: number,
  opts: { blockMs?: number; lookbackMs?: number } = {}): Promise<Block | null> {
  const blockMs = opts.blockMs ?? BLOCK_MS;
  const lookbackMs = opts.lookbackMs ?? ACTIVE_BLOCK_LOOKBACK_MS;
  let span = Math.min(lookbackMs, Math.max(ACTIVE_BLOCK_LOOKBACK_MS, 2 * blockMs));
  for (;;) {
    const fromTs = now - span;
    const times = await store.listRequestTimes(Number.isFinite(fromTs) ? fromTs : 0, now + 1);
    if (times.length === 0 || now - times[times.length - 1] >= blockMs) return null;
    // A request more than 5 h after the previous one (or after the window start) always opens a block.
    let reset = times[0] - fromTs > blockMs ? 0 : -1;
    for (let i = times.length - 1; i > 0; i--) {
      if (times[i] - times[i - 1] > blockMs) {
        reset = i;
        break;
      }
    }
    if (reset === -1 && (span >= lookbackMs || !Number.isFinite(fromTs)
      || (await store.listUsage({ toTs: fromTs, limit: 1, newestFirst: true })).length === 0)) {
      reset = 0; // the lookback is exhausted, or the window holds the whole history
    }
    if (reset === -1) {
      span = Math.min(span * 2, lookbackMs);
      continue;
    }
    // Replay block starts over the times, then sum the last block from its first request.
    let start = -1;
    let first = -1;
    let prev = 0;
    for (let i = reset; i < times.length; i++) {
      const t = times[i];
      if (start === -1 || t - start > blockMs || t - prev > blockMs) {
        start = floorHour(t);
        first = t;
      }
      prev = t;
    }
    const groups = await store.summarize({ fromTs: first, toTs: now + 1 }, ['model']);
    const b = emptyBlock(start, blockMs);
    const models = new Set<string>();
    for (const g of groups) {
      b.requests += g.requests;
      b.tokens.input += g.input;
      b.tokens.output += g.output;
      b.tokens.cacheCreation += g.cacheWrite5m + g.cacheWrite1h;
      b.tokens.cacheRead += g.cacheRead;
      b.cost += g.cost;
      b.unknownCostTokens += g.unknownCostTokens;
      b.unknownCostRequests += g.unknownCostRequests;
      b.firstTs = b.firstTs === null ? g.firstTs : Math.min(b.firstTs, g.firstTs);
      b.lastTs = b.lastTs === null ? g.lastTs : Math.max(b.lastTs, g.lastTs);
      if (g.model) models.add(g.model);
    }
    const t = b.tokens;
    t.total = t.input + t.output + t.cacheCreation + t.cacheRead;
    b.models = [...models].sort();
    finish(b, now, blockMs);
    return b.isActive ? b : null;
  }
}

/** `TOKENTALLY_NOW` (ISO instant or epoch ms) pins the clock for tests and reproducible runs. */
export function clockNow(env: NodeJS.ProcessEnv = process.env): number {
  const pinned = env.TOKENTALLY_NOW?.trim();
  if (pinned) {
    const t = /^\d+$/.test(pinned) ? Number(pinned) : Date.parse(pinned);
    if (Number.isFinite(t)) return t;
  }
  return Date.now();
}

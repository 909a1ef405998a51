/**
 * The reservation ledger: budget enforcement that stays correct under concurrency.
 *
 * Each request reserves its estimated cost in every budget it counts against *before* it is forwarded and
 * settles the actual cost after. `admit()` checks and reserves in one synchronous call (no await between
 * them), so two concurrent requests can never both see the same last dollar: the second one already counts
 * the first one's reservation. A request is admitted while settled spend + outstanding reservations is below
 * the limit, so once the limit is reached at most the requests already in flight (each admitted while there
 * was budget left) can add to the overshoot.
 *
 * Spend = baseline (the store's sum for the period, every source) + costs settled here since the baseline
 * was read + outstanding reservations. Pure logic: baselines come from the caller (see evaluate.ts).
 */
import type { PriceBook } from '../core/pricing/pricebook.js';
import { emptyUsage } from '../core/types.js';
import { alertsFor, type AlertRecord } from './alerts.js';
import {
  block5hWindow, budgetStatus, BLOCK_MS, HOUR, periodWindow, perSession, scopeMatches, spendFilter,
  type BudgetAction, type BudgetDefinition, type BudgetStatus, type PeriodWindow, type RequestContext, type SpendFilter,
  type SpendTotal,
} from './budgets.js';

/** Request bodies are JSON: about 4 characters per token (the JSON keys and escaping make this an over-estimate for prose). */
export const CHARS_PER_TOKEN = 4;

/** Prompt tokens of a request estimated from its body size in bytes: ceil(bytes / 4). */
export function estimatePromptTokens(bodyBytes: number): number {
  return Math.ceil(Math.max(0, bodyBytes) / CHARS_PER_TOKEN);
}

/**
 * Worst-case-leaning cost of a request before it runs: the whole body (bytes / 4) priced as uncached input
 * (cache reads are cheaper; 1-hour cache writes, at 2x, are the one case this under-estimates) plus
 * `max_tokens` of output (the most the request can produce), at the model's price on `ts`, long-context
 * rate included. Null when the model has no price (such requests never count against a budget).
 */
export function estimateRequestCostUsd(prices: PriceBook, model: string | null, bodyBytes: number, maxTokens: number | null, ts: number): number | null {
  if (!model) return null;
  const usage = { ...emptyUsage(), input: estimatePromptTokens(bodyBytes), output: Math.max(0, maxTokens ?? 0) };
  return prices.price(model, ts, usage).cost;
}

export type Decision = 'allow' | 'warn' | 'block' | 'downgrade';

/** One budget's state as seen by a request, before the request's own reservation. */
export interface BudgetCheck {
  budget: BudgetDefinition;
  slot: string;
  window: PeriodWindow;
  sessionId: string | null;
  /** Baseline + settled here. */
  settledUsd: number;
  /** Outstanding reservations of requests in flight. */
  reservedUsd: number;
  exhausted: boolean;
  /** True when the store's baseline had not been loaded (counted as $0). */
  baselineMissing: boolean;
}

export interface ReservationToken {
  readonly id: number;
  readonly slots: readonly string[];
  estimateUsd: number;
}

export interface Admission {
  decision: Decision;
  /** Null when blocked (nothing reserved). Settle or release it exactly once. */
  token: ReservationToken | null;
  /** Every budget that applies to the request. */
  checks: BudgetCheck[];
  /** The exhausted budget behind a block/downgrade/warn decision. */
  deciding: BudgetCheck | null;
}

/** Something the caller must read from the store before `admit()` for an exact answer. */
export interface BaselineNeed {
  slot: string;
  budget: BudgetDefinition;
  window: PeriodWindow;
  filter: SpendFilter;
}

interface Slot {
  budget: BudgetDefinition;
  window: PeriodWindow;
  sessionId: string | null;
  baseline: SpendTotal | undefined;
  /** Costs settled here since the baseline was read: [usd, settledAt]. */
  settled: [number, number][];
  settledUsd: number;
  settledCount: number;
  reservedUsd: number;
  inFlight: number;
  fired: Set<number>;
}

export interface LedgerOptions {
  prices?: PriceBook;
  now?: () => number;
  /**
   * After a refresh, costs settled less than this long before the store query started are kept on top of the
   * new baseline (the recorder may not have written them yet): briefly counted twice rather than missed.
   */
  persistLagMs?: number;
}

/** Context of a budget slot that does not depend on the request (budgets not per session). */
const NO_CONTEXT: RequestContext = { sessionId: null, project: null, model: null, keyHash: null };

const RANK: Record<BudgetAction | 'allow', number> = { allow: 0, warn: 1, downgrade: 2, block: 3 };

export class BudgetLedger {
  private budgets: BudgetDefinition[];
  private readonly slots = new Map<string, Slot>();
  /** Current day/week/month instance per definition: zone arithmetic once per period, not per request. */
  private readonly windows = new WeakMap<BudgetDefinition, PeriodWindow>();
  /** The slot key and window of a budget that is not per session, for its current base window (several calls per request). */
  private readonly shared = new WeakMap<BudgetDefinition, { base: PeriodWindow; key: string; window: PeriodWindow }>();
  private readonly tokens = new Map<number, ReservationToken>();
  private nextId = 1;
  private block: { start: number; last: number } | null = null;
  private blockKnown = false;
  private readonly now: () => number;
  private readonly prices?: PriceBook;
  private readonly persistLagMs: number;

  constructor(budgets: BudgetDefinition[], opts: LedgerOptions = {}) {
    this.budgets = [...budgets];
    this.now = opts.now ?? Date.now;
    this.prices = opts.prices;
    this.persistLagMs = opts.persistLagMs ?? 10_000;
  }

  /** Swap the definitions (after `budget set`/`rm`). Slots of changed or removed budgets are dropped once idle. */
  setBudgets(budgets: BudgetDefinition[]): void {
    this.budgets = [...budgets];
    const live = new Set(budgets.map((b) => `${b.name}@${b.updatedAt}`));
    for (const [k, s] of this.slots) if (!live.has(`${s.budget.name}@${s.budget.updatedAt}`) && s.inFlight === 0) this.slots.delete(k);
  }

  get definitions(): readonly BudgetDefinition[] {
    return this.budgets;
  }

  /** Whether the 5-hour block must be located from the store's recent request times first. */
  needsRecentTimes(): boolean {
    return !this.blockKnown && this.budgets.some((b) => b.period === 'block5h');
  }

  /** Request times (ascending) over the last BLOCK_LOOKBACK_MS, to locate the current 5-hour block. */
  setRecentTimes(times: number[]): void {
    const now = this.now();
    // Requests admitted here may not be in the store yet: keep the latest one this ledger saw. `times` comes sorted
    // and may hold a day of a busy proxy's requests (100,000+): no re-sort or copy unless the extra one falls inside.
    let all = times;
    if (this.block) {
      const extra = this.block.last;
      if (times.length === 0 || extra >= times[times.length - 1]) all = times.concat(extra);
      else all = [...times, extra].sort((a, b) => a - b);
    }
    const w = block5hWindow(all, now);
    let last: number | undefined;
    for (let i = all.length - 1; i >= 0; i--) {
      if (all[i] <= now) {
        last = all[i];
        break;
      }
    }
    this.block = w.active && last !== undefined ? { start: w.start, last } : null;
    this.blockKnown = true;
  }

  /**
   * No request can be refused, downgraded or warned now, whichever it is: every budget has a single current slot
   * (not per session, not scoped to a project, whose match needs a store lookup), that slot is loaded and not
   * exhausted, and the 5-hour block is located. (`decide` only looks at whether a budget is already exhausted.)
   */
  clearForAny(): boolean {
    if (this.budgets.length === 0) return true;
    if (!this.blockKnown && this.budgets.some((b) => b.period === 'block5h')) return false;
    const now = this.now();
    for (const b of this.budgets) {
      if (perSession(b) || b.scope.startsWith('project:')) return false;
      const { slot } = this.slotFor(b, NO_CONTEXT, now, false);
      if (!slot || slot.baseline === undefined) return false;
      if (slot.baseline.cost + slot.settledUsd + slot.reservedUsd >= b.limitUsd) return false;
    }
    return true;
  }

  /** Slots the request will touch whose baseline has not been read from the store yet. */
  baselineNeeds(ctx: RequestContext): BaselineNeed[] {
    const now = this.now();
    const out: BaselineNeed[] = [];
    for (const b of this.applicable(ctx)) {
      const { key, window, slot } = this.slotFor(b, ctx, now, true);
      if (slot!.baseline !== undefined) continue;
      const filter = spendFilter(b, window, ctx.sessionId, this.prices);
      if (filter) out.push({ slot: key, budget: b, window, filter });
    }
    return out;
  }

  /** Set a slot's baseline (the store's sum) and the thresholds already fired in its period. First writer wins. */
  setBaseline(slot: string, spend: SpendTotal, fired: number[] = []): void {
    const s = this.slots.get(slot);
    if (!s || s.baseline !== undefined) return;
    s.baseline = spend;
    for (const t of fired) s.fired.add(t);
  }

  /** Decide without reserving. */
  check(ctx: RequestContext, estimateUsd = 0): Admission {
    return this.decide(ctx, estimateUsd, false);
  }

  /** Decide and, unless blocked, reserve `estimateUsd` in every applicable budget: one synchronous step. */
  admit(ctx: RequestContext, estimateUsd: number | null): Admission {
    return this.decide(ctx, estimateUsd ?? 0, true);
  }

  /** Reserve in the given slots (from `check().checks[i].slot`), without a decision. */
  reserve(slots: string[], estimateUsd: number): ReservationToken {
    const est = Math.max(0, estimateUsd);
    for (const k of slots) {
      const s = this.slots.get(k);
      if (!s) continue;
      s.reservedUsd += est;
      s.inFlight++;
    }
    const token: ReservationToken = { id: this.nextId++, slots: [...slots], estimateUsd: est };
    this.tokens.set(token.id, token);
    return token;
  }

  /** Replace a reservation's estimate (after a downgrade made the request cheaper). */
  adjust(token: ReservationToken, estimateUsd: number): void {
    if (!this.tokens.has(token.id)) return;
    const est = Math.max(0, estimateUsd);
    for (const k of token.slots) {
      const s = this.slots.get(k);
      if (s) s.reservedUsd = Math.max(0, s.reservedUsd - token.estimateUsd + est);
    }
    token.estimateUsd = est;
  }

  /**
   * Replace the reservation by the actual cost (null: unknown or not billed, releases it). Returns the alerts
   * whose threshold the settled spend just reached (each fires once per slot; the store dedups across processes).
   */
  settle(token: ReservationToken, actualUsd: number | null, source = 'proxy'): AlertRecord[] {
    if (!this.tokens.delete(token.id)) return [];
    const now = this.now();
    const out: AlertRecord[] = [];
    for (const k of token.slots) {
      const s = this.slots.get(k);
      if (!s) continue;
      s.reservedUsd = Math.max(0, s.reservedUsd - token.estimateUsd);
      s.inFlight--;
      if (actualUsd !== null && actualUsd > 0) {
        s.settled.push([actualUsd, now]);
        s.settledUsd += actualUsd;
      }
      if (actualUsd !== null) s.settledCount++;
      if (!this.thresholdDue(s)) continue;
      const alerts = alertsFor(this.statusOf(s, now), s.fired, now, source);
      for (const a of alerts) s.fired.add(a.threshold);
      out.push(...alerts);
    }
    return out;
  }

  /** Give back a reservation (the request failed before any cost). */
  release(token: ReservationToken): void {
    this.settle(token, null);
  }

  /** Status of every live slot, spend = baseline + settled (reservations excluded), for logs and `budget status`. */
  statuses(): BudgetStatus[] {
    const now = this.now();
    return [...this.slots.values()].map((s) => this.statusOf(s, now));
  }

  /** Slots to re-read from the store (call periodically: other sources add spend too). */
  refreshTargets(): BaselineNeed[] {
    this.gc();
    const out: BaselineNeed[] = [];
    for (const [slot, s] of this.slots) {
      const filter = spendFilter(s.budget, s.window, s.sessionId, this.prices);
      if (filter) out.push({ slot, budget: s.budget, window: s.window, filter });
    }
    return out;
  }

  /**
   * Install fresh baselines read by a store query that started at `queriedAt`. Costs settled here more than
   * persistLagMs before that are assumed to be in the store now and are dropped from the local sum.
   */
  applyRefresh(results: { slot: string; spend: SpendTotal }[], queriedAt: number): void {
    const cutoff = queriedAt - this.persistLagMs;
    for (const { slot, spend } of results) {
      const s = this.slots.get(slot);
      if (!s) continue;
      s.baseline = spend;
      s.settled = s.settled.filter(([, at]) => at >= cutoff);
      s.settledUsd = s.settled.reduce((a, [usd]) => a + usd, 0);
      s.settledCount = s.settled.length;
    }
  }

  /** Outstanding reservations, all slots (for tests and the proxy's status page). */
  inFlight(): number {
    return this.tokens.size;
  }

  private applicable(ctx: RequestContext): BudgetDefinition[] {
    return this.budgets.filter((b) => scopeMatches(b, ctx, this.prices));
  }

  private currentBlock(now: number): PeriodWindow {
    const b = this.block;
    if (b && now - b.last < BLOCK_MS && now < b.start + BLOCK_MS) return { start: b.start, end: b.start + BLOCK_MS, key: '' };
    const start = Math.floor(now / HOUR) * HOUR;
    return { start, end: start + BLOCK_MS, key: '' };
  }

  /** `base` keyed for this request: per session, or shared by every request of the period (then built once). */
  private composed(b: BudgetDefinition, base: PeriodWindow, ctx: RequestContext): PeriodWindow {
    if (perSession(b)) return { ...base, key: `${base.key}|s:${ctx.sessionId ?? ''}` };
    const memo = this.shared.get(b);
    if (memo && memo.base === base) return memo.window;
    const window = { ...base };
    this.shared.set(b, { base, key: `${b.name}@${b.updatedAt}#${window.key}`, window });
    return window;
  }

  private slotKey(b: BudgetDefinition, window: PeriodWindow): string {
    const memo = this.shared.get(b);
    return memo && memo.window === window ? memo.key : `${b.name}@${b.updatedAt}#${window.key}`;
  }

  private slotFor(b: BudgetDefinition, ctx: RequestContext, now: number, create: boolean): { key: string; window: PeriodWindow; slot?: Slot } {
    let window: PeriodWindow;
    if (b.period === 'block5h') {
      // A single request time at the block's start reproduces the current block (or the one `now` opens).
      const start = this.currentBlock(now).start;
      let base = this.windows.get(b);
      if (!base || base.start !== start || now >= base.end!) {
        base = periodWindow({ period: b.period, timeZone: b.timeZone, weekStart: b.weekStart, scope: 'all' }, now, { recentTimes: [start] });
        this.windows.set(b, base);
      }
      window = this.composed(b, base, ctx);
    } else if (b.period === 'day' || b.period === 'week' || b.period === 'month') {
      let base = this.windows.get(b);
      if (!base || now < base.start || now >= base.end!) {
        base = periodWindow({ period: b.period, timeZone: b.timeZone, weekStart: b.weekStart, scope: 'all' }, now);
        this.windows.set(b, base);
      }
      window = this.composed(b, base, ctx);
    } else {
      window = periodWindow(b, now, { sessionId: ctx.sessionId });
    }
    const key = this.slotKey(b, window);
    let slot = this.slots.get(key);
    if (!slot && create) {
      slot = {
        budget: b, window, sessionId: perSession(b) ? ctx.sessionId : null, baseline: undefined, settled: [], settledUsd: 0,
        settledCount: 0, reservedUsd: 0, inFlight: 0, fired: new Set(),
      };
      this.slots.set(key, slot);
    }
    return { key, window, slot };
  }

  private decide(ctx: RequestContext, estimateUsd: number, reserve: boolean): Admission {
    const now = this.now();
    this.gc();
    const checks: BudgetCheck[] = [];
    let deciding: BudgetCheck | null = null;
    let rank = 0;
    for (const b of this.applicable(ctx)) {
      const { key, slot } = this.slotFor(b, ctx, now, true);
      const s = slot!;
      const settledUsd = (s.baseline?.cost ?? 0) + s.settledUsd;
      const exhausted = settledUsd + s.reservedUsd >= b.limitUsd;
      const check: BudgetCheck = {
        budget: b, slot: key, window: s.window, sessionId: s.sessionId, settledUsd, reservedUsd: s.reservedUsd, exhausted,
        baselineMissing: s.baseline === undefined,
      };
      checks.push(check);
      if (exhausted && RANK[b.action] > rank) {
        rank = RANK[b.action];
        deciding = check;
      }
    }
    const decision: Decision = rank === 0 ? 'allow' : deciding!.budget.action;
    let token: ReservationToken | null = null;
    if (reserve && decision !== 'block') {
      token = this.reserve(checks.map((c) => c.slot), estimateUsd);
      if (this.block && now - this.block.last < BLOCK_MS && now < this.block.start + BLOCK_MS) this.block.last = now;
      else this.block = { start: Math.floor(now / HOUR) * HOUR, last: now };
    }
    return { decision, token, checks, deciding };
  }

  /** Some alert threshold is reached and not fired yet (the percent `statusOf` reports; checked without building it). */
  private thresholdDue(s: Slot): boolean {
    const thresholds = s.budget.alerts;
    if (thresholds.length === 0) return false;
    const percent = (((s.baseline?.cost ?? 0) + s.settledUsd) / s.budget.limitUsd) * 100;
    for (const t of thresholds) if (percent >= t && !s.fired.has(t)) return true;
    return false;
  }

  private statusOf(s: Slot, now: number): BudgetStatus {
    const base = s.baseline ?? { cost: 0, requests: 0, unknownCostRequests: 0, firstTs: null, lastTs: null };
    const spend: SpendTotal = {
      cost: base.cost + s.settledUsd, requests: base.requests + s.settledCount, unknownCostRequests: base.unknownCostRequests,
      firstTs: base.firstTs ?? (s.settled.length ? s.settled[0][1] : null), lastTs: s.settled.length ? now : base.lastTs,
    };
    return budgetStatus(s.budget, s.window, spend, now, s.sessionId);
  }

  /** Drop slots whose period is over and that have nothing in flight. */
  private gc(): void {
    const now = this.now();
    for (const [k, s] of this.slots) {
      if (s.inFlight === 0 && s.window.end !== null && s.window.end <= now) this.slots.delete(k);
    }
  }
}

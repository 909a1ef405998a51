/**
 * Budget evaluation against a store: the glue the CLI (`budget status`, `hook`) and the proxy share.
 * No I/O of its own: everything goes through the `Store` passed in (indexed queries only).
 */
import type { PriceBook } from '../core/pricing/pricebook.js';
import type { Store } from '../store/store.js';
import { alertsFor, type AlertRecord } from './alerts.js';
import {
  BLOCK_LOOKBACK_MS, budgetStatus, periodWindow, perSession, scopeMatches, spendFilter,
  type BudgetDefinition, type BudgetStatus, type RequestContext,
} from './budgets.js';
import type { BudgetLedger } from './reservations.js';

export interface EvaluateOptions {
  prices?: PriceBook;
  /** Only budgets that apply to this request/prompt (the hook, the proxy). Without it: every budget. */
  ctx?: RequestContext;
  /** Session for per-session budgets when no ctx is given (default: the most recent session in the store). */
  sessionId?: string | null;
}

/** Status of each budget now, spend read from the store (every source). */
export async function evaluateBudgets(store: Store, budgets: BudgetDefinition[], now: number, opts: EvaluateOptions = {}): Promise<BudgetStatus[]> {
  const list = opts.ctx ? budgets.filter((b) => scopeMatches(b, opts.ctx!, opts.prices)) : budgets;
  if (list.length === 0) return [];
  const recentTimes = list.some((b) => b.period === 'block5h') ? await store.listRequestTimes(now - BLOCK_LOOKBACK_MS, now + 1) : undefined;
  let sessionId = opts.ctx ? opts.ctx.sessionId : opts.sessionId;
  if (sessionId === undefined && list.some(perSession)) {
    const [latest] = await store.listRequests({ toTs: now + 1, limit: 1 });
    sessionId = latest?.sessionId ?? null;
  }
  const out: BudgetStatus[] = [];
  for (const b of list) {
    const sid = perSession(b) ? (sessionId ?? null) : null;
    const window = periodWindow(b, now, { recentTimes, sessionId: sid });
    const filter = spendFilter(b, window, sid, opts.prices);
    const spend = filter ? await store.sumSpend(filter) : { cost: 0, requests: 0, unknownCostRequests: 0, firstTs: null, lastTs: null };
    if (b.period === 'session' && spend.firstTs !== null) window.start = spend.firstTs;
    out.push(budgetStatus(b, window, spend, now, sid));
  }
  return out;
}

/**
 * Store the alerts these statuses are due (thresholds reached and not fired yet in their period) and return
 * the ones actually recorded: another process that recorded the same alert first wins, so each fires once.
 */
export async function recordDueAlerts(store: Store, statuses: BudgetStatus[], now: number, source: string): Promise<AlertRecord[]> {
  const out: AlertRecord[] = [];
  for (const s of statuses) {
    if (s.budget.alerts.length === 0 || s.budget.alerts[0] > s.percent) continue;
    const fired = (await store.listAlerts({ budget: s.budget.name, budgetVersion: s.budget.updatedAt, periodKey: s.window.key }))
      .map((a) => a.threshold);
    for (const a of alertsFor(s, fired, now, source)) {
      const saved = await store.recordAlert(a);
      if (saved) out.push(saved);
    }
  }
  return out;
}

/** Record ledger alerts (from `settle()`); the store drops ones another process already fired. */
export async function recordAlerts(store: Pick<Store, 'recordAlert'>, alerts: AlertRecord[]): Promise<AlertRecord[]> {
  const out: AlertRecord[] = [];
  for (const a of alerts) {
    const saved = await store.recordAlert(a);
    if (saved) out.push(saved);
  }
  return out;
}

/**
 * Load what `ledger.admit(ctx, ...)` needs from the store: the recent request times (5-hour blocks) and the
 * baseline spend and fired thresholds of each budget period the request touches. Await it, then call
 * `admit()` synchronously.
 */
export async function prepareLedger(ledger: BudgetLedger, store: Pick<Store, 'listRequestTimes' | 'sumSpend' | 'listAlerts'>, ctx: RequestContext, now = Date.now()): Promise<void> {
  if (ledger.needsRecentTimes()) ledger.setRecentTimes(await store.listRequestTimes(now - BLOCK_LOOKBACK_MS, now + 1));
  for (const need of ledger.baselineNeeds(ctx)) {
    const spend = await store.sumSpend(need.filter);
    const fired = (await store.listAlerts({ budget: need.budget.name, budgetVersion: need.budget.updatedAt, periodKey: need.window.key }))
      .map((a) => a.threshold);
    ledger.setBaseline(need.slot, spend, fired);
  }
}

/** Re-read every live budget period from the store (other sources add spend too); call every few seconds. */
export async function refreshLedger(ledger: BudgetLedger, store: Pick<Store, 'listRequestTimes' | 'sumSpend'>, now = Date.now()): Promise<void> {
  if (ledger.definitions.some((b) => b.period === 'block5h')) ledger.setRecentTimes(await store.listRequestTimes(now - BLOCK_LOOKBACK_MS, now + 1));
  const targets = ledger.refreshTargets();
  const results = [];
  for (const t of targets) results.push({ slot: t.slot, spend: await store.sumSpend(t.filter) });
  ledger.applyRefresh(results, now);
}

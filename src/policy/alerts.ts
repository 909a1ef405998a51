/**
 * Threshold alerts: each threshold of a budget fires once per period instance (and again in the next period,
 * or after the budget is redefined). Pure logic; the store's unique key (budget, version, period key,
 * threshold) makes "once" hold across processes too.
 */
import { usd, describeExhausted, formatDuration, formatInstant, periodLabel, type BudgetStatus, type Period } from './budgets.js';

/** Thresholds (percent) now reached and not fired yet, ascending. A jump from 0 to 85% fires 50 and 80. */
export function thresholdsToFire(thresholds: number[], fired: Iterable<number>, percent: number): number[] {
  const done = new Set(fired);
  return thresholds.filter((t) => percent >= t && !done.has(t)).sort((a, b) => a - b);
}

/** One fired alert, as stored and delivered. */
export interface AlertRecord {
  id?: number;
  ts: number;
  budget: string;
  /** `updatedAt` of the budget definition the alert was computed against. */
  budgetVersion: number;
  period: Period;
  /** Period instance (`day:2026-11-20`, `block:...`, `...|s:<session>`). */
  periodKey: string;
  threshold: number;
  spentUsd: number;
  limitUsd: number;
  percent: number;
  resetsAt: number | null;
  /** Who noticed: `proxy`, `hook`, `status`. */
  source: string;
  message: string;
  /** Null until delivery was attempted; then e.g. `webhook:ok desktop:skipped`. */
  delivery: string | null;
}

export function alertMessage(s: BudgetStatus, threshold: number): string {
  if (threshold >= 100 && s.exhausted) {
    const verb = s.budget.action === 'block' ? 'requests are now blocked'
      : s.budget.action === 'downgrade' ? 'requests now go to a cheaper model' : 'requests still go through (warn)';
    return `${describeExhausted(s)}; ${verb}`;
  }
  const reset = s.resetsAt === null ? '' : `; resets ${formatInstant(s.resetsAt, s.budget.timeZone)} (in ${formatDuration(s.msToReset ?? 0)})`;
  return `tokentally budget "${s.budget.name}" (${periodLabel(s.budget.period)}, scope ${s.budget.scope}) at ${Math.floor(s.percent)}%`
    + ` (threshold ${threshold}%): spent ${usd(s.spentUsd)} of ${usd(s.budget.limitUsd)}${reset}`;
}

/** Alerts due for a status, given the thresholds already fired in its period. */
export function alertsFor(s: BudgetStatus, fired: Iterable<number>, now: number, source: string): AlertRecord[] {
  return thresholdsToFire(s.budget.alerts, fired, s.percent).map((threshold) => ({
    ts: now, budget: s.budget.name, budgetVersion: s.budget.updatedAt, period: s.budget.period, periodKey: s.window.key,
    threshold, spentUsd: s.spentUsd, limitUsd: s.limitUsd, percent: s.percent, resetsAt: s.resetsAt, source,
    message: alertMessage(s, threshold), delivery: null,
  }));
}

/** The JSON body a webhook receives; `text` makes it a valid Slack incoming-webhook payload. */
export interface WebhookPayload {
  text: string;
  budget: string;
  spent: number;
  limit: number;
  percent: number;
  period: Period;
  threshold: number;
  periodKey: string;
  resetsAt: string | null;
}

export function webhookPayload(a: AlertRecord): WebhookPayload {
  return {
    text: a.message, budget: a.budget, spent: round2(a.spentUsd), limit: a.limitUsd, percent: Math.round(a.percent * 10) / 10,
    period: a.period, threshold: a.threshold, periodKey: a.periodKey,
    resetsAt: a.resetsAt === null ? null : new Date(a.resetsAt).toISOString(),
  };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

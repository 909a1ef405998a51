/**
 * What the proxy answers when a budget blocks a request, and the headers it adds when one warns or downgrades.
 * The block has the shape of Anthropic's own gateway spend limit: HTTP 429, `error.type` `billing_error`,
 * `x-should-retry: false` (the SDK and Claude Code then do not retry) and `retry-after` = seconds until the
 * period resets (absent for a session budget, which never resets).
 */
import { usd, formatDuration, formatInstant, periodLabel } from './budgets.js';
import type { BudgetCheck } from './reservations.js';

export interface PolicyResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The sentence a block shows: which budget, spent, limit, when it resets. */
export function blockMessage(c: BudgetCheck, now: number): string {
  const b = c.budget;
  const reset = c.window.end === null
    ? 'per-session budget: start a new session to continue'
    : `resets ${formatInstant(c.window.end, b.timeZone)} (in ${formatDuration(c.window.end - now)})`;
  const inFlight = c.reservedUsd > 0 ? ` (+${usd(c.reservedUsd)} reserved by requests in flight)` : '';
  return `spend limit reached (${periodLabel(b.period)}; ${reset}): tokentally budget "${b.name}" (scope ${b.scope}) `
    + `spent ${usd(c.settledUsd)}${inFlight} of ${usd(b.limitUsd)}`;
}

/** HTTP 429 in Anthropic's error format; never retried by the Anthropic SDK or Claude Code. */
export function billingErrorResponse(c: BudgetCheck, now: number): PolicyResponse {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-should-retry': 'false',
    'x-tokentally-budget': c.budget.name,
  };
  if (c.window.end !== null) headers['retry-after'] = String(Math.max(1, Math.ceil((c.window.end - now) / 1000)));
  const body = JSON.stringify({ type: 'error', error: { type: 'billing_error', message: blockMessage(c, now) } });
  headers['content-length'] = String(Buffer.byteLength(body));
  return { status: 429, headers, body };
}

/** Header for a `warn` budget that is exhausted: the request goes through. ASCII only, one line. */
export function warningHeader(c: BudgetCheck): [string, string] {
  const b = c.budget;
  const pct = Math.floor(((c.settledUsd + c.reservedUsd) / b.limitUsd) * 100);
  const reset = c.window.end === null ? 'per session' : `resets ${new Date(c.window.end).toISOString()}`;
  return ['x-tokentally-budget-warning', `budget "${b.name}" (${b.period}) at ${pct}%: ${usd(c.settledUsd)} of ${usd(b.limitUsd)}, ${reset}`];
}

/** Header naming a rewritten model: `x-tokentally-model-rewrite: claude-opus-4-8 -> claude-sonnet-4-6 (budget "daily")`. */
export function rewriteHeader(from: string, to: string, why: string): [string, string] {
  return ['x-tokentally-model-rewrite', `${from} -> ${to} (${why})`];
}

/**
 * This month's projected spend (no I/O beyond the Store): month-to-date actual cost plus the recent daily
 * burn times the days left, with a range from the spread of the recent days.
 *
 * - Basis: the last N complete local days before today (default 7), idle days counted as $0, so the burn is
 *   per calendar day (weekends and days off are part of the rate). When the history is younger than N days,
 *   the days since the first recorded request are used; with no complete day yet, today's spend so far
 *   extrapolated to a full day.
 * - Projection: remaining = mean x R, where R = days left in the month (fractional, from now).
 * - Range (~80 %): remaining +- 1.2816 x sd x sqrt(R + R^2 / n): day-to-day variation over R days plus the
 *   uncertainty of a mean of n days (sd = sample standard deviation of the basis days; with one day, sd = mean).
 *   The low end never goes below the month-to-date actual.
 */
import { LocalCalendar } from '../core/time.js';
import type { Store } from '../store/store.js';

const DAY = 86_400_000;
const Z80 = 1.2816;

export interface ForecastOptions {
  now: number;
  timeZone: string;
  /** Complete days of recent history the burn rate is taken from. */
  lookbackDays: number;
}

export interface DayCost {
  date: string;
  cost: number;
  unknownCostTokens: number;
  requests: number;
}

export interface Forecast {
  month: string;
  timeZone: string;
  now: number;
  monthStart: number;
  monthEnd: number;
  daysInMonth: number;
  /** Days elapsed in the month (fractional). */
  daysElapsed: number;
  /** Days left in the month (fractional). */
  daysRemaining: number;
  monthToDate: { cost: number; unknownCostTokens: number; requests: number; tokens: number };
  basis: {
    kind: 'recent-days' | 'today-so-far' | 'no-data';
    days: DayCost[];
    /** Mean spend per calendar day, USD. */
    meanPerDay: number;
    /** Mean over the basis days that had any request. */
    meanPerActiveDay: number;
    activeDays: number;
    stdevPerDay: number;
  };
  projection: {
    remaining: number;
    total: number;
    low: number;
    high: number;
    confidence: number;
  };
  /** Tokens of unpriced models in the month or the basis: the figures exclude them. */
  costComplete: boolean;
  method: string;
}

export const FORECAST_METHOD = 'projected = month-to-date cost + mean daily cost of the basis days x days left in the month; '
  + 'basis = the last N complete days before today (idle days count as $0), or fewer when the history is younger; '
  + 'range (~80%) = remaining +- 1.2816 x sd x sqrt(R + R^2/n) (sd of the basis days, R days left, n basis days), '
  + 'never below the month-to-date cost';

export async function buildForecast(store: Store, opts: ForecastOptions): Promise<Forecast> {
  const cal = new LocalCalendar(opts.timeZone);
  const { now } = opts;
  const today = cal.date(now);
  const month = today.slice(0, 7);
  const monthStart = cal.startOfDay(`${month}-01`);
  const monthEnd = cal.startOfDay(nextMonth(month));
  const todayStart = cal.startOfDay(today);

  // Basis window: N complete days before today, trimmed to the first recorded request.
  const [first] = await store.listUsage({ toTs: now + 1, limit: 1 });
  let basisStartDate = addDays(today, -opts.lookbackDays);
  if (first) {
    const firstDate = cal.date(first.ts);
    if (firstDate > basisStartDate) basisStartDate = firstDate;
  }
  const basisDates: string[] = [];
  if (first) for (let d = basisStartDate; d < today; d = addDays(d, 1)) basisDates.push(d);
  const basisStart = cal.startOfDay(basisStartDate);

  const groups = await store.summarize({ fromTs: Math.min(monthStart, basisStart), toTs: now + 1 }, ['quarterHour']);
  const byDate = new Map<string, DayCost>();
  const mtd = { cost: 0, unknownCostTokens: 0, requests: 0, tokens: 0 };
  for (const g of groups) {
    const ts = g.quarterHour! * 900_000;
    const date = cal.date(ts);
    let d = byDate.get(date);
    if (!d) byDate.set(date, (d = { date, cost: 0, unknownCostTokens: 0, requests: 0 }));
    d.cost += g.cost;
    d.unknownCostTokens += g.unknownCostTokens;
    d.requests += g.requests;
    if (date.slice(0, 7) === month) {
      mtd.cost += g.cost;
      mtd.unknownCostTokens += g.unknownCostTokens;
      mtd.requests += g.requests;
      mtd.tokens += g.input + g.output + g.cacheWrite5m + g.cacheWrite1h + g.cacheRead;
    }
  }
  const days = basisDates.map((date) => byDate.get(date) ?? { date, cost: 0, unknownCostTokens: 0, requests: 0 });
  const todayCost = byDate.get(today)?.cost ?? 0;

  let kind: Forecast['basis']['kind'];
  let mean: number;
  let sd: number;
  let n: number;
  if (days.length > 0) {
    kind = 'recent-days';
    n = days.length;
    mean = days.reduce((s, d) => s + d.cost, 0) / n;
    sd = n > 1 ? Math.sqrt(days.reduce((s, d) => s + (d.cost - mean) ** 2, 0) / (n - 1)) : mean;
  } else if (todayCost > 0) {
    kind = 'today-so-far';
    n = 1;
    const elapsedToday = Math.max((now - todayStart) / DAY, 1 / 24); // at least an hour: no wild extrapolation
    mean = todayCost / elapsedToday;
    sd = mean;
  } else {
    kind = 'no-data';
    n = 1;
    mean = 0;
    sd = 0;
  }
  const active = days.filter((d) => d.requests > 0);
  const daysRemaining = Math.max(0, (monthEnd - now) / DAY);
  const remaining = mean * daysRemaining;
  const spread = Z80 * sd * Math.sqrt(daysRemaining + (daysRemaining * daysRemaining) / n);
  const unknown = mtd.unknownCostTokens > 0 || days.some((d) => d.unknownCostTokens > 0);
  return {
    month, timeZone: opts.timeZone, now, monthStart, monthEnd,
    daysInMonth: Math.round((monthEnd - monthStart) / DAY),
    daysElapsed: (now - monthStart) / DAY,
    daysRemaining,
    monthToDate: mtd,
    basis: {
      kind, days, meanPerDay: mean,
      meanPerActiveDay: active.length ? active.reduce((s, d) => s + d.cost, 0) / active.length : 0,
      activeDays: active.length, stdevPerDay: sd,
    },
    projection: {
      remaining,
      total: mtd.cost + remaining,
      low: mtd.cost + Math.max(0, remaining - spread),
      high: mtd.cost + remaining + spread,
      confidence: 0.8,
    },
    costComplete: !unknown,
    method: FORECAST_METHOD,
  };
}

export function addDays(date: string, n: number): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + n * DAY).toISOString().slice(0, 10);
}

function nextMonth(month: string): string {
  const [y, m] = month.split('-').map(Number);
  return m === 12 ? `${y + 1}-01-01` : `${y}-${String(m + 1).padStart(2, '0')}-01`;
}

import type { Command } from 'commander';
import { clockNow } from '../../../analysis/blocks.js';
import { buildForecast, type Forecast } from '../../../analysis/forecast.js';
import { assertTimeZone, systemTimeZone } from '../../../core/time.js';
import { loadPriceBook, openStore } from '../context.js';
import { formatCost, formatInt, formatUsd, wrap } from '../format.js';
import { localDateTime } from '../../statusline/text.js';
import { parseAmount } from './estimate.js';
import { describeSync, runSync } from './sync.js';

interface ForecastFlags {
  timezone?: string;
  days: string;
  json?: boolean;
  sync: boolean;
}

export function registerForecast(program: Command): void {
  program.command('forecast')
    .description("this month's projected spend from the recent daily burn, with a range")
    .option('-z, --timezone <zone>', 'IANA time zone for days and the month (default: the system zone)')
    .option('-d, --days <n>', 'complete days of recent history the daily burn is taken from', '7')
    .option('--json', 'JSON output (includes the method and the basis days)')
    .option('--no-sync', 'forecast from the store without reading transcripts first')
    .action(async (flags: ForecastFlags) => runForecast(flags));
}

async function runForecast(flags: ForecastFlags): Promise<void> {
  const lookbackDays = parseAmount('--days', flags.days, { integer: true, positive: true, max: 366 });
  const timeZone = assertTimeZone(flags.timezone ?? systemTimeZone());
  const store = openStore(loadPriceBook());
  try {
    if (flags.sync) {
      const sync = await runSync(store, Boolean(flags.json));
      if (!flags.json && (sync.errors.length > 0 || sync.roots.length === 0)) process.stderr.write(describeSync(sync, false) + '\n');
    }
    const f = await buildForecast(store, { now: clockNow(), timeZone, lookbackDays });
    process.stdout.write((flags.json ? JSON.stringify(toJson(f), null, 2) : toText(f)) + '\n');
  } finally {
    await store.close();
  }
}

const r6 = (x: number) => Math.round(x * 1e6) / 1e6;
const r2 = (x: number) => Math.round(x * 100) / 100;

function toJson(f: Forecast) {
  return {
    month: f.month,
    timezone: f.timeZone,
    asOf: new Date(f.now).toISOString(),
    daysInMonth: f.daysInMonth,
    daysElapsed: r6(f.daysElapsed),
    daysRemaining: r6(f.daysRemaining),
    monthToDate: { costUSD: r6(f.monthToDate.cost), requests: f.monthToDate.requests, totalTokens: f.monthToDate.tokens,
      unknownCostTokens: f.monthToDate.unknownCostTokens },
    basis: {
      kind: f.basis.kind,
      days: f.basis.days.map((d) => ({ date: d.date, costUSD: r6(d.cost), requests: d.requests, unknownCostTokens: d.unknownCostTokens })),
      meanPerDayUSD: r6(f.basis.meanPerDay),
      meanPerActiveDayUSD: r6(f.basis.meanPerActiveDay),
      activeDays: f.basis.activeDays,
      stdevPerDayUSD: r6(f.basis.stdevPerDay),
    },
    projection: {
      remainingUSD: r2(f.projection.remaining),
      totalUSD: r2(f.projection.total),
      lowUSD: r2(f.projection.low),
      highUSD: r2(f.projection.high),
      confidence: f.projection.confidence,
    },
    costComplete: f.costComplete,
    method: f.method,
  };
}

function toText(f: Forecast): string {
  const b = f.basis;
  const pad = (label: string) => `  ${label.padEnd(16)}`;
  const lines = [
    `Forecast for ${f.month} (${f.timeZone}), as of ${localDateTime(f.now, f.timeZone)}`,
    '',
    `${pad('Month to date')}${formatCost(f.monthToDate.cost, f.monthToDate.unknownCostTokens).padStart(11)}  `
      + `${f.daysElapsed.toFixed(1)} of ${f.daysInMonth} days, ${formatInt(f.monthToDate.requests)} requests`,
  ];
  if (b.kind === 'recent-days') {
    const first = b.days[0].date;
    const last = b.days[b.days.length - 1].date;
    lines.push(`${pad('Daily burn')}${formatUsd(b.meanPerDay).padStart(11)}  mean of ${b.days.length} day${b.days.length === 1 ? '' : 's'} `
      + `(${first === last ? first.slice(5) : `${first.slice(5)}..${last.slice(5)}`}), ${b.activeDays} active`);
  } else if (b.kind === 'today-so-far') {
    lines.push(`${pad('Daily burn')}${formatUsd(b.meanPerDay).padStart(11)}  today so far, scaled to 24 h (no full day yet)`);
  } else {
    lines.push(`${pad('Daily burn')}${formatUsd(0).padStart(11)}  no usage recorded yet`);
  }
  lines.push(`${pad('Rest of month')}${formatUsd(f.projection.remaining).padStart(11)}  ${f.daysRemaining.toFixed(1)} days x ${formatUsd(b.meanPerDay)}`);
  lines.push(`${pad('Projected month')}${formatUsd(f.projection.total).padStart(11)}  range ${formatUsd(f.projection.low)} to ${formatUsd(f.projection.high)} (~80%)`);
  lines.push('');
  lines.push(wrap('Method: month-to-date cost + mean daily cost of the basis days (idle days count as $0) x days left. '
    + 'Range: +-1.28 x the day-to-day spread x sqrt(days left + days left^2 / basis days), never below month to date.'));
  if (!f.costComplete) lines.push(wrap('Some requests are from models without a price: their cost is not included (see `tokentally model`).'));
  return lines.join('\n');
}

import type { Command } from 'commander';
import { estimate, ModelArgError, resolveModels, type Estimate } from '../../../analysis/estimate.js';
import { clockNow } from '../../../analysis/blocks.js';
import { loadPriceBook } from '../context.js';
import { UsageError } from '../errors.js';
import { formatInt, formatUsd, renderTable, wrap, type Column } from '../format.js';

interface EstimateFlags {
  sessionsPerDay: string;
  days: string;
  model?: string;
  input: string;
  output: string;
  cacheRead: string;
  cacheWrite: string;
  cacheWrite1h: string;
  json?: boolean;
}

/** A non-negative number from a flag: plain, with thousands separators, or with a K/M suffix (45K, 1.2M). */
export function parseAmount(flag: string, value: string, opts: { integer?: boolean; positive?: boolean; max?: number } = {}): number {
  const m = /^\s*(\d+(?:\.\d+)?|\d{1,3}(?:,\d{3})+)\s*([kKmM]?)\s*$/.exec(value);
  const n = m ? Number(m[1].replace(/,/g, '')) * (m[2] ? (/k/i.test(m[2]) ? 1e3 : 1e6) : 1) : NaN;
  const kind = opts.integer ? 'a whole number' : 'a number';
  if (!Number.isFinite(n)) throw new UsageError(`${flag} expects ${kind}${opts.positive ? ' above 0' : ' (0 or more)'}, got "${value}"`);
  if (opts.integer && !Number.isInteger(Math.round(n * 1e6) / 1e6)) throw new UsageError(`${flag} expects ${kind}, got "${value}"`);
  if (opts.positive && n <= 0) throw new UsageError(`${flag} must be above 0, got "${value}"`);
  if (opts.max !== undefined && n > opts.max) throw new UsageError(`${flag} must be at most ${opts.max}, got "${value}"`);
  return n;
}

export function registerEstimate(program: Command): void {
  program.command('estimate')
    .description('monthly cost calculator: sessions/day x days x per-session tokens, priced per model')
    .option('--sessions-per-day <n>', 'sessions per active day', '6')
    .option('--days <n>', 'active days per month', '18')
    .option('-m, --model <ids>', 'models, comma-separated: ids (sonnet-4-6, claude-opus-4-6) or families (sonnet); default: the newest of each family')
    .option('--input <tokens>', 'uncached input tokens per session (45000 or 45K)', '45000')
    .option('--output <tokens>', 'output tokens per session', '13000')
    .option('--cache-read <tokens>', 'cache-read tokens per session', '38000')
    .option('--cache-write <tokens>', 'cache writes per session, 5-minute TTL', '0')
    .option('--cache-write-1h <tokens>', 'cache writes per session, 1-hour TTL', '0')
    .option('--json', 'JSON output')
    .addHelpText('after', '\nDefaults are the representative session of the cost article in ../shared/seeds/003 '
      + '(45K input, 13K output, 38K cache read; 6 sessions/day, 18 days).')
    .action((flags: EstimateFlags) => runEstimate(flags));
}

function runEstimate(flags: EstimateFlags): void {
  const sessionsPerDay = parseAmount('--sessions-per-day', flags.sessionsPerDay, { positive: true, max: 10_000 });
  const days = parseAmount('--days', flags.days, { positive: true, max: 31 });
  const tokens = {
    input: parseAmount('--input', flags.input, { integer: true }),
    output: parseAmount('--output', flags.output, { integer: true }),
    cacheRead: parseAmount('--cache-read', flags.cacheRead, { integer: true }),
    cacheWrite5m: parseAmount('--cache-write', flags.cacheWrite, { integer: true }),
    cacheWrite1h: parseAmount('--cache-write-1h', flags.cacheWrite1h, { integer: true }),
  };
  const prices = loadPriceBook();
  let result: Estimate;
  try {
    result = estimate(prices, { sessionsPerDay, days, tokens, models: resolveModels(prices, flags.model), at: clockNow() });
  } catch (err) {
    if (err instanceof ModelArgError) throw new UsageError(err.message);
    throw err;
  }
  if (flags.json) process.stdout.write(JSON.stringify(toJson(result), null, 2) + '\n');
  else process.stdout.write(toTable(result) + '\n');
}

const r6 = (x: number) => Math.round(x * 1e6) / 1e6;

function toJson(e: Estimate) {
  return {
    sessionsPerDay: e.sessionsPerDay,
    days: e.days,
    sessions: e.sessions,
    tokensPerSession: e.tokens,
    models: e.rows.map((r) => ({
      model: r.model,
      displayName: r.displayName,
      ratesPerMTok: r.rates,
      perSession: {
        input: r6(r.perSession.input), output: r6(r.perSession.output), cacheRead: r6(r.perSession.cacheRead),
        cacheWrite: r6(r.perSession.cacheWrite), total: r6(r.perSession.total),
      },
      monthly: r6(r.monthly),
    })),
    formula: e.formula,
  };
}

function toTable(e: Estimate): string {
  const t = e.tokens;
  const writes = t.cacheWrite5m + t.cacheWrite1h > 0;
  const columns: Column[] = [
    { header: 'Model', align: 'left' }, { header: 'Input' }, { header: 'Output' }, { header: 'Cache R' },
    ...(writes ? [{ header: 'Cache W' }] : []), { header: 'Session' }, { header: 'Monthly' },
  ];
  // Token-class columns to a tenth of a cent, as the article's table shows them ($0.135, $0.011).
  const mils = (x: number) => `$${x.toFixed(3)}`;
  const rows = e.rows.map((r) => [
    r.displayName.replace(/^Claude /, ''), mils(r.perSession.input), mils(r.perSession.output),
    mils(r.perSession.cacheRead), ...(writes ? [mils(r.perSession.cacheWrite)] : []),
    formatUsd(r.perSession.total), formatUsd(r.monthly),
  ]);
  const parts = [`${formatInt(t.input)} input`, `${formatInt(t.output)} output`, `${formatInt(t.cacheRead)} cache-read`];
  if (t.cacheWrite5m) parts.push(`${formatInt(t.cacheWrite5m)} cache-write (5m)`);
  if (t.cacheWrite1h) parts.push(`${formatInt(t.cacheWrite1h)} cache-write (1h)`);
  const num = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(2));
  return [
    wrap(`Per session: ${parts.join(' + ')} tokens.`),
    wrap(`${num(e.sessionsPerDay)} sessions/day x ${num(e.days)} active days = ${num(e.sessions)} sessions/month.`),
    '',
    renderTable(columns, rows),
    '',
    wrap('Monthly = sessions/day x days x (input x input rate + output x output rate + cache reads x cache-read rate'
      + (writes ? ' + cache writes x write rate' : '') + '). Catalog rates, flat per token (no per-request long-context premium).'),
  ].join('\n');
}

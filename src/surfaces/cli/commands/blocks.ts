import type { Command } from 'commander';
import { BLOCK_MS, clockNow, findActiveBlock, identifyBlocks, type Block } from '../../../analysis/blocks.js';
import { assertTimeZone, LocalCalendar, parseDateArg, systemTimeZone } from '../../../core/time.js';
import type { Store } from '../../../store/store.js';
import { loadPriceBook, openStore } from '../context.js';
import { UsageError } from '../errors.js';
import { formatCompact, formatCost, formatInt, formatUsd, renderTable, wrap, type Column } from '../format.js';
import { duration, localDateTime, localTime } from '../../statusline/text.js';
import { parseAmount } from './estimate.js';
import { describeSync, runSync } from './sync.js';

interface BlocksFlags {
  active?: boolean;
  recent?: boolean;
  since?: string;
  until?: string;
  timezone?: string;
  sessionLength: string;
  json?: boolean;
  sync: boolean;
}

export function registerBlocks(program: Command): void {
  program.command('blocks')
    .description('5-hour billing windows (as ccusage counts them) with burn rate and projection to the block end')
    .option('-a, --active', 'only the active block, with its projection')
    .option('-r, --recent', 'blocks of the last 3 days, plus the active one')
    .option('-s, --since <date>', 'blocks starting on or after this day (YYYY-MM-DD)')
    .option('-u, --until <date>', 'blocks starting on or before this day (YYYY-MM-DD)')
    .option('-z, --timezone <zone>', 'IANA time zone for displayed times and --since/--until (default: the system zone)')
    .option('-n, --session-length <hours>', 'block length in hours', '5')
    .option('--json', 'JSON output (ccusage-like shape)')
    .option('--no-sync', 'read the store without importing transcripts first')
    .addHelpText('after', '\nBlocks start at the hour (UTC) of their first request; a request more than 5 h after the block start '
      + 'or after the previous request opens a new block. Costs are API list prices (what the usage would cost on the API).')
    .action(async (flags: BlocksFlags) => runBlocks(flags));
}

async function runBlocks(flags: BlocksFlags): Promise<void> {
  const since = flags.since ? parseDateArg(flags.since, '--since') : undefined;
  const until = flags.until ? parseDateArg(flags.until, '--until') : undefined;
  if (since && until && since > until) throw new UsageError(`--since ${since} is after --until ${until}`);
  if (flags.active && (flags.recent || since || until)) throw new UsageError('--active cannot be combined with --recent, --since or --until');
  const blockMs = Math.round(parseAmount('--session-length', flags.sessionLength, { positive: true, max: 168 }) * 3_600_000);
  const timeZone = assertTimeZone(flags.timezone ?? systemTimeZone());
  const now = clockNow();
  const store = openStore(loadPriceBook());
  try {
    if (flags.sync) {
      const sync = await runSync(store, Boolean(flags.json));
      if (!flags.json && (sync.errors.length > 0 || sync.roots.length === 0)) process.stderr.write(describeSync(sync, false) + '\n');
    }
    const blocks = flags.active ? await activeOnly(store, now, blockMs) : await allBlocks(store, now, blockMs, { recent: flags.recent, since, until, timeZone });
    if (flags.json) process.stdout.write(JSON.stringify({ blocks: blocks.map(blockJson), timezone: timeZone }, null, 2) + '\n');
    else if (flags.active) process.stdout.write(activeText(blocks[0], now, timeZone) + '\n');
    else process.stdout.write(blocksTable(blocks, now, timeZone, blockMs) + '\n');
  } finally {
    await store.close();
  }
}

async function activeOnly(store: Store, now: number, blockMs: number): Promise<Block[]> {
  // Exact (a full replay when usage never paused 5 h); the statusline bounds its look-back to 24 h instead.
  const b = await findActiveBlock(store, now, { blockMs, lookbackMs: Infinity });
  return b ? [b] : [];
}

async function allBlocks(store: Store, now: number, blockMs: number,
  o: { recent?: boolean; since?: string; until?: string; timeZone: string }): Promise<Block[]> {
  const blocks = identifyBlocks(await store.listUsage({ toTs: now + 1 }), { now, blockMs });
  const cal = new LocalCalendar(o.timeZone);
  return blocks.filter((b) => {
    if (o.recent && !b.isActive && b.startTs < now - 3 * 86_400_000) return false;
    const day = cal.date(b.startTs);
    if (o.since && day < o.since) return false;
    if (o.until && day > o.until) return false;
    return true;
  });
}

const r6 = (x: number) => Math.round(x * 1e6) / 1e6;

export function blockJson(b: Block) {
  return {
    id: b.id,
    startTime: new Date(b.startTs).toISOString(),
    endTime: new Date(b.endTs).toISOString(),
    actualEndTime: b.lastTs === null ? null : new Date(b.lastTs).toISOString(),
    isActive: b.isActive,
    isGap: b.isGap,
    entries: b.requests,
    tokenCounts: {
      inputTokens: b.tokens.input,
      outputTokens: b.tokens.output,
      cacheCreationInputTokens: b.tokens.cacheCreation,
      cacheReadInputTokens: b.tokens.cacheRead,
    },
    totalTokens: b.tokens.total,
    costUSD: r6(b.cost),
    costComplete: b.unknownCostTokens === 0,
    unknownCostTokens: b.unknownCostTokens,
    models: b.models,
    burnRate: b.burnRate && {
      tokensPerMinute: r6(b.burnRate.tokensPerMinute),
      tokensPerMinuteForIndicator: r6(b.burnRate.inputOutputTokensPerMinute),
      costPerHour: r6(b.burnRate.costPerHour),
    },
    projection: b.projection && {
      totalTokens: b.projection.projectedTokens,
      totalCost: b.projection.projectedCost,
      remainingMinutes: b.projection.remainingMinutes,
    },
  };
}

function blocksTable(blocks: Block[], now: number, tz: string, blockMs: number): string {
  if (blocks.length === 0) return 'No usage recorded in the selected range.';
  const columns: Column[] = [
    { header: 'Block start', align: 'left' }, { header: 'Span', align: 'left' }, { header: 'Req' }, { header: 'Tokens' },
    { header: 'Cost' }, { header: '$/h' }, { header: 'Projected' },
  ];
  const rows: string[][] = [];
  let total = 0;
  let unknown = 0;
  for (const b of blocks) {
    if (b.isGap) {
      rows.push([`(idle ${localTime(b.startTs, tz)}-${localTime(b.endTs, tz)})`, duration(b.endTs - b.startTs), '', '', '', '', '']);
      continue;
    }
    total += b.cost;
    unknown += b.unknownCostTokens;
    const span = b.isActive ? `${duration(b.endTs - now)} left` : b.firstTs !== null && b.lastTs !== null ? duration(b.lastTs - b.firstTs) : '';
    rows.push([
      `${localDateTime(b.startTs, tz)}${b.isActive ? ' *' : ''}`, span, formatInt(b.requests), formatCompact(b.tokens.total),
      formatCost(b.cost, b.unknownCostTokens), b.burnRate ? formatUsd(b.burnRate.costPerHour) : '',
      b.projection ? formatUsd(b.projection.projectedCost) : '',
    ]);
  }
  const hours = Math.round(blockMs / 360_000) / 10;
  const notes = [`Times in ${tz}. * = active block (now < start + ${hours} h and a request in the last ${hours} h); `
    + 'Span = first to last request; $/h = cost over that span; Projected = cost at the block end at that rate.'];
  if (unknown > 0) notes.push('Cost "+?" / "unknown": some requests are from models without a price.');
  return [renderTable(columns, rows, ['Total', '', formatInt(blocks.reduce((s, b) => s + b.requests, 0)),
    formatCompact(blocks.reduce((s, b) => s + b.tokens.total, 0)), formatCost(total, unknown), '', '']),
  ...notes.map((n) => wrap(n))].join('\n');
}

function activeText(b: Block | undefined, now: number, tz: string): string {
  if (!b) return 'No active block: no request in the last 5 hours.';
  const t = b.tokens;
  const pad = (label: string) => `  ${label.padEnd(11)}`;
  const lines = [
    `Active block ${localDateTime(b.startTs, tz)}-${localTime(b.endTs, tz)} (${tz}), ${duration(b.endTs - now)} left`,
    `${pad('Requests')}${formatInt(b.requests)}, last at ${localTime(b.lastTs!, tz)}`,
    `${pad('Tokens')}${formatCompact(t.total)} (in ${formatCompact(t.input)}, out ${formatCompact(t.output)}, `
      + `cache write ${formatCompact(t.cacheCreation)}, read ${formatCompact(t.cacheRead)})`,
    `${pad('Cost')}${formatCost(b.cost, b.unknownCostTokens)}`,
  ];
  if (b.burnRate) {
    lines.push(`${pad('Burn rate')}${formatUsd(b.burnRate.costPerHour)}/h, ${formatCompact(b.burnRate.tokensPerMinute)} tokens/min `
      + `(in+out ${formatCompact(b.burnRate.inputOutputTokensPerMinute)}/min)`);
  } else {
    lines.push(`${pad('Burn rate')}n/a (one request so far)`);
  }
  if (b.projection) {
    lines.push(`${pad('Projected')}${formatUsd(b.projection.projectedCost)}, ${formatCompact(b.projection.projectedTokens)} tokens `
      + `at ${localTime(b.endTs, tz)}`);
  }
  if (b.models.length) {
    const text = wrap(b.models.map((m) => m.replace(/^claude-/, '')).join(', '), 80 - 13).split('\n');
    lines.push(...text.map((l, i) => `${pad(i === 0 ? 'Models' : '')}${l}`));
  }
  return lines.join('\n');
}

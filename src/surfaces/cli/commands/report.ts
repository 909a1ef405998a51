import { Option, type Command } from 'commander';
import { buildReport, type Report, type ReportKind, type ReportRow, type TokenTotals } from '../../../analysis/reports.js';
import { assertTimeZone, parseDateArg, systemTimeZone, WEEKDAYS } from '../../../core/time.js';
import { loadPriceBook, openStore } from '../context.js';
import { UsageError } from '../errors.js';
import {
  csvLine, formatCompact, formatCost, formatInt, formatPercent, formatUsd, renderTable, terminalWidth, wrap, type Column,
} from '../format.js';
import { describeSync, runSync } from './sync.js';

interface ReportFlags {
  since?: string;
  until?: string;
  timezone?: string;
  project?: string;
  breakdown?: boolean;
  json?: boolean;
  csv?: boolean;
  sync: boolean;
  startOfWeek?: string;
  verbose?: boolean;
}

const KEY_FIELD: Record<ReportKind, { list: string; field: string; title: string }> = {
  daily: { list: 'daily', field: 'date', title: 'Date' },
  weekly: { list: 'weekly', field: 'week', title: 'Week' },
  monthly: { list: 'monthly', field: 'month', title: 'Month' },
  session: { list: 'session', field: 'sessionId', title: 'Session' },
  project: { list: 'projects', field: 'project', title: 'Project' },
  model: { list: 'models', field: 'model', title: 'Model' },
};

const DESCRIPTIONS: Record<ReportKind, string> = {
  daily: 'tokens and cost per day (the default command)',
  weekly: 'tokens and cost per week',
  monthly: 'tokens and cost per month',
  session: 'tokens and cost per Claude Code session, most expensive first; with an id: the turn-by-turn audit of that session',
  project: 'tokens and cost per project (working directory)',
  model: 'tokens and cost per model',
};

export function registerReports(program: Command): void {
  for (const kind of Object.keys(KEY_FIELD) as ReportKind[]) {
    const cmd = program.command(kind, { isDefault: kind === 'daily' }).description(DESCRIPTIONS[kind])
      .option('-s, --since <date>', 'first day to include (YYYY-MM-DD)')
      .option('-u, --until <date>', 'last day to include (YYYY-MM-DD)')
      .option('-z, --timezone <zone>', 'IANA time zone for days (default: the system zone)')
      .option('-p, --project <path>', 'only projects whose path contains this text')
      .option('-b, --breakdown', 'a line per model under each row')
      .option('--json', 'JSON output (ccusage-compatible shape)')
      .option('--csv', 'CSV output')
      .option('--no-sync', 'report from the store without reading transcripts first')
      .option('-v, --verbose', 'list skipped transcript lines');
    if (kind === 'weekly') {
      cmd.addOption(new Option('--start-of-week <day>', 'first day of the week').choices(WEEKDAYS).default('sunday'));
    }
    if (kind === 'daily') cmd.alias('report');
    if (kind === 'session') {
      // `session` lists sessions; `session <id|latest>` audits one, turn by turn (session-audit.ts).
      cmd.argument('[id]', 'a session id (or unique prefix) or "latest": the turn-by-turn audit of that session')
        .action(async (id: string | undefined, flags: ReportFlags) => (id
          ? (await import('./session-audit.js')).runSessionAudit(id, flags) : runReport(kind, flags)));
    } else cmd.action(async (flags: ReportFlags) => runReport(kind, flags));
  }
}

async function runReport(kind: ReportKind, flags: ReportFlags): Promise<void> {
  if (flags.json && flags.csv) throw new UsageError('choose one of --json and --csv');
  const since = flags.since ? parseDateArg(flags.since, '--since') : undefined;
  const until = flags.until ? parseDateArg(flags.until, '--until') : undefined;
  if (since && until && since > until) throw new UsageError(`--since ${since} is after --until ${until}`);
  const timeZone = assertTimeZone(flags.timezone ?? systemTimeZone());
  const machine = Boolean(flags.json || flags.csv);

  const store = openStore(loadPriceBook());
  try {
    if (flags.sync) {
      const sync = await runSync(store, machine);
      const problems = sync.errors.length > 0 || Object.values(sync.skipped).some((n) => n > 0) || sync.roots.length === 0;
      if (!machine && (problems || flags.verbose)) process.stderr.write(describeSync(sync, Boolean(flags.verbose)) + '\n');
    }
    const report = await buildReport(store, kind, {
      since, until, timeZone, project: flags.project,
      weekStart: WEEKDAYS.indexOf(flags.startOfWeek ?? 'sunday'),
    });
    if (flags.json) process.stdout.write(JSON.stringify(toJson(report), null, 2) + '\n');
    else if (flags.csv) process.stdout.write(toCsv(report, Boolean(flags.breakdown)));
    else process.stdout.write(toTable(report, Boolean(flags.breakdown)) + '\n');
  } finally {
    // main.ts exits right after: the store may leave its WAL for the next run instead of checkpointing it now.
    await store.close({ atExit: true });
  }
}

function totalsJson(t: TokenTotals) {
  return {
    inputTokens: t.inputTokens,
    outputTokens: t.outputTokens,
    cacheCreationTokens: t.cacheCreationTokens,
    cacheReadTokens: t.cacheReadTokens,
    totalTokens: t.totalTokens,
    totalCost: round(t.totalCost),
    cacheCreation5mTokens: t.cacheCreation5mTokens,
    cacheCreation1hTokens: t.cacheCreation1hTokens,
    cacheHitRate: Number(t.cacheHitRate.toFixed(6)),
    requests: t.requests,
    webSearchRequests: t.webSearchRequests,
    unknownCostTokens: t.unknownCostTokens,
    unknownModels: t.unknownModels,
    costComplete: t.unknownCostTokens === 0 && t.unknownModels.length === 0,
  };
}

export function toJson(report: Report) {
  const { list, field } = KEY_FIELD[report.kind];
  return {
    [list]: report.rows.map((r) => ({
      period: r.key,
      [field]: r.key,
      ...(report.kind === 'session' ? { projectPath: r.project ?? null, lastActivity: new Date(r.lastTs).toISOString() } : {}),
      ...totalsJson(r),
      modelsUsed: r.modelsUsed,
      modelBreakdowns: r.modelBreakdowns.map((m) => ({ ...m, cost: m.cost === null ? null : round(m.cost) })),
    })),
    totals: totalsJson(report.totals),
    timezone: report.timeZone,
  };
}

function toCsv(report: Report, breakdown: boolean): string {
  const { field } = KEY_FIELD[report.kind];
  const head = [field, ...(breakdown ? ['model'] : []), 'inputTokens', 'outputTokens', 'cacheCreation5mTokens',
    'cacheCreation1hTokens', 'cacheReadTokens', 'totalTokens', 'cost', 'costComplete', 'cacheHitRate', 'requests'];
  const lines = [csvLine(head)];
  for (const r of report.rows) {
    if (breakdown) {
      for (const m of r.modelBreakdowns) {
        lines.push(csvLine([r.key, m.modelName, m.inputTokens, m.outputTokens, null, null, m.cacheReadTokens,
          m.inputTokens + m.outputTokens + m.cacheCreationTokens + m.cacheReadTokens,
          m.cost === null ? null : round(m.cost), m.cost !== null ? 'true' : 'false', null, m.requests]));
      }
    } else {
      lines.push(csvLine([r.key, r.inputTokens, r.outputTokens, r.cacheCreation5mTokens, r.cacheCreation1hTokens,
        r.cacheReadTokens, r.totalTokens, round(r.totalCost), r.unknownCostTokens === 0 ? 'true' : 'false',
        Number(r.cacheHitRate.toFixed(6)), r.requests]));
    }
  }
  return lines.join('\n') + '\n';
}

function toTable(report: Report, breakdown: boolean): string {
  const wide = terminalWidth() >= 120;
  const n = wide ? formatInt : formatCompact;
  const { title } = KEY_FIELD[report.kind];
  const keyWidth = wide ? 40 : 18;
  const columns: Column[] = [
    { header: title, align: 'left' }, { header: 'Input' }, { header: 'Output' }, { header: 'Cache W' },
    { header: 'Cache R' }, { header: 'Total' }, { header: 'Cost' }, { header: 'Hit %' },
  ];
  const cells = (label: string, r: TokenTotals | ReportRow) => [
    shorten(label, keyWidth), n(r.inputTokens), n(r.outputTokens), n(r.cacheCreationTokens), n(r.cacheReadTokens),
    n(r.totalTokens), formatCost(r.totalCost, r.unknownCostTokens), formatPercent(r.cacheHitRate),
  ];
  const rows: string[][] = [];
  for (const r of report.rows) {
    rows.push(cells(report.kind === 'model' ? r.key.replace(/^claude-/, '') : r.key, r));
    if (breakdown) {
      for (const m of r.modelBreakdowns) {
        rows.push([`  ${shorten(m.modelName.replace(/^claude-/, ''), keyWidth)}`, n(m.inputTokens), n(m.outputTokens), n(m.cacheCreationTokens),
          n(m.cacheReadTokens), n(m.inputTokens + m.outputTokens + m.cacheCreationTokens + m.cacheReadTokens),
          m.cost === null ? 'unknown' : formatUsd(m.cost), '']);
      }
    }
  }
  if (report.rows.length === 0) {
    return `No usage recorded${report.kind === 'daily' ? '' : ` for this ${report.kind} report`} in the selected range.`;
  }
  const notes: string[] = [];
  const t = report.totals;
  if (t.unknownModels.length > 0) {
    notes.push(`Cost unknown for ${formatInt(t.unknownCostTokens)} tokens of models without a price: ${t.unknownModels.join(', ')}.`
      + ' Add them to TOKENTALLY_HOME/prices.json.');
  }
  if (!wide) notes.push('K = thousand, M = million, B = billion tokens; Hit % = cache reads / prompt tokens.');
  return [renderTable(columns, rows, cells('Total', t)), ...notes.map((n) => wrap(n))].join('\n');
}

/** Paths keep their informative end; other labels their start. */
function shorten(s: string, max: number): string {
  if (s.length <= max) return s;
  return s.includes('/') ? '…' + s.slice(s.length - max + 1) : s.slice(0, max - 1) + '…';
}

/** Costs to 1e-8 USD: enough for any rate card, and float sums of the same costs in another order agree. */
function round(x: number): number {
  return Math.round(x * 1e8) / 1e8;
}

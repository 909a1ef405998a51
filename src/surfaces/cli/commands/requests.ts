import type { Command } from 'commander';
import { SOURCE_PROXY, SOURCE_TRANSCRIPT, totalTokens } from '../../../core/types.js';
import { assertTimeZone, LocalCalendar, parseDateArg, systemTimeZone } from '../../../core/time.js';
import type { StoredRequest } from '../../../store/store.js';
import { loadPriceBook, openStore } from '../context.js';
import { UsageError } from '../errors.js';
import { formatCompact, formatInt, formatUsd, renderTable, terminalWidth, type Column } from '../format.js';
import { describeSync, runSync } from './sync.js';

interface RequestsFlags {
  session?: string;
  since?: string;
  until?: string;
  timezone?: string;
  limit: string;
  json?: boolean;
  sync: boolean;
}

export function registerRequests(program: Command): void {
  program.command('requests')
    .description('the per-request log, newest first, with cost per request (proxy records and transcript lines)')
    .option('--session <id>', 'only this Claude Code session')
    .option('-s, --since <date>', 'first day to include (YYYY-MM-DD)')
    .option('-u, --until <date>', 'last day to include (YYYY-MM-DD)')
    .option('-z, --timezone <zone>', 'IANA time zone for days and times (default: the system zone)')
    .option('-n, --limit <n>', 'at most this many requests', '50')
    .option('--json', 'JSON output')
    .option('--no-sync', 'list from the store without reading transcripts first')
    .action(async (flags: RequestsFlags) => runRequests(flags));
}

async function runRequests(flags: RequestsFlags): Promise<void> {
  const since = flags.since ? parseDateArg(flags.since, '--since') : undefined;
  const until = flags.until ? parseDateArg(flags.until, '--until') : undefined;
  if (since && until && since > until) throw new UsageError(`--since ${since} is after --until ${until}`);
  const limit = Number(flags.limit);
  if (!/^\d+$/.test(flags.limit.trim()) || limit < 1) throw new UsageError(`--limit expects a positive whole number, got "${flags.limit}"`);
  const timeZone = assertTimeZone(flags.timezone ?? systemTimeZone());
  const cal = new LocalCalendar(timeZone);

  const store = openStore(loadPriceBook());
  try {
    if (flags.sync) {
      const sync = await runSync(store, true);
      if (!flags.json && sync.errors.length > 0) process.stderr.write(describeSync(sync, false) + '\n');
    }
    const rows = await store.listRequests({
      sessionId: flags.session,
      fromTs: since ? cal.startOfDay(since) : undefined,
      toTs: until ? cal.startOfDay(nextDay(until)) : undefined,
      limit,
    });
    if (flags.json) process.stdout.write(JSON.stringify({ requests: rows.map(toJson), timezone: timeZone }, null, 2) + '\n');
    else process.stdout.write(toTable(rows, timeZone) + '\n');
  } finally {
    await store.close();
  }
}

function sourceNames(sources: number): string[] {
  const out: string[] = [];
  if (sources & SOURCE_TRANSCRIPT) out.push('transcript');
  if (sources & SOURCE_PROXY) out.push('proxy');
  if (sources & ~(SOURCE_TRANSCRIPT | SOURCE_PROXY)) out.push('other');
  return out;
}

function toJson(r: StoredRequest) {
  const u = r.usage;
  return {
    time: new Date(r.ts).toISOString(),
    requestId: r.requestId,
    messageId: r.messageId,
    sessionId: r.sessionId,
    agentId: r.agentId,
    project: r.project,
    model: r.model,
    modelRequested: r.proxy?.modelRequested ?? null,
    endpoint: r.proxy?.endpoint ?? null,
    stream: r.proxy ? r.proxy.stream : null,
    status: r.proxy?.status ?? null,
    errorType: r.proxy?.errorType ?? null,
    inputTokens: u.input,
    outputTokens: u.output,
    cacheCreation5mTokens: u.cacheWrite5m,
    cacheCreation1hTokens: u.cacheWrite1h,
    cacheReadTokens: u.cacheRead,
    totalTokens: totalTokens(u),
    webSearchRequests: u.webSearches,
    serviceTier: u.serviceTier,
    speed: u.speed,
    inferenceGeo: u.inferenceGeo,
    cost: r.cost === null ? null : Math.round(r.cost * 1e8) / 1e8,
    latencyMs: r.proxy?.latencyMs ?? null,
    ttftMs: r.proxy?.ttftMs ?? null,
    stopReason: r.stopReason,
    tools: r.tools,
    requestBytes: r.proxy?.requestBytes ?? null,
    messageCount: r.proxy?.messageCount ?? null,
    userAgent: r.proxy?.userAgent ?? null,
    keyHash: r.proxy?.keyHash ?? null,
    clientVersion: r.clientVersion,
    sources: sourceNames(r.sources),
  };
}

function toTable(rows: StoredRequest[], timeZone: string): string {
  if (rows.length === 0) return 'No requests recorded in the selected range.';
  const wide = terminalWidth() >= 120;
  const time = new Intl.DateTimeFormat('en-CA', {
    timeZone, month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  });
  const columns: Column[] = [
    { header: 'Time', align: 'left' }, { header: 'Model', align: 'left' }, { header: 'Status', align: 'left' },
    { header: 'Input' }, { header: 'Output' }, { header: 'Cache W' }, { header: 'Cache R' }, { header: 'Cost' }, { header: 'ms' },
    ...(wide ? [{ header: 'Session', align: 'left' as const }, { header: 'Tools', align: 'left' as const }] : []),
  ];
  const n = wide ? formatInt : formatCompact;
  let total = 0;
  let unknown = 0;
  const body = rows.map((r) => {
    const u = r.usage;
    if (r.cost === null) unknown++;
    else total += r.cost;
    const parts = time.formatToParts(new Date(r.ts));
    const get = (t: string) => parts.find((p) => p.type === t)?.value ?? '';
    const when = `${get('month')}-${get('day')} ${get('hour')}:${get('minute')}:${get('second')}`;
    const model = (r.model ?? '-').replace(/^claude-/, '');
    return [
      when, model.length > 16 ? model.slice(0, 15) + '…' : model, statusLabel(r),
      n(u.input), n(u.output), n(u.cacheWrite5m + u.cacheWrite1h), n(u.cacheRead),
      r.cost === null ? (totalTokens(u) > 0 ? 'unknown' : '-') : r.cost < 1 ? `$${r.cost.toFixed(4)}` : formatUsd(r.cost),
      r.proxy ? String(Math.round(r.proxy.latencyMs)) : '',
      ...(wide ? [(r.sessionId ?? '').slice(0, 8), r.tools.join(',').slice(0, 30)] : []),
    ];
  });
  const notes = [`${formatInt(rows.length)} request${rows.length === 1 ? '' : 's'}, ${total < 1 ? `$${total.toFixed(4)}` : formatUsd(total)}`
    + `${unknown ? ` + ${unknown} of unknown cost` : ''}.`,
    'Status: HTTP status seen by the proxy; abort = client disconnected,',
    'error = upstream failed, log = seen in a transcript only.'];
  if (!wide) notes.push('K = thousand, M = million tokens; ms = latency through the proxy.');
  return [renderTable(columns, body), ...notes].join('\n');
}

function statusLabel(r: StoredRequest): string {
  if (!r.proxy) return 'log';
  const s = r.proxy.status;
  if (s === 'client_aborted') return 'abort';
  if (s === 'upstream_error') return 'error';
  return s;
}

function nextDay(date: string): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
}

/**
 * `tokentally session <id|latest>`: the turn-by-turn audit of one session (registered by the `session`
 * report command in report.ts, which takes an optional id). Also the helpers the insights, tools and
 * whatif commands share: sync-then-open, session lookup, scope flags.
 */
import type { PriceBook } from '../../../core/pricing/pricebook.js';
import { assertTimeZone, LocalCalendar, parseDateArg, systemTimeZone } from '../../../core/time.js';
import { loadSessionModels, resolveSession, type AuditScope } from '../../../analysis/audit-data.js';
import { auditSession, formatGap, type AuditRow, type SessionAudit } from '../../../analysis/session-audit.js';
import { attributeTools, type ToolAttribution } from '../../../analysis/tool-attribution.js';
import type { Store } from '../../../store/store.js';
import { loadPriceBook, openStore } from '../context.js';
import { UsageError, UserFacingError } from '../errors.js';
import { formatCompact, formatInt, formatPercent, formatUsd, renderTable, terminalWidth, wrap, type Column, printable } from '../format.js';
import { describeSync, runSync } from './sync.js';

export interface CommonFlags {
  json?: boolean;
  sync: boolean;
  verbose?: boolean;
  timezone?: string;
}

/** Open the store (syncing transcripts first unless --no-sync), run `fn`, close. */
export async function withStore<T>(flags: CommonFlags, fn: (store: Store, prices: PriceBook) => Promise<T>): Promise<T> {
  const prices = loadPriceBook();
  const store = openStore(prices);
  try {
    if (flags.sync) {
      const machine = Boolean(flags.json);
      const sync = await runSync(store, machine, { facts: true });
      const problems = sync.errors.length > 0 || Object.values(sync.skipped).some((n) => n > 0) || sync.roots.length === 0;
      if (!machine && (problems || flags.verbose)) process.stderr.write(describeSync(sync, Boolean(flags.verbose)) + '\n');
    }
    return await fn(store, prices);
  } finally {
    await store.close();
  }
}

/** A session id, unique prefix or `latest`; an unknown one is a user-facing error (exit 1). */
export async function sessionIdFor(store: Store, arg: string): Promise<string> {
  const found = await resolveSession(store, arg.trim());
  if ('id' in found) return found.id;
  if ('ambiguous' in found) {
    throw new UserFacingError(`"${arg}" matches ${found.ambiguous.length} sessions: ${found.ambiguous.slice(0, 5).join(', ')}`
      + `${found.ambiguous.length > 5 ? ', …' : ''}`, 'give more characters of the session id');
  }
  throw new UserFacingError(arg === 'latest' ? 'no session recorded yet' : `no session with id "${arg}"`,
    'run `tokentally session` to list sessions (ids and unique prefixes work, as does `latest`)');
}

export interface ScopeFlags {
  session?: string;
  since?: string;
  until?: string;
  project?: string;
  timezone?: string;
}

/** --session, or --since/--until/--project (days in --timezone). */
export async function scopeFrom(store: Store, flags: ScopeFlags): Promise<{ scope: AuditScope; label: string }> {
  const tz = assertTimeZone(flags.timezone ?? systemTimeZone());
  if (flags.session !== undefined) {
    if (flags.since || flags.until) throw new UsageError('--session cannot be combined with --since/--until');
    const id = await sessionIdFor(store, flags.session);
    return { scope: { sessionId: id }, label: `session ${id}` };
  }
  const since = flags.since ? parseDateArg(flags.since, '--since') : undefined;
  const until = flags.until ? parseDateArg(flags.until, '--until') : undefined;
  if (since && until && since > until) throw new UsageError(`--since ${since} is after --until ${until}`);
  const cal = new LocalCalendar(tz);
  const scope: AuditScope = { project: flags.project };
  if (since) scope.fromTs = cal.startOfDay(since);
  if (until) {
    const next = new Date(Date.parse(`${until}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
    scope.toTs = cal.startOfDay(next);
  }
  const parts = [since ? `from ${since}` : '', until ? `to ${until}` : '', flags.project ? `projects matching "${flags.project}"` : ''];
  const label = parts.filter(Boolean).join(' ') || 'all recorded sessions';
  return { scope, label };
}

export function parsePositiveInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1) throw new UsageError(`${flag} expects a whole number of at least 1, got "${value}"`);
  return Number(value);
}

interface SessionAuditFlags extends CommonFlags {
  csv?: boolean;
  since?: string;
  until?: string;
  project?: string;
  breakdown?: boolean;
}

export async function runSessionAudit(id: string, flags: SessionAuditFlags): Promise<void> {
  for (const [flag, set] of [['--csv', flags.csv], ['--since', flags.since], ['--until', flags.until], ['--project', flags.project],
    ['--breakdown', flags.breakdown]] as const) {
    if (set) throw new UsageError(`${flag} applies to the per-session report, not to the audit of one session (tokentally session ${id})`);
  }
  const tz = assertTimeZone(flags.timezone ?? systemTimeZone());
  await withStore(flags, async (store, prices) => {
    const sessionId = await sessionIdFor(store, id);
    const [model] = await loadSessionModels(store, prices, { sessionId });
    if (!model) throw new UserFacingError(`no session with id "${id}"`, 'run `tokentally session` to list sessions');
    const audit = auditSession(model, prices);
    const tools = attributeTools([model], { largest: 10 });
    if (flags.json) process.stdout.write(JSON.stringify(auditJson(audit, tools), null, 2) + '\n');
    else process.stdout.write(printable(auditText(audit, tools, tz)) + '\n');
  });
}

const iso = (ts: number | null) => (ts === null ? null : new Date(ts).toISOString());

export function auditJson(a: SessionAudit, tools: ToolAttribution) {
  return {
    sessionId: a.sessionId,
    projectPath: a.project,
    firstActivity: iso(a.firstTs),
    lastActivity: iso(a.lastTs),
    models: a.models,
    totals: { ...a.totals, costComplete: a.totals.unpricedRequests === 0 },
    threads: a.threads,
    requests: a.rows.map((r) => ({ ...r, time: iso(r.ts) })),
    compactions: a.compactions.map((c) => ({ ...c, time: iso(c.ts) })),
    cacheExpiries: a.cacheExpiries,
    prefixChanges: a.prefixChanges,
    idleGaps: a.idleGaps,
    skipped: a.skipped,
    tools: toolsJson(tools),
    definitions: {
      context: 'input + cache writes (5m + 1h) + cache reads of the request',
      growth: 'context minus the previous request of the same thread (main thread and each subagent are separate)',
      cacheHitRate: 'cache reads / context',
      cumulativeCost: 'sum of the known costs of this and all earlier requests of the session, by time',
      cacheExpiry: 'gap since the previous request of the thread longer than the cache lifetime (5 min, or 1 h after 1h writes), '
        + 'then a request writing more than it reads; extraCost = its cost minus its cost had the re-written tokens been reads',
      prefixChange: 'within the cache lifetime, a request that writes >= 50% of its context while the previous request (same thread) '
        + 'had a cached context >= 50% of this one and this one reads < 50% of it back',
      docs: 'docs/insights.md',
    },
  };
}

export function toolsJson(t: ToolAttribution) {
  return {
    totals: t.totals,
    byGroup: t.byGroup,
    byTool: t.byTool,
    largest: t.largest,
    repeatedReads: t.repeatedReads,
    results: t.results,
  };
}

function threadLabels(a: SessionAudit): Map<string, string> {
  const labels = new Map<string, string>();
  let n = 0;
  let side = 0;
  for (const t of a.threads) {
    if (t.thread === 'main') labels.set(t.thread, 'main');
    else if (t.interleaved) labels.set(t.thread, `side${++side}`);
    else labels.set(t.thread, `sub${++n}`);
  }
  return labels;
}

const NOTE_TEXT: Record<string, string> = {
  compaction: 'compacted', 'context-drop': 'drop', 'cache-expiry': 'expired', 'prefix-change': 'prefix', 'model-change': 'model',
};

export function auditText(a: SessionAudit, tools: ToolAttribution, tz: string): string {
  const wide = terminalWidth() >= 120;
  const n = wide ? formatInt : formatCompact;
  const labels = threadLabels(a);
  const time = new Intl.DateTimeFormat('en-GB', { timeZone: tz, hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
  const day = new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' });
  const cost = (c: number | null) => (c === null ? 'unknown' : formatUsd(c));
  const out: string[] = [];
  out.push(wrap(`Session ${a.sessionId}${a.project ? `  (${shorten(a.project, 60)})` : ''}`));
  if (a.firstTs !== null && a.lastTs !== null) {
    out.push(`${day.format(a.firstTs)} ${time.format(a.firstTs)} → ${day.format(a.lastTs)} ${time.format(a.lastTs)} ${tz}`);
  }
  const t = a.totals;
  const unknown = t.unpricedRequests > 0 ? ` + unknown for ${t.unpricedRequests} requests (${t.unpricedModels.join(', ')})` : '';
  out.push(wrap(`${formatInt(t.requests)} requests · ${a.models.join(', ')} · cost ${formatUsd(t.cost)}${unknown} · `
    + `cache hit ${formatPercent(t.cacheHitRate)}`));
  out.push('');

  const columns: Column[] = [
    { header: '#' }, { header: 'Time', align: 'left' }, { header: 'Thread', align: 'left' }, { header: 'Context' },
    { header: '+Δ' }, { header: 'Output' }, { header: 'Cost' }, { header: 'Hit%' }, { header: 'Cum $' }, { header: 'Notes', align: 'left' },
  ];
  const rows = a.rows.map((r: AuditRow) => [
    String(r.n), time.format(r.ts), labels.get(r.thread) ?? r.thread, n(r.context),
    r.growth === null ? '—' : `${r.growth >= 0 ? '+' : '-'}${n(Math.abs(r.growth))}`, n(r.output), cost(r.cost),
    `${Math.round(r.cacheHitRate * 100)}%`, formatUsd(r.cumulativeCost), r.notes.map((x) => NOTE_TEXT[x] ?? x).join(','),
  ]);
  out.push(rows.length ? renderTable(columns, rows) : 'No requests recorded for this session.');
  out.push('');

  out.push('Threads (each subagent is a separate context):');
  for (const th of a.threads) {
    const who = th.thread === 'main' ? 'main' : th.agentId ? `${labels.get(th.thread)} = agent ${th.agentId}`
      : `${labels.get(th.thread)} = inline sidechain (subagents may interleave: growth approximate, sizes estimated)`;
    out.push(item(`${who}: ${formatInt(th.requests)} requests, ${th.costComplete ? formatUsd(th.cost) : `${formatUsd(th.cost)}+?`}; `
      + `context ${formatInt(th.firstContext)} → ${formatInt(th.lastContext)} (peak ${formatInt(th.peakContext)}), `
      + `${th.meanGrowth >= 0 ? '+' : ''}${formatInt(th.meanGrowth)} tokens per request on average${th.resets ? `, ${th.resets} reset(s)` : ''}`));
  }
  out.push('');
  out.push('Compaction points:');
  if (a.compactions.length === 0) out.push('  none recorded');
  for (const c of a.compactions) {
    const what = c.kind === 'compaction' ? `compaction${c.trigger ? ` (${c.trigger})` : ''}${c.preTokens !== null ? `, ${formatInt(c.preTokens)} tokens before` : ''}`
      : 'context dropped by more than half without a compaction record';
    out.push(item(`${c.n !== null ? `#${c.n}` : 'after the last request'} ${labels.get(c.thread) ?? c.thread} ${time.format(c.ts)}: ${what}; `
      + `context ${c.contextBefore === null ? '?' : formatInt(c.contextBefore)} → ${c.contextAfter === null ? '(no later request)' : formatInt(c.contextAfter)}`));
  }
  out.push('');
  out.push(wrap(`Paid cache expiries (idle longer than the cache lifetime, then the context written again): ${formatUsd(t.cacheExpiryCost)} extra`));
  if (a.cacheExpiries.length === 0) out.push('  none');
  for (const e of a.cacheExpiries) {
    out.push(item(`#${e.n} ${labels.get(e.thread)}: idle ${formatGap(e.gapMs)} > ${e.ttlMs >= 3_600_000 ? '1h' : '5m'}, `
      + `${formatInt(e.rewrittenTokens)} tokens re-written: ${cost(e.cost)} instead of ${cost(e.costIfRead)} (+${cost(e.extraCost)})`));
  }
  const unpaid = a.idleGaps.filter((g) => !g.paidExpiry).length;
  if (unpaid) out.push(`  (${unpaid} other idle gap${unpaid > 1 ? 's' : ''} longer than the cache lifetime had no re-write)`);
  out.push('');
  out.push(wrap(`Cache writes that should have been reads (prefix changed): ${formatUsd(t.prefixChangeCost)} extra`));
  if (a.prefixChanges.length === 0) out.push('  none');
  for (const e of a.prefixChanges) {
    out.push(item(`#${e.n} ${labels.get(e.thread)} (${formatGap(e.gapMs)} after the previous request): ${formatInt(e.rewrittenTokens)} tokens `
      + `re-written, +${cost(e.extraCost)}; ${e.reason}`));
  }
  out.push(item('Heuristic: within the cache lifetime, a request that writes at least half its context to the cache while the '
    + 'previous request of its thread had cached a context at least half this size, and reads back less than half of it.'));
  out.push('');
  out.push(toolsText(tools, { limit: 5, title: 'Tool results in this session' }));
  out.push('');
  out.push(wrap('Context = input + cache writes + cache reads; +Δ = growth since the previous request of the same thread; '
    + 'Hit% = cache reads / context; Cum $ = cost so far. Notes: compacted, drop (context shrank without a compaction record), '
    + 'expired (paid cache expiry), prefix (write that should have been a read), model (model changed).'
    + (a.skipped.synthetic ? ` ${a.skipped.synthetic} <synthetic> error line(s) left out.` : '')
    + (a.skipped.failedAttempts ? ` ${a.skipped.failedAttempts} failed proxy attempt(s) left out.` : '')));
  return out.join('\n');
}

/** The tool attribution as text (shared with `tokentally tools`). */
export function toolsText(t: ToolAttribution, opts: { limit: number; title: string }): string {
  const wide = terminalWidth() >= 120;
  const n = wide ? formatInt : formatCompact;
  const out: string[] = [];
  const tot = t.totals;
  const exactShare = tot.tokens > 0 ? tot.exactTokens / tot.tokens : 0;
  const plural = (k: number, w: string) => `${formatInt(k)} ${w}${k === 1 ? '' : 's'}`;
  out.push(wrap(`${opts.title}: ${plural(tot.calls, 'call')}, ${plural(tot.results, 'result')}, ${formatInt(tot.tokens)} tokens `
    + `(${formatPercent(exactShare)} exact from usage, the rest estimated at 4 characters per token); `
    + `sent ${formatUsd(tot.firstSendCost)}, re-sent on later requests ${formatUsd(tot.carriedCost)}`
    + `${tot.subagentRequestCost > 0 ? `; subagents' own requests ${formatUsd(tot.subagentRequestCost)}` : ''}`
    + `${tot.costComplete ? '' : ' (some requests have no price: their share is left out)'}`));
  if (tot.results === 0 && tot.calls === 0) return out.join('\n');
  const columns: Column[] = [
    { header: 'Tool', align: 'left' }, { header: 'Calls' }, { header: 'Tokens' }, { header: 'Exact' },
    { header: 'Sent' }, { header: 'Carried' }, { header: 'Total' },
  ];
  const rows = t.byGroup.slice(0, Math.max(opts.limit, 1) * 3).map((g) => [
    shorten(g.group === 'subagents' ? 'subagents*' : g.group, wide ? 40 : 18), formatInt(g.calls), n(g.tokens),
    g.tokens > 0 ? `${Math.round((g.exactTokens / g.tokens) * 100)}%` : '—', formatUsd(g.firstSendCost), formatUsd(g.carriedCost),
    formatUsd(g.totalCost),
  ]);
  out.push(renderTable(columns, rows));
  if (t.byGroup.some((g) => g.group === 'subagents')) {
    out.push(item('* subagents (Task/Agent): Total includes the subagents\' own requests; MCP tools are grouped as mcp:<server>.'));
  }
  const largest = t.largest.slice(0, opts.limit).filter((x) => x.tokens > 0);
  if (largest.length) {
    out.push('Largest results:');
    for (const x of largest) {
      out.push(item(`${x.tool}${x.target ? ` ${shorten(x.target, 40)}` : ''}: ${formatInt(x.tokens)} tokens (${x.method}), `
        + `${x.firstSentN === null ? 'never sent' : `in ${x.sentIn} request${x.sentIn > 1 ? 's' : ''} from #${x.firstSentN}`}`
        + `${t.sessions > 1 ? ` of ${x.sessionId.slice(0, 8)}` : ''}: ${formatUsd(x.firstSendCost)} + ${formatUsd(x.carriedCost)} carried`));
    }
  }
  if (t.repeatedReads.length) {
    out.push('Files read more than once:');
    for (const r of t.repeatedReads.slice(0, opts.limit)) {
      out.push(item(`${shorten(r.file, 50)} ×${r.reads}${t.sessions > 1 ? ` in ${r.sessionId.slice(0, 8)}` : ''}: `
        + `${formatInt(r.tokens)} tokens, re-reads cost ${formatUsd(r.repeatCost)} of ${formatUsd(r.totalCost)}`));
    }
  }
  return out.join('\n');
}

/** An indented list item, wrapped to the terminal with hanging indentation. */
export function item(text: string, indent = '  '): string {
  return wrap(text, terminalWidth() - indent.length - 2).split('\n').map((l, i) => (i ? `${indent}  ${l}` : `${indent}${l}`)).join('\n');
}

export function shorten(s: string, max: number): string {
  if (s.length <= max) return s;
  return s.includes('/') ? '…' + s.slice(s.length - max + 1) : s.slice(0, max - 1) + '…';
}

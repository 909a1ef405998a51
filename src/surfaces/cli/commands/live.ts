import { printable } from '../format.js';
import type { Command } from 'commander';
import { clockNow, findActiveBlock, type Block } from '../../../analysis/blocks.js';
import { assertTimeZone, LocalCalendar, systemTimeZone } from '../../../core/time.js';
import { syncTranscripts } from '../../../sources/transcripts/sync.js';
import type { PriceBook } from '../../../core/pricing/pricebook.js';
import type { Store } from '../../../store/store.js';
import { loadPriceBook, openStore } from '../context.js';
import { compact, duration, localDateTime, localTime, usd, usdWithUnknown } from '../../statusline/text.js';
import { blockJson } from './blocks.js';
import { parseAmount } from './estimate.js';

interface LiveFlags {
  interval: string;
  activeMinutes: string;
  timezone?: string;
  once?: boolean;
  json?: boolean;
  sync: boolean;
}

export function registerLive(program: Command): void {
  program.command('live')
    .description('a terminal view refreshing every few seconds: current block, today, budgets, active sessions (q to quit)')
    .option('-i, --interval <seconds>', 'seconds between refreshes', '2')
    .option('--active-minutes <n>', 'a session is active when it made a request in the last n minutes', '10')
    .option('-z, --timezone <zone>', 'IANA time zone for "today" and times (default: the system zone)')
    .option('--once', 'print one frame and exit (the default when stdout is not a terminal)')
    .option('--json', 'print one snapshot as JSON and exit')
    .option('--no-sync', "don't import transcripts on each refresh")
    .action(async (flags: LiveFlags) => runLive(flags));
}

// ------------------------------------------------------------------------------------------ snapshot

export interface ActiveSession {
  sessionId: string | null;
  project: string | null;
  models: string[];
  requests: number;
  cost: number;
  unknownCostTokens: number;
  lastTs: number;
}

/** One budget's state, as the live view shows it. */
export interface BudgetLine {
  name: string;
  period: string;
  spent: number;
  limit: number;
  percent: number;
  /** Spend of unpriced requests is unknown: the figure is a lower bound. */
  incomplete: boolean;
  /** null for a per-session budget. */
  msToReset: number | null;
  projected: number | null;
  exhausted: boolean;
  action: string;
}

/**
 * Budgets for the live view (read only: alerts are fired by `budget status`, the hook and the proxy).
 * null = none defined, shown as "no budgets".
 */
export async function readBudgets(store: Store, now: number, prices: PriceBook): Promise<BudgetLine[] | null> {
  const defs = await store.listBudgets();
  if (defs.length === 0) return null;
  const { evaluateBudgets } = await import('../../../policy/evaluate.js');
  return (await evaluateBudgets(store, defs, now, { prices })).map((s) => ({
    name: s.budget.name, period: s.budget.period, spent: s.spentUsd, limit: s.limitUsd, percent: s.percent,
    incomplete: s.unknownCostRequests > 0, msToReset: s.msToReset, projected: s.projectedUsd, exhausted: s.exhausted,
    action: s.budget.action,
  }));
}

export interface LiveSnapshot {
  now: number;
  timeZone: string;
  block: Block | null;
  today: { date: string; cost: number; unknownCostTokens: number; requests: number };
  budgets: BudgetLine[] | null;
  activeMinutes: number;
  sessions: ActiveSession[];
}

export async function collectLiveSnapshot(store: Store,
  o: { now: number; timeZone: string; activeMinutes: number; prices: PriceBook }): Promise<LiveSnapshot> {
  const cal = new LocalCalendar(o.timeZone);
  const date = cal.date(o.now);
  const [t] = await store.summarize({ fromTs: cal.startOfDay(date), toTs: o.now + 1 }, []);
  const groups = await store.summarize({ fromTs: o.now - o.activeMinutes * 60_000, toTs: o.now + 1 }, ['session', 'project', 'model']);
  const bySession = new Map<string, ActiveSession>();
  for (const g of groups) {
    const key = g.session ?? '';
    let s = bySession.get(key);
    // Transcript text is untrusted: no control characters reach the terminal.
    if (!s) bySession.set(key, (s = { sessionId: g.session ? printable(g.session) : null, project: null, models: [], requests: 0, cost: 0, unknownCostTokens: 0, lastTs: 0 }));
    s.project ??= g.project ? printable(g.project) : null;
    if (g.model && !s.models.includes(printable(g.model))) s.models.push(printable(g.model));
    s.requests += g.requests;
    s.cost += g.cost;
    s.unknownCostTokens += g.unknownCostTokens;
    s.lastTs = Math.max(s.lastTs, g.lastTs);
  }
  return {
    now: o.now, timeZone: o.timeZone,
    block: await findActiveBlock(store, o.now),
    today: { date, cost: t?.cost ?? 0, unknownCostTokens: t?.unknownCostTokens ?? 0, requests: t?.requests ?? 0 },
    budgets: await readBudgets(store, o.now, o.prices),
    activeMinutes: o.activeMinutes,
    sessions: [...bySession.values()].sort((a, b) => b.lastTs - a.lastTs),
  };
}

// ------------------------------------------------------------------------------------------ rendering

function fit(s: string, width: number): string {
  return s.length > width ? s.slice(0, Math.max(0, width - 1)) + '…' : s;
}

function tail(s: string, width: number): string {
  return s.length > width ? '…' + s.slice(s.length - width + 1) : s;
}

/** The lines of one frame, each at most `width` columns (plain text: colour would not survive capture). */
export function renderLiveFrame(s: LiveSnapshot, width: number, status: string, intervalS: number): string[] {
  const w = Math.max(40, width);
  const lines: string[] = [];
  const header = `tokentally live  ${localDateTime(s.now, s.timeZone)} ${s.timeZone}`;
  const keys = `every ${intervalS}s, q to quit`;
  lines.push(header.length + keys.length + 2 <= w ? header + ' '.repeat(w - header.length - keys.length) + keys : header);
  lines.push('─'.repeat(Math.min(w, 78)));
  const b = s.block;
  if (b) {
    lines.push(`Current block   ${localTime(b.startTs, s.timeZone)}-${localTime(b.endTs, s.timeZone)}, ${duration(b.endTs - s.now)} left`);
    const burn = b.burnRate ? `   burn ${usd(b.burnRate.costPerHour)}/h` : '';
    const proj = b.projection && b.burnRate ? `, projected ${usd(b.projection.projectedCost)} at ${localTime(b.endTs, s.timeZone)}` : '';
    lines.push(`  Cost          ${usdWithUnknown(b.cost, b.unknownCostTokens)}${burn}${proj}`);
    lines.push(`  Tokens        ${compact(b.tokens.total)}${b.burnRate ? `   ${compact(b.burnRate.tokensPerMinute)}/min` : ''}`);
    lines.push(`  Requests      ${b.requests}`);
  } else {
    lines.push('Current block   none (no request in the last 5 h)');
  }
  lines.push(`Today           ${usdWithUnknown(s.today.cost, s.today.unknownCostTokens)}   ${s.today.requests} requests`);
  if (s.budgets === null || s.budgets.length === 0) {
    lines.push('Budgets         no budgets');
  } else {
    lines.push('Budgets');
    for (const x of s.budgets) {
      const reset = x.msToReset === null ? 'per session' : `${x.period}, ${duration(x.msToReset)} left`;
      // Exhausted: what happens now matters more than the projection.
      const tail = x.exhausted ? `  ${x.action.toUpperCase()}` : x.projected === null ? '' : `, proj ${usd(x.projected)}`;
      lines.push(`  ${fit(x.name, 12).padEnd(12)} ${`${usd(x.spent)}${x.incomplete ? '+?' : ''}`.padStart(9)} / ${usd(x.limit).padEnd(8)}`
        + ` ${`${Math.round(x.percent)}%`.padStart(5)}  ${reset}${tail}`);
    }
  }
  lines.push('');
  lines.push(`Active sessions (requests in the last ${s.activeMinutes} min): ${s.sessions.length}`);
  if (s.sessions.length) {
    lines.push(`  ${'Session'.padEnd(9)}${'Project'.padEnd(22)}${'Model'.padEnd(14)}${'Req'.padStart(5)}${'Cost'.padStart(10)}  Last`);
    const room = Math.max(0, process.stdout.rows ? process.stdout.rows - lines.length - 3 : 20);
    for (const x of s.sessions.slice(0, Math.max(1, room))) {
      const model = (x.models[0] ?? '?').replace(/^claude-/, '') + (x.models.length > 1 ? '+' : '');
      lines.push(`  ${(x.sessionId ?? '?').slice(0, 8).padEnd(9)}${tail(x.project ?? '?', 21).padEnd(22)}${fit(model, 13).padEnd(14)}`
        + `${String(x.requests).padStart(5)}${usdWithUnknown(x.cost, x.unknownCostTokens).padStart(10)}  ${duration(s.now - x.lastTs)} ago`);
    }
  }
  lines.push('');
  lines.push(status);
  return lines.map((l) => fit(l, w));
}

function snapshotJson(s: LiveSnapshot) {
  return {
    asOf: new Date(s.now).toISOString(),
    timezone: s.timeZone,
    block: s.block && blockJson(s.block),
    today: { date: s.today.date, costUSD: Math.round(s.today.cost * 1e6) / 1e6, costComplete: s.today.unknownCostTokens === 0,
      unknownCostTokens: s.today.unknownCostTokens, requests: s.today.requests },
    budgets: s.budgets,
    activeMinutes: s.activeMinutes,
    activeSessions: s.sessions.map((x) => ({ ...x, cost: Math.round(x.cost * 1e6) / 1e6, lastActivity: new Date(x.lastTs).toISOString() })),
  };
}

// ------------------------------------------------------------------------------------------ terminal loop

const ENTER = '\x1b[?1049h\x1b[?25l'; // alternate screen, hide cursor
const LEAVE = '\x1b[?25h\x1b[?1049l'; // show cursor, main screen

async function runLive(flags: LiveFlags): Promise<void> {
  const intervalS = parseAmount('--interval', flags.interval, { positive: true, max: 3600 });
  const activeMinutes = parseAmount('--active-minutes', flags.activeMinutes, { positive: true, max: 1440 });
  const timeZone = assertTimeZone(flags.timezone ?? systemTimeZone());
  const prices = loadPriceBook();
  const store = openStore(prices);
  const interactive = !flags.once && !flags.json && Boolean(process.stdout.isTTY);
  if (!interactive) {
    try {
      if (flags.sync) await syncTranscripts(store);
      const snap = await collectLiveSnapshot(store, { now: clockNow(), timeZone, activeMinutes, prices });
      process.stdout.write(flags.json ? JSON.stringify(snapshotJson(snap), null, 2) + '\n'
        : renderLiveFrame(snap, 80, '', intervalS).join('\n').trimEnd() + '\n');
    } finally {
      await store.close();
    }
    return;
  }
  await new LiveView(store, { intervalMs: intervalS * 1000, intervalS, activeMinutes, timeZone, sync: flags.sync, prices }).run();
}

class LiveView {
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private stopped = false;
  private status = 'starting';
  private last: LiveSnapshot | null = null;
  private finish: () => void = () => {};
  private readonly stdin = process.stdin;

  constructor(private readonly store: Store,
    private readonly o: { intervalMs: number; intervalS: number; activeMinutes: number; timeZone: string; sync: boolean; prices: PriceBook }) {}

  run(): Promise<void> {
    return new Promise((resolve) => {
      this.finish = resolve;
      process.stdout.write(ENTER);
      if (this.stdin.isTTY) this.stdin.setRawMode(true);
      this.stdin.resume();
      this.stdin.on('data', this.onKey);
      for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, this.stop);
      process.stdout.on('resize', this.redraw);
      // Any crash must still give the terminal back.
      process.on('exit', this.restore);
      void this.refresh();
    });
  }

  private readonly onKey = (buf: Buffer) => {
    const s = buf.toString('utf8');
    if (/[qQ\x03\x04]/.test(s)) this.stop();
    else if (s === 'r' && !this.busy) void this.refresh();
  };

  private readonly redraw = () => {
    if (!this.last || this.stopped) return;
    const lines = renderLiveFrame(this.last, process.stdout.columns || 80, this.status, this.o.intervalS);
    process.stdout.write('\x1b[H' + lines.map((l) => l + '\x1b[K').join('\n') + '\x1b[J');
  };

  private async refresh(): Promise<void> {
    if (this.stopped) return;
    this.busy = true;
    if (this.timer) clearTimeout(this.timer);
    try {
      // First frame straight from the store, so a long first import does not leave the screen blank.
      if (!this.last) await this.snapshot();
      if (this.o.sync) {
        if (this.status === 'starting') this.status = 'importing transcripts…';
        this.redraw();
        const r = await syncTranscripts(this.store);
        if (this.stopped) return;
        this.status = `refreshed ${localTime(Date.now(), this.o.timeZone)}: ${r.newRequests} new request${r.newRequests === 1 ? '' : 's'}`
          + (r.errors.length ? `, ${r.errors.length} unreadable file${r.errors.length === 1 ? '' : 's'}` : '');
      } else {
        this.status = `refreshed ${localTime(Date.now(), this.o.timeZone)} (no sync)`;
      }
      await this.snapshot();
    } catch (err) {
      this.status = `refresh failed: ${(err as Error).message ?? String(err)}`;
    } finally {
      this.busy = false;
    }
    if (this.stopped) return;
    this.redraw();
    this.timer = setTimeout(() => void this.refresh(), this.o.intervalMs);
  }

  private async snapshot(): Promise<void> {
    this.last = await collectLiveSnapshot(this.store, { now: clockNow(), timeZone: this.o.timeZone, activeMinutes: this.o.activeMinutes,
      prices: this.o.prices });
  }

  private readonly restore = () => {
    process.stdout.write(LEAVE);
    if (this.stdin.isTTY) {
      try {
        this.stdin.setRawMode(false);
      } catch {
        // stdin already closed
      }
    }
  };

  private readonly stop = () => {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.stdin.off('data', this.onKey);
    this.stdin.pause();
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(sig, this.stop);
    process.stdout.off('resize', this.redraw);
    this.restore();
    process.off('exit', this.restore);
    void this.store.close().finally(() => this.finish());
  };
}

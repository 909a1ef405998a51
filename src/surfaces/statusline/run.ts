/**
 * `tokentally statusline`: Claude Code's `statusLine` command. Reads the JSON Claude Code writes on stdin,
 * imports only that session's transcript (incremental, so cheap), and prints one line:
 *
 *   Opus 4.8 | $0.08 session | $12.40 today | $3.10 block, 2h13m left | ctx 14K 1%
 *
 * It runs on every assistant message, so it is dispatched before commander loads (see cli/main.ts) and
 * imports only the store, the transcript importer and the block finder. It never fails loudly: any runtime
 * error prints `tokentally: unavailable` and exits 0 (a statusline must not show a stack trace).
 */
import { parseJsonObject } from '../json-input.js';
import { existsSync, fstatSync, readdirSync, readFileSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { clockNow, findActiveBlock, type Block } from '../../analysis/blocks.js';
import type { FileCheckpoint, Store } from '../../store/store.js';
import { cacheKey, cachePath, homeDir, readCachedLine, writeCachedLine } from './cache.js';
import { fastStatusline, readFastState, storeStamps, type FastState } from './fast.js';
import { compact, duration, usd, usdWithUnknown } from './text.js';

/** The fields of Claude Code's statusLine JSON this command reads (all optional: older versions lack some). */
export interface StatuslineInput {
  sessionId: string | null;
  transcriptPath: string | null;
  modelId: string | null;
  modelName: string | null;
  /** Claude Code's own session cost estimate. */
  ccCost: number | null;
  contextSize: number | null;
  usedPercent: number | null;
  /** Prompt tokens of the latest request (input + cache writes + cache reads), from `current_usage`. */
  contextTokens: number | null;
}

export interface StatuslineData {
  model: string | null;
  session: { id: string; cost: number; unknownCostTokens: number; requests: number; ccCost: number | null } | null;
  today: { date: string; cost: number; unknownCostTokens: number; requests: number };
  block: {
    start: number; end: number; cost: number; unknownCostTokens: number; remainingMs: number;
    costPerHour: number | null; projectedCost: number | null;
    /** First and last request of the block (for the store-free path, fast.ts); not printed. */
    firstTs?: number | null; lastTs?: number | null;
  } | null;
  context: { tokens: number; size: number | null; percent: number | null } | null;
  /** Set when the transcript could not be imported (the figures are from what was stored before). */
  syncError: string | null;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' && v.length > 0 ? v : null);
const obj = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : {});

/** Parse the stdin JSON; null when it is empty or not a JSON object. */
export function parseStatuslineInput(text: string): StatuslineInput | null {
  const d = parseJsonObject(text);
  if (!d) return null;
  const model = obj(d.model);
  const cost = obj(d.cost);
  const cw = obj(d.context_window);
  const cu = d.context_window && typeof cw.current_usage === 'object' && cw.current_usage ? obj(cw.current_usage) : null;
  const contextTokens = cu
    ? (num(cu.input_tokens) ?? 0) + (num(cu.cache_creation_input_tokens) ?? 0) + (num(cu.cache_read_input_tokens) ?? 0)
    : null;
  return {
    sessionId: str(d.session_id),
    transcriptPath: str(d.transcript_path),
    modelId: str(model.id) ?? str(d.model),
    modelName: str(model.display_name),
    ccCost: num(cost.total_cost_usd),
    contextSize: num(cw.context_window_size),
    usedPercent: num(cw.used_percentage),
    contextTokens,
  };
}

/** The session's transcript and its subagent files (`<session>/subagents/*.jsonl`). */
function sessionFiles(transcriptPath: string): string[] {
  const files = [transcriptPath];
  const sub = join(dirname(transcriptPath), basename(transcriptPath, '.jsonl'), 'subagents');
  try {
    for (const name of readdirSync(sub).sort()) if (name.endsWith('.jsonl')) files.push(join(sub, name));
  } catch {
    // no subagents
  }
  return files;
}

/** True when a file differs from its checkpoint the way the importer decides it (device, inode, size, mtime). */
async function anyChanged(store: Store, paths: string[]): Promise<boolean> {
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch {
      continue;
    }
    const cp = await store.getCheckpoint(resolve(p));
    if (!cp || cp.dev !== st.dev || cp.ino !== st.ino || cp.size !== st.size || cp.mtimeMs !== Math.floor(st.mtimeMs)) return true;
  }
  return false;
}

/**
 * The store as the importer sees it, with `listCheckpoints` answering for `paths` only: the importer loads every
 * checkpoint in one query (right for a full sync), which on a large history costs the statusline more than the
 * rest of its work together (~10-40 ms for 3,000 files); a lookup per file is ~0.2 ms.
 */
function checkpointsOf(store: Store, paths: string[]): Store {
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'listCheckpoints') {
        return async () => {
          const m = new Map<string, FileCheckpoint>();
          for (const p of paths.map((x) => resolve(x))) {
            const cp = await target.getCheckpoint(p);
            if (cp) m.set(p, cp);
          }
          return m;
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/**
 * "Today" as [local midnight, date]: in an explicit zone through Intl (core/time.ts), or, by default, in the
 * process's zone (TZ, else the system's) through Date's local-time methods, which skip the ~15-20 ms it costs
 * to create the first Intl date format.
 */
export interface Today {
  date: string;
  start: number;
}

export function localToday(now: number): Today {
  const d = new Date(now);
  const date = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  return { date, start: new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime() };
}

async function todayIn(timeZone: string, now: number): Promise<Today> {
  const { LocalCalendar } = await import('../../core/time.js');
  const cal = new LocalCalendar(timeZone);
  const date = cal.date(now);
  return { date, start: cal.startOfDay(date) };
}

/**
 * How far this process went: 0 answered from the line cache (or a usage error), 1 opened the store, 2 ran the
 * transcript importer. bin/tokentally.js rewrites its V8 code cache when a run goes further than the cached one.
 */
let stage = 0;
export function statuslineStage(): number {
  return stage;
}

export interface ComputeOptions {
  now: number;
  /** IANA zone for "today"; default the process's own. */
  timeZone?: string;
  sync: boolean;
  env?: NodeJS.ProcessEnv;
}

export async function computeStatusline(store: Store, input: StatuslineInput | null, opts: ComputeOptions): Promise<StatuslineData> {
  let syncError: string | null = null;
  if (opts.sync && input?.transcriptPath && existsSync(input.transcriptPath)) {
    try {
      const files = sessionFiles(input.transcriptPath);
      if (await anyChanged(store, files)) {
        // Loaded only when there is something to read (Claude Code also refreshes on timers and mode changes).
        stage = 2;
        const { syncTranscripts } = await import('../../sources/transcripts/sync.js');
        const r = await syncTranscripts(checkpointsOf(store, files), { onlyPaths: files, env: opts.env, maxSkippedLines: 0 });
        if (r.errors.length) syncError = r.errors[0].message;
      }
    } catch (err) {
      // Locked by a running sync, or unreadable: show what is stored.
      syncError = (err as Error).message ?? String(err);
    }
  }
  const { date, start } = opts.timeZone ? await todayIn(opts.timeZone, opts.now) : localToday(opts.now);
  const [todayGroup] = await store.summarize({ fromTs: start, toTs: opts.now + 1 }, []);
  const today = { date, cost: todayGroup?.cost ?? 0, unknownCostTokens: todayGroup?.unknownCostTokens ?? 0, requests: todayGroup?.requests ?? 0 };

  let session: StatuslineData['session'] = null;
  if (input?.sessionId) {
    const [g] = await store.summarize({ sessionId: input.sessionId }, []);
    session = { id: input.sessionId, cost: g?.cost ?? 0, unknownCostTokens: g?.unknownCostTokens ?? 0, requests: g?.requests ?? 0, ccCost: input.ccCost };
  }

  const b: Block | null = await findActiveBlock(store, opts.now);
  const block = b ? {
    start: b.startTs, end: b.endTs, cost: b.cost, unknownCostTokens: b.unknownCostTokens, remainingMs: b.endTs - opts.now,
    costPerHour: b.burnRate?.costPerHour ?? null, projectedCost: b.projection?.projectedCost ?? null,
    firstTs: b.firstTs, lastTs: b.lastTs,
  } : null;

  let context: StatuslineData['context'] = null;
  if (input?.contextTokens != null) {
    const size = input.contextSize;
    context = { tokens: input.contextTokens, size, percent: input.usedPercent ?? (size ? (input.contextTokens / size) * 100 : null) };
  } else if (input?.sessionId) {
    // Before the first call, or right after /compact, Claude Code sends no current_usage: use the last stored request.
    const [last] = await store.listUsage({ sessionId: input.sessionId, limit: 1, newestFirst: true });
    if (last) {
      const tokens = last.input + last.cacheWrite5m + last.cacheWrite1h + last.cacheRead;
      const size = input.contextSize;
      context = { tokens, size, percent: size ? (tokens / size) * 100 : null };
    }
  }
  return { model: input?.modelName ?? input?.modelId ?? null, session, today, block, context, syncError };
}

async function fastPriceBook(home: string): Promise<import('../../core/pricing/pricebook.js').PriceBook | null> {
  const { PriceBook } = await import('../../core/pricing/pricebook.js');
  const path = join(home, 'prices.json');
  if (!existsSync(path)) return PriceBook.builtin();
  try {
    const { applyUserPrices } = await import('../../core/pricing/user-prices.js');
    return applyUserPrices(JSON.parse(readFileSync(path, 'utf8')), path);
  } catch {
    return null;
  }
}

/**
 * What the store-free path (fast.ts) starts from after a full run: the figures just printed, the session files'
 * checkpoints, and every key stored for the session. Null when that path could not be exact from here.
 */
async function fastStateBase(sqlite: import('../../store/sqlite/sqlite-store.js').SqliteStore, input: StatuslineInput,
  data: StatuslineData, now: number, env: NodeJS.ProcessEnv): Promise<Omit<FastState, 'stamps'> | null> {
  const b = data.block;
  if (!data.session || !b || b.firstTs == null || b.lastTs == null || data.syncError || !input.transcriptPath) return null;
  const facts = sqlite.sessionKeyFacts(data.session.id, now);
  if (facts.requestIdRows || facts.futureRows) return null;
  const { foundFilesFor } = await import('../../sources/transcripts/sync.js');
  const files: FastState['files'] = [];
  for (const file of foundFilesFor(sessionFiles(input.transcriptPath), env)) {
    const checkpoint = await sqlite.getCheckpoint(file.path);
    if (!checkpoint) return null;
    files.push({ file, checkpoint });
  }
  const { date, start } = localToday(now);
  const d = new Date(start);
  return {
    v: 1, sessionId: data.session.id, date, dayStart: start, dayEnd: new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1).getTime(),
    session: { cost: data.session.cost, unknownCostTokens: data.session.unknownCostTokens, requests: data.session.requests },
    today: { cost: data.today.cost, unknownCostTokens: data.today.unknownCostTokens, requests: data.today.requests },
    block: { start: b.start, end: b.end, firstTs: b.firstTs, lastTs: b.lastTs, cost: b.cost, unknownCostTokens: b.unknownCostTokens,
      requests: 0 },
    files, keys: facts.keys, bytes: 0, fullAt: now,
  };
}

/** Claude Code's estimate is shown beside ours when they differ by more than a cent and 5 %. */
function differs(ours: number, theirs: number): boolean {
  const diff = Math.abs(ours - theirs);
  return diff >= 0.01 && diff > 0.05 * Math.max(ours, theirs);
}

export function formatStatusline(d: StatuslineData): string {
  const parts: string[] = [];
  // "Opus 4.8 (1M context)" -> "Opus 4.8"; a bare id (no display_name) loses its "claude-" prefix.
  if (d.model) parts.push(d.model.replace(/^Claude /, '').replace(/^claude-/, '').replace(/\s*\([^)]*\)$|\[[^\]]*\]$/, ''));
  if (d.session) {
    let s = `${usdWithUnknown(d.session.cost, d.session.unknownCostTokens)} session`;
    if (d.session.ccCost !== null && (d.session.unknownCostTokens > 0 || differs(d.session.cost, d.session.ccCost))) {
      s += ` (CC ${usd(d.session.ccCost)})`;
    }
    parts.push(s);
  }
  parts.push(`${usdWithUnknown(d.today.cost, d.today.unknownCostTokens)} today`);
  parts.push(d.block
    ? `${usdWithUnknown(d.block.cost, d.block.unknownCostTokens)} block, ${duration(d.block.remainingMs)} left`
    : 'no active block');
  if (d.context) {
    const pct = d.context.percent !== null ? ` ${Math.round(d.context.percent)}%` : '';
    parts.push(`ctx ${compact(d.context.tokens)}${pct}`);
  }
  return parts.join(' | ');
}

function toJson(d: StatuslineData) {
  const r6 = (x: number | null) => (x === null ? null : Math.round(x * 1e6) / 1e6);
  return {
    model: d.model,
    session: d.session && { sessionId: d.session.id, costUSD: r6(d.session.cost), costComplete: d.session.unknownCostTokens === 0,
      unknownCostTokens: d.session.unknownCostTokens, requests: d.session.requests, claudeCodeCostUSD: d.session.ccCost },
    today: { date: d.today.date, costUSD: r6(d.today.cost), costComplete: d.today.unknownCostTokens === 0,
      unknownCostTokens: d.today.unknownCostTokens, requests: d.today.requests },
    block: d.block && { startTime: new Date(d.block.start).toISOString(), endTime: new Date(d.block.end).toISOString(),
      costUSD: r6(d.block.cost), costComplete: d.block.unknownCostTokens === 0, remainingMinutes: Math.round(d.block.remainingMs / 60_000),
      costPerHour: r6(d.block.costPerHour), projectedCostUSD: d.block.projectedCost },
    context: d.context && { tokens: d.context.tokens, contextWindowSize: d.context.size,
      percent: d.context.percent === null ? null : Math.round(d.context.percent * 10) / 10 },
    syncError: d.syncError,
  };
}

export class StatuslineUsageError extends Error {}

export interface StatuslineFlags {
  json: boolean;
  sync: boolean;
  timeZone?: string;
}

/** Flags of the fast path (commander is not loaded): --json, --no-sync, -z/--timezone <zone>. */
export function parseStatuslineArgs(argv: string[]): StatuslineFlags {
  const flags: StatuslineFlags = { json: false, sync: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') flags.json = true;
    else if (a === '--no-sync') flags.sync = false;
    else if (a === '-z' || a === '--timezone' || a.startsWith('--timezone=')) {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (!v) throw new StatuslineUsageError(`${a.split('=')[0]} needs a time zone`);
      flags.timeZone = v;
    } else {
      throw new StatuslineUsageError(`statusline: unknown option ${a}`);
    }
  }
  return flags;
}

/** Synchronous writes: process.stdout on a pipe would load the net module (~5 ms) and need a drain before exit. */
function emit(fd: 1 | 2, text: string): void {
  try {
    writeSync(fd, text);
  } catch {
    (fd === 1 ? process.stdout : process.stderr).write(text);
  }
}

async function readStdin(): Promise<string> {
  try {
    // A terminal (someone trying the command by hand) sends nothing until Ctrl-D: don't wait for it.
    if (fstatSync(0).isCharacterDevice()) return '';
  } catch {
    return '';
  }
  try {
    return readFileSync(0, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return '';
  }
  // A non-blocking pipe: read it as a stream, giving up after a second.
  return new Promise((resolve) => {
    let text = '';
    const done = () => { clearTimeout(timer); resolve(text); };
    const timer = setTimeout(done, 1000);
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (c: string) => { text += c; });
    process.stdin.on('end', done);
    process.stdin.on('error', done);
  });
}

/**
 * The WAL left for the next call is checkpointed (and emptied) once it is over this size: every open reads the
 * WAL it finds back into its index, so it is kept short. A +1 import adds ~7 pages (~29 KB), so a checkpoint
 * (3 fsyncs) comes every ~15 calls instead of at every call's close.
 */
const STATUSLINE_WAL_LIMIT_BYTES = 512 * 1024;

/** Entry point of the fast path: prints one line and returns the exit code (0 unless the flags are wrong). */
export async function runStatusline(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let flags: StatuslineFlags;
  try {
    flags = parseStatuslineArgs(argv);
    if (flags.timeZone) {
      const { assertTimeZone, TimeZoneError } = await import('../../core/time.js');
      try {
        assertTimeZone(flags.timeZone);
      } catch (err) {
        throw err instanceof TimeZoneError ? new StatuslineUsageError(err.message) : err;
      }
    }
  } catch (err) {
    if (err instanceof StatuslineUsageError) {
      emit(1, `tokentally: ${err.message}\n`);
      emit(2, `tokentally: ${err.message}\n(run tokentally statusline --help for usage)\n`);
      return 2;
    }
    throw err;
  }
  let store: Store | undefined;
  try {
    const input = parseStatuslineInput(await readStdin());
    const now = clockNow(env);
    const home = homeDir(env);
    // The same line as last time when nothing it depends on changed: answered without loading SQLite.
    const keyOf = (files: string[]) => cacheKey({ home, input: JSON.stringify(input), flags: JSON.stringify(flags),
      minute: Math.floor(now / 60_000), files });
    const files = input?.transcriptPath ? sessionFiles(input.transcriptPath) : [];
    if (input?.sessionId && env.TOKENTALLY_STATUSLINE_CACHE !== '0') {
      const cached = readCachedLine(home, input.sessionId, keyOf(files));
      if (cached !== null) {
        emit(1, cached + '\n');
        return 0;
      }
    }
    // After an assistant message only this session's transcript grew: add its new requests to the last full
    // run's figures without opening SQLite, when that is exact (fast.ts says when).
    const fastEligible = Boolean(input?.sessionId && input.transcriptPath && !flags.json && flags.sync && !flags.timeZone
      && env.TOKENTALLY_STATUSLINE_FAST !== '0' && env.TOKENTALLY_STATUSLINE_CACHE !== '0');
    const flagsKey = JSON.stringify(flags);
    if (fastEligible) {
      const state = readFastState(cachePath(home, input!.sessionId!));
      // The price book without cli/context.js (which loads the SQLite store's modules); a price file that does not
      // load sends the call to the full run, which reports it.
      const prices = state && await fastPriceBook(home);
      const fast = prices && fastStatusline(state, input!, prices, now, storeStamps(home, flagsKey), files.map((f) => resolve(f)));
      if (fast) {
        const line = formatStatusline(fast.data);
        emit(1, line + '\n');
        writeCachedLine(home, input!.sessionId!, keyOf(files), line, { fast: fast.state });
        return 0;
      }
    }
    stage = Math.max(stage, 1);
    const [{ SqliteStore }, { databasePath, loadPriceBook }] = await Promise.all([
      import('../../store/sqlite/sqlite-store.js'), import('../cli/context.js')]);
    const prices = loadPriceBook(env);
    // A statusline must not wait on a writer: a short busy timeout, then show what is stored.
    const sqlite = SqliteStore.open(databasePath(env), prices, { busyTimeoutMs: 200 });
    store = sqlite;
    const data = await computeStatusline(store, input, { now, timeZone: flags.timeZone, sync: flags.sync, env });
    const line = flags.json ? JSON.stringify(toJson(data)) : formatStatusline(data);
    emit(1, line + '\n');
    const fastBase = fastEligible ? await fastStateBase(sqlite, input!, data, now, env) : null;
    // The WAL stays for the next call (fsynced, see SqliteStore.close): closing would checkpoint it and delete
    // the file, and the next call's first commit would create it again: 4 fsyncs per call where this is 1.
    await sqlite.close({ atExit: true, walLimitBytes: STATUSLINE_WAL_LIMIT_BYTES });
    store = undefined;
    // Keyed on the state after this run's own import (and the close's WAL checkpoint).
    if (input?.sessionId && !data.syncError) {
      const fast: FastState | null = fastBase && { ...fastBase, stamps: storeStamps(home, flagsKey) };
      writeCachedLine(home, input.sessionId, keyOf(input.transcriptPath ? sessionFiles(input.transcriptPath) : []), line,
        fast ? { fast } : {});
    }
  } catch (err) {
    const reason = (err as Error)?.message ?? String(err);
    emit(1, flags.json ? JSON.stringify({ error: reason }) + '\n' : 'tokentally: unavailable\n');
    if (env.TOKENTALLY_DEBUG) emit(2, `${(err as Error)?.stack ?? reason}\n`);
  } finally {
    try {
      await store?.close();
    } catch {
      // closing never matters here
    }
  }
  return 0;
}

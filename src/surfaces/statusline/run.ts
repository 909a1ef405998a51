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
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { clockNow, findActiveBlock, type Block } from '../../analysis/blocks.js';
import type { FileCheckpoint, Store } from '../../store/store.js';
import { readCachedLine, resolveHomeDir, storeStamps, writeCachedLine } from './cache.js';
import type { FastState } from './fast.js';
import { lineCacheKey } from './hit.js';
import { emit, parseStatuslineArgs, parseStatuslineInput, readStdinStream, readStdinSync, sessionFiles, StatuslineUsageError,
  type StatuslineFlags, type StatuslineInput } from './input.js';
import { formatStatusline, type StatuslineData } from './line.js';
import { fastAnswer, fastEligible, priceBookOrNull } from './quick.js';

/**
 * True when a file differs from its checkpoint the way the importer decides it (device, inode, size, mtime). The
 * checkpoints it read go in `seen` (by resolved path).
 */
async function anyChanged(store: Store, paths: string[], seen?: Map<string, FileCheckpoint | undefined>): Promise<boolean> {
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch {
      continue;
    }
    const path = resolve(p);
    const cp = await store.getCheckpoint(path);
    seen?.set(path, cp);
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
  /**
   * Filled with the session files' checkpoints as read before the import check, when no import followed (they are
   * then the store's current ones); emptied when an import ran.
   */
  checkpoints?: Map<string, FileCheckpoint | undefined>;
  /** The session's files (`sessionFiles` of the input's transcript), when the caller listed them already. */
  files?: string[];
}

export async function computeStatusline(store: Store, input: StatuslineInput | null, opts: ComputeOptions): Promise<StatuslineData> {
  let syncError: string | null = null;
  if (opts.sync && input?.transcriptPath && existsSync(input.transcriptPath)) {
    try {
      const files = opts.files ?? sessionFiles(input.transcriptPath);
      if (await anyChanged(store, files, opts.checkpoints)) {
        opts.checkpoints?.clear();
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


/**
 * What the store-free path (fast.ts) starts from after a full run: the figures just printed, the session files'
 * checkpoints, and every key stored for the session. Null when that path could not be exact from here.
 */
async function fastStateBase(sqlite: import('../../store/sqlite/sqlite-store.js').SqliteStore, input: StatuslineInput,
  data: StatuslineData, now: number, env: NodeJS.ProcessEnv, known: Map<string, FileCheckpoint | undefined>,
  sessionPaths: string[]): Promise<Omit<FastState, 'stamps'> | null> {
  const b = data.block;
  if (!data.session || !b || b.firstTs == null || b.lastTs == null || data.syncError || !input.transcriptPath) return null;
  const facts = sqlite.sessionKeyFacts(data.session.id, now);
  if (facts.requestIdRows || facts.futureRows) return null;
  const { foundFilesFor } = await import('../../sources/transcripts/sync.js');
  const files: FastState['files'] = [];
  for (const file of foundFilesFor(sessionPaths, env)) {
    // Read once already when this run imported nothing (computeStatusline's `checkpoints`).
    const checkpoint = known.has(file.path) ? known.get(file.path) : await sqlite.getCheckpoint(file.path);
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




/**
 * The WAL left for the next call is checkpointed (and emptied) once it is over this size: every open reads the
 * WAL it finds back into its index, so it is kept short. A +1 import adds ~7 pages (~29 KB), so a checkpoint
 * (3 fsyncs) comes every ~15 calls instead of at every call's close.
 */
const STATUSLINE_WAL_LIMIT_BYTES = 512 * 1024;

export { formatStatusline, parseStatuslineArgs, parseStatuslineInput, StatuslineUsageError, type StatuslineData, type StatuslineFlags,
  type StatuslineInput };

/** Entry point of the fast path: prints one line and returns the exit code (0 unless the flags are wrong). */
export async function runStatusline(argv: string[], env: NodeJS.ProcessEnv = process.env,
  front: { stdin?: string | null; lineCacheChecked?: boolean; fastTried?: boolean } = {}): Promise<number> {
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
    // bin/tokentally.js's front (hit.ts) may have read stdin already (and found no cached line).
    const text = front.stdin !== undefined ? front.stdin : readStdinSync();
    const input = parseStatuslineInput(text ?? await readStdinStream());
    const now = clockNow(env);
    const home = await resolveHomeDir(env);
    // The same line as last time when nothing it depends on changed: answered without loading SQLite.
    const keyOf = (files: string[]) => lineCacheKey(home, input, flags, now, files);
    const files = input?.transcriptPath ? sessionFiles(input.transcriptPath) : [];
    if (input?.sessionId && env.TOKENTALLY_STATUSLINE_CACHE !== '0' && !front.lineCacheChecked) {
      const cached = readCachedLine(home, input.sessionId, keyOf(files));
      if (cached !== null) {
        emit(1, cached + '\n');
        return 0;
      }
    }
    // After an assistant message only this session's transcript grew: add its new requests to the last full
    // run's figures without opening SQLite, when that is exact (fast.ts says when). bin/tokentally.js may have
    // tried that already (quick.ts, from its own bundle).
    const eligible = fastEligible(input, flags, env);
    const flagsKey = JSON.stringify(flags);
    if (eligible && !front.fastTried && await fastAnswer(home, input!, flags, files, now)) return 0;
    stage = Math.max(stage, 1);
    const { SqliteStore } = await import('../../store/sqlite/sqlite-store.js');
    // The price book as cli/context.ts loadPriceBook makes it, without that module (it loads node:os); a price file
    // that does not load goes to loadPriceBook itself, which says why.
    const prices = await priceBookOrNull(home) ?? (await import('../cli/context.js')).loadPriceBook(env);
    // A statusline must not wait on a writer: a short busy timeout, then show what is stored. (`home` follows
    // cli/context.ts tokentallyHome: the same database.)
    const sqlite = SqliteStore.open(join(home, 'tokentally.db'), prices, { busyTimeoutMs: 200 });
    store = sqlite;
    const checkpoints = new Map<string, FileCheckpoint | undefined>();
    // The session's files are listed once per call: the import check, the store-free path's state and the line
    // cache's key describe the same files (a subagent file that appears meanwhile makes the next call a miss).
    const data = await computeStatusline(store, input, { now, timeZone: flags.timeZone, sync: flags.sync, env, checkpoints, files });
    const line = flags.json ? JSON.stringify(toJson(data)) : formatStatusline(data);
    emit(1, line + '\n');
    const fastBase = eligible ? await fastStateBase(sqlite, input!, data, now, env, checkpoints, files) : null;
    // The WAL stays for the next call (fsynced, see SqliteStore.close): closing would checkpoint it and delete
    // the file, and the next call's first commit would create it again: 4 fsyncs per call where this is 1.
    await sqlite.close({ atExit: true, walLimitBytes: STATUSLINE_WAL_LIMIT_BYTES });
    store = undefined;
    // Keyed on the state after this run's own import (and the close's WAL checkpoint).
    if (input?.sessionId && !data.syncError) {
      const fast: FastState | null = fastBase && { ...fastBase, stamps: storeStamps(home, flagsKey) };
      writeCachedLine(home, input.sessionId, keyOf(files), line,
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

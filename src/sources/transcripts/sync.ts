import { fastStat, type FileStat } from './fast-stat.js';
import { availableParallelism } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { RequestRecord } from '../../core/types.js';
import { mergeRecords } from '../../core/merge.js';
import { emptyFacts } from '../../core/session-facts.js';
import type { FileCheckpoint, Store, SyncPass } from '../../store/store.js';
import { DirCache, listTranscriptFiles, transcriptRoots, type FoundFile } from './discover.js';
import type { FileContext, SkipReason } from './parse-line.js';
import { chunkWeight, type ParseJob, type ParseMessage, type ParseWorkerData } from './parse-worker.js';
import { readTranscriptFile, type FileChunk, type SkippedLine } from './reader.js';

export interface SyncProgress {
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface SyncReport {
  roots: string[];
  missingRoots: string[];
  files: { seen: number; read: number; unchanged: number; reread: number; unreadable: number };
  bytesRead: number;
  lines: number;
  requestLines: number;
  newRequests: number;
  mergedCopies: number;
  skipped: Record<SkipReason, number>;
  /** The first skipped lines, as file:line (see `--verbose`). */
  skippedLines: SkippedLine[];
  errors: { file: string; message: string }[];
  durationMs: number;
  /** Parse worker threads used (0: parsed in the main thread). */
  workers: number;
  /** When the tool-facts pass ran too (`tokentally sync`, session audits): what it read. */
  factsPass?: { filesRead: number; bytesRead: number; durationMs: number };
}

export interface SyncOptions {
  env?: NodeJS.ProcessEnv;
  onProgress?: (p: SyncProgress) => void;
  /** How many skipped lines to list individually. */
  maxSkippedLines?: number;
  /**
   * Read only these transcript files (absolute paths), e.g. the statusline's current session: cheap enough
   * for a hot path. Files outside the transcript roots are read too, attributed by their own folder.
   */
  onlyPaths?: string[];
  /**
   * Where folder listings are kept between syncs (DirCache); default: transcript-dirs.json beside the store's
   * database file, none for an in-memory store. `false`: read every folder.
   */
  dirCache?: string | false;
  /** Parse workers for large syncs; default: one per core, up to 4. 0 parses in the main thread. */
  workers?: number;
  /**
   * `requests` (default): API responses, what every report needs. `facts`: tool calls, tool results and
   * compactions, read only by the commands that audit sessions (tool results are most of a transcript).
   */
  pass?: SyncPass;
}

/** Below this many bytes to read, starting workers costs more than it saves. */
const WORKER_THRESHOLD_BYTES = 32 * 1024 * 1024;
const COMMIT_RECORDS = 20_000;
const COMMIT_BYTES = 64 * 1024 * 1024;
/**
 * KiB of transcript a worker may have parsed and waiting for the main thread before it pauses: enough to keep
 * parsing through a commit, small enough to bound memory (parsed chunks are a fraction of their input).
 */
const MAX_KIB_IN_FLIGHT = 48 * 1024;

type PlanItem = { file: FoundFile; size: number; checkpoint: FileCheckpoint | undefined };

export async function syncTranscripts(store: Store, options: SyncOptions = {}): Promise<SyncReport> {
  const started = Date.now();
  const { roots, missing } = transcriptRoots(options.env);
  const report: SyncReport = {
    roots: roots.map((r) => r.projectsDir), missingRoots: missing,
    files: { seen: 0, read: 0, unchanged: 0, reread: 0, unreadable: 0 },
    bytesRead: 0, lines: 0, requestLines: 0, newRequests: 0, mergedCopies: 0,
    skipped: { invalid_json: 0, not_an_object: 0, bad_timestamp: 0, invalid_usage: 0, line_too_long: 0 },
    skippedLines: [], errors: [], durationMs: 0, workers: 0,
  };
  const maxSkipped = options.maxSkippedLines ?? 1000;
  const onError = (file: string, err: { code?: string; message: string }) => {
    report.errors.push({ file, message: err.code ?? err.message });
  };

  /** A transcript's stat, counted as seen; null (counted as unreadable, or not a file) when it cannot be read. */
  const statTranscript = (path: string): FileStat | null => {
    report.files.seen++;
    try {
      const st = fastStat(path);
      return st.isFile ? st : null;
    } catch (err) {
      report.files.unreadable++;
      onError(path, err as Error);
      return null;
    }
  };

  // Plan: stat everything first so progress has a byte total and unchanged files cost one stat.
  const plan: PlanItem[] = [];
  const pass = options.pass ?? 'requests';
  if (options.onlyPaths) {
    // A sync of a few named files (statusline, hook) looks up only their checkpoints.
    for (const file of options.onlyPaths.map((p) => foundFileFor(p, roots.map((r) => r.projectsDir)))) {
      const st = statTranscript(file.path);
      if (!st) continue;
      const checkpoint = await store.getCheckpoint(file.path, pass);
      if (checkpoint && checkpoint.dev === st.dev && checkpoint.ino === st.ino && checkpoint.size === st.size
        && checkpoint.mtimeMs === Math.floor(st.mtimeMs)) {
        report.files.unchanged++;
        continue;
      }
      plan.push({ file, size: st.size, checkpoint });
    }
  } else {
    const known = await store.listCheckpointStates(pass);
    const cache = dirCachePath(store, options);
    const dirs = cache ? DirCache.load(cache) : undefined;
    const lists = roots.map((root) => listTranscriptFiles(root, onError, dirs));
    dirs?.save();
    const changed: { file: FoundFile; size: number }[] = [];
    for (const files of lists) {
      for (const file of files) {
        const st = statTranscript(file.path);
        if (!st) continue;
        if (known.get(file.path) === `${st.dev}:${st.ino}:${st.size}:${Math.floor(st.mtimeMs)}`) {
          report.files.unchanged++;
          continue;
        }
        changed.push({ file, size: st.size });
      }
    }
    // Full checkpoints only for the files to read: a few on a warm sync (all of them in one query when many).
    const all = changed.length > 200 ? await store.listCheckpoints(pass) : undefined;
    for (const c of changed) {
      const checkpoint = all ? all.get(c.file.path) : known.has(c.file.path) ? await store.getCheckpoint(c.file.path, pass) : undefined;
      plan.push({ file: c.file, size: c.size, checkpoint });
    }
  }
  const progress: SyncProgress = {
    filesDone: 0, filesTotal: plan.length, bytesDone: 0,
    bytesTotal: plan.reduce((s, p) => s + Math.max(0, p.size - (p.checkpoint?.offset ?? 0)), 0),
  };
  options.onProgress?.(progress);

  const batch = new Batch(store, report, maxSkipped, pass);
  const absorb = async (chunk: FileChunk) => {
    batch.absorb(chunk);
    progress.bytesDone += chunk.bytesRead;
    if (chunk.complete) progress.filesDone++;
    options.onProgress?.(progress);
    if (batch.full) await batch.flush();
  };
  const unreadable = (path: string, err: { code?: string; message: string }) => {
    report.files.unreadable++;
    onError(path, err);
  };

  const workers = Math.min(options.workers ?? Math.min(availableParallelism(), 4), plan.length);
  if (workers > 0 && progress.bytesTotal >= WORKER_THRESHOLD_BYTES) {
    report.workers = workers;
    store.setBulkImport?.(true);
    try {
      await parseInWorkers(plan, workers, maxSkipped, pass, absorb, unreadable);
    } finally {
      await batch.flush();
      store.setBulkImport?.(false);
    }
  } else {
    let lastYield = Date.now();
    for (const item of plan) {
      // Let timers (the progress bar) run during long syncs.
      if (Date.now() - lastYield > 100) {
        await new Promise((r) => setImmediate(r));
        lastYield = Date.now();
      }
      try {
        for (const chunk of readTranscriptFile(item.file, item.checkpoint, maxSkipped, pass)) await absorb(chunk);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code && /^E[A-Z]+$/.test(e.code)) unreadable(item.file.path, e);
        else throw err;
      }
    }
  }
  await batch.flush();
  report.durationMs = Date.now() - started;
  return report;
}

/**
 * Parse files on worker threads (JSON parsing is most of a cold sync) while the main thread commits.
 * Workers claim files from a shared counter, so they keep parsing while a commit runs.
 */
async function parseInWorkers(
  plan: PlanItem[], count: number, maxSkipped: number, pass: SyncPass,
  absorb: (chunk: FileChunk) => Promise<void>, unreadable: (path: string, err: { code?: string; message: string }) => void,
): Promise<void> {
  const shared = new SharedArrayBuffer(4 * (1 + count));
  const counters = new Int32Array(shared);
  const jobs: ParseJob[] = plan.map((p) => ({ file: p.file, checkpoint: p.checkpoint }));
  // Commits run one at a time, in arrival order, so a file's chunks are committed in file order.
  let committing: Promise<void> = Promise.resolve();
  const pool = Array.from({ length: count }, (_, index) => new Worker(new URL('./parse-worker.js', import.meta.url), {
    workerData: { jobs, maxSkipped, shared, index, maxInFlight: MAX_KIB_IN_FLIGHT, pass } satisfies ParseWorkerData,
  }));
  try {
    await Promise.all(pool.map((worker, index) => new Promise<void>((resolveWorker, rejectWorker) => {
      worker.on('message', (msg: ParseMessage) => {
        if (msg.type === 'chunk') {
          committing = committing.then(async () => {
            await absorb(msg.chunk);
            Atomics.sub(counters, 1 + index, chunkWeight(msg.chunk));
            Atomics.notify(counters, 1 + index);
          });
          committing.catch(rejectWorker);
        } else if (msg.type === 'error') {
          if (msg.code && /^E[A-Z]+$/.test(msg.code)) unreadable(msg.path, msg);
          else rejectWorker(new Error(`parsing ${msg.path} failed: ${msg.message}`));
        } else {
          resolveWorker();
        }
      });
      worker.on('error', rejectWorker);
    })));
    await committing;
  } finally {
    await Promise.all(pool.map((w) => w.terminate()));
  }
}

/**
 * Records, tool facts and file checkpoints waiting to be committed. Several files share one transaction
 * (one commit per file made large syncs commit-bound); a checkpoint is only ever committed together with
 * the records read up to it, so a sync killed at any point resumes without losing or double-counting.
 */
class Batch {
  private records = new Map<string, RequestRecord>();
  private facts = emptyFacts();
  private checkpoints = new Map<string, FileCheckpoint>();
  private bytes = 0;

  constructor(private readonly store: Store, private readonly report: SyncReport, private readonly maxSkipped: number,
    private readonly pass: SyncPass) {}

  absorb(chunk: FileChunk): void {
    const r = this.report;
    r.bytesRead += chunk.bytesRead;
    r.lines += chunk.lines;
    r.requestLines += chunk.requestLines;
    if (chunk.reread) r.files.reread++;
    if (chunk.complete) r.files.read++;
    for (const [reason, n] of Object.entries(chunk.skipped)) r.skipped[reason as SkipReason] += n ?? 0;
    for (const s of chunk.skippedLines) if (r.skippedLines.length < this.maxSkipped) r.skippedLines.push(s);
    for (const record of chunk.records) {
      const prev = this.records.get(record.key);
      this.records.set(record.key, prev ? mergeRecords(prev, record) : record);
    }
    this.facts.toolCalls.push(...chunk.facts.toolCalls);
    this.facts.toolResults.push(...chunk.facts.toolResults);
    this.facts.compactions.push(...chunk.facts.compactions);
    this.checkpoints.set(chunk.path, chunk.checkpoint);
    this.bytes += chunk.bytesRead;
  }

  get full(): boolean {
    return this.records.size >= COMMIT_RECORDS || this.bytes >= COMMIT_BYTES;
  }

  async flush(): Promise<void> {
    if (this.records.size === 0 && this.checkpoints.size === 0) return;
    const res = await this.store.commitBatch([...this.checkpoints.values()], [...this.records.values()], this.facts, this.pass);
    this.report.newRequests += res.inserted;
    this.report.mergedCopies += res.updated;
    this.records = new Map();
    this.facts = emptyFacts();
    this.checkpoints = new Map();
    this.bytes = 0;
  }
}

export function dirCachePath(store: Store, options: Pick<SyncOptions, 'dirCache'> = {}): string | undefined {
  if (options.dirCache !== undefined) return options.dirCache || undefined;
  return store.location === ':memory:' || store.location === '' ? undefined : join(dirname(store.location), 'transcript-dirs.json');
}

/** Name a file given by path relative to the transcript root that holds it (or to its grandparent folder). */
/** The files as a sync of `onlyPaths` names them (relative to their transcript root, for attribution). */
export function foundFilesFor(paths: string[], env: NodeJS.ProcessEnv = process.env): FoundFile[] {
  const roots = transcriptRoots(env).roots.map((r) => r.projectsDir);
  return paths.map((p) => foundFileFor(p, roots));
}

function foundFileFor(path: string, roots: string[]): FoundFile {
  const abs = resolve(path);
  const root = roots.find((r) => abs.startsWith(r + sep));
  const rel = root ? relative(root, abs) : relative(dirname(dirname(abs)), abs);
  return { path: abs, relPath: rel.split(sep).join('/') };
}

export type { FileContext, SkippedLine };

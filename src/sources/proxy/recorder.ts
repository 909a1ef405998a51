import { appendFileSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { RequestRecord } from '../../core/types.js';
import type { Store } from '../../store/store.js';
import type { RequestInfo } from './record.js';

/** Where the proxy hands finished records; `add` must never throw nor block. */
export interface RecordSink {
  add(record: RequestRecord): void;
  /**
   * Optional: read a request body's model, messages count and metadata somewhere other than the forwarding thread
   * (JSON.parse of Claude Code's 100 KB-1 MB bodies takes 0.5-2 ms, during which no other stream moves). Never
   * rejects. Without it the proxy reads bodies itself.
   */
  readBody?(body: Buffer): Promise<RequestInfo>;
  /** Write everything received so far (to the store, or to the spool when the store refuses). */
  flush(): Promise<void>;
  close(): Promise<void>;
  stats(): RecorderStats;
}

export interface RecorderStats {
  /** Records waiting to be written. */
  queued: number;
  /** Records written to the store (including replayed ones). */
  written: number;
  /** Records appended to spool files because the store refused them. */
  spooled: number;
  /** Records replayed from spool files into the store. */
  replayed: number;
  /** Records held in memory because neither the store nor the spool accepted them (disk full). */
  held: number;
  /** Records dropped because the in-memory hold was full. */
  dropped: number;
  /** Last store or spool error (message only). */
  lastError: string | null;
}

export interface RecorderOptions {
  /** Opens the store; called lazily and again after a failure to open. */
  openStore: () => Store;
  /** `TOKENTALLY_HOME/spool`. */
  spoolDir: string;
  /** Delay before a batch is written (records arriving meanwhile join it). */
  flushMs?: number;
  /** A batch this large is written at once. */
  maxBatch?: number;
  /** How often spooled records are retried while some remain. */
  replayMs?: number;
  /** Bound of the in-memory hold used when the spool cannot be written either. */
  maxHeld?: number;
  /** Called with a short message on each store/spool failure (never holds record contents). */
  onProblem?: (message: string) => void;
}

const SPOOL_SUFFIX = '.jsonl';
const CLAIMED = '.replaying';

/**
 * Writes proxy records to the store in batches, off the request path. When the store throws (locked,
 * disk full, cannot open), the batch is appended to `spool/<time>-<pid>.jsonl` and replayed later; when
 * the spool cannot be written either, records are held in memory (bounded) and retried. Replays are
 * idempotent: a record merges with its own earlier copy by key, so a record replayed twice counts once.
 */
export class Recorder implements RecordSink {
  private queue: RequestRecord[] = [];
  private held: RequestRecord[] = [];
  private store: Store | null = null;
  private storeFailedAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private replayTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private closed = false;
  /** Spool files may exist (earlier runs, or this one spooled): a working store should replay them. */
  private spoolMaybePending = true;
  private readonly spoolFile: string;
  private readonly s: RecorderStats = { queued: 0, written: 0, spooled: 0, replayed: 0, held: 0, dropped: 0, lastError: null };
  private readonly flushMs: number;
  private readonly maxBatch: number;
  private readonly replayMs: number;
  private readonly maxHeld: number;

  constructor(private readonly opts: RecorderOptions) {
    this.flushMs = opts.flushMs ?? 100;
    this.maxBatch = opts.maxBatch ?? 500;
    this.replayMs = opts.replayMs ?? 30_000;
    this.maxHeld = opts.maxHeld ?? 100_000;
    this.spoolFile = this.freshSpoolName();
  }

  /** Replay what earlier runs left in the spool (call once at start). */
  async start(): Promise<void> {
    await this.replaySpool();
    this.scheduleReplay();
  }

  add(record: RequestRecord): void {
    if (this.closed) return;
    this.queue.push(record);
    if (this.queue.length >= this.maxBatch) this.schedule(0);
    else this.schedule(this.flushMs);
  }

  stats(): RecorderStats {
    return { ...this.s, queued: this.queue.length, held: this.held.length };
  }

  async flush(): Promise<void> {
    // Serialise flushes; loop until nothing new arrived meanwhile (bounded by the queue draining).
    for (let i = 0; i < 1000; i++) {
      if (this.flushing) {
        await this.flushing;
        continue;
      }
      if (this.queue.length === 0 && this.held.length === 0) return;
      this.flushing = this.writeOnce().finally(() => { this.flushing = null; });
      await this.flushing;
      if (this.queue.length === 0) return;
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    if (this.replayTimer) clearTimeout(this.replayTimer);
    this.timer = this.replayTimer = null;
    await this.flush();
    // Last resort for records still held in memory: one more try at the spool.
    if (this.held.length > 0) this.spool(this.held.splice(0));
    this.closed = true;
    const store = this.store;
    this.store = null;
    await store?.close().catch(() => undefined);
  }

  /** Retry spooled records now (also runs on a timer while the spool is not empty). */
  async replaySpool(): Promise<number> {
    let files: string[];
    try {
      files = readdirSync(this.opts.spoolDir).filter((f) => f.endsWith(SPOOL_SUFFIX) || f.endsWith(CLAIMED)).sort();
    } catch {
      this.spoolMaybePending = false;
      return 0;
    }
    this.spoolMaybePending = false;
    let total = 0;
    for (const name of files.slice(0, 1000)) {
      const path = join(this.opts.spoolDir, name);
      let claimed = path;
      if (name.endsWith(SPOOL_SUFFIX)) {
        // A file another live process may still append to is left alone until it has been quiet a while.
        if (path !== this.spoolFile && writerAlive(name) && !this.quiet(path, 2000)) {
          this.spoolMaybePending = true;
          continue;
        }
        claimed = `${path}.${process.pid}${CLAIMED}`;
        try {
          renameSync(path, claimed);
        } catch {
          continue; // another process claimed it
        }
      } else if (!name.includes(`.${process.pid}${CLAIMED}`) && !this.quiet(path, 60_000)) {
        this.spoolMaybePending = true;
        continue; // being replayed by another process right now
      }
      const records = readSpool(claimed);
      const store = this.getStore();
      if (!store) {
        this.unclaim(claimed, path);
        break;
      }
      try {
        for (let i = 0; i < records.length; i += this.maxBatch) {
          await store.upsertRequests(records.slice(i, i + this.maxBatch));
        }
        unlinkSync(claimed);
        total += records.length;
        this.s.replayed += records.length;
        this.s.written += records.length;
      } catch (err) {
        this.problem(`replaying ${name}: ${(err as Error).message}`);
        this.storeFailed();
        this.unclaim(claimed, path);
        break;
      }
    }
    return total;
  }

  private quiet(path: string, ms: number): boolean {
    try {
      return Date.now() - statSync(path).mtimeMs > ms;
    } catch {
      return false;
    }
  }

  private unclaim(claimed: string, original: string): void {
    if (claimed === original) return;
    try {
      // A fresh name: the original may already hold new records of a live writer.
      renameSync(claimed, this.freshSpoolName());
    } catch { /* leave it claimed; a later replay picks it up once quiet */ }
    this.spoolMaybePending = true;
  }

  private freshSpoolName(): string {
    return join(this.opts.spoolDir, `${Date.now()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}${SPOOL_SUFFIX}`);
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    if (this.timer && ms > 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, ms);
    this.timer.unref?.();
  }

  private scheduleReplay(): void {
    if (this.replayTimer || this.closed) return;
    this.replayTimer = setTimeout(async () => {
      this.replayTimer = null;
      if (this.held.length > 0) await this.flush();
      await this.replaySpool();
      if (this.spoolPending()) this.scheduleReplay();
    }, this.replayMs);
    this.replayTimer.unref?.();
  }

  private spoolPending(): boolean {
    try {
      return readdirSync(this.opts.spoolDir).some((f) => f.endsWith(SPOOL_SUFFIX) || f.endsWith(CLAIMED));
    } catch {
      return false;
    }
  }

  private async writeOnce(): Promise<void> {
    const batch = this.held.length ? this.held.splice(0).concat(this.queue.splice(0)) : this.queue.splice(0);
    if (batch.length === 0) return;
    const store = this.getStore();
    if (store) {
      try {
        for (let i = 0; i < batch.length; i += this.maxBatch) {
          await store.upsertRequests(batch.slice(i, i + this.maxBatch));
          this.s.written += Math.min(this.maxBatch, batch.length - i);
        }
        // The store works again: bring back what was spooled while it did not.
        if (this.spoolMaybePending) await this.replaySpool();
        return;
      } catch (err) {
        this.problem(`store: ${(err as Error).message}`);
        this.storeFailed();
        // Upserts are idempotent: re-spooling a partly written batch never double-counts.
      }
    }
    this.spool(batch);
  }

  private spool(batch: RequestRecord[]): void {
    try {
      mkdirSync(this.opts.spoolDir, { recursive: true });
      appendFileSync(this.spoolFile, batch.map((r) => JSON.stringify(r)).join('\n') + '\n', { mode: 0o600 });
      this.s.spooled += batch.length;
      this.spoolMaybePending = true;
      this.scheduleReplay();
    } catch (err) {
      this.problem(`spool: ${(err as Error).message}`);
      this.held.push(...batch);
      if (this.held.length > this.maxHeld) {
        const extra = this.held.length - this.maxHeld;
        this.held.splice(0, extra);
        this.s.dropped += extra;
      }
      this.scheduleReplay();
    }
  }

  private getStore(): Store | null {
    if (this.store) return this.store;
    // After a failure to open, wait a little before trying again.
    if (this.storeFailedAt && Date.now() - this.storeFailedAt < Math.min(this.replayMs, 5000)) return null;
    try {
      this.store = this.opts.openStore();
      this.storeFailedAt = 0;
      return this.store;
    } catch (err) {
      this.problem(`opening the store: ${(err as Error).message}`);
      this.storeFailedAt = Date.now();
      return null;
    }
  }

  /** A store that threw stays open (a lock passes); only a store that cannot be opened is retried later. */
  private storeFailed(): void {
    this.scheduleReplay();
  }

  private problem(message: string): void {
    this.s.lastError = message.slice(0, 500);
    try {
      this.opts.onProblem?.(this.s.lastError);
    } catch { /* never let diagnostics break recording */ }
  }
}

/** Spool files are named `<ms>-<pid>-…`: is that writer still running (and not us)? */
function writerAlive(name: string): boolean {
  const pid = Number(/^\d+-(\d+)-/.exec(name)?.[1]);
  if (!Number.isInteger(pid) || pid <= 0) return true;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Records of one spool file; a torn last line (crash mid-append) is skipped. */
export function readSpool(path: string): RequestRecord[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const out: RequestRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      const r = JSON.parse(line) as RequestRecord;
      if (r && typeof r.key === 'string' && r.usage && typeof r.ts === 'number') out.push(r);
    } catch { /* torn line */ }
  }
  return out;
}

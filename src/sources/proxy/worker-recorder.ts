import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { RequestRecord } from '../../core/types.js';
import { inspectRequestBody, type RequestInfo } from './record.js';
import type { RecorderStats, RecordSink } from './recorder.js';
import type { Store } from '../../store/store.js';
import type { FromWorker, PolicyStoreMethod, StoreWorkerData, ToWorker } from './store-worker.js';

/** The part of the Store the proxy's policy uses, answered by the store worker (never SQLite on the main thread). */
export type PolicyStore = Pick<Store, PolicyStoreMethod>;

export interface WorkerRecorderOptions extends Partial<Omit<StoreWorkerData, 'dbPath' | 'spoolDir'>> {
  dbPath: string;
  spoolDir: string;
  /** Records are handed to the worker in batches this often. */
  batchMs?: number;
  onProblem?: (message: string) => void;
}

const MAX_RESTARTS = 5;

/**
 * The proxy's record sink: batches records on the main thread (an array push per request) and hands
 * them to a worker thread that owns the SQLite store. A record is dropped from memory only when the
 * worker says it is written or spooled; if the worker dies, unacknowledged records are spooled from here
 * and the worker is restarted (it replays the spool on start).
 */
export class WorkerRecorder implements RecordSink {
  private worker: Worker | null = null;
  private pending: RequestRecord[] = [];
  /** Request bodies to read on the worker: a tight copy each, sent (transferred) with the next batch. */
  private pendingBodies: { id: number; bytes: Uint8Array }[] = [];
  /** Bodies being read; the original is kept to read it here if the worker dies first. */
  private readonly reads = new Map<number, { body: Buffer; resolve: (info: RequestInfo) => void }>();
  private bodySeq = 0;
  private readonly unacked = new Map<number, RequestRecord[]>();
  private readonly waiters = new Map<number, () => void>();
  private readonly calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private seq = 0;
  private timer: NodeJS.Timeout | null = null;
  private restarts = 0;
  private closing = false;
  private lastStats: RecorderStats = { queued: 0, written: 0, spooled: 0, replayed: 0, held: 0, dropped: 0, lastError: null };
  private readonly data: StoreWorkerData;

  constructor(private readonly opts: WorkerRecorderOptions) {
    this.data = {
      dbPath: opts.dbPath, spoolDir: opts.spoolDir, pricesPath: opts.pricesPath ?? null,
      busyTimeoutMs: opts.busyTimeoutMs ?? 5000, replayMs: opts.replayMs ?? 30_000,
    };
    this.spawn();
  }

  add(record: RequestRecord): void {
    if (this.closing) return;
    this.pending.push(record);
    this.schedule();
  }

  readBody(body: Buffer): Promise<RequestInfo> {
    if (this.closing || !this.worker) return Promise.resolve(inspectRequestBody(body));
    const id = ++this.bodySeq;
    const bytes = new Uint8Array(body.length);
    bytes.set(body);
    return new Promise<RequestInfo>((resolve) => {
      this.reads.set(id, { body, resolve });
      this.pendingBodies.push({ id, bytes });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.pending.length + this.pendingBodies.length >= 256) this.post();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.post(), this.opts.batchMs ?? 50);
      this.timer.unref();
    }
  }

  /** Read here every body still waiting for the worker (it died, or the recorder is closing). */
  private readPendingBodiesHere(): void {
    this.pendingBodies = [];
    for (const { body, resolve } of this.reads.values()) resolve(inspectRequestBody(body));
    this.reads.clear();
  }

  async flush(): Promise<void> {
    this.post();
    await this.request({ t: 'flush', id: ++this.seq });
  }

  /** Ask the worker to retry the spool now (tests, and after an operator fixed the store). */
  async replay(): Promise<void> {
    await this.request({ t: 'replay', id: ++this.seq });
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.post();
    this.closing = true;
    await this.request({ t: 'close', id: ++this.seq }, 30_000);
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate().catch(() => undefined);
    this.readPendingBodiesHere();
    // Anything the worker never confirmed goes to the spool.
    this.spoolUnacked();
  }

  /**
   * Call a Store method on the worker's store (the policy's queries and writes). Rejects when the worker is
   * gone or does not answer within `timeoutMs` (a database locked by another process): callers fail open.
   */
  call<M extends PolicyStoreMethod>(method: M, args: Parameters<Store[M]>, timeoutMs = 3000): ReturnType<Store[M]> {
    const w = this.worker;
    if (!w || this.closing) return Promise.reject(new Error('store worker not running')) as ReturnType<Store[M]>;
    const id = ++this.seq;
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.calls.delete(id);
        reject(new Error(`store worker did not answer ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.calls.set(id, { resolve, reject, timer });
      try {
        w.postMessage({ t: 'call', id, method, args } satisfies ToWorker);
      } catch (err) {
        clearTimeout(timer);
        this.calls.delete(id);
        reject(err as Error);
      }
    }) as ReturnType<Store[M]>;
  }

  /** A PolicyStore whose every method is a `call()` to the worker. */
  policyStore(timeoutMs = 3000): PolicyStore {
    const c = <M extends PolicyStoreMethod>(m: M) => (...args: Parameters<Store[M]>) => this.call(m, args, timeoutMs);
    return {
      listBudgets: c('listBudgets'), sumSpend: c('sumSpend'), listRequestTimes: c('listRequestTimes'), listAlerts: c('listAlerts'),
      recordAlert: c('recordAlert'), markAlertDelivered: c('markAlertDelivered'), recordRouteDecision: c('recordRouteDecision'),
      updateRouteDecision: c('updateRouteDecision'), summarize: c('summarize'),
    } as PolicyStore;
  }

  stats(): RecorderStats {
    let inFlight = this.pending.length;
    for (const b of this.unacked.values()) inFlight += b.length;
    return { ...this.lastStats, queued: this.lastStats.queued + inFlight };
  }

  private post(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.pending.length === 0 && this.pendingBodies.length === 0) return;
    const records = this.pending;
    const bodies = this.pendingBodies;
    this.pending = [];
    this.pendingBodies = [];
    const id = ++this.seq;
    this.unacked.set(id, records);
    if (!this.worker) {
      this.readPendingBodiesHere();
      this.spoolUnacked();
      return;
    }
    try {
      this.worker.postMessage({ t: 'records', id, records, bodies } satisfies ToWorker, bodies.map((b) => b.bytes.buffer as ArrayBuffer));
    } catch (err) {
      this.readPendingBodiesHere();
      this.problem(`handing records to the store worker: ${(err as Error).message}`);
      this.spoolUnacked();
    }
  }

  private request(msg: ToWorker, timeoutMs = 60_000): Promise<void> {
    const w = this.worker;
    if (!w) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.waiters.delete(msg.id);
        resolve();
      }, timeoutMs);
      t.unref();
      this.waiters.set(msg.id, () => {
        clearTimeout(t);
        resolve();
      });
      w.postMessage(msg);
    });
  }

  private spawn(): void {
    const w = new Worker(new URL('./store-worker.js', import.meta.url), { workerData: this.data });
    w.unref();
    w.on('message', (m: FromWorker) => {
      if (m.t === 'ack') {
        this.unacked.delete(m.id);
        this.lastStats = m.stats;
        this.waiters.get(m.id)?.();
        this.waiters.delete(m.id);
      } else if (m.t === 'result') {
        const call = this.calls.get(m.id);
        if (!call) return;
        this.calls.delete(m.id);
        clearTimeout(call.timer);
        if (m.ok) call.resolve(m.value);
        else call.reject(new Error(m.error));
      } else if (m.t === 'bodies') {
        for (const [bodyId, info] of m.infos) {
          const read = this.reads.get(bodyId);
          if (!read) continue;
          this.reads.delete(bodyId);
          read.resolve(info);
        }
      } else if (m.t === 'problem') {
        this.problem(m.message);
      }
    });
    w.on('error', (err) => this.problem(`store worker failed: ${err.message}`));
    w.on('exit', () => {
      if (this.worker !== w) return;
      this.worker = null;
      this.readPendingBodiesHere();
      for (const done of this.waiters.values()) done();
      this.waiters.clear();
      for (const call of this.calls.values()) {
        clearTimeout(call.timer);
        call.reject(new Error('store worker exited'));
      }
      this.calls.clear();
      if (this.closing) return;
      this.spoolUnacked();
      if (this.restarts++ < MAX_RESTARTS) this.spawn();
      else this.problem('store worker keeps failing; records now go to the spool only');
    });
    this.worker = w;
  }

  /** Write every unconfirmed record to a spool file from this thread (rare: the worker is gone). */
  private spoolUnacked(): void {
    const batches = [...this.unacked.values(), this.pending];
    this.unacked.clear();
    this.pending = [];
    const lines = batches.flat().map((r) => JSON.stringify(r));
    if (lines.length === 0) return;
    try {
      mkdirSync(this.data.spoolDir, { recursive: true });
      appendFileSync(join(this.data.spoolDir, `${Date.now()}-${process.pid}-main.jsonl`), lines.join('\n') + '\n', { mode: 0o600 });
    } catch (err) {
      this.problem(`spool: ${(err as Error).message}; ${lines.length} records lost`);
    }
  }

  private problem(message: string): void {
    this.lastStats = { ...this.lastStats, lastError: message };
    try {
      this.opts.onProblem?.(message);
    } catch { /* diagnostics never break recording */ }
  }
}

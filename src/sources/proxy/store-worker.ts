/**
 * Worker thread that owns the proxy's Store. SQLite calls are synchronous (better-sqlite3) and may wait
 * up to busy_timeout on a lock held by another process (sync, reports): here they never stall the event
 * loop that forwards traffic.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { PriceBook } from '../../core/pricing/pricebook.js';
import { applyUserPrices } from '../../core/pricing/user-prices.js';
import type { RequestRecord } from '../../core/types.js';
import { SqliteStore } from '../../store/sqlite/sqlite-store.js';
import type { Store } from '../../store/store.js';
import { inspectRequestBody, type RequestInfo } from './record.js';
import { Recorder } from './recorder.js';

export interface StoreWorkerData {
  dbPath: string;
  /** `TOKENTALLY_HOME/prices.json` (may not exist). */
  pricesPath: string | null;
  spoolDir: string;
  busyTimeoutMs: number;
  replayMs: number;
}

export type ToWorker =
  /** Records to write, and request bodies to read (answered with `bodies` before the `ack`). */
  | { t: 'records'; id: number; records: RequestRecord[]; bodies?: { id: number; bytes: Uint8Array }[] }
  | { t: 'flush'; id: number }
  | { t: 'replay'; id: number }
  | { t: 'close'; id: number }
  /** A policy query or write (PolicyGate via WorkerStoreClient): answered with `result`, never `ack`. */
  | { t: 'call'; id: number; method: PolicyStoreMethod; args: unknown[] };

export type FromWorker =
  | { t: 'ack'; id: number; stats: ReturnType<Recorder['stats']> }
  | { t: 'result'; id: number; ok: true; value: unknown }
  | { t: 'result'; id: number; ok: false; error: string }
  | { t: 'bodies'; infos: [number, RequestInfo][] }
  | { t: 'problem'; message: string };

/** The Store methods the proxy's policy (budgets, alerts, routing decisions) may call on the worker's store. */
export const POLICY_STORE_METHODS = [
  'listBudgets', 'sumSpend', 'listRequestTimes', 'listAlerts', 'recordAlert', 'markAlertDelivered',
  'recordRouteDecision', 'updateRouteDecision', 'summarize',
] as const;
export type PolicyStoreMethod = (typeof POLICY_STORE_METHODS)[number];

function loadPrices(path: string | null, problem: (m: string) => void): PriceBook {
  if (!path || !existsSync(path)) return PriceBook.builtin();
  try {
    return applyUserPrices(JSON.parse(readFileSync(path, 'utf8')), path);
  } catch (err) {
    problem(`price file ignored: ${(err as Error).message}`);
    return PriceBook.builtin();
  }
}

if (parentPort) {
  const port = parentPort;
  const data = workerData as StoreWorkerData;
  const problem = (message: string) => port.postMessage({ t: 'problem', message } satisfies FromWorker);
  const prices = loadPrices(data.pricesPath, problem);
  const recorder = new Recorder({
    // Small page caches: this connection lives as long as the proxy and writes small batches.
    openStore: () => SqliteStore.open(data.dbPath, prices, { busyTimeoutMs: data.busyTimeoutMs, cacheKb: 8192 }),
    spoolDir: data.spoolDir,
    replayMs: data.replayMs,
    onProblem: problem,
  });
  const ready = recorder.start().catch((err) => problem(`replaying the spool: ${(err as Error).message}`));
  // Policy calls get their own connection (opened on the first call; reopened after a failure to open).
  let policyStore: Store | null = null;
  const allowed = new Set<string>(POLICY_STORE_METHODS);
  port.on('message', async (msg: ToWorker) => {
    if (msg.t === 'call') {
      try {
        if (!allowed.has(msg.method)) throw new Error(`not a policy store method: ${msg.method}`);
        policyStore ??= SqliteStore.open(data.dbPath, prices, { busyTimeoutMs: data.busyTimeoutMs, cacheKb: 4096 });
        const fn = (policyStore as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[msg.method];
        const value = await fn.apply(policyStore, msg.args);
        port.postMessage({ t: 'result', id: msg.id, ok: true, value } satisfies FromWorker);
      } catch (err) {
        port.postMessage({ t: 'result', id: msg.id, ok: false, error: (err as Error).message } satisfies FromWorker);
      }
      return;
    }
    if (msg.t === 'records' && msg.bodies?.length) {
      // Read first: the proxy builds these requests' records once it has the answers.
      const infos: [number, RequestInfo][] = msg.bodies.map((b) => [b.id, inspectRequestBody(Buffer.from(b.bytes.buffer, b.bytes.byteOffset, b.bytes.byteLength))]);
      port.postMessage({ t: 'bodies', infos } satisfies FromWorker);
    }
    await ready;
    try {
      if (msg.t === 'records') {
        for (const r of msg.records) recorder.add(r);
        await recorder.flush();
      } else if (msg.t === 'flush') {
        await recorder.flush();
      } else if (msg.t === 'replay') {
        await recorder.replaySpool();
      } else if (msg.t === 'close') {
        await recorder.close();
        await policyStore?.close().catch(() => undefined);
        policyStore = null;
      }
    } catch (err) {
      problem((err as Error).message);
    }
    port.postMessage({ t: 'ack', id: msg.id, stats: recorder.stats() } satisfies FromWorker);
    if (msg.t === 'close') port.close();
  });
}

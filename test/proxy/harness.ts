import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import { createProxy, type ProxyHandle, type ProxyOptions } from '../../src/sources/proxy/server.js';
import { WorkerRecorder } from '../../src/sources/proxy/worker-recorder.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { StoredRequest } from '../../src/store/store.js';
import { startMockAnthropic, type MockAnthropic, type MockOptions } from '../helpers/mock-anthropic.js';

export interface Stack {
  mock: MockAnthropic;
  proxy: ProxyHandle;
  sink: WorkerRecorder;
  /** Proxy base URL (ANTHROPIC_BASE_URL). */
  url: string;
  dir: string;
  dbPath: string;
  spoolDir: string;
  problems: string[];
  /** Wait until the proxy has built `n` records in total, then write them to the store. */
  settle(n: number, timeoutMs?: number): Promise<void>;
  /** Every stored row, newest first. */
  rows(): Promise<StoredRequest[]>;
  close(): Promise<void>;
}

export async function startStack(opts: {
  mock?: MockOptions;
  proxy?: Partial<ProxyOptions>;
  upstream?: string;
  busyTimeoutMs?: number;
} = {}): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), 'tt-proxy-'));
  const dbPath = join(dir, 'tokentally.db');
  const spoolDir = join(dir, 'spool');
  const problems: string[] = [];
  const mock = await startMockAnthropic(opts.mock);
  const sink = new WorkerRecorder({ dbPath, spoolDir, busyTimeoutMs: opts.busyTimeoutMs ?? 5000, onProblem: (m) => problems.push(m) });
  const proxy = createProxy({ upstream: opts.upstream ?? mock.url, sink, onProblem: (m) => problems.push(m), ...opts.proxy });
  const { url } = await proxy.listen(0, '127.0.0.1');
  const stack: Stack = {
    mock, proxy, sink, url, dir, dbPath, spoolDir, problems,
    async settle(n, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (proxy.stats().recorded < n && Date.now() < deadline) await sleep(5);
      if (proxy.stats().recorded < n) throw new Error(`expected ${n} records, the proxy built ${proxy.stats().recorded}`);
      await sink.flush();
    },
    async rows() {
      const store = SqliteStore.open(dbPath, PriceBook.builtin());
      try {
        return await store.listRequests({});
      } finally {
        await store.close();
      }
    },
    async close() {
      await proxy.close(1000);
      await sink.close();
      await mock.close();
    },
  };
  return stack;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as import('node:net').AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

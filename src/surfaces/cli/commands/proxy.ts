import type { Command } from 'commander';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RequestRecord } from '../../../core/types.js';
import { totalTokens } from '../../../core/types.js';
import { ProxyPolicy } from '../../../sources/proxy/policy.js';
import { createProxy, HEALTH_PATH, PROXY_SERVICE_NAME } from '../../../sources/proxy/server.js';
import { WorkerRecorder } from '../../../sources/proxy/worker-recorder.js';
import { SqliteStore } from '../../../store/sqlite/sqlite-store.js';
import { StoreError, type Store } from '../../../store/store.js';
import { deliverAlerts } from '../../notify.js';
import { loadRoutingConfig, routesPath } from '../routes-file.js';
import { databasePath, loadPriceBook, pricesPath, tokentallyHome } from '../context.js';
import { UsageError, UserFacingError } from '../errors.js';
import { formatCompact } from '../format.js';
import { DEFAULT_HOST, DEFAULT_PORT, parsePort, proxyUrl, readClaudeSettings, sameEndpoint } from './init.js';

export const DEFAULT_UPSTREAM = 'https://api.anthropic.com';

interface ProxyFlags {
  port: string;
  host: string;
  upstream?: string;
  check?: boolean;
  json?: boolean;
  verbose?: boolean;
}

const pkgVersion = (): string => {
  try {
    return (JSON.parse(readFileSync(new URL('../../../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
};

export function registerProxy(program: Command): void {
  program.command('proxy')
    .description('run the live proxy (export ANTHROPIC_BASE_URL=http://127.0.0.1:4100): records every request; enforces budgets and routing rules when defined')
    .option('--port <n>', 'port to listen on', String(DEFAULT_PORT))
    .option('--host <addr>', 'address to bind (keep it on loopback: requests carry your API key)', DEFAULT_HOST)
    .option('--upstream <url>', `where requests go (default: TOKENTALLY_UPSTREAM, else ${DEFAULT_UPSTREAM})`)
    .option('--check', 'tell whether a proxy is listening there and whether Claude Code points to it')
    .option('--json', 'JSON output (with --check; otherwise one JSON line once listening)')
    .option('-v, --verbose', 'one line per request on stderr (no keys, no prompts)')
    .action(async (flags: ProxyFlags) => {
      const port = parsePort(flags.port);
      if (flags.check) await runCheck(flags.host, port, Boolean(flags.json));
      else await runProxy(flags, port);
    });
}

function resolveUpstream(flag: string | undefined): string {
  const raw = (flag ?? process.env.TOKENTALLY_UPSTREAM ?? '').trim() || DEFAULT_UPSTREAM;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UsageError(`--upstream expects an http(s) URL, got "${raw}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--upstream expects an http(s) URL, got "${raw}"`);
  return raw.replace(/\/+$/, '');
}

async function runProxy(flags: ProxyFlags, port: number): Promise<void> {
  const upstream = resolveUpstream(flags.upstream);
  if (port !== 0 && sameEndpoint(upstream, proxyUrl(flags.host, port))) {
    throw new UsageError(`--upstream ${upstream} is this proxy itself; requests would loop`);
  }
  const prices = loadPriceBook(); // a broken prices.json is reported now, not in the worker
  const dbPath = databasePath();
  // Create or upgrade the database now, so a corrupt one is reported before traffic flows. A locked one is
  // fine: records are spooled until it frees up.
  try {
    const s = SqliteStore.open(dbPath, prices, { busyTimeoutMs: 2000 });
    await s.close();
  } catch (err) {
    if (err instanceof StoreError && !/locked/i.test(err.message)) throw new UserFacingError(err.message, err.hint);
  }
  const say = (line: string) => process.stderr.write(`tokentally proxy: ${line}\n`);
  const lastSaid = new Map<string, number>();
  const problem = (m: string) => {
    // The same problem (a locked database) is reported at most every 30 s.
    const k = m.slice(0, 60);
    const now = Date.now();
    if ((lastSaid.get(k) ?? 0) > now - 30_000) return;
    lastSaid.set(k, now);
    say(m);
  };
  const sink = new WorkerRecorder({ dbPath, spoolDir: join(tokentallyHome(), 'spool'), pricesPath: pricesPath(), onProblem: problem });
  // Budgets and routing: every store access goes through the store worker; an invalid routes.json stops here.
  let policy: ProxyPolicy;
  try {
    const policyStore = sink.policyStore();
    policy = await ProxyPolicy.start({
      store: policyStore, prices, loadRouting: () => loadRoutingConfig(prices), routesPath: routesPath(),
      log: say, problem,
      // notify.ts only needs markAlertDelivered of the store, which the worker client has.
      deliver: (alerts, budgets) => deliverAlerts(policyStore as unknown as Store, alerts, [...budgets]),
    });
  } catch (err) {
    await sink.close();
    throw err;
  }
  const proxy = createProxy({
    upstream, sink, version: pkgVersion(), onProblem: problem, policy,
    onRecord: flags.verbose ? (r) => say(logLine(r)) : undefined,
    health: () => ({
      database: dbPath,
      policy: { budgets: policy.gate.ledger.definitions.length, reservationsInFlight: policy.gate.ledger.inFlight(), idle: policy.idle },
    }),
  });
  let address: { url: string; host: string; port: number };
  try {
    address = await proxy.listen(port, flags.host);
  } catch (err) {
    policy.close();
    await sink.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      throw new UserFacingError(`${proxyUrl(flags.host, port)} is already in use`,
        'is a proxy already running? `tokentally proxy --check` tells; or choose another --port');
    }
    if (code === 'EADDRNOTAVAIL' || code === 'EACCES') {
      throw new UserFacingError(`cannot listen on ${proxyUrl(flags.host, port)} (${code})`, 'choose another --host or --port');
    }
    throw err;
  }
  if (!isLoopback(flags.host)) {
    say(`warning: listening on ${flags.host}, reachable from other machines; requests through it carry API keys`);
  }
  if (flags.json) {
    process.stdout.write(JSON.stringify({ listening: address.url, upstream, pid: process.pid, database: dbPath,
      budgets: policy.gate.ledger.definitions.length }) + '\n');
  } else {
    process.stdout.write(`tokentally proxy listening on ${address.url}, forwarding to ${upstream}\n`
      + `  use it: export ANTHROPIC_BASE_URL=${address.url}   (or \`tokentally init\` for every Claude Code session)\n`
      + `  records go to ${dbPath}; Ctrl-C stops\n`
      + (policy.idle ? '' : `  enforcing ${policy.gate.ledger.definitions.length} budget(s) and the routing rules of ${routesPath()}\n`));
  }

  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    process.once('SIGHUP', stop);
  });
  say('stopping: finishing requests in flight (5 s at most), writing records');
  await proxy.close(5000);
  policy.close();
  await policy.drain();
  await sink.close();
  const st = proxy.stats();
  if (!flags.json) say(`stopped after ${st.requests} requests (${st.recorded} recorded)`);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

function logLine(r: RequestRecord): string {
  const p = r.proxy!;
  const u = r.usage;
  const t = new Date(r.ts).toISOString().slice(11, 23);
  const tokens = totalTokens(u) > 0
    ? ` in=${formatCompact(u.input)} out=${formatCompact(u.output)} cw=${formatCompact(u.cacheWrite5m + u.cacheWrite1h)} cr=${formatCompact(u.cacheRead)}`
    : '';
  return `${t} ${p.endpoint} ${p.status}${p.errorType ? ` ${p.errorType}` : ''} ${r.model ?? '-'}${tokens} ${Math.round(p.latencyMs)}ms`
    + `${p.ttftMs !== null ? ` ttft=${Math.round(p.ttftMs)}ms` : ''}${r.sessionId ? ` session=${r.sessionId.slice(0, 8)}` : ''}`;
}

export interface ProxyCheck {
  url: string;
  listening: boolean;
  isTokentally: boolean;
  proxy: { version: string | null; pid: number | null; upstream: string | null; database: string | null; requests: number | null } | null;
  settings: { path: string; exists: boolean; valid: boolean; baseUrl: string | null; pointsToProxy: boolean };
  shell: { baseUrl: string | null; pointsToProxy: boolean };
  ok: boolean;
}

/** GET the health path; resolves null when nothing answers (or not an HTTP server) within the timeout. */
export function probe(url: string, timeoutMs = 1500): Promise<{ status: number; body: string } | null> {
  return new Promise((resolve) => {
    const req = http.get(url + HEALTH_PATH, { timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        if (body.length < 65536) body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

export async function checkProxy(host: string, port: number, env: NodeJS.ProcessEnv = process.env): Promise<ProxyCheck> {
  const url = proxyUrl(host, port);
  const answer = await probe(url);
  let info: Record<string, unknown> | null = null;
  if (answer && answer.status === 200) {
    try {
      const doc = JSON.parse(answer.body) as Record<string, unknown>;
      if (doc.service === PROXY_SERVICE_NAME) info = doc;
    } catch { /* not ours */ }
  }
  const s = readClaudeSettings(env);
  const shellUrl = env.ANTHROPIC_BASE_URL?.trim() || null;
  const settings = { path: s.path, exists: s.exists, valid: s.error === null, baseUrl: s.baseUrl, pointsToProxy: sameEndpoint(s.baseUrl, url) };
  const shell = { baseUrl: shellUrl, pointsToProxy: sameEndpoint(shellUrl, url) };
  const num = (v: unknown) => (typeof v === 'number' ? v : null);
  const str = (v: unknown) => (typeof v === 'string' ? v : null);
  return {
    url,
    listening: answer !== null,
    isTokentally: info !== null,
    proxy: info ? { version: str(info.version), pid: num(info.pid), upstream: str(info.upstream), database: str(info.database), requests: num(info.requests) } : null,
    settings,
    shell,
    ok: info !== null && (settings.pointsToProxy || shell.pointsToProxy),
  };
}

async function runCheck(host: string, port: number, json: boolean): Promise<void> {
  const c = await checkProxy(host, port);
  if (json) {
    process.stdout.write(JSON.stringify(c, null, 2) + '\n');
  } else {
    const lines: string[] = [];
    if (c.isTokentally) {
      const p = c.proxy!;
      lines.push(`proxy:    listening on ${c.url} (tokentally ${p.version ?? '?'}, pid ${p.pid ?? '?'}, upstream ${p.upstream ?? '?'}, ${p.requests ?? 0} requests so far)`);
    } else if (c.listening) {
      lines.push(`proxy:    something that is not a tokentally proxy is listening on ${c.url}`);
    } else {
      lines.push(`proxy:    nothing is listening on ${c.url} (start it: tokentally proxy${port !== DEFAULT_PORT ? ` --port ${port}` : ''})`);
    }
    const st = c.settings;
    if (!st.exists) lines.push(`settings: ${st.path} does not exist; Claude Code is not pointed at the proxy (tokentally init)`);
    else if (!st.valid) lines.push(`settings: ${st.path} is not valid JSON`);
    else if (st.pointsToProxy) lines.push(`settings: ${st.path} points Claude Code to ${st.baseUrl}`);
    else if (st.baseUrl) lines.push(`settings: ${st.path} points Claude Code elsewhere: ${st.baseUrl}`);
    else lines.push(`settings: ${st.path} does not set ANTHROPIC_BASE_URL (tokentally init)`);
    if (c.shell.baseUrl) lines.push(`shell:    ANTHROPIC_BASE_URL=${c.shell.baseUrl}${c.shell.pointsToProxy ? ' (this proxy)' : ''}`);
    if (st.pointsToProxy && !c.isTokentally) {
      lines.push(`warning:  Claude Code is pointed at ${c.url} but no tokentally proxy answers there: its requests fail until you start it (or run \`tokentally init --undo\`)`);
    }
    lines.push(c.ok ? 'ok: Claude Code requests go through the proxy' : 'not ready: see above');
    process.stdout.write(lines.join('\n') + '\n');
  }
  if (!c.ok) process.exitCode = 1;
}

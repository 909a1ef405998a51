#!/usr/bin/env node
// npm run bench:proxy -- direct vs through `tokentally proxy`, same mock upstream, in one run.
//
// Processes: the mock Messages API (bench/proxy/mock-server.mjs) and the proxy (bin/tokentally.js proxy, with a
// fresh TOKENTALLY_HOME holding a prices.json of 5 dummy models, i.e. settings but no budgets) run on loopback as
// separate processes; load comes from this process (node:http, keep-alive agents). Every response is the
// 20-event SSE stream (`x-mock-stream: sse20`). Phases:
//   1. latency at 1 connection: interleaved blocks of direct and proxied requests, p50/p99 of each; added = difference
//   2. throughput at 50 concurrent streams, alternating direct/proxy rounds of fixed duration:
//      a. paced: events 5 ms apart (a model streams tokens over time; the target applies here)
//      b. unpaced: 20 events back to back, CPU-bound: mock, proxy and load generator share the machine's cores, so
//         this measures CPU sharing as much as the proxy. Two references run too, for scale: a bare node:http pipe
//         proxy (pipe-proxy.mjs) and a bare TCP relay (tcp-relay.mjs, no HTTP at all: the floor of any proxy here)
//   3. memory: proxy RSS (after a forced GC) before and after 10,000 requests of which 1,000 are aborted mid-stream
// A second proxy with 5 active budgets (day/week/month/model/key scopes, limits so large nothing blocks, so the
// policy gate is not idle: every request is read, checked, reserved and settled; none can be refused, so the proxy
// forwards each one first and reads it right after, as it does for a user far from every limit) runs beside the plain one
// in phases 1 and 2, interleaved the same way; the report shows what the budget checks add.
// Options: --quick (smaller counts, for a smoke run), --strict (exit 1 when a target is missed), --no-budgets
// (skip the budgets proxy), --json.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const args = new Set(process.argv.slice(2));
const QUICK = args.has('--quick');
const WITH_BUDGETS = !args.has('--no-budgets');
const root = new URL('../..', import.meta.url).pathname;
const cfg = {
  warmup: QUICK ? 200 : 1000,
  latencyRequests: QUICK ? 1000 : 4000, // per path
  latencyBlock: 100,
  concurrency: 50,
  throughputSeconds: QUICK ? 2 : 5,
  throughputRounds: QUICK ? 1 : 3, // per path, alternating
  pacedDelayMs: 5,
  memoryRequests: QUICK ? 2000 : 10_000,
  memoryAborted: QUICK ? 200 : 1000,
};
const TARGETS = { p50AddedMs: 0.3, p99AddedMs: 1, throughputRatio: 0.85, memoryGrowthMb: 20 };

const children = [];
function start(cmd, argv, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`${argv.join(' ')} did not start: ${err}`)), 20_000);
    child.stderr.on('data', (d) => { if (err.length < 100_000) err += d; });
    child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl !== -1 && !child.started) {
        child.started = true;
        clearTimeout(timer);
        resolve({ child, info: JSON.parse(out.slice(0, nl)), stderr: () => err });
      }
    });
    child.once('exit', (code) => { if (!child.started) reject(new Error(`exited ${code}: ${err}`)); });
  });
}
function stopAll() {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
}
process.on('exit', stopAll);

const BODY = Buffer.from(JSON.stringify({ model: 'claude-opus-4-8', max_tokens: 1024, stream: true,
  metadata: { user_id: JSON.stringify({ device_id: 'bench', account_uuid: '', session_id: 'bench-session' }) },
  messages: [{ role: 'user', content: 'say hi' }] }));
const HEADERS = {
  'content-type': 'application/json', 'content-length': String(BODY.length), 'x-api-key': 'sk-ant-bench',
  'anthropic-version': '2023-06-01', 'user-agent': 'tokentally-bench', 'x-mock-stream': 'sse20',
};

/** One request; resolves {ms} at the end of the response, or {aborted} / {error}. */
function once(base, agent, { abortAfterChunks = 0, delayMs = 0 } = {}) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const delay = abortAfterChunks ? Math.max(1, delayMs) : delayMs;
    const headers = delay ? { ...HEADERS, 'x-mock-event-delay-ms': String(delay) } : HEADERS;
    const req = http.request({ agent, host: base.hostname, port: base.port, method: 'POST', path: '/v1/messages?beta=true', headers }, (res) => {
      let chunks = 0;
      res.on('data', () => {
        if (abortAfterChunks && ++chunks >= abortAfterChunks) {
          req.destroy();
          resolve({ aborted: true });
        }
      });
      res.on('end', () => resolve(res.statusCode === 200 ? { ms: performance.now() - t0 } : { error: `status ${res.statusCode}` }));
      res.on('error', () => resolve({ aborted: true }));
    });
    req.on('error', (e) => resolve({ error: e.code ?? e.message }));
    req.end(BODY);
  });
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function latency(bases) {
  const paths = Object.keys(bases);
  const agents = Object.fromEntries(paths.map((p) => [p, new http.Agent({ keepAlive: true, maxSockets: 1 })]));
  for (const path of paths) for (let i = 0; i < cfg.warmup; i++) await once(bases[path], agents[path]);
  const ms = Object.fromEntries(paths.map((p) => [p, []]));
  const errors = Object.fromEntries(paths.map((p) => [p, 0]));
  for (let done = 0; done < cfg.latencyRequests; done += cfg.latencyBlock) {
    for (const path of paths) {
      for (let i = 0; i < cfg.latencyBlock; i++) {
        const r = await once(bases[path], agents[path]);
        if (r.ms !== undefined) ms[path].push(r.ms);
        else errors[path]++;
      }
    }
  }
  for (const a of Object.values(agents)) a.destroy();
  const stat = (a) => {
    const s = [...a].sort((x, y) => x - y);
    return { n: s.length, p50: pct(s, 50), p90: pct(s, 90), p99: pct(s, 99), mean: s.reduce((x, y) => x + y, 0) / s.length };
  };
  return { ...Object.fromEntries(paths.map((p) => [p, stat(ms[p])])), errors };
}

/** CPU time (ms) a process has used, all threads (Linux /proc; null elsewhere). */
function cpuMs(pid) {
  if (!pid) return null;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime, in 100 Hz clock ticks
  } catch {
    return null;
  }
}

async function throughputRound(base, seconds, delayMs = 0, pid = null) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: cfg.concurrency });
  const cpu0 = cpuMs(pid);
  let done = 0;
  let errors = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(Array.from({ length: cfg.concurrency }, async () => {
    while (performance.now() < end) {
      const r = await once(base, agent, { delayMs });
      if (r.ms !== undefined) done++;
      else errors++;
    }
  }));
  const elapsed = (performance.now() - t0) / 1000;
  agent.destroy();
  const cpu1 = cpuMs(pid);
  return { rps: done / elapsed, errors, done, cpuMs: cpu0 === null || cpu1 === null ? null : cpu1 - cpu0 };
}

/**
 * Alternating rounds per path. `pids` names the process doing each path's work (the mock for `direct`, the
 * proxy otherwise): its CPU time per request is reported too, a figure the machine's other load hardly moves.
 */
async function throughput(paths, delayMs, pids = {}) {
  for (const base of Object.values(paths)) await throughputRound(base, 1, delayMs);
  const rounds = Object.fromEntries(Object.keys(paths).map((k) => [k, []]));
  const cpu = Object.fromEntries(Object.keys(paths).map((k) => [k, { ms: 0, done: 0 }]));
  let errors = 0;
  for (let i = 0; i < cfg.throughputRounds; i++) {
    for (const [path, base] of Object.entries(paths)) {
      const r = await throughputRound(base, cfg.throughputSeconds, delayMs, pids[path]);
      rounds[path].push(r.rps);
      errors += r.errors;
      if (r.cpuMs !== null) {
        cpu[path].ms += r.cpuMs;
        cpu[path].done += r.done;
      }
    }
  }
  const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
  const cpuUsPerRequest = Object.fromEntries(Object.entries(cpu).filter(([, c]) => c.done > 0).map(([k, c]) => [k, (c.ms * 1000) / c.done]));
  return { ...Object.fromEntries(Object.entries(rounds).map(([k, v]) => [k, mean(v)])), rounds, errors, cpuUsPerRequest };
}

function health(base, gc = false) {
  return new Promise((resolve, reject) => {
    http.get({ host: base.hostname, port: base.port, path: `/__tokentally/health${gc ? '?gc=1' : ''}`, agent: false }, (res) => {
      let b = '';
      res.on('data', (d) => (b += d));
      res.on('end', () => resolve(JSON.parse(b)));
    }).on('error', reject);
  });
}

async function settle(base, expected, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let h = await health(base);
  while ((h.inFlight > 0 || h.recorded < expected || h.recorder.queued > 0) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    h = await health(base);
  }
  return h;
}

async function memory(proxied) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: cfg.concurrency });
  const before0 = await health(proxied);
  await settle(proxied, before0.recorded);
  const before = await health(proxied, true);
  // 10,000 requests at 50 concurrent, every 10th aborted after its first chunk (mid-stream).
  let next = 0;
  const counts = { ok: 0, aborted: 0, errors: 0 };
  const abortEvery = Math.round(cfg.memoryRequests / cfg.memoryAborted);
  await Promise.all(Array.from({ length: cfg.concurrency }, async () => {
    while (next < cfg.memoryRequests) {
      const i = next++;
      const r = await once(proxied, agent, { abortAfterChunks: i % abortEvery === abortEvery - 1 ? 1 : 0 });
      if (r.aborted) counts.aborted++;
      else if (r.ms !== undefined) counts.ok++;
      else counts.errors++;
    }
  }));
  agent.destroy();
  const h = await settle(proxied, before.recorded + cfg.memoryRequests);
  await new Promise((r) => setTimeout(r, 500));
  const after = await health(proxied, true);
  return {
    counts, rssBeforeMb: before.memory.rss / 1048576, rssAfterMb: after.memory.rss / 1048576,
    heapBeforeMb: before.memory.heapUsed / 1048576, heapAfterMb: after.memory.heapUsed / 1048576,
    recorded: after.recorded - before.recorded, inFlight: h.inFlight, clientAborts: after.clientAborts - before.clientAborts,
    recorder: after.recorder,
  };
}

async function main() {
  const home = mkdtempSync(join(os.tmpdir(), 'tt-bench-proxy-'));
  mkdirSync(home, { recursive: true });
  // Five dummy price settings: the proxy's store worker loads and applies them (no budgets exist yet).
  const models = {};
  for (let i = 1; i <= 5; i++) models[`bench-dummy-model-${i}`] = { input: i, output: 5 * i };
  writeFileSync(join(home, 'prices.json'), JSON.stringify({ models }, null, 2));
  const env = { ...process.env, TOKENTALLY_HOME: home, HOME: join(home, 'home') };

  const mock = await start(process.execPath, [join(root, 'bench/proxy/mock-server.mjs')], env);
  const proxy = await start(process.execPath, ['--expose-gc', join(root, 'bin/tokentally.js'), 'proxy', '--port', '0', '--json', '--upstream', mock.info.url], env);
  const pipe = await start(process.execPath, [join(root, 'bench/proxy/pipe-proxy.mjs'), mock.info.url], env);
  const relay = await start(process.execPath, [join(root, 'bench/proxy/tcp-relay.mjs'), mock.info.url], env);
  const relayed = new URL(relay.info.listening);
  const direct = new URL(mock.info.url);
  const proxied = new URL(proxy.info.listening);
  const piped = new URL(pipe.info.listening);
  process.stderr.write(`mock ${direct.href} (pid ${mock.info.pid}), proxy ${proxied.href} (pid ${proxy.info.pid}); ${os.cpus().length} CPUs, node ${process.version}\n`);
  let budgeted = null;
  let budgetsPid = null;
  let budgetHealth = null;
  if (WITH_BUDGETS) {
    const home2 = mkdtempSync(join(os.tmpdir(), 'tt-bench-proxy-budgets-'));
    writeFileSync(join(home2, 'prices.json'), JSON.stringify({ models }, null, 2));
    const env2 = { ...process.env, TOKENTALLY_HOME: home2, HOME: join(home2, 'home') };
    const keyHash = createHash('sha256').update('sk-ant-bench').digest('hex').slice(0, 12);
    const budgets = [
      ['bench-day', '--period', 'day', '--scope', 'all', '--action', 'block'],
      ['bench-week', '--period', 'week', '--scope', 'all', '--action', 'warn'],
      ['bench-month', '--period', 'month', '--scope', 'all', '--action', 'block'],
      ['bench-opus', '--period', 'day', '--scope', 'model:claude-opus-*', '--action', 'downgrade'],
      ['bench-key', '--period', 'block5h', '--scope', `key:${keyHash}`, '--action', 'block'],
    ];
    for (const [name, ...flags] of budgets) {
      const r = spawnSync(process.execPath, [join(root, 'bin/tokentally.js'), 'budget', 'set', name, '--limit', '1000000', ...flags], { env: env2, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`budget set ${name}: ${r.stderr}`);
    }
    const proxy2 = await start(process.execPath, ['--expose-gc', join(root, 'bin/tokentally.js'), 'proxy', '--port', '0', '--json', '--upstream', mock.info.url], env2);
    budgeted = new URL(proxy2.info.listening);
    budgetsPid = proxy2.child.pid;
    budgetHealth = (await health(budgeted)).policy;
    if (!budgetHealth || budgetHealth.budgets !== 5 || budgetHealth.idle) throw new Error(`budgets proxy not enforcing 5 budgets: ${JSON.stringify(budgetHealth)}`);
    process.stderr.write(`budgets proxy ${budgeted.href} (pid ${proxy2.info.pid}): ${budgetHealth.budgets} active budgets\n`);
  }
  const withB = (o) => (budgeted ? { ...o, budgets: budgeted } : o);

  process.stderr.write('1/3 latency at 1 connection...\n');
  const lat = await latency(withB({ direct, proxy: proxied, pipe: piped, relay: relayed }));
  process.stderr.write(`2/3 throughput at 50 concurrent streams (paced ${cfg.pacedDelayMs} ms, then unpaced)...\n`);
  const tp = await throughput(withB({ direct, proxy: proxied }), cfg.pacedDelayMs);
  const pids = { direct: mock.info.pid, proxy: proxy.child.pid, pipe: pipe.child.pid, relay: relay.child.pid, budgets: budgetsPid };
  const tpu = await throughput(withB({ direct, proxy: proxied, pipe: piped, relay: relayed }), 0, pids);
  const budgetSettled = budgeted ? await settle(budgeted, 0) : null;
  process.stderr.write('3/3 memory over 10,000 requests (1,000 aborted mid-stream)...\n');
  const mem = await memory(proxied);
  const final = await health(proxied);

  const added50 = lat.proxy.p50 - lat.direct.p50;
  const added99 = lat.proxy.p99 - lat.direct.p99;
  const ratio = tp.proxy / tp.direct;
  const ratioU = tpu.proxy / tpu.direct;
  const growth = mem.rssAfterMb - mem.rssBeforeMb;
  const rows = [
    ['p50 added latency, 1 connection', `${lat.direct.p50.toFixed(3)} -> ${lat.proxy.p50.toFixed(3)} ms`, `${added50.toFixed(3)} ms`, `< ${TARGETS.p50AddedMs} ms`, added50 < TARGETS.p50AddedMs],
    ['p99 added latency, 1 connection', `${lat.direct.p99.toFixed(3)} -> ${lat.proxy.p99.toFixed(3)} ms`, `${added99.toFixed(3)} ms`, `< ${TARGETS.p99AddedMs} ms`, added99 < TARGETS.p99AddedMs],
    [`throughput, 50 streams (${cfg.pacedDelayMs} ms/event)`, `${tp.direct.toFixed(0)} -> ${tp.proxy.toFixed(0)} req/s`, `${(ratio * 100).toFixed(1)} %`, `>= ${TARGETS.throughputRatio * 100} %`, ratio >= TARGETS.throughputRatio],
    ['throughput, 50 streams (unpaced)', `${tpu.direct.toFixed(0)} -> ${tpu.proxy.toFixed(0)} req/s`, `${(ratioU * 100).toFixed(1)} %`, `>= ${TARGETS.throughputRatio * 100} %`, ratioU >= TARGETS.throughputRatio],
    ...(budgeted ? [
      ['5 budgets: p50 added latency, 1 connection', `${lat.direct.p50.toFixed(3)} -> ${lat.budgets.p50.toFixed(3)} ms`, `${(lat.budgets.p50 - lat.direct.p50).toFixed(3)} ms`, `< ${TARGETS.p50AddedMs} ms`, lat.budgets.p50 - lat.direct.p50 < TARGETS.p50AddedMs],
      ['5 budgets: p99 added latency, 1 connection', `${lat.direct.p99.toFixed(3)} -> ${lat.budgets.p99.toFixed(3)} ms`, `${(lat.budgets.p99 - lat.direct.p99).toFixed(3)} ms`, `< ${TARGETS.p99AddedMs} ms`, lat.budgets.p99 - lat.direct.p99 < TARGETS.p99AddedMs],
      [`5 budgets: throughput, 50 streams (${cfg.pacedDelayMs} ms/event)`, `${tp.direct.toFixed(0)} -> ${tp.budgets.toFixed(0)} req/s`, `${((tp.budgets / tp.direct) * 100).toFixed(1)} %`, `>= ${TARGETS.throughputRatio * 100} %`, tp.budgets / tp.direct >= TARGETS.throughputRatio],
      ['5 budgets: throughput, 50 streams (unpaced)', `${tpu.direct.toFixed(0)} -> ${tpu.budgets.toFixed(0)} req/s`, `${((tpu.budgets / tpu.direct) * 100).toFixed(1)} %`, `>= ${TARGETS.throughputRatio * 100} %`, tpu.budgets / tpu.direct >= TARGETS.throughputRatio],
    ] : []),
    [`proxy RSS, ${cfg.memoryRequests} req (${mem.counts.aborted} aborted)`, `${mem.rssBeforeMb.toFixed(1)} -> ${mem.rssAfterMb.toFixed(1)} MB`, `${growth >= 0 ? '+' : ''}${growth.toFixed(1)} MB`, `< ${TARGETS.memoryGrowthMb} MB`, growth < TARGETS.memoryGrowthMb],
  ];
  const w = [40, 26, 10, 10];
  const line = (cells) => cells.map((c, i) => String(c).padEnd(w[i] ?? 0)).join(' ').trimEnd();
  const out = [
    line(['target', 'direct -> proxy', 'measured', 'goal', 'result']),
    ...rows.map((r) => line([r[0], r[1], r[2], r[3], r[4] ? 'PASS' : 'FAIL'])),
    '',
    `latency (ms) direct: p50 ${lat.direct.p50.toFixed(3)} p90 ${lat.direct.p90.toFixed(3)} p99 ${lat.direct.p99.toFixed(3)} mean ${lat.direct.mean.toFixed(3)} (n=${lat.direct.n})`,
    `latency (ms) proxy:  p50 ${lat.proxy.p50.toFixed(3)} p90 ${lat.proxy.p90.toFixed(3)} p99 ${lat.proxy.p99.toFixed(3)} mean ${lat.proxy.mean.toFixed(3)} (n=${lat.proxy.n})`,
    `latency (ms) bare pipe proxy, for scale: p50 ${lat.pipe.p50.toFixed(3)} p90 ${lat.pipe.p90.toFixed(3)} p99 ${lat.pipe.p99.toFixed(3)} mean ${lat.pipe.mean.toFixed(3)}`
      + ` (added p50 ${(lat.pipe.p50 - lat.direct.p50).toFixed(3)}, p99 ${(lat.pipe.p99 - lat.direct.p99).toFixed(3)})`,
    `latency (ms) bare TCP relay, the floor: p50 ${lat.relay.p50.toFixed(3)} p90 ${lat.relay.p90.toFixed(3)} p99 ${lat.relay.p99.toFixed(3)} mean ${lat.relay.mean.toFixed(3)}`
      + ` (added p50 ${(lat.relay.p50 - lat.direct.p50).toFixed(3)}, p99 ${(lat.relay.p99 - lat.direct.p99).toFixed(3)})`,
    ...(budgeted ? [
      `latency (ms) 5 budgets: p50 ${lat.budgets.p50.toFixed(3)} p90 ${lat.budgets.p90.toFixed(3)} p99 ${lat.budgets.p99.toFixed(3)} mean ${lat.budgets.mean.toFixed(3)} (n=${lat.budgets.n})`,
      `budget checks, side by side (5 budgets - no budgets): latency p50 ${(lat.budgets.p50 - lat.proxy.p50) >= 0 ? '+' : ''}${(lat.budgets.p50 - lat.proxy.p50).toFixed(3)} ms, `
        + `p99 ${(lat.budgets.p99 - lat.proxy.p99) >= 0 ? '+' : ''}${(lat.budgets.p99 - lat.proxy.p99).toFixed(3)} ms, mean ${(lat.budgets.mean - lat.proxy.mean) >= 0 ? '+' : ''}${(lat.budgets.mean - lat.proxy.mean).toFixed(3)} ms; `
        + `throughput paced ${tp.proxy.toFixed(0)} vs ${tp.budgets.toFixed(0)} req/s (${((tp.budgets / tp.proxy) * 100).toFixed(1)} %), `
        + `unpaced ${tpu.proxy.toFixed(0)} vs ${tpu.budgets.toFixed(0)} req/s (${((tpu.budgets / tpu.proxy) * 100).toFixed(1)} %)`,
      `throughput rounds with 5 budgets (req/s): paced ${tp.rounds.budgets.map((x) => x.toFixed(0)).join(', ')}; unpaced ${tpu.rounds.budgets.map((x) => x.toFixed(0)).join(', ')}; `
        + `budgets proxy: ${budgetSettled.recorded} recorded, ${budgetSettled.blocked} blocked, ${budgetSettled.rewritten} rewritten, `
        + `${budgetSettled.forwardedFirst ?? 0} forwarded before being read (no budget could refuse them), `
        + `${budgetSettled.policy.reservationsInFlight} reservations left in flight`,
    ] : []),
    `throughput rounds, paced (req/s): direct ${tp.rounds.direct.map((x) => x.toFixed(0)).join(', ')}; proxy ${tp.rounds.proxy.map((x) => x.toFixed(0)).join(', ')}; errors ${tp.errors}`,
    `throughput rounds, unpaced (req/s): direct ${tpu.rounds.direct.map((x) => x.toFixed(0)).join(', ')}; proxy ${tpu.rounds.proxy.map((x) => x.toFixed(0)).join(', ')}; `
      + `bare pipe proxy ${tpu.rounds.pipe.map((x) => x.toFixed(0)).join(', ')} (${((tpu.pipe / tpu.direct) * 100).toFixed(1)} % of direct); `
      + `bare TCP relay ${tpu.rounds.relay.map((x) => x.toFixed(0)).join(', ')} (${((tpu.relay / tpu.direct) * 100).toFixed(1)} % of direct: the floor); errors ${tpu.errors}`,
    `CPU per request, unpaced rounds (all threads of the process doing the path's work): `
      + Object.entries(tpu.cpuUsPerRequest).map(([k, v]) => `${k === 'direct' ? 'mock' : k === 'relay' ? 'bare TCP relay' : k === 'pipe' ? 'bare pipe proxy' : k === 'budgets' ? 'proxy with 5 budgets' : 'proxy'} ${v.toFixed(0)} µs`).join(', '),
    `memory phase: ${mem.counts.ok} complete, ${mem.counts.aborted} aborted by the client, ${mem.counts.errors} errors; proxy recorded ${mem.recorded}, `
      + `saw ${mem.clientAborts} client aborts, ${mem.inFlight} in flight after; heap ${mem.heapBeforeMb.toFixed(1)} -> ${mem.heapAfterMb.toFixed(1)} MB`,
    `store: ${final.recorder.written} records written, ${final.recorder.spooled} spooled, ${final.recorder.queued} queued; `
      + `${final.requests} requests through the proxy in total`,
    `machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}, node ${process.version}; load generator, mock and proxy share these CPUs; `
      + `load average at the end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`,
  ];
  process.stdout.write(out.join('\n') + '\n');
  mkdirSync(join(root, 'bench/.data'), { recursive: true });
  writeFileSync(join(root, 'bench/.data/proxy-latest.json'), JSON.stringify({ at: new Date().toISOString(), cfg, budgets: budgetHealth, latency: lat, throughput: tp, throughputUnpaced: tpu, memory: mem,
    results: rows.map((r) => ({ target: r[0], measured: r[2], goal: r[3], pass: r[4] })) }, null, 2));
  stopAll();
  if (args.has('--strict') && rows.some((r) => !r[4])) process.exitCode = 1;
}

main().catch((err) => {
  process.stderr.write(`bench:proxy failed: ${err.stack ?? err}\n`);
  stopAll();
  process.exitCode = 1;
});

#!/usr/bin/env node
// npm run bench: tokentally vs ccusage 20.0.24 on a generated transcript tree, side by side, same run.
//
//   node bench/transcripts/run.mjs [--size-mb 500] [--runs 3] [--keep] [--profile] [--append-kb 1024]
//                                  [--direct] [--nice N] [--wait-idle S] [--seed S] [--projects N]   (--help)
//
// 1. cold: `tokentally daily --json` with a fresh TOKENTALLY_HOME (full import + report) vs `ccusage daily`.
// 2. warm: the tree gets the same ~1 MB of new lines appended (several sessions + one new file), then
//    `tokentally daily --json` (incremental import + report, store synced beforehand) vs `ccusage daily`.
// Wall time (measured here) and peak RSS (GNU time %M) for each; medians of --runs runs. Both tools' totals
// are checked against the generator's ground truth (manifest.json), and the three targets are printed.
//
// Data: bench/.data/transcripts (regenerated when the requested size/seed/generator differs), worked on
// through a copy, bench/.data/work, so the base stays pristine. ccusage is installed on demand into
// bench/.peer. tokentally runs from a copy of the build taken at start (bench/.data/tokentally-snapshot), so a
// rebuild by other work in the checkout cannot change it mid-run. Both tools run at the same raised priority
// (root only) and the CPU other processes used meanwhile is printed. Everything except the base data set is
// removed at the end unless --keep. Exit status 1 when a total mismatches; the targets are reported only.

import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync,
  truncateSync, utimesSync, writeFileSync,
} from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { addTotals, appendIncrement, GENERATOR_VERSION } from './gen.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BENCH = join(ROOT, 'bench');
const DATA = join(BENCH, '.data');
const BASE = join(DATA, 'transcripts');
const WORK = join(DATA, 'work');
const HOMES = join(DATA, 'homes');
const OUT = join(DATA, 'out');
const PEER = join(BENCH, '.peer');
const CCUSAGE_VERSION = '20.0.24';
const CCUSAGE_BIN = join(PEER, 'node_modules', '@ccusage', 'ccusage-linux-x64', 'bin', 'ccusage');
const SNAPSHOT = join(DATA, 'tokentally-snapshot');
let TOKENTALLY = join(SNAPSHOT, 'bin', 'tokentally.js');
const GNU_TIME = '/usr/bin/time';
const COMMAND_TIMEOUT_MS = 15 * 60 * 1000;
const TARGET = { coldRatio: 1.5, warmSpeedup: 10, rssMiB: 300 };

// ------------------------------------------------------------------------------------------------ args

function parseArgs(argv) {
  const a = { sizeMb: 500, runs: 3, keep: false, profile: false, appendKb: 1024, seed: null, projects: null, direct: false, waitIdle: null,
    nice: process.getuid?.() === 0 ? -10 : 0 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) fail(`${k} needs a positive number`, 2);
      return v;
    };
    if (k === '--size-mb') a.sizeMb = num();
    else if (k === '--runs') a.runs = Math.floor(num());
    else if (k === '--append-kb') a.appendKb = num();
    else if (k === '--wait-idle') a.waitIdle = Number(argv[++i]) || 0;
    else if (k === '--nice') a.nice = Math.trunc(Number(argv[++i]) || 0);
    else if (k === '--seed') a.seed = argv[++i];
    else if (k === '--projects') a.projects = Math.floor(num());
    else if (k === '--keep') a.keep = true;
    else if (k === '--profile') a.profile = true;
    else if (k === '--direct') a.direct = true;
    else if (k === '--help' || k === '-h') {
      process.stdout.write('usage: node bench/transcripts/run.mjs [--size-mb 500] [--runs 3] [--keep] [--profile] [--direct] [--append-kb 1024] [--seed S] [--projects N]\n'
        + '  --keep     keep the work copy, the tokentally homes (one holds a synced store) and the build snapshot\n'
        + '  --profile  one extra cold tokentally run under --cpu-prof, summarized\n'
        + '  --direct   run bin/tokentally.js of the checkout instead of a snapshot of the build\n'
        + '  --wait-idle S  before each timed pair wait up to S seconds for the CPUs to be idle (default 10; 0 when --nice < 0)\n'
        + '  --nice N   run both measured tools at this nice level (default -10 as root, else 0) to damp other load\n'
        + 'Exit status 1 when a total does not match the ground truth; targets are reported, not enforced.\n');
      process.exit(0);
    } else fail(`unknown argument ${k}`, 2);
  }
  a.seed ??= String(a.sizeMb);
  a.waitIdle ??= a.nice < 0 ? 0 : 10; // a raised priority already damps other load
  a.projects ??= a.sizeMb >= 200 ? 20 : 8;
  return a;
}

function fail(msg, code = 1) {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(code);
}

const say = (s) => process.stderr.write(`${s}\n`);

// ------------------------------------------------------------------------------------------------ setup

function jsonlBytes(dir) {
  let total = 0;
  let files = 0;
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.jsonl')) { total += statSync(p).size; files++; }
    }
  };
  walk(dir);
  return { bytes: total, files };
}

function ensureDataset(args) {
  const manifestPath = join(BASE, 'manifest.json');
  if (existsSync(manifestPath)) {
    const m = JSON.parse(readFileSync(manifestPath, 'utf8'));
    const same = m.generatorVersion === GENERATOR_VERSION && m.params?.sizeMb === args.sizeMb
      && String(m.params?.seed) === String(args.seed) && m.params?.projects === args.projects;
    if (same) {
      const onDisk = jsonlBytes(join(BASE, 'projects'));
      if (onDisk.bytes === m.bytes && onDisk.files === m.files.total) return m;
      say('bench: base data set differs from its manifest; regenerating');
    } else {
      say(`bench: base data set is ${m.params?.sizeMb} MiB/seed ${m.params?.seed}/gen v${m.generatorVersion}; regenerating`);
    }
  }
  rmSync(BASE, { recursive: true, force: true });
  say(`bench: generating ${args.sizeMb} MiB of transcripts into ${relative(ROOT, BASE)} ...`);
  const r = spawnSync(process.execPath, [join(BENCH, 'transcripts', 'gen.mjs'), '--out', BASE, '--size-mb', String(args.sizeMb),
    '--seed', String(args.seed), '--projects', String(args.projects)], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 20 * 60 * 1000 });
  if (r.status !== 0) fail('data generation failed');
  return JSON.parse(readFileSync(manifestPath, 'utf8'));
}

function ensurePeer() {
  if (process.platform !== 'linux' || process.arch !== 'x64') fail(`ccusage's native binary is installed for linux-x64 only (this is ${process.platform}-${process.arch})`);
  if (!existsSync(CCUSAGE_BIN)) {
    say(`bench: installing ccusage@${CCUSAGE_VERSION} into ${relative(ROOT, PEER)} ...`);
    mkdirSync(PEER, { recursive: true });
    const r = spawnSync('npm', ['install', '--prefix', PEER, '--no-save', '--no-audit', '--no-fund',
      `ccusage@${CCUSAGE_VERSION}`, `@ccusage/ccusage-linux-x64@${CCUSAGE_VERSION}`], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 5 * 60 * 1000 });
    if (r.status !== 0 || !existsSync(CCUSAGE_BIN)) fail('could not install ccusage (npm install failed)');
  }
  chmodSync(CCUSAGE_BIN, 0o755);
  const v = spawnSync(CCUSAGE_BIN, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  if (v.status !== 0 || !v.stdout.includes(CCUSAGE_VERSION)) fail(`unexpected ccusage binary: ${v.stdout || v.stderr}`);
}

/**
 * Run tokentally from a private copy of the build (dist, bin, package.json; node_modules linked), so a rebuild
 * during the bench (other work in the same checkout) cannot change what is measured halfway. Returns a
 * description of what was copied: git HEAD and whether src/ had uncommitted changes.
 */
function snapshotTokentally(direct) {
  if (!existsSync(join(ROOT, 'dist', 'src', 'surfaces', 'cli', 'main.js'))) fail('tokentally is not built: run `npm run bench` (builds first) or `npx tsc -p .`');
  rmSync(SNAPSHOT, { recursive: true, force: true });
  if (direct) {
    TOKENTALLY = join(ROOT, 'bin', 'tokentally.js');
  } else {
    mkdirSync(SNAPSHOT, { recursive: true });
    cpSync(join(ROOT, 'dist'), join(SNAPSHOT, 'dist'), { recursive: true });
    cpSync(join(ROOT, 'bin'), join(SNAPSHOT, 'bin'), { recursive: true });
    cpSync(join(ROOT, 'package.json'), join(SNAPSHOT, 'package.json'));
    symlinkSync(join(ROOT, 'node_modules'), join(SNAPSHOT, 'node_modules'), 'dir');
  }
  const v = spawnSync(process.execPath, [TOKENTALLY, '--version'], { encoding: 'utf8', timeout: 60_000 });
  if (v.status !== 0) fail(`the tokentally build does not start: ${v.stderr.trim().slice(0, 1000)}`);
  const git = (...a) => spawnSync('git', ['-C', ROOT, ...a], { encoding: 'utf8', timeout: 30_000 }).stdout?.trim() ?? '';
  const head = git('rev-parse', '--short', 'HEAD') || 'unknown';
  const dirty = git('status', '--porcelain', '--', 'src').split('\n').filter(Boolean).length;
  return `${v.stdout.trim()} @ ${head}${dirty ? ` + uncommitted changes in ${dirty} src path(s)` : ''}${direct ? '' : ' (build snapshot)'}`;
}

// ------------------------------------------------------------------------------------------------ measuring

/** Busy and total CPU time of the whole machine so far, in seconds (/proc/stat; USER_HZ = 100). */
function machineCpu() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + (f[4] || 0);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: (total - idle) / 100, total: total / 100 };
  } catch {
    return null;
  }
}

/**
 * Other work on this machine skews wall times (the bench shares the box). Wait, at most `maxS` seconds,
 * until one second passes with less than a quarter of one CPU busy. Returns the seconds waited.
 */
async function waitIdle(maxS) {
  const started = performance.now();
  while ((performance.now() - started) / 1000 < maxS) {
    const a = machineCpu();
    if (!a) return 0;
    await new Promise((r) => setTimeout(r, 1000));
    const b = machineCpu();
    if (b.busy - a.busy < 0.25) break;
  }
  return (performance.now() - started) / 1000;
}

/** A process and its descendants (via /proc/<pid>/task/<tid>/children). */
function processTree(root) {
  const out = [];
  const todo = [root];
  while (todo.length) {
    const pid = todo.pop();
    out.push(pid);
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        for (const c of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ')) if (c) todo.push(Number(c));
      }
    } catch { /* exited */ }
  }
  return out;
}

const haveGnuTime = existsSync(GNU_TIME) && spawnSync(GNU_TIME, ['-f', '%M', 'true'], { encoding: 'utf8' }).status === 0;

/**
 * Run a command in its own process group; wall time measured here, peak RSS (and CPU) from GNU time,
 * or, without it, by sampling VmHWM from /proc every 5 ms (marked as sampled).
 */
let NICE = 0;
function measure(name, cmd, argv, env, outFile) {
  const timeFile = `${outFile}.time`;
  const errFile = `${outFile}.err`;
  return new Promise((resolvePromise) => {
    let full = haveGnuTime ? [GNU_TIME, ['-f', '%e %M %U %S', '-o', timeFile, cmd, ...argv]] : [cmd, argv];
    if (NICE !== 0) full = ['nice', ['-n', String(NICE), full[0], ...full[1]]];
    const out = [];
    const err = [];
    const cpu0 = machineCpu();
    const t0 = performance.now();
    // detached: its own process group (killed as a whole on timeout) and session. With scheduler autogroups
    // a new session is a new autogroup, where a plain nice level means nothing against other sessions' work,
    // so the autogroup itself gets the nice level (root only; silently skipped otherwise).
    const child = spawn(full[0], full[1], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    if (NICE !== 0) {
      try { writeFileSync(`/proc/${child.pid}/autogroup`, String(NICE)); } catch { /* no autogroups, or not permitted */ }
    }
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    let hwm = 0;
    // Without GNU time: the peak RSS (VmHWM) of the measured process tree, sampled every 5 ms.
    const sampler = haveGnuTime ? null : setInterval(() => {
      for (const pid of processTree(child.pid)) {
        try {
          const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
          if (m) hwm = Math.max(hwm, Number(m[1]));
        } catch { /* exited */ }
      }
    }, 5);
    const timer = setTimeout(() => {
      say(`bench: ${name} exceeded ${COMMAND_TIMEOUT_MS / 1000} s; killing it`);
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
    }, COMMAND_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      const wallS = (performance.now() - t0) / 1000;
      clearTimeout(timer);
      if (sampler) clearInterval(sampler);
      writeFileSync(outFile, Buffer.concat(out));
      writeFileSync(errFile, Buffer.concat(err));
      let rssMiB = hwm / 1024;
      let cpuS = null;
      if (haveGnuTime && existsSync(timeFile)) {
        const last = readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(/\s+/).map(Number);
        rssMiB = last[1] / 1024;
        cpuS = last[2] + last[3];
      }
      const cpu1 = machineCpu();
      // CPU the rest of the machine used meanwhile, as a number of busy CPUs (needs GNU time for our share).
      const othersCpus = cpu0 && cpu1 && cpuS !== null ? Math.max(0, (cpu1.busy - cpu0.busy - cpuS) / wallS) : null;
      resolvePromise({ name, code, signal, wallS, rssMiB, cpuS, othersCpus, outFile, stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

function toolEnv(extra) {
  const emptyHome = join(DATA, 'empty-home');
  mkdirSync(emptyHome, { recursive: true });
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: emptyHome, TZ: 'UTC', LANG: 'C.UTF-8', CLAUDE_CONFIG_DIR: WORK, ...extra };
}

let homeSeq = 0;
function freshHome() {
  mkdirSync(HOMES, { recursive: true });
  return mkdtempSync(join(HOMES, `h${++homeSeq}-`));
}

function runTokentally(label, home, argv = ['daily', '--json'], nodeArgs = []) {
  mkdirSync(OUT, { recursive: true });
  return measure(`tokentally ${label}`, process.execPath, [...nodeArgs, TOKENTALLY, ...argv], toolEnv({ TOKENTALLY_HOME: home }),
    join(OUT, `tokentally-${label}.json`));
}

function runCcusage(label) {
  mkdirSync(OUT, { recursive: true });
  return measure(`ccusage ${label}`, CCUSAGE_BIN, ['daily', '--offline', '--json'], toolEnv({}), join(OUT, `ccusage-${label}.json`));
}

function checkRun(r) {
  if (r.code !== 0) {
    fail(`${r.name} failed (exit ${r.code}${r.signal ? `, ${r.signal}` : ''}): ${r.stderr.trim().slice(0, 2000)}`);
  }
  try {
    r.json = JSON.parse(r.stdout);
  } catch {
    fail(`${r.name} printed no JSON: ${r.stdout.slice(0, 500)} ${r.stderr.slice(0, 500)}`);
  }
  return r;
}

// ------------------------------------------------------------------------------------------------ data state

let workCopiedAt = 0;
function makeWorkCopy() {
  rmSync(WORK, { recursive: true, force: true });
  const t0 = performance.now();
  cpSync(join(BASE, 'projects'), join(WORK, 'projects'), { recursive: true });
  spawnSync('sync', [], { timeout: 120_000 }); // no writeback of the copy during the timed runs
  say(`bench: work copy made in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  workCopiedAt = Date.now();
}

/** Undo an appendIncrement(): truncate appended files back (same inode), restore their times, delete new files. */
function restore(inc) {
  for (const t of inc.touched) {
    truncateSync(t.path, t.size);
    utimesSync(t.path, t.atimeMs / 1000, t.mtimeMs / 1000);
  }
  for (const p of inc.created) rmSync(p, { force: true });
}

function append(args) {
  return appendIncrement({ dir: WORK, seed: `${args.seed}:warm`, bytes: Math.round(args.appendKb * 1024), sessions: 6 });
}

// ------------------------------------------------------------------------------------------------ comparing

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function tokentallyTotals(j) {
  const t = j.totals;
  return { requests: t.requests, inputTokens: t.inputTokens, outputTokens: t.outputTokens, cacheCreation5mTokens: t.cacheCreation5mTokens,
    cacheCreation1hTokens: t.cacheCreation1hTokens, cacheCreationTokens: t.cacheCreationTokens, cacheReadTokens: t.cacheReadTokens,
    totalTokens: t.totalTokens, cost: t.totalCost, days: j.daily.length, webSearchRequests: t.webSearchRequests };
}

function ccusageTotals(j) {
  const t = j.totals;
  return { inputTokens: t.inputTokens, outputTokens: t.outputTokens, cacheCreationTokens: t.cacheCreationTokens,
    cacheReadTokens: t.cacheReadTokens, totalTokens: t.totalTokens, cost: t.totalCost, days: j.daily.length };
}

/** Every token class of tokentally's output must equal the ground truth exactly. */
function verifyTokentally(tt, truth) {
  const keys = ['requests', 'inputTokens', 'outputTokens', 'cacheCreation5mTokens', 'cacheCreation1hTokens', 'cacheReadTokens', 'totalTokens'];
  const bad = keys.filter((k) => tt[k] !== truth[k]).map((k) => `${k} ${tt[k]} != ${truth[k]}`);
  return bad;
}

function verifyCcusage(cc, truth) {
  const want = { inputTokens: truth.inputTokens, outputTokens: truth.outputTokens,
    cacheCreationTokens: truth.cacheCreation5mTokens + truth.cacheCreation1hTokens, cacheReadTokens: truth.cacheReadTokens, totalTokens: truth.totalTokens };
  return Object.keys(want).filter((k) => cc[k] !== want[k]).map((k) => `${k} ${cc[k]} != ${want[k]}`);
}

function perModelCost(j) {
  const m = new Map();
  for (const d of j.daily) for (const b of d.modelBreakdowns) m.set(b.modelName, (m.get(b.modelName) ?? 0) + (b.cost ?? 0));
  return m;
}

function perDayTokens(j) {
  return new Map(j.daily.map((d) => [d.period ?? d.date, d.totalTokens]));
}

/** One line explaining the cost difference between the tools, from the ground truth and per-model costs. */
function explainCost(ttJson, ccJson, manifest) {
  const truth = manifest.truth;
  const diff = ttJson.totals.totalCost - ccJson.totals.totalCost;
  const ws = truth.webSearchCostUSD;
  const rest = diff - ws;
  if (Math.abs(diff) < 0.005) return 'costs agree to the cent.';
  let line = '';
  if (ws > 0) {
    line += `tokentally bills ${truth.webSearchRequests} web searches at $10/1000 (+$${ws.toFixed(2)}), ccusage does not price server tools`;
  }
  if (Math.abs(rest) >= 0.005) {
    const a = perModelCost(ttJson);
    const b = perModelCost(ccJson);
    const parts = [];
    for (const model of new Set([...a.keys(), ...b.keys()])) {
      const d = (a.get(model) ?? 0) - (b.get(model) ?? 0) - (manifest.byModel?.[model]?.webSearchCostUSD ?? 0);
      if (Math.abs(d) >= 0.005) parts.push(`${model} ${d >= 0 ? '+' : '-'}$${Math.abs(d).toFixed(2)}`);
    }
    line += `${line ? '; ' : ''}other difference $${rest.toFixed(2)} (per model, tokentally minus ccusage: ${parts.join(', ') || 'n/a'})`;
  } else {
    line += '; token costs agree (both price 1h cache writes at 2x input; no request here is long-context-priced)';
  }
  return line + '.';
}

// ------------------------------------------------------------------------------------------------ output

const fmtS = (x) => `${x.toFixed(2)} s`;
const fmtM = (x) => `${x.toFixed(0)} MiB`;
const fmtInt = (n) => (n === undefined || n === null ? '-' : Math.round(n).toLocaleString('en-US'));
const fmtUsd = (n) => `$${n.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;

function table(rows, header) {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => String(r[i] ?? '').length)));
  const line = (r) => r.map((c, i) => (i === 0 ? String(c ?? '').padEnd(widths[i]) : String(c ?? '').padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function stat(runs, key, fmt) {
  const xs = runs.map((r) => r[key]);
  return `${fmt(median(xs))} (${xs.map((x) => x.toFixed(key === 'rssMiB' ? 0 : 2)).join('/')})`;
}

// ------------------------------------------------------------------------------------------------ profile

/** Self time by function and by file of one .cpuprofile (one thread), idle excluded from the shares. */
function summarizeProfile(path, top) {
  const p = JSON.parse(readFileSync(path, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = p.timeDeltas;
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + (dt[i] ?? 0));
  const byFn = new Map();
  const byFile = new Map();
  let busy = 0;
  let idle = 0;
  for (const [id, us] of self) {
    const cf = byId.get(id).callFrame;
    if (cf.functionName === '(idle)') { idle += us; continue; }
    const file = cf.url ? cf.url.replace(/^file:\/\//, '').replace(ROOT, '').replace(/^bench\/\.data\/tokentally-snapshot\//, '') : '(native/vm)';
    const fn = `${cf.functionName || '(anonymous)'} ${file}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + us);
    const area = file.includes('node_modules/') ? file.replace(/.*node_modules\/([^/]+).*/, 'node_modules/$1') : file;
    byFile.set(area, (byFile.get(area) ?? 0) + us);
    busy += us;
  }
  const fmt = (m, n) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([k, us]) => `  ${(us / 1000).toFixed(0).padStart(7)} ms ${(100 * us / busy).toFixed(1).padStart(5)}%  ${k}`).join('\n');
  return `busy ${(busy / 1000).toFixed(0)} ms, idle ${(idle / 1000).toFixed(0)} ms; self time by function:\n${fmt(byFn, top)}\n`
    + `  by file:\n${fmt(byFile, Math.min(top, 8))}`;
}

/** Node writes one profile per thread (main thread first, then workers): summarize each. */
function summarizeProfiles(dir) {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort((a, b) => {
    const n = (f) => Number(f.split('.').slice(-3, -2)[0]); // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile
    return n(a) - n(b);
  });
  return files.map((f, i) => `${i === 0 ? 'main thread' : `worker thread ${i}`} (${relative(ROOT, join(dir, f))}): `
    + summarizeProfile(join(dir, f), i === 0 ? 15 : 10)).join('\n');
}

// ------------------------------------------------------------------------------------------------ main

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const loadStart = loadavg().map((x) => x.toFixed(2)).join(' ');
  const build = snapshotTokentally(args.direct);
  NICE = args.nice;
  ensurePeer();
  const manifest = ensureDataset(args);
  makeWorkCopy();
  rmSync(HOMES, { recursive: true, force: true });
  rmSync(OUT, { recursive: true, force: true });
  say(`bench: ${manifest.mib} MiB, ${manifest.files.total} files, ${manifest.lines} lines; ${args.runs} runs each`
    + (haveGnuTime ? '' : ' (no GNU time: peak RSS sampled from /proc)'));

  // Page cache and binaries warm for both tools: one untimed run of each.
  checkRun(await runCcusage('warmup'));
  const warmupHome = freshHome();
  checkRun(await runTokentally('warmup', warmupHome));
  rmSync(warmupHome, { recursive: true, force: true });

  // ---- cold: fresh TOKENTALLY_HOME, full import + report
  // The copy's folders are all seconds old, a user's are not: tokentally keeps a folder's listing (for the next
  // run) only once the folder has been unchanged for 5 s. Start the cold runs, whose first store is the warm
  // runs' template, after that, so the template holds the listings a user's second run would have. (Cold runs
  // themselves start without any: fresh TOKENTALLY_HOME.)
  const settle = workCopiedAt + 5500 - Date.now();
  if (settle > 0) await new Promise((r) => setTimeout(r, settle));
  let waited = 0;
  const cold = { tt: [], cc: [] };
  let template = null;
  for (let i = 0; i < args.runs; i++) {
    const home = freshHome();
    const order = i % 2 === 0 ? ['tt', 'cc'] : ['cc', 'tt'];
    waited += await waitIdle(args.waitIdle);
    for (const who of order) {
      if (who === 'tt') cold.tt.push(checkRun(await runTokentally(`cold${i + 1}`, home)));
      else cold.cc.push(checkRun(await runCcusage(`cold${i + 1}`)));
    }
    const last = (xs) => xs[xs.length - 1];
    say(`bench: cold run ${i + 1}: tokentally ${fmtS(last(cold.tt).wallS)} ${fmtM(last(cold.tt).rssMiB)}, `
      + `ccusage ${fmtS(last(cold.cc).wallS)} ${fmtM(last(cold.cc).rssMiB)}`);
    if (template === null) template = home; // a synced store for the warm runs
    else rmSync(home, { recursive: true, force: true });
  }

  /** One more tokentally run in `home` under --cpu-prof: the per-thread summary. */
  const profiled = async (what, home) => {
    const dir = join(OUT, `cpuprofile-${what}`);
    rmSync(dir, { recursive: true, force: true });
    const r = checkRun(await runTokentally(`${what}-profile`, home, ['daily', '--json'], ['--cpu-prof', '--cpu-prof-dir', dir]));
    return `one more ${what} tokentally run under --cpu-prof (${fmtS(r.wallS)}):\n${summarizeProfiles(dir)}`;
  };
  let profileText = null;
  if (args.profile) {
    const home = freshHome();
    profileText = await profiled('cold', home);
    rmSync(home, { recursive: true, force: true });
  }

  // ---- warm: synced store + the same ~1 MB appended each time
  const warm = { tt: [], cc: [] };
  // Probe (untimed): what an incremental sync reads after the append.
  let inc = append(args);
  const probeHome = freshHome();
  cpSync(template, probeHome, { recursive: true });
  const probe = checkRun(await runTokentally('warm-probe-sync', probeHome, ['sync', '--json']));
  rmSync(probeHome, { recursive: true, force: true });
  restore(inc);
  const incTruth = inc.truth;
  const warmTruth = addTotals(manifest.truth, incTruth);
  for (let i = 0; i < args.runs; i++) {
    const home = freshHome();
    cpSync(template, home, { recursive: true });
    inc = append(args);
    if (JSON.stringify(inc.truth) !== JSON.stringify(incTruth)) fail('the appended increment is not deterministic');
    const order = i % 2 === 0 ? ['tt', 'cc'] : ['cc', 'tt'];
    waited += await waitIdle(args.waitIdle);
    for (const who of order) {
      if (who === 'tt') warm.tt.push(checkRun(await runTokentally(`warm${i + 1}`, home)));
      else warm.cc.push(checkRun(await runCcusage(`warm${i + 1}`)));
    }
    const last = (xs) => xs[xs.length - 1];
    say(`bench: warm run ${i + 1}: tokentally ${fmtS(last(warm.tt).wallS)} ${fmtM(last(warm.tt).rssMiB)}, `
      + `ccusage ${fmtS(last(warm.cc).wallS)} ${fmtM(last(warm.cc).rssMiB)}`);
    restore(inc);
    rmSync(home, { recursive: true, force: true });
  }
  if (args.profile) {
    // One more warm run under --cpu-prof (same template, same increment).
    const home = freshHome();
    cpSync(template, home, { recursive: true });
    inc = append(args);
    profileText = `${profileText}\n${await profiled('warm', home)}`;
    restore(inc);
    rmSync(home, { recursive: true, force: true });
  }

  // ---- report
  const ttCold = tokentallyTotals(cold.tt[0].json);
  const ccCold = ccusageTotals(cold.cc[0].json);
  const ttWarm = tokentallyTotals(warm.tt[0].json);
  const ccWarm = ccusageTotals(warm.cc[0].json);
  const stable = (runs) => runs.every((r) => JSON.stringify(r.json.totals) === JSON.stringify(runs[0].json.totals));
  const med = (runs, k) => median(runs.map((r) => r[k]));

  const coldRatio = med(cold.tt, 'wallS') / med(cold.cc, 'wallS');
  const warmSpeedup = med(warm.cc, 'wallS') / med(warm.tt, 'wallS');
  const ttPeak = Math.max(...cold.tt.map((r) => r.rssMiB), ...warm.tt.map((r) => r.rssMiB));

  const out = [];
  const p = (s = '') => out.push(s);
  p(`tokentally ${build} vs ccusage ${CCUSAGE_VERSION} (native binary, --offline) — daily --json`);
  p(`data: ${manifest.mib} MiB, ${fmtInt(manifest.files.total)} files (${fmtInt(manifest.files.sessions)} sessions incl. ${manifest.files.forks} forks, `
    + `${fmtInt(manifest.files.subagentFiles)} subagent files), ${fmtInt(manifest.lines)} lines, ${fmtInt(manifest.assistantLines)} assistant lines, `
    + `${fmtInt(manifest.truth.requests)} unique requests; seed ${manifest.params.seed}`);
  p(`warm step: +${(inc.bytes / 1024).toFixed(0)} KiB appended to ${inc.touched.length} sessions + ${inc.created.length} new file `
    + `(${incTruth.requests} requests); store synced before; incremental sync read ${fmtInt(probe.json.files.read)} of `
    + `${fmtInt(probe.json.files.seen)} files, ${(probe.json.bytesRead / 1024).toFixed(0)} KiB`);
  p(`machine: ${cpus().length} CPUs, node ${process.version}, load average ${loadStart} at start, ${loadavg().map((x) => x.toFixed(2)).join(' ')} at end; `
    + `${args.runs} runs, median (runs); wall measured by the harness, peak RSS = ${haveGnuTime ? 'GNU time %M' : 'VmHWM sampled'}; `
    + `both tools at nice ${args.nice}; MB = MiB`);
  const others = [...cold.tt, ...cold.cc, ...warm.tt, ...warm.cc].map((r) => r.othersCpus).filter((x) => x !== null);
  if (others.length) {
    const worst = Math.max(...others);
    p(`other load: other processes used median ${median(others).toFixed(2)}, max ${worst.toFixed(2)} of ${cpus().length} CPUs during the timed runs`
      + `${waited >= 0.5 ? ` (after waiting ${waited.toFixed(0)} s for idle CPUs)` : ''}`
      + `${worst > 0.25 ? ' — wall times may be inflated by other work (the measured tools ran at higher priority); user+sys CPU is less affected' : ''}`);
  }
  p();
  p(table([
    ['cold  wall', stat(cold.tt, 'wallS', fmtS), stat(cold.cc, 'wallS', fmtS), `${coldRatio.toFixed(2)}x ccusage`],
    ['cold  peak RSS', stat(cold.tt, 'rssMiB', fmtM), stat(cold.cc, 'rssMiB', fmtM), `${(med(cold.tt, 'rssMiB') / med(cold.cc, 'rssMiB')).toFixed(2)}x`],
    ...(haveGnuTime ? [['cold  CPU user+sys', fmtS(med(cold.tt, 'cpuS')), fmtS(med(cold.cc, 'cpuS')), `${(med(cold.tt, 'cpuS') / med(cold.cc, 'cpuS')).toFixed(2)}x`]] : []),
    ['warm  wall', stat(warm.tt, 'wallS', fmtS), stat(warm.cc, 'wallS', fmtS), `${warmSpeedup.toFixed(1)}x faster`],
    ['warm  peak RSS', stat(warm.tt, 'rssMiB', fmtM), stat(warm.cc, 'rssMiB', fmtM), `${(med(warm.tt, 'rssMiB') / med(warm.cc, 'rssMiB')).toFixed(2)}x`],
    ...(haveGnuTime ? [['warm  CPU user+sys', fmtS(med(warm.tt, 'cpuS')), fmtS(med(warm.cc, 'cpuS')), `${(med(warm.tt, 'cpuS') / med(warm.cc, 'cpuS')).toFixed(2)}x`]] : []),
  ], ['', 'tokentally', `ccusage ${CCUSAGE_VERSION}`, 'tokentally vs ccusage']));
  p();

  const totalsRows = (label, tt, cc, truth) => [
    [`${label} input`, fmtInt(tt.inputTokens), fmtInt(cc.inputTokens), fmtInt(truth.inputTokens)],
    [`${label} output`, fmtInt(tt.outputTokens), fmtInt(cc.outputTokens), fmtInt(truth.outputTokens)],
    [`${label} cache write 5m`, fmtInt(tt.cacheCreation5mTokens), '-', fmtInt(truth.cacheCreation5mTokens)],
    [`${label} cache write 1h`, fmtInt(tt.cacheCreation1hTokens), '-', fmtInt(truth.cacheCreation1hTokens)],
    [`${label} cache write`, fmtInt(tt.cacheCreationTokens), fmtInt(cc.cacheCreationTokens), fmtInt(truth.cacheCreation5mTokens + truth.cacheCreation1hTokens)],
    [`${label} cache read`, fmtInt(tt.cacheReadTokens), fmtInt(cc.cacheReadTokens), fmtInt(truth.cacheReadTokens)],
    [`${label} total tokens`, fmtInt(tt.totalTokens), fmtInt(cc.totalTokens), fmtInt(truth.totalTokens)],
    [`${label} requests`, fmtInt(tt.requests), '-', fmtInt(truth.requests)],
    [`${label} cost`, fmtUsd(tt.cost), fmtUsd(cc.cost), `${fmtUsd(truth.costUSD)} (tokens ${fmtUsd(truth.tokenCostUSD)} + web search ${fmtUsd(truth.webSearchCostUSD)})`],
    [`${label} days`, tt.days, cc.days, ''],
  ];
  p(table([...totalsRows('cold', ttCold, ccCold, manifest.truth), ...totalsRows('warm', ttWarm, ccWarm, warmTruth)],
    ['totals', 'tokentally', 'ccusage', 'ground truth (manifest.json)']));
  p();

  const checks = [];
  const check = (label, problems) => {
    checks.push(problems.length === 0);
    p(`${problems.length === 0 ? 'OK      ' : 'MISMATCH'} ${label}${problems.length ? `: ${problems.join('; ')}` : ''}`);
  };
  check('tokentally cold totals == ground truth (every token class, requests)', verifyTokentally(ttCold, manifest.truth));
  check('tokentally warm totals == ground truth + increment', verifyTokentally(ttWarm, warmTruth));
  check('ccusage cold totals == ground truth', verifyCcusage(ccCold, manifest.truth));
  check('ccusage warm totals == ground truth + increment', verifyCcusage(ccWarm, warmTruth));
  const dayDiffs = (a, b) => {
    const x = perDayTokens(a);
    const y = perDayTokens(b);
    return [...new Set([...x.keys(), ...y.keys()])].filter((d) => x.get(d) !== y.get(d)).map((d) => `${d}: ${x.get(d)} vs ${y.get(d)}`);
  };
  check('per-day token totals, tokentally == ccusage (TZ=UTC), cold and warm',
    [...dayDiffs(cold.tt[0].json, cold.cc[0].json), ...dayDiffs(warm.tt[0].json, warm.cc[0].json)].slice(0, 5));
  check('every run of a tool printed the same totals', [cold.tt, cold.cc, warm.tt, warm.cc].some((r) => !stable(r)) ? ['runs differ'] : []);
  p(`cost: tokentally ${fmtUsd(ttCold.cost)} vs ccusage ${fmtUsd(ccCold.cost)} (cold) — ${explainCost(cold.tt[0].json, cold.cc[0].json, manifest)}`);
  p(`(without de-duplication the same files would give ${fmtInt(manifest.noDedup.totalTokens)} tokens; keeping the first line of each response, `
    + `${fmtInt(manifest.firstLineWins.outputTokens)} output tokens instead of ${fmtInt(manifest.truth.outputTokens)})`);
  p();
  const target = (ok, text) => p(`${ok ? 'PASS' : 'FAIL'}  ${text}`);
  const best = (runs, k) => Math.min(...runs.map((r) => r[k]));
  const coldCpu = haveGnuTime ? `; CPU user+sys ${(med(cold.tt, 'cpuS') / med(cold.cc, 'cpuS')).toFixed(2)}x ccusage's` : '';
  const warmCpu = haveGnuTime ? `; ccusage uses ${(med(warm.cc, 'cpuS') / med(warm.tt, 'cpuS')).toFixed(1)}x tokentally's CPU user+sys` : '';
  target(coldRatio <= TARGET.coldRatio, `cold: tokentally ${fmtS(med(cold.tt, 'wallS'))} vs ccusage ${fmtS(med(cold.cc, 'wallS'))} = `
    + `${coldRatio.toFixed(2)}x ccusage's time (target <= ${TARGET.coldRatio}x; best of ${args.runs}: `
    + `${(best(cold.tt, 'wallS') / best(cold.cc, 'wallS')).toFixed(2)}x${coldCpu})`);
  target(warmSpeedup >= TARGET.warmSpeedup, `warm: tokentally ${fmtS(med(warm.tt, 'wallS'))} vs ccusage ${fmtS(med(warm.cc, 'wallS'))} = `
    + `${warmSpeedup.toFixed(1)}x faster (target >= ${TARGET.warmSpeedup}x; best of ${args.runs}: `
    + `${(best(warm.cc, 'wallS') / best(warm.tt, 'wallS')).toFixed(1)}x${warmCpu})`);
  target(ttPeak < TARGET.rssMiB, `memory: tokentally peak RSS ${fmtM(ttPeak)} over all runs = ${(ttPeak / TARGET.rssMiB).toFixed(2)}x the budget (target < ${TARGET.rssMiB} MiB)`);
  if (profileText) {
    p();
    p(profileText);
  }
  p();
  p(`(bench took ${((performance.now() - started) / 1000).toFixed(0)} s; outputs in ${relative(ROOT, OUT)})`);
  process.stdout.write(out.join('\n') + '\n');

  if (!args.keep) {
    rmSync(WORK, { recursive: true, force: true });
    rmSync(HOMES, { recursive: true, force: true });
    rmSync(SNAPSHOT, { recursive: true, force: true });
  } else {
    say(`bench: kept ${relative(ROOT, WORK)} and ${relative(ROOT, HOMES)} (synced store: ${relative(ROOT, template)})`);
  }
  process.exitCode = checks.every(Boolean) ? 0 : 1;
}

await main();

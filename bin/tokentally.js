#!/usr/bin/env node
'use strict';
// CommonJS (bin/package.json): an ES module here would start Node's ESM loader (~6 ms) before anything runs,
// which `tokentally statusline` cannot afford. Every other command loads the ES modules in dist/.

/**
 * dist/<name>.cjs, compiled from its V8 code cache in TOKENTALLY_HOME/cache: its exports, and `done(code, stage)`,
 * which rewrites the cache when this run went further than the one that wrote it, then exits. Null without it.
 */
function loadBundle(name) {
  const fs = require('node:fs');
  const path = require('node:path');
  const file = path.join(__dirname, '..', 'dist', `${name}.cjs`);
  let source;
  try {
    source = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const vm = require('node:vm');
  // The statusline's bundles skip node:module (~0.3 ms to load: it brings the ES module loader): Module.wrap's own
  // wrapper, and this file's require, which resolves from the same package as dist/ does.
  const own = name === 'statusline' || name.startsWith('statusline-');
  const { createRequire, wrap } = own ? { createRequire: () => require,
    wrap: (text) => `(function (exports, require, module, __filename, __dirname) { ${text}\n});` } : require('node:module');
  const env = process.env;
  const home = env.TOKENTALLY_HOME && env.TOKENTALLY_HOME.trim()
    ? path.resolve(env.TOKENTALLY_HOME.trim()) : path.join(env.HOME || require('node:os').homedir(), '.tokentally');
  const cacheFile = path.join(home, 'cache', `${name}-code.v8`);
  // The cache belongs to this build of the bundle (its first line) and this Node; V8 also checks its own version
  // and flags, and rejects data that does not fit (then it compiles as usual and the cache is rewritten).
  const key = `${source.slice(0, source.indexOf('\n'))} ${process.version} ${process.arch}`;
  let cachedData;
  let cachedStage = -1;
  try {
    const buf = fs.readFileSync(cacheFile);
    const nl = buf.indexOf(10);
    const header = buf.toString('latin1', 0, nl);
    const sp = header.lastIndexOf(' ');
    if (header.slice(0, sp) === key) {
      cachedData = buf.subarray(nl + 1);
      cachedStage = Number(header.slice(sp + 1));
    }
  } catch {
    // no cache yet
  }
  let script;
  const mod = { exports: {} };
  try {
    script = new vm.Script(wrap(source), { filename: file, cachedData });
    script.runInThisContext().call(mod.exports, mod.exports, createRequire(file), mod, file, path.dirname(file));
  } catch {
    return null;
  }
  const done = (code, stage) => {
    // Functions are compiled when first called, and the cache holds those compiled so far: rewrite it when this
    // run went further (statusline: opened the store, imported the transcript) than the run that wrote it.
    if (cachedData === undefined || script.cachedDataRejected || stage > cachedStage) {
      try {
        const data = script.createCachedData();
        fs.mkdirSync(path.dirname(cacheFile), { recursive: true });
        const tmp = `${cacheFile}.${process.pid}.tmp`;
        fs.writeFileSync(tmp, Buffer.concat([Buffer.from(`${key} ${stage}\n`, 'latin1'), data]));
        fs.renameSync(tmp, cacheFile);
      } catch {
        // read-only home: no code cache
      }
    }
    process.exit(code);
  };
  return { exports: mod.exports, done };
}

/**
 * `tokentally statusline` runs after every assistant message, a new process each time: it runs the one-file
 * bundle dist/statusline.cjs (scripts/build-statusline.mjs) compiled from a V8 code cache kept in
 * TOKENTALLY_HOME/cache. Reports (`tokentally`, `daily`, ...) run dist/cli.cjs the same way: a warm report is
 * mostly process start. Returns false when there is no bundle (built without esbuild): the ES modules answer.
 */
function runBundle(name, front) {
  const bundle = loadBundle(name);
  if (!bundle) return false;
  const { exports: mod, done } = bundle;
  const env = process.env;
  const fs = require('node:fs');
  if (name === 'hook') {
    const { parseHookArgs, hookMain } = mod;
    const flags = parseHookArgs(process.argv.slice(3));
    if (!flags) return false; // --help: the ES modules' commander answers
    hookMain(flags).then((code) => {
      if (process.stdout.writableLength > 0) process.stdout.once('drain', () => done(code, 0));
      else done(code, 0);
    }, (err) => {
      // hookMain reports its own failures; a hook must never block a prompt with a stack trace.
      if (env.TOKENTALLY_DEBUG) fs.writeSync(2, `${(err && err.stack) || err}\n`);
      process.exit(0);
    });
  } else if (name === 'statusline') {
    const { runStatusline, statuslineStage } = mod;
    runStatusline(process.argv.slice(3), env, front).then((code) => done(code, statuslineStage()), (err) => {
      // runStatusline reports its own failures; this is the never-a-stack-trace guard.
      fs.writeSync(1, 'tokentally: unavailable\n');
      if (env.TOKENTALLY_DEBUG) fs.writeSync(2, `${(err && err.stack) || err}\n`);
      process.exit(0);
    });
  } else {
    // program.js's main() reports every failure itself, as dist/src/surfaces/cli/main.js does.
    mod.main(process.argv.slice(2)).then((code) => {
      // Flush stdout before exiting (piped output is asynchronous).
      if (process.stdout.writableLength > 0) process.stdout.once('drain', () => done(code, 0));
      else done(code, 0);
    });
  }
  return true;
}

/** The reports (the default command included) without help: what dist/cli.cjs holds (program.js's modulesFor). */
function isReport(args) {
  const first = args[0];
  if (args.includes('--help') || args.includes('-h')) return false;
  if (first === undefined) return true;
  if (first.startsWith('-')) return !['-V', '--version'].includes(first);
  return ['daily', 'report', 'weekly', 'monthly', 'session', 'project', 'model'].includes(first);
}

/**
 * `tokentally statusline` in up to three steps, each a bundle of its own (scripts/build-statusline.mjs):
 * dist/statusline-hit.cjs answers from the line cache (a few KB: compiled as it runs, no code cache needed);
 * when it saw a state the store-free path may apply to, dist/statusline-fast.cjs tries that (the transcript
 * reader and the price book); only then dist/statusline.cjs, the full run with SQLite, from its V8 code cache.
 * False without the bundles (built without esbuild): the ES modules answer.
 */
function runStatuslineSteps() {
  let hit;
  try {
    hit = require('../dist/statusline-hit.cjs');
  } catch {
    return runBundle('statusline');
  }
  const argv3 = process.argv.slice(3);
  const r = hit.statuslineFromLineCache(argv3);
  if (r.answered) process.exit(0);
  // fastTried: the front found no state the store-free path could use (none, or another process wrote the store
  // since), so the full run does not look again.
  const front = { stdin: r.stdin, lineCacheChecked: true, fastTried: !r.fastPossible };
  const full = () => {
    if (runBundle('statusline', front)) return;
    // The front read stdin: the statusline from the ES modules, given what it read.
    import('../dist/src/surfaces/statusline/run.js').then((m) => m.runStatusline(argv3, process.env, front))
      .then((code) => process.exit(code), () => {
        require('node:fs').writeSync(1, 'tokentally: unavailable\n');
        process.exit(0);
      });
  };
  if (!r.fastPossible) {
    full();
    return true;
  }
  const fast = loadBundle('statusline-fast');
  if (!fast) {
    full();
    return true;
  }
  // The cache entry the front parsed (the fast path's state): not read and parsed twice.
  fast.exports.runFastStatusline(argv3, process.env, { ...front, entry: r.entry, key: r.key, now: r.now }).then((answered) => {
    if (answered) fast.done(0, 1);
    front.fastTried = true;
    full();
  }, () => {
    front.fastTried = true;
    full();
  });
  return true;
}

const argv = process.argv;
const ran = argv[2] === 'statusline' ? !argv.includes('--help') && !argv.includes('-h') && runStatuslineSteps()
  : argv[2] === 'hook' ? runBundle('hook')
    : isReport(argv.slice(2)) && runBundle('cli');
if (!ran) import('../dist/src/surfaces/cli/main.js');

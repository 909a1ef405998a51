#!/usr/bin/env node
// Part of `npm run build` (after tsc): bundles the statusline command into one CommonJS file, dist/statusline.cjs,
// which bin/tokentally.js runs for `tokentally statusline` (with a V8 code cache, see there). The same way, the
// reports (`tokentally`, `daily`, `weekly`, ... : src/surfaces/cli/program.js with only the report command's module)
// go into dist/cli.cjs: a warm report is mostly process start, and the ES module graph was ~35 ms of it.
//
// Why: the statusline is a new process after every assistant message, and its budget is ~10 ms above Node's own
// start. Loading the ES module graph of dist/ (Node's ESM loader, ~25 files resolved and compiled one by one) and
// better-sqlite3's dozen CommonJS files took most of that; one script compiled from a code cache takes ~1 ms.
//
// What goes in: dist/src/surfaces/statusline/run.js and everything it imports, statically or not (the store, the
// transcript importer, block finder), plus better-sqlite3's JavaScript. What stays outside: better-sqlite3's
// compiled addon (loaded from node_modules as before) and Node's built-ins. The bundle is built from tsc's output,
// so it runs exactly the code the tests run.
//
// Without esbuild (a production install without devDependencies) it prints a note and exits 0: bin/tokentally.js
// then runs the statusline from dist/ as before, only slower.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(ROOT, 'dist');
const TARGETS = [
  { name: 'statusline', entry: join(DIST, 'src', 'surfaces', 'statusline', 'run.js'), out: join(DIST, 'statusline.cjs') },
  // Its line cache alone (hit.ts), run first: a hit never loads the bundle above.
  // Compiled without a code cache at every call (V8 parses ~15-30 KB per ms on this VM): minified names, no banner.
  { name: 'statusline-hit', entry: join(DIST, 'src', 'surfaces', 'statusline', 'hit.js'), out: join(DIST, 'statusline-hit.cjs'), small: true },
  // The store-free path (quick.ts: the reader and the price book, no SQLite), run when the front saw a state for it.
  { name: 'statusline-fast', entry: join(DIST, 'src', 'surfaces', 'statusline', 'quick.js'), out: join(DIST, 'statusline-fast.cjs') },
  { name: 'cli', entry: join(DIST, 'src', 'surfaces', 'cli', 'program.js'), out: join(DIST, 'cli.cjs') },
  // `tokentally hook` (UserPromptSubmit) runs before every prompt, a new process each time: target < 100 ms.
  { name: 'hook', entry: join(DIST, 'src', 'surfaces', 'cli', 'commands', 'hook.js'), out: join(DIST, 'hook.cjs') },
];
const require = createRequire(import.meta.url);

let esbuild;
try {
  esbuild = require('esbuild');
} catch {
  for (const t of TARGETS) rmSync(t.out, { force: true });
  process.stderr.write('build-statusline: esbuild is not installed (devDependency); the statusline and reports run unbundled (slower start)\n');
  process.exit(0);
}
for (const t of TARGETS) {
  if (!existsSync(t.entry)) {
    process.stderr.write(`build-statusline: ${relative(ROOT, t.entry)} is missing: run tsc first\n`);
    process.exit(1);
  }
}

const betterSqlite = dirname(require.resolve('better-sqlite3/package.json'));
const toPosix = (p) => p.split(sep).join('/');

const plugins = [{
  name: 'tokentally-statusline',
  setup(build) {
    // `import.meta.url` of each dist module, as that module's own file: sqlite-store resolves better-sqlite3 from it
    // and sync starts parse workers from `new URL('./parse-worker.js', import.meta.url)` (dist/, not the bundle).
    build.onLoad({ filter: /\.js$/ }, (args) => {
      if (!args.path.startsWith(join(DIST, 'src') + sep)) return undefined;
      let text = readFileSync(args.path, 'utf8');
      if (args.path === join(DIST, 'src', 'store', 'sqlite', 'sqlite-store.js')) {
        // better-sqlite3's JavaScript is bundled (below) and its folder is looked for beside dist/ first, so the local
        // require goes: createRequire from a file URL and the resolver's path search cost ~1.5 ms per open.
        const decl = 'const require = createRequire(import.meta.url);';
        const n = text.split(decl).length - 1;
        const m = text.split("require.resolve('better-sqlite3/package.json')").length - 1;
        if (n === 1 && m === 1) {
          text = text.replace(decl, '')
            .replace("require.resolve('better-sqlite3/package.json')", '__ttBetterSqlite3PackageJson()');
        } else process.stderr.write('build-statusline: note: sqlite-store.js no longer resolves better-sqlite3 as expected; left as is\n');
      }
      if (text.includes('import.meta.url')) {
        text = text.replaceAll('import.meta.url', `__ttModuleUrl(${JSON.stringify(toPosix(relative(DIST, args.path)))})`);
      }
      // sqlite-store loads better-sqlite3 with a createRequire'd require (CommonJS from ESM); bundle its JavaScript
      // instead: its twelve files cost ~6 ms to resolve and compile at every start.
      if (args.path === join(DIST, 'src', 'store', 'sqlite', 'sqlite-store.js')) {
        const call = /\brequire\((['"])better-sqlite3\1\)/;
        if (call.test(text)) text = `import __ttBetterSqlite3 from 'better-sqlite3';\n${text.replace(call, '__ttBetterSqlite3')}`;
        else process.stderr.write('build-statusline: note: sqlite-store.js no longer calls require(\'better-sqlite3\'); it stays external\n');
      }
      return { contents: text, loader: 'js' };
    });
    // The cli bundle runs reports only (bin/tokentally.js sends every other command, and help, to the ES modules):
    // the other commands' modules, imported lazily by program.js, are left out.
    build.onResolve({ filter: /^\.\/commands\/[a-z-]+\.js$/ }, (args) => {
      if (args.importer !== join(DIST, 'src', 'surfaces', 'cli', 'program.js') || args.path === './commands/report.js') return undefined;
      return { path: args.path, namespace: 'tokentally-left-out' };
    });
    build.onLoad({ filter: /.*/, namespace: 'tokentally-left-out' }, (args) => ({
      loader: 'js',
      contents: `throw new Error(${JSON.stringify(`${args.path} is not in the reports bundle`)});`,
    }));
    build.onResolve({ filter: /^better-sqlite3$/ }, () => ({ path: join(betterSqlite, 'lib', 'index.js') }));
    // better-sqlite3 finds its addon with `bindings` only when no nativeBinding path is given (sqlite-store passes
    // build/Release/better_sqlite3.node when it exists): the real package, rooted at better-sqlite3's folder.
    build.onResolve({ filter: /^bindings$/ }, () => ({ path: 'bindings', namespace: 'tokentally' }));
    build.onLoad({ filter: /^bindings$/, namespace: 'tokentally' }, () => ({
      loader: 'js',
      contents: `const { createRequire } = require('node:module');
const { dirname } = require('node:path');
module.exports = function bindings(opts) {
  const pkg = require.resolve('better-sqlite3/package.json');
  return createRequire(pkg)('bindings')({ ...(typeof opts === 'string' ? { bindings: opts } : opts), module_root: dirname(pkg) });
};`,
    }));
    // node:worker_threads costs ~3 ms to load (it pulls in streams); the statusline only needs it when a session's
    // first import is over 32 MiB (parse workers). This bundle runs on the main thread only (the workers run
    // dist/src/sources/transcripts/parse-worker.js), so parse-worker's module-level `parentPort` is null here.
    // (The shim's own require of node:worker_threads is the real module: resolving it to the shim looped forever.)
    build.onResolve({ filter: /^(node:)?worker_threads$/ }, (args) => (args.namespace === 'tokentally'
      ? { path: 'node:worker_threads', external: true } : { path: 'worker_threads', namespace: 'tokentally' }));
    build.onLoad({ filter: /^worker_threads$/, namespace: 'tokentally' }, () => ({
      loader: 'js',
      contents: `let m;
const load = () => (m ??= require('node:worker_threads'));
module.exports = {
  get Worker() { return load().Worker; },
  parentPort: null,
  workerData: null,
  isMainThread: true,
};`,
    }));
  },
}];

// The built-in price catalog's fingerprint, by the same code the bundle holds (PriceBook.builtin() uses it).
const { PriceBook } = await import(new URL('../dist/src/core/pricing/pricebook.js', import.meta.url).href);
const builtinFingerprint = PriceBook.builtin().fingerprint;

for (const target of TARGETS) {
  const result = await esbuild.build({
    define: { __TT_BUILTIN_PRICE_FINGERPRINT__: JSON.stringify(builtinFingerprint) },
    entryPoints: [target.entry],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    write: false,
    outfile: target.out,
    // Only the shim below asks for it, with require.resolve, at run time.
    external: ['better-sqlite3/package.json'],
    plugins,
    logLevel: 'warning',
    legalComments: 'none',
    // Smaller to read and to hash; names are kept (TOKENTALLY_DEBUG stack traces stay readable), except in the
    // line-cache front, which never prints a stack trace and is parsed at every call.
    minifyWhitespace: true,
    minifySyntax: true,
    minifyIdentifiers: Boolean(target.small),
    banner: target.small ? { js: '"use strict";' } : {
      // A plain absolute POSIX path is its file URL after 'file://' (pathToFileURL's first call costs ~1-2 ms).
      js: '"use strict";\nconst __ttModuleUrl = (p) => { const f = require("node:path").join(__dirname, p); '
        + 'return /^\\/[A-Za-z0-9\\/._-]*$/.test(f) ? `file://${f}` : require("node:url").pathToFileURL(f).href; };\n'
        // dist/../node_modules/better-sqlite3 is where require.resolve finds it in an install of tokentally (unless
        // hoisted above it: then the resolver's answer).
        + 'const __ttBetterSqlite3PackageJson = () => { const p = require("node:path").join(__dirname, "..", "node_modules", "better-sqlite3", "package.json"); '
        + 'return require("node:fs").existsSync(p) ? p : require.resolve("better-sqlite3/package.json"); };',
    },
  });
  const code = result.outputFiles[0].text;
  if (target.small && /__tt(ModuleUrl|BetterSqlite3PackageJson)\b/.test(code)) {
    process.stderr.write(`build-statusline: ${relative(ROOT, target.out)} needs the banner's helpers: drop \`small\` from its target\n`);
    process.exit(1);
  }
  // The first line identifies the build: bin/tokentally.js keys the V8 code cache on it (V8 itself only checks the
  // source length, so a rebuild of the same length must not reuse a stale cache).
  const id = createHash('sha256').update(code).digest('hex').slice(0, 16);
  const tmp = `${target.out}.${process.pid}.tmp`;
  writeFileSync(tmp, `// tokentally ${target.name} bundle ${id}\n${code}`);
  renameSync(tmp, target.out);
}

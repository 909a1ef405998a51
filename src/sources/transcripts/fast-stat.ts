/**
 * `stat` reduced to what a sync compares, for the few thousand transcript files every report checks.
 *
 * Why: Node 20's fs.statSync builds a Stats object with four Date objects per call (later Node versions made
 * them lazy): about 2.5 µs a call beyond the system call, 10 ms of a warm report over 3,000 transcripts. On
 * Node 20 only, and only after a self-check against fs.statSync on a real file, the fs binding that statSync
 * itself wraps is called directly and its numbers read; anything unexpected (another Node, a changed
 * binding, any error) falls back to fs.statSync for good, so results never differ from it.
 */
import { statSync } from 'node:fs';

export interface FileStat {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  isFile: boolean;
  isDirectory: boolean;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;

type StatBinding = { stat(path: string, bigint: boolean, req: undefined, throwIfNoEntry: boolean): Float64Array | undefined };

/** null: not tried yet; false: use fs.statSync. */
let binding: StatBinding | false | null = null;

function fromStats(st: import('node:fs').Stats): FileStat {
  return { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, isFile: st.isFile(), isDirectory: st.isDirectory() };
}

/** Fields of the binding's stat array (src/node_file.h, kFsStatsFieldsNumber = 18). */
function fromArray(v: Float64Array): FileStat {
  const mode = v[1];
  return {
    dev: v[0], ino: v[7], size: v[8],
    mtimeMs: v[12] * 1e3 + v[13] / 1e6,
    ctimeMs: v[14] * 1e3 + v[15] / 1e6,
    isFile: (mode & S_IFMT) === S_IFREG,
    isDirectory: (mode & S_IFMT) === S_IFDIR,
  };
}

function same(a: FileStat, b: FileStat): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs
    && a.isFile === b.isFile && a.isDirectory === b.isDirectory;
}

/** Decide once, on `path` (a file that exists), whether the binding gives exactly what fs.statSync gives. */
function probe(path: string): void {
  binding = false;
  if (process.versions.node.split('.')[0] !== '20') return;
  // process.binding() prints a deprecation warning under --pending-deprecation: never on a statusline.
  if (process.env.NODE_PENDING_DEPRECATION === '1' || process.execArgv.some((a) => a.includes('deprecation'))) return;
  try {
    const b = (process as unknown as { binding(name: string): StatBinding }).binding('fs');
    if (typeof b?.stat !== 'function') return;
    const v = b.stat(path, false, undefined, true);
    if (!(v instanceof Float64Array) || v.length < 18) return;
    if (same(fromArray(v), fromStats(statSync(path)))) binding = b;
  } catch {
    // keep fs.statSync
  }
}

/** Like fs.statSync(path) (throws the same errors), reduced to FileStat. */
export function fastStat(path: string): FileStat {
  if (binding === null) {
    const st = fromStats(statSync(path)); // throws for a missing file before anything is decided
    probe(path);
    return st;
  }
  if (binding === false) return fromStats(statSync(path));
  let v: Float64Array | undefined;
  try {
    v = binding.stat(path, false, undefined, true);
  } catch {
    return fromStats(statSync(path)); // the error exactly as fs.statSync reports it
  }
  if (v === undefined) return fromStats(statSync(path));
  return fromArray(v);
}

/** Which implementation answers (tests and diagnostics). */
export function fastStatMode(): 'binding' | 'fs' | 'undecided' {
  return binding === null ? 'undecided' : binding === false ? 'fs' : 'binding';
}

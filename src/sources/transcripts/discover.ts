import { existsSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { fastStat } from './fast-stat.js';
import { join, resolve, basename, sep } from 'node:path';

export interface TranscriptRoot {
  /** The `projects` folder holding `<encoded cwd>/<session>.jsonl` files. */
  projectsDir: string;
}

/**
 * Transcript roots the way Claude Code finds its config: `CLAUDE_CONFIG_DIR` (comma-separated,
 * each a config dir or its `projects` folder), else `~/.config/claude` and `~/.claude`.
 * Returns the roots that exist, and the configured ones that do not (so sync can say so).
 */
export function transcriptRoots(env: NodeJS.ProcessEnv = process.env): { roots: TranscriptRoot[]; missing: string[] } {
  const home = env.HOME || homedir();
  const expand = (p: string) => resolve(p.replace(/^~(?=$|\/)/, home));
  const configured = env.CLAUDE_CONFIG_DIR?.split(',').map((p) => p.trim()).filter(Boolean);
  const candidates = configured && configured.length
    ? configured.map((p) => (basename(expand(p)) === 'projects' ? expand(p) : join(expand(p), 'projects')))
    : [join(env.XDG_CONFIG_HOME ? expand(env.XDG_CONFIG_HOME) : join(home, '.config'), 'claude', 'projects'), join(home, '.claude', 'projects')];
  const roots: TranscriptRoot[] = [];
  const missing: string[] = [];
  for (const dir of [...new Set(candidates)]) {
    if (existsSync(dir) && statSync(dir).isDirectory()) roots.push({ projectsDir: dir });
    else missing.push(dir);
  }
  return { roots, missing };
}

export interface FoundFile {
  path: string;
  /** Relative to the projects folder, `/`-separated. */
  relPath: string;
}

/** Every `*.jsonl` under a projects folder, recursively (subagent files included), sorted by path. */
export function listTranscriptFiles(root: TranscriptRoot, onError: (path: string, err: Error) => void, cache?: DirCache): FoundFile[] {
  const out: FoundFile[] = [];
  const walk = (dir: string, rel: string) => {
    const prefix = rel ? `${rel}/` : '';
    const base = dir.endsWith(sep) ? dir : dir + sep;
    const listing = cache ? cache.list(dir, onError) : readListing(dir, onError);
    if (!listing) return;
    for (const name of listing) {
      if (name.endsWith('/')) walk(base + name.slice(0, -1), prefix + name.slice(0, -1));
      else out.push({ path: base + name, relPath: prefix + name });
    }
  };
  walk(root.projectsDir, '');
  // Listings are in path order (see Listing), so the walk is too: checked here, sorted only if it is not.
  for (let i = 1; i < out.length; i++) {
    if (!(out[i - 1].path < out[i].path)) return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }
  return out;
}

/**
 * A folder's sub-folders (as `name/`) and `*.jsonl` files, sorted as strings: a folder's descendants then come
 * exactly where their paths sort (`name/...` sorts as `name/` against any file name, which has no `/`), so walking
 * listings in order lists paths in order. Symlinked folders are not followed: a link back up the tree would loop.
 */
type Listing = string[];

function readListing(dir: string, onError: (path: string, err: Error) => void): Listing | undefined {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    onError(dir, err as Error);
    return undefined;
  }
  const listing: Listing = [];
  for (const e of entries) {
    if (e.isDirectory()) listing.push(`${e.name}/`);
    else if (e.name.endsWith('.jsonl') && (e.isFile() || e.isSymbolicLink())) listing.push(e.name);
  }
  return listing.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Folder listings kept between syncs (TOKENTALLY_HOME/transcript-dirs.json), valid while the folder's mtime,
 * ctime and inode are unchanged: adding, removing or renaming an entry changes the folder's mtime (appending to a
 * file does not, which is why every file is still stat-ed). A stat per folder replaces reading it: 900 folders,
 * ~20 ms -> ~6 ms. A listing is kept only when the folder was last changed well before it was read, so a change
 * within the same timestamp tick as the read (same mtime, new entry) cannot be hidden by it.
 */
export class DirCache {
  /** Milliseconds a folder must have been unchanged before its listing is kept (timestamp granularity, clock steps). */
  static settleMs = 5000;
  private entries: Map<string, [number, number, number, string]>;
  private readonly used = new Map<string, [number, number, number, string]>();
  private dirty = false;

  private constructor(private readonly path: string, entries: Map<string, [number, number, number, string]>) {
    this.entries = entries;
  }

  static load(path: string): DirCache {
    let entries = new Map<string, [number, number, number, string]>();
    try {
      const doc = JSON.parse(readFileSync(path, 'utf8')) as { v?: number; dirs?: Record<string, [number, number, number, string]> };
      if (doc.v === 2 && doc.dirs && typeof doc.dirs === 'object') entries = new Map(Object.entries(doc.dirs));
    } catch {
      // missing or unreadable: every folder is read
    }
    return new DirCache(path, entries);
  }

  list(dir: string, onError: (path: string, err: Error) => void): Listing | undefined {
    let st;
    try {
      st = fastStat(dir);
    } catch (err) {
      onError(dir, err as Error);
      return undefined;
    }
    const hit = this.entries.get(dir);
    if (hit && Array.isArray(hit) && hit[0] === st.ino && hit[1] === st.mtimeMs && hit[2] === st.ctimeMs && typeof hit[3] === 'string') {
      this.used.set(dir, hit);
      return hit[3] ? hit[3].split('\0') : [];
    }
    const readAt = Date.now();
    const listing = readListing(dir, onError);
    // A stale listing left in the file is harmless (ctime, which nothing can set back, no longer matches): the
    // file is rewritten when a listing is added, not each time an active session's folder changes.
    if (listing && Math.max(st.mtimeMs, st.ctimeMs) < readAt - DirCache.settleMs) {
      this.used.set(dir, [st.ino, st.mtimeMs, st.ctimeMs, listing.join('\0')]);
      this.dirty = true;
    }
    return listing;
  }

  /** Write the listings used by this walk (stale ones and folders no longer found are dropped), when one was added. */
  save(): void {
    if (!this.dirty && this.entries.size - this.used.size <= Math.max(16, this.entries.size / 8)) return;
    try {
      const tmp = `${this.path}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify({ v: 2, dirs: Object.fromEntries(this.used) }));
      renameSync(tmp, this.path);
    } catch {
      // a cache only: the next sync reads the folders again
    }
    this.entries = this.used;
    this.dirty = false;
  }
}

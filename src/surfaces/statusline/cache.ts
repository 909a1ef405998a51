/**
 * The statusline's last line per session, reused while nothing it depends on changed: Claude Code also
 * re-runs the command on timers, /compact, mode and vim toggles, when the transcript is as it was. A hit costs
 * a few stat calls and no SQLite (loading better-sqlite3 is most of a miss).
 *
 * The key holds everything the line is computed from: the displayed stdin fields, the flags, the minute (times
 * left are shown in minutes), the session's files (size, mtime, inode), the database and its WAL (any sync by
 * another process changes them), and prices.json. Only node built-ins here: this runs before any other import.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * Same rule as cli/context.ts `tokentallyHome` (not imported: that module loads the SQLite store), without
 * node:os (~0.2 ms to load at every call): undefined when neither TOKENTALLY_HOME nor HOME is set, where
 * `resolveHomeDir` asks os.homedir().
 */
export function homeDir(env: NodeJS.ProcessEnv): string | undefined {
  const configured = env.TOKENTALLY_HOME?.trim();
  if (configured) return resolve(configured);
  return env.HOME ? join(env.HOME, '.tokentally') : undefined;
}

export async function resolveHomeDir(env: NodeJS.ProcessEnv): Promise<string> {
  return homeDir(env) ?? join((await import('node:os')).homedir(), '.tokentally');
}

/** `inode:size:mtime` of a file, `-` when absent: what changes when anything writes it. */
export function fileStamp(path: string): string {
  try {
    // No exception for a missing file (prices.json usually is): creating one costs more than the stat.
    const st = statSync(path, { throwIfNoEntry: false });
    return st ? `${st.ino}:${st.size}:${Math.floor(st.mtimeMs)}` : '-';
  } catch {
    return '-';
  }
}

/** The database, its WAL and prices.json as they are now: any other writer changes one of them (fast.ts). */
export function storeStamps(home: string, flags: string): string {
  const db = join(home, 'tokentally.db');
  return JSON.stringify([flags, fileStamp(db), fileStamp(`${db}-wal`), fileStamp(join(home, 'prices.json'))]);
}

export function cacheKey(parts: { home: string; input: string; flags: string; minute: number; files: string[] }): string {
  const db = join(parts.home, 'tokentally.db');
  return JSON.stringify([1, parts.input, parts.flags, parts.minute, parts.files.map((f) => [f, fileStamp(f)]),
    fileStamp(db), fileStamp(`${db}-wal`), fileStamp(join(parts.home, 'prices.json'))]);
}

export function cachePath(home: string, sessionId: string): string {
  return join(home, 'cache', 'statusline', `${sessionId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100) || '_'}.json`);
}

/** The session's cache entry as written by writeCachedLine (its line, key and the fast path's state), or null. */
export function readCacheEntry(home: string, sessionId: string): { key?: unknown; line?: unknown; fast?: { v?: unknown; stamps?: unknown } } | null {
  try {
    const doc = JSON.parse(readFileSync(cachePath(home, sessionId), 'utf8')) as unknown;
    return doc && typeof doc === 'object' ? doc : null;
  } catch {
    return null;
  }
}

export function readCachedLine(home: string, sessionId: string, key: string): string | null {
  const doc = readCacheEntry(home, sessionId);
  return doc && doc.key === key && typeof doc.line === 'string' ? doc.line : null;
}

const WEEK = 7 * 86_400_000;

/** Best effort: a failure to cache never affects the line. Entries of sessions idle for a week are removed. */
export function writeCachedLine(home: string, sessionId: string, key: string, line: string, extra: Record<string, unknown> = {}): void {
  try {
    const path = cachePath(home, sessionId);
    const dir = join(home, 'cache', 'statusline');
    const tmp = `${path}.${process.pid}.tmp`;
    const text = JSON.stringify({ key, line, ...extra });
    try {
      writeFileSync(tmp, text);
    } catch {
      // The folder is made at the first write only (a recursive mkdir at every call cost ~0.2 ms).
      mkdirSync(dir, { recursive: true });
      writeFileSync(tmp, text);
    }
    renameSync(tmp, path);
    if (Math.random() < 0.02) {
      const now = Date.now();
      for (const name of readdirSync(dir)) {
        const p = join(dir, name);
        try {
          if (now - statSync(p).mtimeMs > WEEK) unlinkSync(p);
        } catch {
          // raced with another statusline
        }
      }
    }
  } catch {
    // read-only home, full disk: no cache
  }
}

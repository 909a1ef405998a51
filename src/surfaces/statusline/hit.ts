/**
 * The statusline's line-cache answer, before anything else loads: bin/tokentally.js runs this module first, as
 * its own small bundle (dist/statusline-hit.cjs, scripts/build-statusline.mjs), and loads the statusline proper
 * (dist/statusline.cjs, ~120 KB with its V8 code cache: ~3 ms to load and start) only when the line is not cached.
 * Claude Code re-runs the command on timers, /compact, mode and vim toggles, when nothing changed: then this is
 * the whole call. Imports only node built-ins and the input and cache modules (no SQLite, no price book).
 */
import { clockNow } from '../../analysis/blocks.js';
import { cacheKey, homeDir, readCacheEntry, storeStamps } from './cache.js';
import { emit, parseStatuslineArgs, parseStatuslineInput, readStdinSync, sessionFiles, type StatuslineFlags,
  type StatuslineInput } from './input.js';

/** The line cache's key: everything the line is computed from (see cache.ts). */
export function lineCacheKey(home: string, input: StatuslineInput | null, flags: StatuslineFlags, now: number, files: string[]): string {
  return cacheKey({ home, input: JSON.stringify(input), flags: JSON.stringify(flags), minute: Math.floor(now / 60_000), files });
}

/**
 * What the front did: `answered` when it printed the cached line (the call is over), else what it read of stdin
 * for runStatusline: the text, null when stdin must be read as a stream, undefined when it did not read it
 * (flags that runStatusline reports).
 */
export type FrontResult = { answered: true }
  | { answered: false; stdin?: string | null; fastPossible?: boolean; entry?: ReturnType<typeof readCacheEntry>; key?: string; now?: number };

/** The store-free path's own conditions on the call (quick.ts `fastEligible`; repeated here to keep this bundle small). */
function fastEligible(input: StatuslineInput, flags: StatuslineFlags, env: NodeJS.ProcessEnv): boolean {
  return Boolean(input.sessionId && input.transcriptPath && !flags.json && flags.sync && !flags.timeZone
    && env.TOKENTALLY_STATUSLINE_FAST !== '0' && env.TOKENTALLY_STATUSLINE_CACHE !== '0');
}

export function statuslineFromLineCache(argv: string[], env: NodeJS.ProcessEnv = process.env): FrontResult {
  let flags: StatuslineFlags;
  try {
    flags = parseStatuslineArgs(argv);
  } catch {
    return { answered: false };
  }
  const stdin = readStdinSync();
  if (stdin === null || env.TOKENTALLY_STATUSLINE_CACHE === '0') return { answered: false, stdin };
  try {
    const input = parseStatuslineInput(stdin);
    if (!input?.sessionId) return { answered: false, stdin };
    const home = homeDir(env);
    if (!home) return { answered: false, stdin }; // no HOME: the full command asks node:os
    const files = input.transcriptPath ? sessionFiles(input.transcriptPath) : [];
    const doc = readCacheEntry(home, input.sessionId);
    const now = clockNow(env);
    const key = lineCacheKey(home, input, flags, now, files);
    if (doc && doc.key === key && typeof doc.line === 'string') {
      emit(1, doc.line + '\n');
      return { answered: true };
    }
    // The store-free path can only apply when nothing else wrote the store since the state was kept (the first
    // of its checks): else straight to the full run.
    const fastPossible = Boolean(doc?.fast && doc.fast.v === 1 && fastEligible(input, flags, env)
      && doc.fast.stamps === storeStamps(home, JSON.stringify(flags)));
    // For the store-free step: what was read, and the key and clock (its line is cached under this key: taken
    // before it reads the files, so a file that grows meanwhile makes the next call a miss, never a stale hit).
    return { answered: false, stdin, fastPossible, entry: doc, key, now };
  } catch {
    return { answered: false, stdin };
  }
}

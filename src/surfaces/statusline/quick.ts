/**
 * The store-free path (fast.ts) as a step of its own: runStatusline tries it before opening SQLite, and
 * bin/tokentally.js runs it from its own bundle (dist/statusline-fast.cjs: the reader and the price book, none
 * of the store) when the line-cache front (hit.ts) saw a state it may apply to, so the call after an assistant
 * message never loads the statusline's full bundle.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { clockNow } from '../../analysis/blocks.js';
import type { PriceBook } from '../../core/pricing/pricebook.js';
import { cachePath, resolveHomeDir, storeStamps, writeCachedLine } from './cache.js';
import { fastStateOf, fastStatusline, readFastState } from './fast.js';
import { lineCacheKey } from './hit.js';
import { emit, parseStatuslineArgs, parseStatuslineInput, sessionFiles, type StatuslineFlags, type StatuslineInput } from './input.js';
import { formatStatusline } from './line.js';

/** Calls the store-free path may answer: the text line of a session with a transcript, importing, in the process's zone. */
export function fastEligible(input: StatuslineInput | null, flags: StatuslineFlags, env: NodeJS.ProcessEnv): boolean {
  return Boolean(input?.sessionId && input.transcriptPath && !flags.json && flags.sync && !flags.timeZone
    && env.TOKENTALLY_STATUSLINE_FAST !== '0' && env.TOKENTALLY_STATUSLINE_CACHE !== '0');
}

/**
 * The price book as cli/context.ts loadPriceBook makes it (the built-in catalog, or prices.json applied to it),
 * without that module; null when prices.json does not load.
 */
export async function priceBookOrNull(home: string): Promise<PriceBook | null> {
  const { PriceBook } = await import('../../core/pricing/pricebook.js');
  const path = join(home, 'prices.json');
  if (!existsSync(path)) return PriceBook.builtin();
  try {
    const { applyUserPrices } = await import('../../core/pricing/user-prices.js');
    return applyUserPrices(JSON.parse(readFileSync(path, 'utf8')), path);
  } catch {
    return null;
  }
}

/**
 * Print the line from the last full run's figures plus the session's new requests and keep the new state, when
 * that is exact (fast.ts says when); false (nothing printed) otherwise. `input` must be `fastEligible`.
 */
export async function fastAnswer(home: string, input: StatuslineInput, flags: StatuslineFlags, files: string[], now: number,
  entry?: unknown, key?: string): Promise<boolean> {
  const sessionId = input.sessionId!;
  const state = entry !== undefined ? fastStateOf(entry) : readFastState(cachePath(home, sessionId));
  // After another writer the stamps differ: no price book to build then. A price file that does not load sends
  // the call to the full run, which reports it.
  const stamps = storeStamps(home, JSON.stringify(flags));
  const prices = state && state.stamps === stamps && await priceBookOrNull(home);
  const fast = prices && fastStatusline(state, input, prices, now, stamps, files.map((f) => resolve(f)));
  if (!fast) return false;
  const line = formatStatusline(fast.data);
  const cacheKey = key ?? lineCacheKey(home, input, flags, now, files);
  // Nothing that can throw after the line is out (the caller would print a full run's line too).
  emit(1, line + '\n');
  writeCachedLine(home, sessionId, cacheKey, line, { fast: fast.state });
  return true;
}

/** dist/statusline-fast.cjs's entry: true when it printed the line, false when the full run must answer. */
export async function runFastStatusline(argv: string[], env: NodeJS.ProcessEnv,
  front: { stdin?: string | null; entry?: unknown; key?: string; now?: number }): Promise<boolean> {
  try {
    if (typeof front.stdin !== 'string') return false;
    const flags = parseStatuslineArgs(argv);
    const input = parseStatuslineInput(front.stdin);
    if (!fastEligible(input, flags, env)) return false;
    // The cache entry the front read (null: there was none), and its line-cache key and clock (hit.ts).
    const keyed = typeof front.key === 'string' && typeof front.now === 'number';
    return await fastAnswer(await resolveHomeDir(env), input!, flags, sessionFiles(input!.transcriptPath!), keyed ? front.now! : clockNow(env),
      front.entry ?? undefined, keyed ? front.key : undefined);
  } catch {
    return false;
  }
}

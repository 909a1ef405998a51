/**
 * The statusline without SQLite, for the call Claude Code makes after every assistant message: the session's
 * transcript grew by a response or two and nothing else changed. The figures of the last full run (session,
 * today, block, each read from the store after importing the transcript) are kept with the file positions and
 * every request key stored for the session; new lines are read from those positions by the importer's own
 * reader and priced by the same price book, and their costs added.
 *
 * Exactness rules (anything else falls back to the full run, which imports and queries the store):
 * - nothing else wrote the store (database, WAL and prices.json as the last full run left them);
 * - every new request is new to the store: its key (and `r:<request id>`) is not among the session's stored keys
 *   nor among the ones already added without a store write, so no merge with a stored row can change a cost;
 * - every new request belongs to this session, falls in today and in the active block, is not in the future;
 * - the text line only (the JSON form carries burn rate and projection, which need all of the block's requests);
 * - at most FAST_MAX_BYTES read and FAST_MAX_AGE_MS since the last full run, so the store catches up regularly
 *   (the next full run imports these lines from the store's own checkpoints).
 */
import { readFileSync } from 'node:fs';
import type { PriceBook } from '../../core/pricing/pricebook.js';
import { totalTokens, type RequestRecord } from '../../core/types.js';
import type { FoundFile } from '../../sources/transcripts/discover.js';
import { readTranscriptFile } from '../../sources/transcripts/reader.js';
import type { FileCheckpoint } from '../../store/store.js';
import type { StatuslineInput } from './input.js';
import type { StatuslineData } from './line.js';

const BLOCK_MS = 5 * 3_600_000;
export const FAST_MAX_BYTES = 1024 * 1024;
export const FAST_MAX_AGE_MS = 120_000;

interface Sum { cost: number; unknownCostTokens: number; requests: number }

export interface FastState {
  v: 1;
  /** Stamps of what the figures depend on besides the session's files (see `storeStamps`). */
  stamps: string;
  sessionId: string;
  date: string;
  dayStart: number;
  dayEnd: number;
  session: Sum;
  today: Sum;
  block: (Sum & { start: number; end: number; firstTs: number; lastTs: number }) | null;
  files: Array<{ file: FoundFile; checkpoint: FileCheckpoint }>;
  /** Every key stored for the session, plus the ones added since without a store write. */
  keys: string[];
  bytes: number;
  fullAt: number;
}

export { storeStamps } from './cache.js';

/** Figures from the state plus the session's new lines, or null when only a full run can be exact. */
export function fastStatusline(state: FastState, input: StatuslineInput, prices: PriceBook, now: number, stamps: string,
  paths: string[]): { data: StatuslineData; state: FastState } | null {
  if (state.v !== 1 || state.stamps !== stamps || state.sessionId !== input.sessionId) return null;
  if (now < state.dayStart || now >= state.dayEnd || now - state.fullAt > FAST_MAX_AGE_MS || state.bytes > FAST_MAX_BYTES) return null;
  if (input.contextTokens == null) return null; // the context then comes from the store's last request
  const block = state.block;
  if (!block || now >= block.end) return null;
  if (paths.length !== state.files.length || paths.some((p, i) => state.files[i].file.path !== p)) return null;

  const keys = new Set(state.keys);
  const added: RequestRecord[] = [];
  const files: FastState['files'] = [];
  let bytes = state.bytes;
  for (const { file, checkpoint } of state.files) {
    let next = checkpoint;
    for (const chunk of readTranscriptFile(file, checkpoint, 0, 'requests')) {
      if (chunk.reread) return null;
      bytes += chunk.bytesRead;
      added.push(...chunk.records);
      next = chunk.checkpoint;
    }
    files.push({ file, checkpoint: next });
  }
  if (bytes > FAST_MAX_BYTES) return null;

  const session = { ...state.session };
  const today = { ...state.today };
  const nextBlock = { ...block };
  for (const r of added) {
    if (keys.has(r.key) || (r.requestId && keys.has(`r:${r.requestId}`))) return null;
    if (r.sessionId !== state.sessionId || r.ts > now || r.ts < state.dayStart) return null;
    if (r.ts < nextBlock.firstTs || r.ts >= nextBlock.start + BLOCK_MS || r.ts - nextBlock.lastTs > BLOCK_MS) return null;
    keys.add(r.key);
    const cost = prices.price(r.model, r.ts, r.usage).cost;
    for (const sum of [session, today, nextBlock]) {
      sum.requests++;
      if (cost === null) sum.unknownCostTokens += totalTokens(r.usage);
      else sum.cost += cost;
    }
    nextBlock.lastTs = Math.max(nextBlock.lastTs, r.ts);
  }
  const size = input.contextSize;
  const data: StatuslineData = {
    model: input.modelName ?? input.modelId ?? null,
    session: { id: state.sessionId, ...session, ccCost: input.ccCost },
    today: { date: state.date, ...today },
    block: {
      start: nextBlock.start, end: nextBlock.end, cost: nextBlock.cost, unknownCostTokens: nextBlock.unknownCostTokens,
      remainingMs: nextBlock.end - now, costPerHour: null, projectedCost: null,
    },
    context: { tokens: input.contextTokens, size, percent: input.usedPercent ?? (size ? (input.contextTokens / size) * 100 : null) },
    syncError: null,
  };
  return { data, state: { ...state, session, today, block: nextBlock, files, keys: [...keys], bytes } };
}

export function readFastState(path: string): FastState | null {
  try {
    return fastStateOf(JSON.parse(readFileSync(path, 'utf8')));
  } catch {
    return null;
  }
}

/** The state in a parsed cache entry (cache.ts `readCacheEntry`), or null. */
export function fastStateOf(doc: unknown): FastState | null {
  const fast = doc && typeof doc === 'object' ? (doc as { fast?: FastState }).fast : undefined;
  return fast && typeof fast === 'object' && fast.v === 1 ? fast : null;
}

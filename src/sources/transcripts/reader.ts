import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { RequestRecord } from '../../core/types.js';
import { mergeRecords } from '../../core/merge.js';
import { emptyFacts, type SessionFacts } from '../../core/session-facts.js';
import type { FileCheckpoint, SyncPass } from '../../store/store.js';
import type { FoundFile } from './discover.js';
import { extractFacts, fileContext, parseTranscriptLine, type SkipReason } from './parse-line.js';

export interface SkippedLine {
  file: string;
  line: number;
  reason: SkipReason;
}

/** What one stretch of a file yielded, with the checkpoint that is valid once it is committed. */
export interface FileChunk {
  path: string;
  records: RequestRecord[];
  facts: SessionFacts;
  /** Committed together with `records`; `size` is -1 until the file is read to its end. */
  checkpoint: FileCheckpoint;
  complete: boolean;
  /** The file was truncated, replaced or rewritten since the last sync and is read from the start. */
  reread: boolean;
  bytesRead: number;
  lines: number;
  requestLines: number;
  skipped: Partial<Record<SkipReason, number>>;
  skippedLines: SkippedLine[];
}

const READ_BYTES = 4 * 1024 * 1024;
/** A chunk is handed over after this many distinct requests, bounding memory on huge files. */
const CHUNK_RECORDS = 20_000;
const CHUNK_BYTES = 64 * 1024 * 1024;
const MAX_LINE_BYTES = 64 * 1024 * 1024;
const HEAD_BYTES = 1024;
/** An unterminated last line is taken only once the file has been quiet this long (writer finished). */
const QUIET_TAIL_MS = 5 * 60 * 1000;
const NEWLINE = 0x0a;
const USAGE = Buffer.from('"usage"');
const TOOL_RESULT = Buffer.from('"tool_result"');
const COMPACT = Buffer.from('"compact_boundary"');
const TOOL_USE_RESULT_KEY = Buffer.from(',"toolUseResult":');

/**
 * Read a transcript from where the last sync stopped (or from the start when the file was replaced),
 * yielding parsed requests (the `requests` pass) or tool facts (the `facts` pass) in chunks. Pure file reading and parsing: no store access,
 * so it runs the same in the main thread and in parse workers.
 */
export function* readTranscriptFile(
  file: FoundFile, checkpoint: FileCheckpoint | undefined, maxSkipped: number, pass: SyncPass = 'requests',
): Generator<FileChunk> {
  const facts_ = pass === 'facts';
  const fd = openSync(file.path, 'r');
  try {
    const st = fstatSync(fd);
    const size = st.size;
    let offset = 0;
    let lineNo = 0;
    let reread = false;
    if (checkpoint && checkpoint.dev === st.dev && checkpoint.ino === st.ino && size >= checkpoint.offset
      && headOf(fd, size, headLength(checkpoint.head)) === checkpoint.head) {
      offset = checkpoint.offset;
      lineNo = checkpoint.lines;
    } else if (checkpoint) {
      // Truncated, replaced or rewritten: read it all again (merging by key makes this idempotent).
      reread = true;
    }
    const ctx = fileContext(file.relPath);
    const quietTail = Date.now() - st.mtimeMs > QUIET_TAIL_MS;
    const head = headOf(fd, size, HEAD_BYTES);

    let records = new Map<string, RequestRecord>();
    let facts = emptyFacts();
    let stats = newStats();
    const take = (consumedTo: number, complete: boolean): FileChunk => {
      const chunk: FileChunk = {
        path: file.path, records: [...records.values()], facts, complete, reread,
        checkpoint: {
          path: file.path, dev: st.dev, ino: st.ino,
          // A mid-file checkpoint must not look "unchanged" to the next run.
          size: complete ? size : -1, mtimeMs: complete ? Math.floor(st.mtimeMs) : -1,
          offset: consumedTo, lines: lineNo, head,
        },
        ...stats,
      };
      records = new Map();
      facts = emptyFacts();
      stats = newStats();
      reread = false;
      return chunk;
    };
    const skip = (reason: SkipReason) => {
      stats.skipped[reason] = (stats.skipped[reason] ?? 0) + 1;
      if (stats.skippedLines.length < maxSkipped) stats.skippedLines.push({ file: file.path, line: lineNo, reason });
    };

    const handleLine = (buf: Buffer, start: number, end: number) => {
      lineNo++;
      stats.lines++;
      let s = start;
      let e = end;
      while (s < e && isSpace(buf[s])) s++;
      while (e > s && isSpace(buf[e - 1])) e--;
      if (s === e) return;
      const slice = buf.subarray(s, e);
      const hasUsage = slice.indexOf(USAGE) !== -1;
      if (facts_) {
        // The facts pass reads tool calls (in responses), tool results and compactions; the requests
        // pass has already counted malformed lines, so they are only passed over here.
        if (!hasUsage && slice.indexOf(TOOL_RESULT) === -1 && slice.indexOf(COMPACT) === -1) return;
        let value: unknown;
        try {
          value = parseLine(slice, hasUsage);
        } catch {
          return;
        }
        const result = hasUsage ? parseTranscriptLine(value, ctx, lineNo) : null;
        extractFacts(value, ctx, result && 'record' in result ? result.record.key : null, facts);
        return;
      }
      if (!hasUsage) {
        // Not a response: only its shape is checked, so malformed lines are still counted.
        if (buf[s] !== 0x7b /* { */) skip(isJson(slice) ? 'not_an_object' : 'invalid_json');
        else if (buf[e - 1] !== 0x7d /* } */) skip('invalid_json');
        return;
      }
      let value: unknown;
      try {
        value = JSON.parse(slice.toString('utf8'));
      } catch {
        skip('invalid_json');
        return;
      }
      const result = parseTranscriptLine(value, ctx, lineNo);
      if (result !== null && 'skip' in result) {
        skip(result.skip);
        return;
      }
      if (result === null) return;
      stats.requestLines++;
      const prev = records.get(result.record.key);
      records.set(result.record.key, prev ? mergeRecords(prev, result.record) : result.record);
    };

    let carry: Buffer | null = null;
    let carryTooLong = false;
    let consumed = offset;
    let pos = offset;
    let bytesInChunk = 0;
    const chunk = Buffer.allocUnsafe(READ_BYTES);
    while (pos < size) {
      const n = readSync(fd, chunk, 0, Math.min(READ_BYTES, size - pos), pos);
      if (n <= 0) break;
      pos += n;
      stats.bytesRead += n;
      bytesInChunk += n;
      let buf = chunk.subarray(0, n);
      if (carry) {
        buf = Buffer.concat([carry, buf]);
        carry = null;
      }
      let lineStart = 0;
      for (;;) {
        const nl = buf.indexOf(NEWLINE, lineStart);
        if (nl === -1) break;
        if (carryTooLong) {
          carryTooLong = false;
          lineNo++;
          stats.lines++;
          skip('line_too_long');
        } else {
          handleLine(buf, lineStart, nl);
        }
        lineStart = nl + 1;
      }
      consumed = pos - (buf.length - lineStart);
      if (lineStart < buf.length) {
        const rest = buf.subarray(lineStart);
        if (carryTooLong || rest.length > MAX_LINE_BYTES) carryTooLong = true; // drop bytes until the next newline
        else carry = Buffer.from(rest);
      }
      if (records.size >= CHUNK_RECORDS || bytesInChunk >= CHUNK_BYTES) {
        bytesInChunk = 0;
        yield take(consumed, false);
      }
    }
    // An unterminated tail is a line still being written, unless the file has long been quiet.
    if (carry && quietTail && isJson(carry)) {
      handleLine(carry, 0, carry.length);
      consumed = size;
    }
    yield take(consumed, true);
  } finally {
    closeSync(fd);
  }
}

function newStats() {
  return { bytesRead: 0, lines: 0, requestLines: 0, skipped: {} as Partial<Record<SkipReason, number>>, skippedLines: [] as SkippedLine[] };
}

/**
 * JSON.parse a line. A tool-result line repeats the tool's output in `toolUseResult` after `message`; the
 * bytes `,"toolUseResult":` cannot occur inside a JSON string (quotes there are escaped), so when they occur
 * the line is parsed only up to them, halving the cost of the biggest lines in a transcript. Anything that
 * does not parse that way (another key order, a nested key) falls back to parsing the whole line.
 */
function parseLine(slice: Buffer, hasUsage: boolean): unknown {
  if (!hasUsage && slice[slice.length - 1] === 0x7d /* } */) {
    const cut = slice.indexOf(TOOL_USE_RESULT_KEY);
    if (cut > 0) {
      try {
        const head = JSON.parse(slice.toString('utf8', 0, cut) + '}') as Record<string, unknown>;
        if (typeof head === 'object' && head !== null && 'message' in head) return head;
      } catch {
        // fall through to the whole line
      }
    }
  }
  return JSON.parse(slice.toString('utf8'));
}

function headOf(fd: number, size: number, want: number): string {
  const len = Math.min(want, size);
  const buf = Buffer.alloc(len);
  if (len > 0) readSync(fd, buf, 0, len, 0);
  let h = 0x811c9dc5;
  for (let i = 0; i < len; i++) {
    h ^= buf[i];
    h = Math.imul(h, 0x01000193);
  }
  return `${len}:${(h >>> 0).toString(16)}`;
}

function headLength(head: string): number {
  return Number(head.split(':')[0]) || 0;
}

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0d || b === 0x0a;
}

function isJson(buf: Buffer): boolean {
  try {
    JSON.parse(buf.toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

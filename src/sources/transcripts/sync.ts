import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { dirname, relative, resolve, sep } from 'node:path';
import type { RequestRecord } from '../../core/types.js';
import { mergeRecords } from '../../core/merge.js';
import type { FileCheckpoint, Store } from '../../store/store.js';
import { listTranscriptFiles, transcriptRoots, type FoundFile } from './discover.js';
import { emptyFacts } from '../../core/session-facts.js';
import { extractFacts, fileContext, parseTranscriptLine, type FileContext, type SkipReason } from './parse-line.js';

export interface SyncProgress {
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface SkippedLine {
  file: string;
  line: number;
  reason: SkipReason;
}

export interface SyncReport {
  roots: string[];
  missingRoots: string[];
  files: { seen: number; read: number; unchanged: number; reread: number; unreadable: number };
  bytesRead: number;
  lines: number;
  requestLines: number;
  newRequests: number;
  mergedCopies: number;
  skipped: Record<SkipReason, number>;
  /** The first skipped lines, as file:line (see `--verbose`). */
  skippedLines: SkippedLine[];
  errors: { file: string; message: string }[];
  durationMs: number;
}

export interface SyncOptions {
  env?: NodeJS.ProcessEnv;
  onProgress?: (p: SyncProgress) => void;
  /** How many skipped lines to list individually. */
  maxSkippedLines?: number;
  /**
   * Read only these transcript files (absolute paths), e.g. the statusline's current session: cheap enough
   * for a hot path. Files outside the transcript roots are read too, attributed by their own folder.
   */
  onlyPaths?: string[];
}

const READ_BYTES = 4 * 1024 * 1024;
const COMMIT_RECORDS = 20_000;
const COMMIT_BYTES = 64 * 1024 * 1024;
const MAX_LINE_BYTES = 64 * 1024 * 1024;
const HEAD_BYTES = 1024;
/** An unterminated last line is taken only once the file has been quiet this long (writer finished). */
const QUIET_TAIL_MS = 5 * 60 * 1000;
const NEWLINE = 0x0a;
const USAGE = Buffer.from('"usage"');
const TOOL_RESULT = Buffer.from('"tool_result"');
const COMPACT = Buffer.from('"compact_boundary"');

export async function syncTranscripts(store: Store, options: SyncOptions = {}): Promise<SyncReport> {
  const started = Date.now();
  const { roots, missing } = transcriptRoots(options.env);
  const report: SyncReport = {
    roots: roots.map((r) => r.projectsDir), missingRoots: missing,
    files: { seen: 0, read: 0, unchanged: 0, reread: 0, unreadable: 0 },
    bytesRead: 0, lines: 0, requestLines: 0, newRequests: 0, mergedCopies: 0,
    skipped: { invalid_json: 0, not_an_object: 0, bad_timestamp: 0, invalid_usage: 0, line_too_long: 0 },
    skippedLines: [], errors: [], durationMs: 0,
  };
  const maxSkipped = options.maxSkippedLines ?? 1000;
  const onError = (file: string, err: Error) => {
    report.errors.push({ file, message: (err as NodeJS.ErrnoException).code ?? err.message });
  };

  // Plan: stat everything first so progress has a byte total and unchanged files cost one stat.
  const plan: { file: FoundFile; size: number; checkpoint: FileCheckpoint | undefined }[] = [];
  const candidates = options.onlyPaths
    ? [options.onlyPaths.map((p) => foundFileFor(p, roots.map((r) => r.projectsDir)))]
    : roots.map((root) => listTranscriptFiles(root, onError));
  const known = await store.listCheckpoints();
  for (const files of candidates) {
    for (const file of files) {
      report.files.seen++;
      let st;
      try {
        st = statSync(file.path);
      } catch (err) {
        report.files.unreadable++;
        onError(file.path, err as Error);
        continue;
      }
      if (!st.isFile()) continue;
      const checkpoint = known.get(file.path);
      if (checkpoint && checkpoint.dev === st.dev && checkpoint.ino === st.ino && checkpoint.size === st.size
        && checkpoint.mtimeMs === Math.floor(st.mtimeMs)) {
        report.files.unchanged++;
        continue;
      }
      plan.push({ file, size: st.size, checkpoint });
    }
  }
  const progress: SyncProgress = {
    filesDone: 0, filesTotal: plan.length, bytesDone: 0,
    bytesTotal: plan.reduce((s, p) => s + Math.max(0, p.size - (p.checkpoint?.offset ?? 0)), 0),
  };
  options.onProgress?.(progress);

  const batch = new Batch(store, report);
  let lastYield = Date.now();
  for (const item of plan) {
    // Let timers (the progress bar) run during long syncs.
    if (Date.now() - lastYield > 100) {
      await new Promise((r) => setImmediate(r));
      lastYield = Date.now();
    }
    try {
      await importFile(item.file, item.checkpoint, report, batch, maxSkipped, (bytes) => {
        progress.bytesDone += bytes;
        options.onProgress?.(progress);
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code && /^E[A-Z]+$/.test(code)) {
        report.files.unreadable++;
        onError(item.file.path, err as Error);
      } else {
        throw err;
      }
    }
    progress.filesDone++;
    options.onProgress?.(progress);
    if (batch.full) await batch.flush();
  }
  await batch.flush();
  report.durationMs = Date.now() - started;
  return report;
}

/** Name a file given by path relative to the transcript root that holds it (or to its grandparent folder). */
function foundFileFor(path: string, roots: string[]): FoundFile {
  const abs = resolve(path);
  const root = roots.find((r) => abs.startsWith(r + sep));
  const rel = root ? relative(root, abs) : relative(dirname(dirname(abs)), abs);
  return { path: abs, relPath: rel.split(sep).join('/') };
}

/**
 * Records, tool facts and file checkpoints waiting to be committed. Several files share one transaction
 * (one commit per file made large syncs commit-bound); a checkpoint is only ever committed together with
 * the records read up to it, so a sync killed at any point resumes without losing or double-counting.
 */
class Batch {
  records = new Map<string, RequestRecord>();
  facts = emptyFacts();
  checkpoints = new Map<string, FileCheckpoint>();
  bytes = 0;

  constructor(private readonly store: Store, private readonly report: SyncReport) {}

  add(record: RequestRecord): void {
    const prev = this.records.get(record.key);
    this.records.set(record.key, prev ? mergeRecords(prev, record) : record);
  }

  get full(): boolean {
    return this.records.size >= COMMIT_RECORDS || this.bytes >= COMMIT_BYTES;
  }

  async flush(): Promise<void> {
    if (this.records.size === 0 && this.checkpoints.size === 0) return;
    const res = await this.store.commitBatch([...this.checkpoints.values()], [...this.records.values()], this.facts);
    this.report.newRequests += res.inserted;
    this.report.mergedCopies += res.updated;
    this.records = new Map();
    this.facts = emptyFacts();
    this.checkpoints = new Map();
    this.bytes = 0;
  }
}

async function importFile(
  file: FoundFile, checkpoint: FileCheckpoint | undefined, report: SyncReport, batch: Batch,
  maxSkipped: number, onBytes: (n: number) => void,
): Promise<void> {
  const fd = openSync(file.path, 'r');
  try {
    const st = fstatSync(fd);
    const size = st.size;
    let offset = 0;
    let lineNo = 0;
    if (checkpoint && checkpoint.dev === st.dev && checkpoint.ino === st.ino && size >= checkpoint.offset
      && headOf(fd, size, headLength(checkpoint.head)) === checkpoint.head) {
      offset = checkpoint.offset;
      lineNo = checkpoint.lines;
    } else if (checkpoint) {
      // Truncated, replaced or rewritten: read it all again (merging by key makes this idempotent).
      report.files.reread++;
    }
    report.files.read++;
    const ctx = fileContext(file.relPath);
    const quietTail = Date.now() - st.mtimeMs > QUIET_TAIL_MS;
    const head = headOf(fd, size, HEAD_BYTES);

    const checkpointAt = (consumedTo: number, complete: boolean): FileCheckpoint => ({
      path: file.path, dev: st.dev, ino: st.ino,
      // A mid-file checkpoint must not look "unchanged" to the next run.
      size: complete ? size : -1, mtimeMs: complete ? Math.floor(st.mtimeMs) : -1,
      offset: consumedTo, lines: lineNo, head,
    });

    const handleLine = (buf: Buffer, start: number, end: number) => {
      lineNo++;
      report.lines++;
      const skip = (reason: SkipReason) => {
        report.skipped[reason]++;
        if (report.skippedLines.length < maxSkipped) report.skippedLines.push({ file: file.path, line: lineNo, reason });
      };
      let s = start;
      let e = end;
      while (s < e && isSpace(buf[s])) s++;
      while (e > s && isSpace(buf[e - 1])) e--;
      if (s === e) return;
      const slice = buf.subarray(s, e);
      if (slice.indexOf(USAGE) === -1 && slice.indexOf(TOOL_RESULT) === -1 && slice.indexOf(COMPACT) === -1) {
        // Not a response: only its shape is checked, so malformed lines are still counted.
        if (buf[s] !== 0x7b /* { */) {
          skip(isJson(slice) ? 'not_an_object' : 'invalid_json');
        } else if (buf[e - 1] !== 0x7d /* } */) {
          skip('invalid_json');
        }
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
      extractFacts(value, ctx, result?.record.key ?? null, batch.facts);
      if (result === null) return;
      report.requestLines++;
      batch.add(result.record);
    };

    let carry: Buffer | null = null;
    let carryTooLong = false;
    let consumed = offset;
    let pos = offset;
    const chunk = Buffer.allocUnsafe(READ_BYTES);
    while (pos < size) {
      const n = readSync(fd, chunk, 0, Math.min(READ_BYTES, size - pos), pos);
      if (n <= 0) break;
      pos += n;
      report.bytesRead += n;
      batch.bytes += n;
      onBytes(n);
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
          report.lines++;
          report.skipped.line_too_long++;
          if (report.skippedLines.length < maxSkipped) report.skippedLines.push({ file: file.path, line: lineNo, reason: 'line_too_long' });
        } else {
          handleLine(buf, lineStart, nl);
        }
        lineStart = nl + 1;
      }
      consumed = pos - (buf.length - lineStart);
      if (lineStart < buf.length) {
        const rest = buf.subarray(lineStart);
        if (carryTooLong || rest.length > MAX_LINE_BYTES) {
          carryTooLong = true; // drop bytes until the next newline
        } else {
          carry = Buffer.from(rest);
        }
      }
      if (batch.full) {
        batch.checkpoints.set(file.path, checkpointAt(consumed, false));
        await batch.flush();
      }
    }
    // An unterminated tail is a line still being written, unless the file has long been quiet.
    if (carry && quietTail && isJson(carry)) {
      handleLine(carry, 0, carry.length);
      consumed = size;
    }
    batch.checkpoints.set(file.path, checkpointAt(consumed, true));
  } finally {
    closeSync(fd);
  }
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

export type { FileContext };

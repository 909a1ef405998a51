/**
 * What `tokentally statusline` is given: its flags, Claude Code's statusLine JSON on stdin, and the session's
 * files. Node built-ins only (plus the JSON helper): the line-cache front (hit.ts) bundles this module alone.
 */
import { existsSync, fstatSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parseJsonObject } from '../json-input.js';

/** The fields of Claude Code's statusLine JSON this command reads (all optional: older versions lack some). */
export interface StatuslineInput {
  sessionId: string | null;
  transcriptPath: string | null;
  modelId: string | null;
  modelName: string | null;
  /** Claude Code's own session cost estimate. */
  ccCost: number | null;
  contextSize: number | null;
  usedPercent: number | null;
  /** Prompt tokens of the latest request (input + cache writes + cache reads), from `current_usage`. */
  contextTokens: number | null;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' && v.length > 0 ? v : null);
const obj = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : {});

/** Parse the stdin JSON; null when it is empty or not a JSON object. */
export function parseStatuslineInput(text: string): StatuslineInput | null {
  const d = parseJsonObject(text);
  if (!d) return null;
  const model = obj(d.model);
  const cost = obj(d.cost);
  const cw = obj(d.context_window);
  const cu = d.context_window && typeof cw.current_usage === 'object' && cw.current_usage ? obj(cw.current_usage) : null;
  const contextTokens = cu
    ? (num(cu.input_tokens) ?? 0) + (num(cu.cache_creation_input_tokens) ?? 0) + (num(cu.cache_read_input_tokens) ?? 0)
    : null;
  return {
    sessionId: str(d.session_id),
    transcriptPath: str(d.transcript_path),
    modelId: str(model.id) ?? str(d.model),
    modelName: str(model.display_name),
    ccCost: num(cost.total_cost_usd),
    contextSize: num(cw.context_window_size),
    usedPercent: num(cw.used_percentage),
    contextTokens,
  };
}

/** The session's transcript and its subagent files (`<session>/subagents/*.jsonl`). */
export function sessionFiles(transcriptPath: string): string[] {
  const files = [transcriptPath];
  const sub = join(dirname(transcriptPath), basename(transcriptPath, '.jsonl'), 'subagents');
  try {
    // Most sessions have no subagents folder: checked first, without the exception readdirSync would throw.
    if (existsSync(sub)) for (const name of readdirSync(sub).sort()) if (name.endsWith('.jsonl')) files.push(join(sub, name));
  } catch {
    // unreadable: no subagents
  }
  return files;
}

export class StatuslineUsageError extends Error {}

export interface StatuslineFlags {
  json: boolean;
  sync: boolean;
  timeZone?: string;
}

/** Flags of the fast path (commander is not loaded): --json, --no-sync, -z/--timezone <zone>. */
export function parseStatuslineArgs(argv: string[]): StatuslineFlags {
  const flags: StatuslineFlags = { json: false, sync: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') flags.json = true;
    else if (a === '--no-sync') flags.sync = false;
    else if (a === '-z' || a === '--timezone' || a.startsWith('--timezone=')) {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (!v) throw new StatuslineUsageError(`${a.split('=')[0]} needs a time zone`);
      flags.timeZone = v;
    } else {
      throw new StatuslineUsageError(`statusline: unknown option ${a}`);
    }
  }
  return flags;
}

/** Synchronous writes: process.stdout on a pipe would load the net module (~5 ms) and need a drain before exit. */
export function emit(fd: 1 | 2, text: string): void {
  try {
    writeSync(fd, text);
  } catch {
    (fd === 1 ? process.stdout : process.stderr).write(text);
  }
}

/** Stdin when it can be read at once (a file, a pipe whose writer is done), else null: read it with `readStdinStream`. */
export function readStdinSync(): string | null {
  try {
    // A terminal (someone trying the command by hand) sends nothing until Ctrl-D: don't wait for it.
    if (fstatSync(0).isCharacterDevice()) return '';
  } catch {
    return '';
  }
  try {
    return readFileSync(0, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return '';
  }
  return null;
}

/** A non-blocking pipe: read it as a stream, giving up after a second. */
export function readStdinStream(): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const done = () => { clearTimeout(timer); resolve(text); };
    const timer = setTimeout(done, 1000);
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (c: string) => { text += c; });
    process.stdin.on('end', done);
    process.stdin.on('error', done);
  });
}

/**
 * `tokentally hook`: a Claude Code `UserPromptSubmit` hook for people without the proxy (subscriptions).
 * Reads the hook JSON on stdin, imports the session's new transcript lines, and blocks the prompt when a
 * `block` budget that applies to it is exhausted: exit code 2 with the reason on stderr (Claude Code shows it
 * and drops the prompt), or `{"decision":"block","reason":...}` on stdout with `--decision-json`.
 * Allows with exit 0 and no output. It never breaks the user's prompt: malformed input or any internal error
 * allows, with a note on stderr.
 *
 * It runs before every prompt, so cli/main.ts dispatches it before commander loads, and it only touches
 * indexed queries: opening the store, one incremental read of the session's transcript, one SUM per budget.
 */
import { parseJsonObject } from '../../json-input.js';
import { spawn } from 'node:child_process';
import { existsSync, fstatSync, readdirSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { AlertRecord } from '../../../policy/alerts.js';
import type { BudgetStatus, RequestContext } from '../../../policy/budgets.js';
import type { Store } from '../../../store/store.js';

export interface HookInput {
  sessionId: string | null;
  transcriptPath: string | null;
  cwd: string | null;
  event: string | null;
}

export interface HookOutcome {
  code: number;
  stdout: string;
  stderr: string;
  /** Budgets checked (tests, --verbose). */
  checked: BudgetStatus[];
  alerts: AlertRecord[];
}

export interface HookOptions {
  env?: NodeJS.ProcessEnv;
  now?: number;
  /** Import the session's transcript first (default true). */
  sync?: boolean;
  decisionJson?: boolean;
  /** Start a background `tokentally alerts --deliver` for new alerts (default true). */
  deliverInBackground?: boolean;
}

/** Now, or `TOKENTALLY_NOW` (epoch ms or an ISO instant) when set: tests pin the clock with it, as the statusline does. */
export function clock(env: NodeJS.ProcessEnv = process.env): number {
  const pinned = env.TOKENTALLY_NOW?.trim();
  if (pinned) {
    const t = /^\d+$/.test(pinned) ? Number(pinned) : Date.parse(pinned);
    if (Number.isFinite(t)) return t;
  }
  return Date.now();
}

const str = (v: unknown): string | null => (typeof v === 'string' && v.length > 0 ? v : null);

/** Null when the text is not a JSON object. */
export function parseHookInput(text: string): HookInput | null {
  const d = parseJsonObject(text);
  if (!d) return null;
  return { sessionId: str(d.session_id), transcriptPath: str(d.transcript_path), cwd: str(d.cwd), event: str(d.hook_event_name) };
}

/** The session's transcript and its subagent files (`<session>/subagents/*.jsonl`). */
function sessionFiles(transcriptPath: string): string[] {
  const files = [transcriptPath];
  const sub = join(dirname(transcriptPath), basename(transcriptPath, '.jsonl'), 'subagents');
  try {
    for (const name of readdirSync(sub)) if (name.endsWith('.jsonl')) files.push(join(sub, name));
  } catch {
    // no subagents
  }
  return files;
}

/** Every file's checkpoint matches its size, mtime and inode: nothing new to import. */
async function allImported(store: Store, files: string[]): Promise<boolean> {
  for (const f of files) {
    const cp = await store.getCheckpoint(f);
    let st;
    try {
      st = statSync(f);
    } catch {
      return false;
    }
    if (!cp || cp.dev !== st.dev || cp.ino !== st.ino || cp.size !== st.size || cp.mtimeMs !== Math.floor(st.mtimeMs)) return false;
  }
  return true;
}

const ALLOW = (note = ''): HookOutcome => ({ code: 0, stdout: '', stderr: note, checked: [], alerts: [] });

/** Decide for one hook input. Never throws. */
export async function runHook(stdinText: string, opts: HookOptions = {}): Promise<HookOutcome> {
  const env = opts.env ?? process.env;
  const input = parseHookInput(stdinText);
  if (!input) return ALLOW('tokentally hook: stdin is not the hook JSON object; prompt allowed\n');
  if (input.event && input.event !== 'UserPromptSubmit') return ALLOW();
  try {
    const { databasePath, loadPriceBook } = await import('../context.js');
    // No database yet: nothing can be over budget, and the hook must not create one.
    if (!existsSync(databasePath(env))) return ALLOW();
    const prices = loadPriceBook(env);
    const { SqliteStore } = await import('../../../store/sqlite/sqlite-store.js');
    const store = SqliteStore.open(databasePath(env), prices);
    try {
      const budgets = await store.listBudgets();
      if (budgets.length === 0) return ALLOW();
      let note = '';
      if (opts.sync !== false && input.transcriptPath && existsSync(input.transcriptPath)) {
        try {
          const files = sessionFiles(input.transcriptPath);
          // The statusline (or a previous prompt) often imported them already: then skip loading the importer.
          if (!(await allImported(store, files))) {
            const { syncTranscripts } = await import('../../../sources/transcripts/sync.js');
            await syncTranscripts(store, { onlyPaths: files, env, maxSkippedLines: 0 });
          }
        } catch (err) {
          note += `tokentally hook: could not import the transcript (${(err as Error).message}); using stored spend\n`;
        }
      }
      const now = opts.now ?? clock(env);
      // The model of the next request is unknown to a hook: take the session's latest one for model: scopes.
      let model: string | null = null;
      if (input.sessionId && budgets.some((b) => b.scope.startsWith('model:'))) {
        const [last] = await store.listRequests({ sessionId: input.sessionId, limit: 1 });
        model = last?.model ?? null;
      }
      const ctx: RequestContext = { sessionId: input.sessionId, project: input.cwd, model, keyHash: null };
      const { evaluateBudgets, recordDueAlerts } = await import('../../../policy/evaluate.js');
      const { describeExhausted } = await import('../../../policy/budgets.js');
      const checked = await evaluateBudgets(store, budgets, now, { prices, ctx });
      const alerts = await recordDueAlerts(store, checked, now, 'hook');
      if (alerts.length && opts.deliverInBackground !== false) deliverInBackground(env);
      const blocking = checked.filter((s) => s.budget.action === 'block' && s.exhausted);
      if (!blocking.length) return { code: 0, stdout: '', stderr: note, checked, alerts };
      const reason = blocking.map(describeExhausted).join('\n')
        + '\n(raise it with `tokentally budget set <name> --limit <usd>`, or see `tokentally budget status`)';
      if (opts.decisionJson) return { code: 0, stdout: JSON.stringify({ decision: 'block', reason }) + '\n', stderr: note, checked, alerts };
      return { code: 2, stdout: '', stderr: note + reason + '\n', checked, alerts };
    } finally {
      await store.close();
    }
  } catch (err) {
    return ALLOW(`tokentally hook: ${(err as Error)?.message ?? String(err)}; prompt allowed\n`);
  }
}

/** Webhooks retry for seconds: a detached `tokentally alerts --deliver` sends them after the hook has answered. */
function deliverInBackground(env: NodeJS.ProcessEnv): void {
  try {
    const mainJs = join(dirname(fileURLToPath(import.meta.url)), '..', 'main.js');
    const child = spawn(process.execPath, [mainJs, 'alerts', '--deliver', '--limit', '1'], { detached: true, stdio: 'ignore', env });
    child.on('error', () => undefined);
    child.unref();
  } catch {
    // delivery stays pending; `tokentally alerts --deliver` or the next status run sends it
  }
}

/**
 * Read fd 0 to EOF. A pipe may be non-blocking and not written yet (EAGAIN): wait a millisecond and retry,
 * keeping what was read, until EOF or the deadline.
 */
function readAllSync(timeoutMs: number): string {
  const chunks: Buffer[] = [];
  const buf = Buffer.allocUnsafe(65_536);
  const deadline = Date.now() + timeoutMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN' && Date.now() < deadline) {
        Atomics.wait(pause, 0, 0, 1);
        continue;
      }
      if (code === 'EOF' || code === 'EAGAIN') break;
      throw err;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Read all of stdin (the hook JSON); gives up after `timeoutMs` (a terminal or a writer that never closes). */
export function readStdin(timeoutMs = 3000): Promise<string> {
  if (process.stdin.isTTY) return Promise.resolve('');
  // A pipe or a file (how Claude Code runs hooks): synchronous reads to EOF, no event-loop round trips.
  let isPipe = false;
  try {
    const st = fstatSync(0);
    isPipe = st.isFIFO() || st.isFile();
  } catch {
    // fall back to the stream
  }
  if (isPipe) {
    try {
      return Promise.resolve(readAllSync(timeoutMs));
    } catch {
      return Promise.resolve('');
    }
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      process.stdin.removeAllListeners();
      process.stdin.pause();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const timer = setTimeout(done, timeoutMs);
    process.stdin.on('data', (c: Buffer) => chunks.push(c));
    process.stdin.on('end', done);
    process.stdin.on('error', done);
  });
}

export interface HookFlags {
  sync: boolean;
  decisionJson?: boolean;
  /** Arguments not understood: ignored with a note (exit 2 from a usage error would block every prompt). */
  ignored?: string[];
}

/** Parse the fast path's arguments; null means "let commander handle it" (help). */
export function parseHookArgs(args: string[]): HookFlags | null {
  const flags: HookFlags = { sync: true, ignored: [] };
  for (const a of args) {
    if (a === '--help' || a === '-h') return null;
    if (a === '--no-sync') flags.sync = false;
    else if (a === '--decision-json') flags.decisionJson = true;
    else flags.ignored!.push(a);
  }
  return flags;
}

/** Entry used by cli/main.ts before commander loads, and by the commander action. Returns the exit code. */
export async function hookMain(flags: HookFlags): Promise<number> {
  const started = performance.now();
  const cpu = process.cpuUsage();
  const out = await runHook(await readStdin(), { sync: flags.sync, decisionJson: flags.decisionJson });
  if (out.stdout) process.stdout.write(out.stdout);
  if (flags.ignored?.length) process.stderr.write(`tokentally hook: ignoring unknown argument(s) ${flags.ignored.join(' ')}\n`);
  if (out.stderr) process.stderr.write(out.stderr);
  // TOKENTALLY_HOOK_TIMING=1: how long the hook itself took, and since the process started (node's own boot included).
  if (process.env.TOKENTALLY_HOOK_TIMING === '1') {
    const used = process.cpuUsage(cpu);
    process.stderr.write(`tokentally hook timing: ${(performance.now() - started).toFixed(1)} ms in the hook `
      + `(${((used.user + used.system) / 1000).toFixed(1)} ms CPU), ${performance.now().toFixed(1)} ms since process start\n`);
  }
  return out.code;
}

export function registerHook(program: Command): void {
  program.command('hook')
    .description('Claude Code UserPromptSubmit hook: blocks the prompt when a block budget is exhausted (install: tokentally init --hooks)')
    .option('--no-sync', 'do not import the session transcript first')
    .option('--decision-json', 'answer {"decision":"block","reason":...} on stdout (exit 0) instead of exit code 2')
    .action(async (flags: HookFlags) => {
      process.exitCode = await hookMain(flags);
    });
}

/**
 * Install `tokentally hook` as a Claude Code UserPromptSubmit hook in `~/.claude/settings.json`, and undo it.
 * - A backup of the settings file is written before the first change (`settings.json.tokentally-hooks-backup`,
 *   with `.absent` when there was no file).
 * - Installing twice changes nothing (idempotent).
 * - Undo restores the file byte for byte from the backup when the file is still what we wrote; if it was edited
 *   since, only our hook entry is removed, keeping those edits.
 * Other settings and other hooks are never touched. `tokentally init --hooks [--undo]` runs it.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserFacingError } from './errors.js';

export type InstallAction = 'installed' | 'already-installed' | 'restored' | 'removed' | 'not-installed';

export interface InstallResult {
  action: InstallAction;
  settingsPath: string;
  backupPath: string;
  command: string;
}

export interface InstallOptions {
  undo?: boolean;
  /** The hook command; default: this node and this tokentally, absolute paths, `... hook`. */
  command?: string;
  /** Seconds Claude Code waits for the hook (default 10). */
  timeout?: number;
}

const EVENT = 'UserPromptSubmit';

/** Commands we recognize as ours: `tokentally hook`, `".../tokentally.js" hook`, `... main.js hook`. */
export function isTokentallyHookCommand(cmd: unknown): boolean {
  return typeof cmd === 'string' && /tokentally(?:\.js)?['"]?\s+hook(?:\s|$)/.test(cmd);
}

export function defaultHookCommand(): string {
  const bin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'bin', 'tokentally.js');
  const q = (s: string) => (/^[\w./-]+$/.test(s) ? s : `"${s.replace(/(["\\$`])/g, '\\$1')}"`);
  return `${q(process.execPath)} ${q(bin)} hook`;
}

/** Its own backup, apart from `tokentally init`'s `settings.json.tokentally-backup`, so the two undo independently. */
export function backupPathFor(settingsPath: string): string {
  return `${settingsPath}.tokentally-hooks-backup`;
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

type Json = Record<string, unknown>;

function readSettings(path: string): { raw: Buffer | null; doc: Json } {
  if (!existsSync(path)) return { raw: null, doc: {} };
  const raw = readFileSync(path);
  let doc: unknown;
  try {
    doc = raw.length === 0 ? {} : JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new UserFacingError(`cannot read ${path}: ${(err as Error).message}`, 'fix the JSON first; nothing was changed');
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new UserFacingError(`${path}: expected a JSON object`, 'nothing was changed');
  return { raw, doc: doc as Json };
}

function groups(doc: Json): unknown[] | null {
  const hooks = doc.hooks;
  if (!hooks || typeof hooks !== 'object' || Array.isArray(hooks)) return null;
  const list = (hooks as Json)[EVENT];
  return Array.isArray(list) ? list : null;
}

function hasOurHook(doc: Json): boolean {
  return (groups(doc) ?? []).some((g) => Array.isArray((g as Json)?.hooks) && ((g as Json).hooks as unknown[]).some((h) => isTokentallyHookCommand((h as Json)?.command)));
}

/** Remove our entries (and groups or event lists left empty by that). */
function withoutOurHook(doc: Json): Json {
  const list = groups(doc);
  if (!list) return doc;
  const kept = list
    .map((g) => {
      if (!g || typeof g !== 'object' || !Array.isArray((g as Json).hooks)) return g;
      const hooks = ((g as Json).hooks as unknown[]).filter((h) => !isTokentallyHookCommand((h as Json)?.command));
      return hooks.length ? { ...(g as Json), hooks } : null;
    })
    .filter((g) => g !== null);
  const hooks = { ...(doc.hooks as Json) };
  if (kept.length) hooks[EVENT] = kept;
  else delete hooks[EVENT];
  const out = { ...doc, hooks };
  if (Object.keys(hooks).length === 0) delete (out as Json).hooks;
  return out;
}

function writeAtomic(path: string, data: string | Buffer): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tokentally-tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/** Install (or with `undo`, remove) the hook. Throws UserFacingError on an unreadable settings file, changing nothing. */
export function installHooks(settingsPath: string, opts: InstallOptions = {}): InstallResult {
  const backupPath = backupPathFor(settingsPath);
  const metaPath = `${backupPath}.json`;
  const absentMarker = `${backupPath}.absent`;
  const command = opts.command ?? defaultHookCommand();
  const result = (action: InstallAction): InstallResult => ({ action, settingsPath, backupPath, command });
  const { raw, doc } = readSettings(settingsPath);

  if (opts.undo) {
    const haveBackup = existsSync(backupPath) || existsSync(absentMarker);
    if (haveBackup && existsSync(metaPath)) {
      const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as { written: string };
      if (raw !== null && sha(raw) === meta.written) {
        if (existsSync(absentMarker)) rmSync(settingsPath);
        else writeAtomic(settingsPath, readFileSync(backupPath));
        for (const p of [backupPath, absentMarker, metaPath]) rmSync(p, { force: true });
        return result('restored');
      }
    }
    if (!hasOurHook(doc)) return result('not-installed');
    // Edited since we installed: take out only our entry, keep the rest as it is now.
    writeAtomic(settingsPath, JSON.stringify(withoutOurHook(doc), null, 2) + '\n');
    for (const p of [backupPath, absentMarker, metaPath]) rmSync(p, { force: true });
    return result('removed');
  }

  if (hasOurHook(doc)) return result('already-installed');
  // Back up first: the exact bytes, or a marker that there was no file (replacing any stale backup).
  for (const p of [backupPath, absentMarker, metaPath]) rmSync(p, { force: true });
  if (raw === null) writeAtomic(absentMarker, '');
  else writeAtomic(backupPath, raw);
  const hooks = doc.hooks && typeof doc.hooks === 'object' && !Array.isArray(doc.hooks) ? { ...(doc.hooks as Json) } : {};
  const list = Array.isArray(hooks[EVENT]) ? [...(hooks[EVENT] as unknown[])] : [];
  list.push({ hooks: [{ type: 'command', command, timeout: opts.timeout ?? 10 }] });
  hooks[EVENT] = list;
  const text = JSON.stringify({ ...doc, hooks }, null, 2) + '\n';
  writeAtomic(settingsPath, text);
  writeAtomic(metaPath, JSON.stringify({ written: sha(text), installedAt: new Date().toISOString(), command }) + '\n');
  return result('installed');
}

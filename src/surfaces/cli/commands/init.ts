import type { Command } from 'commander';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tokentallyHome } from '../context.js';
import { installHooks, type InstallResult } from '../hooks-install.js';
import { UsageError, UserFacingError } from '../errors.js';

export const DEFAULT_PORT = 4100;
export const DEFAULT_HOST = '127.0.0.1';

/** Claude Code's config dir: the first entry of `CLAUDE_CONFIG_DIR` when set, else `~/.claude`. */
export function claudeConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  const home = env.HOME || homedir();
  const first = env.CLAUDE_CONFIG_DIR?.split(',').map((p) => p.trim()).find(Boolean);
  if (first) return resolve(first.replace(/^~(?=$|\/)/, home));
  return join(home, '.claude');
}

export function claudeSettingsPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(claudeConfigDir(env), 'settings.json');
}

export function proxyUrl(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Two base URLs name the same proxy (localhost and 127.0.0.1 are the same loopback). */
export function sameEndpoint(a: string | null | undefined, b: string | null | undefined): boolean {
  if (!a || !b) return false;
  try {
    const norm = (u: string) => {
      const x = new URL(u);
      const host = x.hostname === 'localhost' || x.hostname === '[::1]' ? '127.0.0.1' : x.hostname;
      return `${x.protocol}//${host}:${x.port || (x.protocol === 'https:' ? '443' : '80')}${x.pathname.replace(/\/+$/, '')}`;
    };
    return norm(a) === norm(b);
  } catch {
    return false;
  }
}

export interface ClaudeSettings {
  path: string;
  exists: boolean;
  /** Parsed document; null when absent or invalid. */
  doc: Record<string, unknown> | null;
  /** Parse problem, when the file exists but is not a JSON object. */
  error: string | null;
  baseUrl: string | null;
}

export function readClaudeSettings(env: NodeJS.ProcessEnv = process.env): ClaudeSettings {
  const path = claudeSettingsPath(env);
  if (!existsSync(path)) return { path, exists: false, doc: null, error: null, baseUrl: null };
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    return { path, exists: true, doc: null, error: (err as Error).message, baseUrl: null };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    return { path, exists: true, doc: null, error: 'expected a JSON object', baseUrl: null };
  }
  const d = doc as Record<string, unknown>;
  if (d.env !== undefined && (typeof d.env !== 'object' || d.env === null || Array.isArray(d.env))) {
    return { path, exists: true, doc: null, error: '"env" is not an object', baseUrl: null };
  }
  const v = (d.env as Record<string, unknown> | undefined)?.ANTHROPIC_BASE_URL;
  return { path, exists: true, doc: d, error: null, baseUrl: typeof v === 'string' ? v : null };
}

/** What `init` remembers so `--undo` can restore exactly. Holds no setting values except the previous base URL. */
interface InitState {
  version: 1;
  url: string;
  createdFile: boolean;
  hadEnv: boolean;
  previousBaseUrl: string | null;
  writtenSha256: string;
  at: string;
}

const backupPathOf = (settings: string) => `${settings}.tokentally-backup`;
const statePathOf = (settings: string) => `${settings}.tokentally-state.json`;
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

interface InitFlags {
  port: string;
  host: string;
  url?: string;
  undo?: boolean;
  force?: boolean;
  service?: string;
  hooks?: boolean;
  json?: boolean;
}

export interface InitResult {
  settingsPath: string;
  action: 'added' | 'unchanged' | 'restored' | 'removed_entry' | 'nothing_to_undo';
  baseUrl: string | null;
  backupPath: string | null;
  service?: { kind: string; path: string; written: boolean; enable: string };
  notes: string[];
}

export function registerInit(program: Command): void {
  program.command('init')
    .description("point Claude Code at the proxy: add ANTHROPIC_BASE_URL to the env of Claude Code's settings.json")
    .option('--port <n>', 'port the proxy listens on', String(DEFAULT_PORT))
    .option('--host <addr>', 'address the proxy listens on', DEFAULT_HOST)
    .option('--url <url>', 'base URL to write instead of http://<host>:<port>')
    .option('--undo', 'restore settings.json as it was before init')
    .option('--force', 'replace an ANTHROPIC_BASE_URL that points somewhere else')
    .option('--service <kind>', 'also write a service file to keep the proxy running: systemd or launchd (not enabled)')
    .option('--hooks', 'instead: install the budget hook (`tokentally hook`, UserPromptSubmit) in settings.json; with --undo, remove it')
    .option('--json', 'JSON output')
    .action(async (flags: InitFlags) => {
      const port = parsePort(flags.port);
      if (flags.hooks) {
        if (flags.service !== undefined || flags.url !== undefined || flags.force) throw new UsageError('--hooks takes only --undo and --json');
        const r = installHooks(claudeSettingsPath(), { undo: Boolean(flags.undo) });
        process.stdout.write((flags.json ? JSON.stringify(r, null, 2) : describeHooks(r)) + '\n');
        return;
      }
      if (flags.service !== undefined && flags.service !== 'systemd' && flags.service !== 'launchd') {
        throw new UsageError(`--service expects systemd or launchd, got "${flags.service}"`);
      }
      const url = flags.url ?? proxyUrl(flags.host, port);
      if (flags.url) {
        try {
          if (!/^https?:$/.test(new URL(flags.url).protocol)) throw new Error();
        } catch {
          throw new UsageError(`--url expects an http(s) URL, got "${flags.url}"`);
        }
      }
      const result = flags.undo ? undoInit() : applyInit(url, Boolean(flags.force));
      if (flags.service && !flags.undo) result.service = writeService(flags.service as 'systemd' | 'launchd', flags.host, port);
      if (flags.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
      else process.stdout.write(describe(result, Boolean(flags.undo)) + '\n');
    });
}

export function parsePort(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`--port expects 0-65535, got "${v}"`);
  return n;
}

function applyInit(url: string, force: boolean, env: NodeJS.ProcessEnv = process.env): InitResult {
  const s = readClaudeSettings(env);
  if (s.error) {
    throw new UserFacingError(`${s.path} is not valid: ${s.error}`,
      'nothing was changed; fix the file (Claude Code cannot read it either) and run `tokentally init` again');
  }
  const notes: string[] = [];
  if (sameEndpoint(s.baseUrl, url)) {
    return { settingsPath: s.path, action: 'unchanged', baseUrl: s.baseUrl, backupPath: existsSync(backupPathOf(s.path)) ? backupPathOf(s.path) : null, notes };
  }
  if (s.baseUrl && !force) {
    throw new UserFacingError(`${s.path} already sets ANTHROPIC_BASE_URL=${s.baseUrl}`,
      `nothing was changed. To keep that endpoint behind the proxy, run \`tokentally proxy --upstream ${s.baseUrl}\` and \`tokentally init --force\``);
  }
  const doc: Record<string, unknown> = s.doc ? { ...s.doc } : {};
  const hadEnv = s.doc !== null && s.doc.env !== undefined;
  doc.env = { ...((doc.env as Record<string, unknown>) ?? {}), ANTHROPIC_BASE_URL: url };
  const text = JSON.stringify(doc, null, 2) + '\n';
  mkdirSync(dirname(s.path), { recursive: true });
  const backup = backupPathOf(s.path);
  let mode = 0o644;
  if (s.exists) {
    mode = statSync(s.path).mode & 0o777;
    copyFileSync(s.path, backup);
    chmodSync(backup, mode);
  } else if (existsSync(backup)) {
    unlinkSync(backup);
  }
  const state: InitState = {
    version: 1, url, createdFile: !s.exists, hadEnv, previousBaseUrl: s.baseUrl, writtenSha256: sha256(text), at: new Date().toISOString(),
  };
  writeAtomic(statePathOf(s.path), JSON.stringify(state, null, 2) + '\n', 0o600);
  writeAtomic(s.path, text, mode);
  if (s.baseUrl) notes.push(`replaced ANTHROPIC_BASE_URL=${s.baseUrl} (restored by \`tokentally init --undo\`)`);
  return { settingsPath: s.path, action: 'added', baseUrl: url, backupPath: s.exists ? backup : null, notes };
}

function undoInit(env: NodeJS.ProcessEnv = process.env): InitResult {
  const path = claudeSettingsPath(env);
  const statePath = statePathOf(path);
  const backup = backupPathOf(path);
  if (!existsSync(statePath)) {
    return { settingsPath: path, action: 'nothing_to_undo', baseUrl: readClaudeSettings(env).baseUrl, backupPath: null, notes: [] };
  }
  let state: InitState;
  try {
    state = JSON.parse(readFileSync(statePath, 'utf8')) as InitState;
  } catch (err) {
    throw new UserFacingError(`cannot read ${statePath}: ${(err as Error).message}`,
      `nothing was changed; the copy taken before init is ${backup} (if it exists)`);
  }
  const current = existsSync(path) ? readFileSync(path) : null;
  if (current !== null && sha256(current) === state.writtenSha256) {
    // Untouched since init: put back the exact bytes (or remove the file init created).
    if (state.createdFile) unlinkSync(path);
    else {
      if (!existsSync(backup)) throw new UserFacingError(`the backup ${backup} is missing`, 'nothing was changed');
      const mode = statSync(path).mode & 0o777;
      writeAtomic(path, readFileSync(backup), mode);
      unlinkSync(backup);
    }
    unlinkSync(statePath);
    return { settingsPath: path, action: 'restored', baseUrl: state.previousBaseUrl, backupPath: null, notes: [] };
  }
  // Changed since init (Claude Code or the user edited it): take out only our entry, keep the rest.
  const s = readClaudeSettings(env);
  if (s.error) {
    throw new UserFacingError(`${path} is not valid: ${s.error}`, `nothing was changed; the copy taken before init is ${backup}`);
  }
  const notes = [`${path} changed since init, so only ANTHROPIC_BASE_URL was reverted; the copy taken before init stays at ${backup}`];
  if (s.doc && sameEndpoint(s.baseUrl, state.url)) {
    const doc = { ...s.doc };
    const envObj = { ...(doc.env as Record<string, unknown>) };
    if (state.previousBaseUrl !== null) envObj.ANTHROPIC_BASE_URL = state.previousBaseUrl;
    else delete envObj.ANTHROPIC_BASE_URL;
    if (Object.keys(envObj).length === 0 && !state.hadEnv) delete doc.env;
    else doc.env = envObj;
    writeAtomic(path, JSON.stringify(doc, null, 2) + '\n', statSync(path).mode & 0o777);
  } else {
    notes.push('ANTHROPIC_BASE_URL no longer points to the proxy; left as is');
  }
  unlinkSync(statePath);
  return { settingsPath: path, action: 'removed_entry', baseUrl: state.previousBaseUrl, backupPath: existsSync(backup) ? backup : null, notes };
}

function writeAtomic(path: string, data: string | Buffer, mode: number): void {
  const tmp = `${path}.tokentally-tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

/** bin/tokentally.js of this installation (dist/src/surfaces/cli/commands -> repository root). */
function binPath(): string {
  return fileURLToPath(new URL('../../../../../bin/tokentally.js', import.meta.url));
}

export function serviceFile(kind: 'systemd' | 'launchd', host: string, port: number, env: NodeJS.ProcessEnv = process.env): { path: string; text: string; enable: string } {
  const home = env.HOME || homedir();
  const ttHome = tokentallyHome(env);
  const args = [process.execPath, binPath(), 'proxy', '--port', String(port), '--host', host];
  const upstream = env.TOKENTALLY_UPSTREAM?.trim();
  if (upstream) args.push('--upstream', upstream);
  if (kind === 'systemd') {
    const dir = join(env.XDG_CONFIG_HOME || join(home, '.config'), 'systemd', 'user');
    const path = join(dir, 'tokentally-proxy.service');
    const q = (a: string) => (/[\s"\\]/.test(a) ? `"${a.replace(/(["\\])/g, '\\$1')}"` : a);
    const text = [
      '[Unit]',
      'Description=tokentally proxy: records the cost of every Claude Code API request',
      'After=network-online.target',
      '',
      '[Service]',
      `ExecStart=${args.map(q).join(' ')}`,
      `Environment=${q(`TOKENTALLY_HOME=${ttHome}`)}`,
      'Restart=on-failure',
      'RestartSec=2',
      '',
      '[Install]',
      'WantedBy=default.target',
      '',
    ].join('\n');
    return { path, text, enable: 'systemctl --user daemon-reload && systemctl --user enable --now tokentally-proxy.service' };
  }
  const path = join(home, 'Library', 'LaunchAgents', 'dev.tokentally.proxy.plist');
  const x = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const text = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    '<dict>',
    '  <key>Label</key><string>dev.tokentally.proxy</string>',
    '  <key>ProgramArguments</key>',
    '  <array>',
    ...args.map((a) => `    <string>${x(a)}</string>`),
    '  </array>',
    '  <key>EnvironmentVariables</key>',
    `  <dict><key>TOKENTALLY_HOME</key><string>${x(ttHome)}</string></dict>`,
    '  <key>RunAtLoad</key><true/>',
    '  <key>KeepAlive</key><true/>',
    `  <key>StandardErrorPath</key><string>${x(join(ttHome, 'proxy.log'))}</string>`,
    '</dict>',
    '</plist>',
    '',
  ].join('\n');
  return { path, text, enable: `launchctl load -w ${path}` };
}

function writeService(kind: 'systemd' | 'launchd', host: string, port: number): NonNullable<InitResult['service']> {
  const f = serviceFile(kind, host, port);
  const same = existsSync(f.path) && readFileSync(f.path, 'utf8') === f.text;
  if (!same) {
    mkdirSync(dirname(f.path), { recursive: true });
    writeAtomic(f.path, f.text, 0o644);
  }
  return { kind, path: f.path, written: !same, enable: f.enable };
}

function describeHooks(r: InstallResult): string {
  switch (r.action) {
    case 'installed':
      return `${r.settingsPath}: added the UserPromptSubmit hook \`${r.command}\` (blocks a prompt when a block budget is exhausted)\n`
        + `backup of the previous file: ${r.backupPath}; undo with \`tokentally init --hooks --undo\``;
    case 'already-installed':
      return `${r.settingsPath} already runs the tokentally hook; nothing changed`;
    case 'restored':
      return `${r.settingsPath} restored to what it was before \`tokentally init --hooks\``;
    case 'removed':
      return `${r.settingsPath}: removed the tokentally hook (the file changed since, so only that entry was taken out)`;
    case 'not-installed':
      return `nothing to undo: ${r.settingsPath} has no tokentally hook`;
  }
}

function describe(r: InitResult, undo: boolean): string {
  const lines: string[] = [];
  switch (r.action) {
    case 'added':
      lines.push(`${r.settingsPath}: env.ANTHROPIC_BASE_URL = ${r.baseUrl}`);
      lines.push(r.backupPath ? `backup of the previous file: ${r.backupPath}` : '(the file did not exist; `tokentally init --undo` removes it)');
      break;
    case 'unchanged':
      lines.push(`${r.settingsPath} already points Claude Code to ${r.baseUrl}; nothing changed`);
      break;
    case 'restored':
      lines.push(`${r.settingsPath} restored to what it was before \`tokentally init\``);
      break;
    case 'removed_entry':
      lines.push(`${r.settingsPath}: ANTHROPIC_BASE_URL ${r.baseUrl ? `set back to ${r.baseUrl}` : 'removed'}`);
      break;
    case 'nothing_to_undo':
      lines.push(`nothing to undo: \`tokentally init\` has not changed ${r.settingsPath}`);
      break;
  }
  lines.push(...r.notes);
  if (r.service) {
    lines.push(r.service.written ? `wrote ${r.service.path}` : `${r.service.path} is up to date`);
    lines.push(`start it now and at login with: ${r.service.enable}`);
  }
  if (!undo) {
    lines.push('');
    lines.push('Claude Code sessions started from now on go through the proxy; keep it running, or they cannot reach the API:');
    if (!r.service) {
      lines.push('  tokentally proxy                      (in a terminal)');
      lines.push('  tokentally init --service systemd     (Linux: writes a systemd user unit)');
      lines.push('  tokentally init --service launchd     (macOS: writes a LaunchAgent)');
    }
    lines.push('Check with `tokentally proxy --check`; undo with `tokentally init --undo`.');
  }
  return lines.join('\n');
}

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliPath } from './paths.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A fresh TOKENTALLY_HOME and an empty HOME, so tests never touch the user's data. */
export function isolatedEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base = mkdtempSync(join(tmpdir(), 'tt-test-'));
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: join(base, 'home'),
    TOKENTALLY_HOME: join(base, 'tt'),
    TZ: 'UTC',
    ...extra,
  };
}

export function runCli(args: string[], env: NodeJS.ProcessEnv, input?: string): CliResult {
  const res = spawnSync(process.execPath, [cliPath, ...args], { env, input, encoding: 'utf8', timeout: 60_000 });
  return { code: res.status, stdout: res.stdout, stderr: res.stderr };
}

export function runCliAsync(args: string[], env: NodeJS.ProcessEnv, input?: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliPath, ...args], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

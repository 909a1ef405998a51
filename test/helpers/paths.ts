import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (tests run from dist/test/..., sources live in test/...). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The read-only shared material beside the repository (`../shared`), or TOKENTALLY_SHARED. */
export const sharedDir = resolve(process.env.TOKENTALLY_SHARED ?? join(repoRoot, '..', 'shared'));

export function sharedPath(...parts: string[]): string {
  const p = join(sharedDir, ...parts);
  if (!existsSync(p)) throw new Error(`shared fixture missing: ${p} (set TOKENTALLY_SHARED to the shared/ folder)`);
  return p;
}

export const cliPath = join(repoRoot, 'bin', 'tokentally.js');

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultHookCommand, installHooks, isTokentallyHookCommand } from '../../src/surfaces/cli/hooks-install.js';
import { cliPath } from '../helpers/paths.js';
import { UserFacingError } from '../../src/surfaces/cli/errors.js';

const CMD = '/usr/bin/node /opt/tokentally/bin/tokentally.js hook';

function settingsDir(): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'tt-hooks-')), '.claude');
  mkdirSync(dir, { recursive: true });
  return join(dir, 'settings.json');
}

const ORIGINAL = `{
    "model": "opus",
    "hooks": {
        "UserPromptSubmit": [ { "hooks": [ { "type": "command", "command": "/home/me/log-prompt.sh" } ] } ],
        "Stop": [ { "hooks": [ { "type": "command", "command": "/home/me/stop.sh" } ] } ]
    }
}
`;

describe('installHooks', () => {
  it('installs next to existing hooks, is idempotent, and undo restores the file byte for byte', () => {
    const path = settingsDir();
    writeFileSync(path, ORIGINAL);
    const r = installHooks(path, { command: CMD });
    assert.equal(r.action, 'installed');
    assert.equal(readFileSync(r.backupPath, 'utf8'), ORIGINAL, 'backup first');
    const doc = JSON.parse(readFileSync(path, 'utf8'));
    assert.equal(doc.model, 'opus');
    assert.deepEqual(doc.hooks.Stop, [{ hooks: [{ type: 'command', command: '/home/me/stop.sh' }] }]);
    assert.deepEqual(doc.hooks.UserPromptSubmit, [
      { hooks: [{ type: 'command', command: '/home/me/log-prompt.sh' }] },
      { hooks: [{ type: 'command', command: CMD, timeout: 10 }] },
    ]);
    const after = readFileSync(path);
    assert.equal(installHooks(path, { command: CMD }).action, 'already-installed');
    assert.deepEqual(readFileSync(path), after, 'a second install changes nothing');

    assert.equal(installHooks(path, { undo: true }).action, 'restored');
    assert.equal(readFileSync(path, 'utf8'), ORIGINAL);
    assert.deepEqual(readdirSync(join(path, '..')), ['settings.json'], 'no backup files left behind');
    assert.equal(installHooks(path, { undo: true }).action, 'not-installed');
  });

  it('creates the file when absent, and undo removes it again', () => {
    const path = settingsDir();
    assert.equal(installHooks(path, { command: CMD }).action, 'installed');
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), { hooks: { UserPromptSubmit: [{ hooks: [{ type: 'command', command: CMD, timeout: 10 }] }] } });
    assert.equal(installHooks(path, { undo: true }).action, 'restored');
    assert.equal(existsSync(path), false);
  });

  it('keeps edits made after the install: undo then removes only its own entry', () => {
    const path = settingsDir();
    writeFileSync(path, ORIGINAL);
    installHooks(path, { command: CMD });
    const doc = JSON.parse(readFileSync(path, 'utf8'));
    doc.theme = 'dark';
    writeFileSync(path, JSON.stringify(doc));
    assert.equal(installHooks(path, { undo: true }).action, 'removed');
    const back = JSON.parse(readFileSync(path, 'utf8'));
    assert.equal(back.theme, 'dark');
    assert.deepEqual(back.hooks, JSON.parse(ORIGINAL).hooks);
  });

  it('refuses a settings file that is not a JSON object, changing nothing', () => {
    const path = settingsDir();
    writeFileSync(path, '{ not json');
    assert.throws(() => installHooks(path, { command: CMD }), (e: unknown) => e instanceof UserFacingError && /cannot read/.test(e.message));
    assert.equal(readFileSync(path, 'utf8'), '{ not json');
    assert.equal(existsSync(`${path}.tokentally-backup`), false);
  });

  it('installs this node and this tokentally by absolute path by default', () => {
    const cmd = defaultHookCommand();
    assert.ok(cmd.startsWith(process.execPath.includes(' ') ? `"${process.execPath}"` : process.execPath), cmd);
    assert.ok(cmd.endsWith(`${cliPath.includes(' ') ? `"${cliPath}"` : cliPath} hook`), cmd);
    assert.ok(existsSync(cliPath));
    assert.ok(isTokentallyHookCommand(cmd));
  });

  it('recognizes its own command in the forms it installs', () => {
    assert.ok(isTokentallyHookCommand('tokentally hook'));
    assert.ok(isTokentallyHookCommand('"/usr/local/bin/node" "/opt/my tools/tokentally/bin/tokentally.js" hook'));
    assert.ok(isTokentallyHookCommand('npx tokentally hook --no-sync'));
    assert.ok(!isTokentallyHookCommand('/home/me/log-prompt.sh'));
    assert.ok(!isTokentallyHookCommand('tokentally hooks-report'));
  });
});

/** `tokentally init --hooks [--undo]`: installs the budget hook beside `init`'s base URL; each undoes on its own. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import { emptyUsage } from '../../src/core/types.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { isolatedEnv, runCli } from '../helpers/cli.js';

const ORIGINAL = '{\n  "model": "opus",\n  "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "echo done"}]}]}\n}\n';

function setup() {
  const env = isolatedEnv();
  const dir = join(env.HOME!, '.claude');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'settings.json');
  writeFileSync(path, ORIGINAL);
  return { env, dir, path };
}

type Settings = { env?: Record<string, string>; hooks?: Record<string, { hooks: { command: string; timeout?: number }[] }[]> };
const read = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as Settings;

describe('tokentally init --hooks', () => {
  it('installs the UserPromptSubmit hook (idempotent), keeps other hooks, and the installed command allows and blocks', () => {
    const { env, path } = setup();
    const r = runCli(['init', '--hooks', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { action: string; command: string; backupPath: string };
    assert.equal(res.action, 'installed');
    assert.equal(readFileSync(res.backupPath, 'utf8'), ORIGINAL);
    const s = read(path);
    assert.equal(s.hooks!.Stop[0].hooks[0].command, 'echo done');
    const ours = s.hooks!.UserPromptSubmit[0].hooks[0];
    assert.equal(ours.command, res.command);
    assert.match(ours.command, /^\S*node\S* \S*bin\/tokentally\.js hook$/);
    assert.equal(ours.timeout, 10);
    assert.equal(JSON.parse(runCli(['init', '--hooks', '--json'], env).stdout).action, 'already-installed');
    assert.equal(read(path).hooks!.UserPromptSubmit.length, 1);
    assert.match(runCli(['init', '--hooks'], env).stdout, /already runs the tokentally hook/);

    // The installed command, as Claude Code runs it: allows (exit 0, silent) ...
    const input = JSON.stringify({ session_id: 's-hook', transcript_path: join(env.HOME!, 'none.jsonl'), cwd: '/w/app', hook_event_name: 'UserPromptSubmit', prompt: 'hi' });
    const run = () => spawnSync('/bin/sh', ['-c', ours.command], { env, input, encoding: 'utf8', timeout: 30_000 });
    const allow = run();
    assert.equal(allow.status, 0, allow.stderr);
    assert.equal(allow.stdout, '');
    // ... and blocks (exit 2, reason on stderr) once a block budget is exhausted.
    assert.equal(runCli(['budget', 'set', 'daily', '--limit', '1', '--action', 'block', '--timezone', 'UTC'], env).code, 0);
    const store = SqliteStore.open(join(env.TOKENTALLY_HOME!, 'tokentally.db'), PriceBook.builtin());
    return store.upsertRequests([{
      key: 'm:spent', requestId: null, messageId: 'spent', ts: Date.now() - 1000, sessionId: 'other', project: '/w/x', agentId: null, isSubagent: false,
      model: 'claude-sonnet-4-6', usage: { ...emptyUsage(), input: 500_000 }, stopReason: null, tools: [], clientVersion: null, sources: 1,
    }]).then(() => store.close()).then(() => {
      const block = run();
      assert.equal(block.status, 2, block.stderr);
      assert.match(block.stderr, /tokentally budget "daily" \(daily, scope all\) reached: spent \$1\.50 of \$1\.00/);
    });
  });

  it('undo with `init` (base URL) also applied: byte for byte in reverse order, only its own entry otherwise', () => {
    for (const order of [['hooks', 'url'], ['url', 'hooks']] as const) {
      const { env, dir, path } = setup();
      assert.equal(runCli(['init'], env).code, 0);
      assert.equal(runCli(['init', '--hooks'], env).code, 0);
      const both = read(path);
      assert.equal(both.env!.ANTHROPIC_BASE_URL, 'http://127.0.0.1:4100');
      assert.equal(both.hooks!.UserPromptSubmit.length, 1);
      for (const what of order) {
        const r = runCli(what === 'hooks' ? ['init', '--hooks', '--undo', '--json'] : ['init', '--undo', '--json'], env);
        assert.equal(r.code, 0, r.stderr);
      }
      if (order[0] === 'hooks') {
        // Undone in reverse order of installing: each restores its own backup, the original bytes come back.
        assert.equal(readFileSync(path, 'utf8'), ORIGINAL);
        assert.deepEqual(readdirSync(dir), ['settings.json'], 'no backup or state files left behind');
      } else {
        // The other order: each finds the file changed since it wrote it and takes out only its own entry.
        assert.deepEqual(read(path), JSON.parse(ORIGINAL));
        assert.deepEqual(readdirSync(dir).sort(), ['settings.json', 'settings.json.tokentally-backup'], 'init keeps its pre-init copy');
        assert.equal(readFileSync(join(dir, 'settings.json.tokentally-backup'), 'utf8'), ORIGINAL);
      }
    }
    const { env } = setup();
    assert.equal(JSON.parse(runCli(['init', '--hooks', '--undo', '--json'], env).stdout).action, 'not-installed');
    assert.equal(runCli(['init', '--hooks', '--service', 'systemd'], env).code, 2);
    assert.ok(!existsSync(join(env.HOME!, '.claude', 'settings.json.tokentally-hooks-backup')));
  });
});

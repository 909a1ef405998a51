/** `tokentally proxy`, `proxy --check`, `requests` and `init` as a user runs them. */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { cliPath } from '../helpers/paths.js';
import { isolatedEnv, runCli, runCliAsync } from '../helpers/cli.js';
import { startMockAnthropic, type MockAnthropic } from '../helpers/mock-anthropic.js';

interface RunningProxy {
  child: ChildProcess;
  url: string;
  port: number;
  stderr: () => string;
  stop(): Promise<number | null>;
}

/** Start `tokentally proxy --port 0 --json` and wait for its listening line. */
function startProxyProcess(env: NodeJS.ProcessEnv, args: string[]): Promise<RunningProxy> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, 'proxy', '--port', '0', '--json', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`proxy did not start: ${err}`));
    }, 15_000);
    child.stderr!.on('data', (d) => (err += d));
    child.stdout!.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl === -1) return;
      clearTimeout(timer);
      const info = JSON.parse(out.slice(0, nl)) as { listening: string };
      const port = Number(new URL(info.listening).port);
      resolve({
        child, url: info.listening, port, stderr: () => err,
        stop: () => new Promise((res) => {
          if (child.exitCode !== null) return res(child.exitCode);
          const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
          child.once('exit', (code) => {
            clearTimeout(kill);
            res(code);
          });
          child.kill('SIGTERM');
        }),
      });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`proxy exited ${code}: ${err}`));
    });
  });
}

const visible = (s: string) => s.replace(/\u001b\[[0-9;]*m/g, '');

describe('tokentally proxy / requests / proxy --check (end to end through the CLI)', () => {
  let mock: MockAnthropic;
  let env: NodeJS.ProcessEnv;
  let proxy: RunningProxy;
  before(async () => {
    mock = await startMockAnthropic({ uniqueIds: true });
    env = isolatedEnv();
    proxy = await startProxyProcess(env, ['--upstream', mock.url, '--verbose']);
  });
  after(async () => {
    if (proxy.child.exitCode === null) proxy.child.kill('SIGKILL');
    await mock.close();
  });

  it('records requests; --check tells listening vs pointed-to; stopping flushes every record', async () => {
    const client = new Anthropic({ apiKey: 'sk-ant-test', baseURL: proxy.url, maxRetries: 0 });
    for (let i = 0; i < 3; i++) {
      await client.messages.create({ model: 'claude-opus-4-8', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] },
        { headers: { 'x-claude-code-session-id': 'cli-session' } });
    }
    mock.setPlan([{ kind: 'error', status: 529 }]);
    await client.messages.create({ model: 'claude-opus-4-8', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] },
      { headers: { 'x-claude-code-session-id': 'cli-session' } }).catch(() => undefined);

    let check = await runCliAsync(['proxy', '--check', '--port', String(proxy.port), '--json'], env);
    assert.equal(check.code, 1, 'listening, but Claude Code is not pointed at it');
    let c = JSON.parse(check.stdout);
    assert.equal(c.listening, true);
    assert.equal(c.isTokentally, true);
    assert.equal(c.proxy.upstream, mock.url);
    assert.equal(c.settings.pointsToProxy, false);

    const init = await runCliAsync(['init', '--port', String(proxy.port)], env);
    assert.equal(init.code, 0, init.stderr);
    check = await runCliAsync(['proxy', '--check', '--port', String(proxy.port)], env);
    assert.equal(check.code, 0, check.stdout);
    assert.match(check.stdout, /ok: Claude Code requests go through the proxy/);

    assert.equal(await proxy.stop(), 0);
    assert.match(proxy.stderr(), /\/v1\/messages 529 overloaded_error claude-opus-4-8/);
    assert.doesNotMatch(proxy.stderr(), /sk-ant-test/);
    check = await runCliAsync(['proxy', '--check', '--port', String(proxy.port), '--json'], env);
    c = JSON.parse(check.stdout);
    assert.equal(check.code, 1);
    assert.equal(c.listening, false);
    assert.equal(c.settings.pointsToProxy, true);
    const text = await runCliAsync(['proxy', '--check', '--port', String(proxy.port)], env);
    assert.match(text.stdout, /warning: +Claude Code is pointed at .* but no tokentally proxy answers/);

    const listed = runCli(['requests', '--json', '--no-sync', '--session', 'cli-session'], env);
    assert.equal(listed.code, 0, listed.stderr);
    const rows = JSON.parse(listed.stdout).requests as Record<string, unknown>[];
    assert.equal(rows.length, 4);
    assert.deepEqual(rows.map((r) => r.status), ['529', '200', '200', '200'], 'newest first');
    assert.equal(rows[1].outputTokens, 23);
    assert.equal(rows[1].cost, 0.0152425);
    assert.deepEqual(rows[1].sources, ['proxy']);
    assert.equal(rows[0].errorType, 'overloaded_error');
    assert.equal(rows[0].cost, 0);

    const table = runCli(['requests', '--no-sync'], { ...env, COLUMNS: '80' });
    assert.equal(table.code, 0);
    for (const line of table.stdout.split('\n')) assert.ok(visible(line).length <= 80, `too wide: ${line}`);
    assert.match(table.stdout, /opus-4-8 +529/);
    assert.match(table.stdout, /\$0\.0152/);

    // Reports from the foundation include proxy records.
    const daily = JSON.parse(runCli(['daily', '--json', '--no-sync'], env).stdout);
    assert.equal(daily.totals.requests, 4);
    assert.equal(daily.totals.outputTokens, 69);
    assert.ok(Math.abs(daily.totals.totalCost - 3 * 0.0152425) < 1e-9);
  });

  it('requests: filters and bad usage', () => {
    assert.equal(runCli(['requests', '--no-sync', '--session', 'nope'], env).stdout.trim(), 'No requests recorded in the selected range.');
    const one = JSON.parse(runCli(['requests', '--no-sync', '--json', '--limit', '1'], env).stdout);
    assert.equal(one.requests.length, 1);
    const future = JSON.parse(runCli(['requests', '--no-sync', '--json', '--since', '2099-01-01'], env).stdout);
    assert.equal(future.requests.length, 0);
    const today = new Date().toISOString().slice(0, 10);
    assert.equal(JSON.parse(runCli(['requests', '--no-sync', '--json', '--since', today, '--until', today, '-z', 'UTC'], env).stdout).requests.length, 4);
    assert.equal(runCli(['requests', '--limit', 'x'], env).code, 2);
    assert.equal(runCli(['requests', '--since', '2026-13-01'], env).code, 2);
  });
});

describe('tokentally proxy: startup errors', () => {
  it('a busy port is a clear error (exit 1); a bad upstream is bad usage (exit 2)', async () => {
    const mock = await startMockAnthropic();
    try {
      const env = isolatedEnv();
      const busy = runCli(['proxy', '--port', String(mock.port), '--upstream', 'http://127.0.0.1:9'], env);
      assert.equal(busy.code, 1);
      assert.match(busy.stderr, /already in use/);
      assert.doesNotMatch(busy.stderr, /\n\s+at /, 'no stack trace');
      assert.equal(runCli(['proxy', '--upstream', 'ftp://x'], env).code, 2);
      assert.equal(runCli(['proxy', '--port', '99999'], env).code, 2);
      assert.equal(runCli(['proxy', '--port', '4100', '--upstream', 'http://127.0.0.1:4100'], env).code, 2);
    } finally {
      await mock.close();
    }
  });
});

describe('tokentally init', () => {
  const settingsOf = (env: NodeJS.ProcessEnv) => join(env.HOME!, '.claude', 'settings.json');

  it('creates settings.json when missing; --undo removes it again', () => {
    const env = isolatedEnv();
    const r = runCli(['init', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).action, 'added');
    assert.deepEqual(JSON.parse(readFileSync(settingsOf(env), 'utf8')), { env: { ANTHROPIC_BASE_URL: 'http://127.0.0.1:4100' } });
    assert.equal(runCli(['init', '--undo'], env).code, 0);
    assert.equal(existsSync(settingsOf(env)), false);
  });

  it('adds the entry keeping everything else, backs up first, is idempotent, and --undo restores the exact bytes', () => {
    const env = isolatedEnv();
    mkdirSync(join(env.HOME!, '.claude'), { recursive: true });
    const original = '{\n    "permissions": {"allow": ["Bash(ls:*)"]},\n    "env": {"FOO": "bar"},\n    "model": "opus"\n}\n';
    writeFileSync(settingsOf(env), original, { mode: 0o600 });
    const first = runCli(['init', '--port', '4200'], env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /backup of the previous file/);
    assert.match(first.stdout, /tokentally init --service systemd/);
    const doc = JSON.parse(readFileSync(settingsOf(env), 'utf8'));
    assert.deepEqual(doc, { permissions: { allow: ['Bash(ls:*)'] }, env: { FOO: 'bar', ANTHROPIC_BASE_URL: 'http://127.0.0.1:4200' }, model: 'opus' });
    assert.equal(statSync(settingsOf(env)).mode & 0o777, 0o600, 'permissions kept');
    assert.equal(readFileSync(settingsOf(env) + '.tokentally-backup', 'utf8'), original);
    const after1 = readFileSync(settingsOf(env), 'utf8');
    const second = runCli(['init', '--port', '4200', '--json'], env);
    assert.equal(JSON.parse(second.stdout).action, 'unchanged');
    assert.equal(readFileSync(settingsOf(env), 'utf8'), after1);
    assert.equal(readFileSync(settingsOf(env) + '.tokentally-backup', 'utf8'), original, 'the backup is still the original');
    const undo = runCli(['init', '--undo', '--json'], env);
    assert.equal(JSON.parse(undo.stdout).action, 'restored');
    assert.equal(readFileSync(settingsOf(env), 'utf8'), original);
    assert.equal(existsSync(settingsOf(env) + '.tokentally-backup'), false);
    assert.equal(JSON.parse(runCli(['init', '--undo', '--json'], env).stdout).action, 'nothing_to_undo');
  });

  it('--undo after Claude Code edited the file removes only our entry', () => {
    const env = isolatedEnv();
    mkdirSync(join(env.HOME!, '.claude'), { recursive: true });
    writeFileSync(settingsOf(env), '{"model":"opus"}');
    runCli(['init'], env);
    const edited = JSON.parse(readFileSync(settingsOf(env), 'utf8'));
    edited.permissions = { allow: ['Read'] };
    writeFileSync(settingsOf(env), JSON.stringify(edited));
    const undo = runCli(['init', '--undo', '--json'], env);
    assert.equal(JSON.parse(undo.stdout).action, 'removed_entry');
    assert.deepEqual(JSON.parse(readFileSync(settingsOf(env), 'utf8')), { model: 'opus', permissions: { allow: ['Read'] } });
  });

  it('invalid JSON: exit 1, nothing changed; another base URL needs --force, and --undo puts it back', () => {
    const env = isolatedEnv();
    mkdirSync(join(env.HOME!, '.claude'), { recursive: true });
    writeFileSync(settingsOf(env), '{"env": {"A": 1},}');
    const bad = runCli(['init'], env);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /not valid/);
    assert.match(bad.stderr, /nothing was changed/);
    assert.equal(readFileSync(settingsOf(env), 'utf8'), '{"env": {"A": 1},}');
    assert.equal(existsSync(settingsOf(env) + '.tokentally-backup'), false);

    writeFileSync(settingsOf(env), '{"env":{"ANTHROPIC_BASE_URL":"https://gateway.example/anthropic"}}');
    const refused = runCli(['init'], env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /--upstream https:\/\/gateway\.example\/anthropic/);
    assert.equal(runCli(['init', '--force'], env).code, 0);
    assert.equal(JSON.parse(readFileSync(settingsOf(env), 'utf8')).env.ANTHROPIC_BASE_URL, 'http://127.0.0.1:4100');
    runCli(['init', '--undo'], env);
    assert.equal(readFileSync(settingsOf(env), 'utf8'), '{"env":{"ANTHROPIC_BASE_URL":"https://gateway.example/anthropic"}}');
  });

  it('follows CLAUDE_CONFIG_DIR (first entry) and writes service files without enabling them', () => {
    const env = isolatedEnv();
    const cfg = join(env.HOME!, 'cfg-a');
    const e2 = { ...env, CLAUDE_CONFIG_DIR: `${cfg},${join(env.HOME!, 'cfg-b')}` };
    const r = runCli(['init', '--service', 'systemd', '--json'], e2);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.settingsPath, join(cfg, 'settings.json'));
    assert.ok(existsSync(join(cfg, 'settings.json')));
    const unit = readFileSync(out.service.path, 'utf8');
    assert.equal(out.service.path, join(env.HOME!, '.config', 'systemd', 'user', 'tokentally-proxy.service'));
    assert.match(unit, /ExecStart=.*tokentally\.js proxy --port 4100 --host 127\.0\.0\.1/);
    assert.match(unit, new RegExp(`Environment=TOKENTALLY_HOME=${env.TOKENTALLY_HOME}`));
    assert.match(out.service.enable, /systemctl --user enable --now/);
    const l = JSON.parse(runCli(['init', '--service', 'launchd', '--json'], e2).stdout);
    assert.equal(l.service.path, join(env.HOME!, 'Library', 'LaunchAgents', 'dev.tokentally.proxy.plist'));
    assert.match(readFileSync(l.service.path, 'utf8'), /<string>proxy<\/string>/);
    assert.equal(runCli(['init', '--service', 'cron'], e2).code, 2);
  });
});

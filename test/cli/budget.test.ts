import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isolatedEnv, runCli } from '../helpers/cli.js';
import { sharedPath } from '../helpers/paths.js';
import { assistantLine, writeTranscript } from '../helpers/transcripts.js';

/** Transcripts of 2026-11-20 (UTC), priced on Sonnet 4.6 ($3 / $15 per MTok) and Haiku 4.5 ($1 / $5). */
function envWithSpend(extra: Record<string, string> = {}) {
  const claude = mkdtempSync(join(tmpdir(), 'tt-budget-'));
  writeTranscript(claude, '-home-dev-app/s1.jsonl', [
    // $3.00 at 09:00 and $1.50 (100K output) at 11:00, project /home/dev/app
    assistantLine({ sessionId: 's1', cwd: '/home/dev/app', timestamp: '2026-11-20T09:00:00.000Z', model: 'claude-sonnet-4-6', input: 1_000_000, output: 0 }),
    assistantLine({ sessionId: 's1', cwd: '/home/dev/app', timestamp: '2026-11-20T11:00:00.000Z', model: 'claude-sonnet-4-6', input: 0, output: 100_000 }),
  ]);
  writeTranscript(claude, '-home-dev-lib/s2.jsonl', [
    // $2.00 at 10:00, project /home/dev/lib; and $5 yesterday
    assistantLine({ sessionId: 's2', cwd: '/home/dev/lib', timestamp: '2026-11-20T10:00:00.000Z', model: 'claude-haiku-4-5-20251001', input: 2_000_000, output: 0 }),
    assistantLine({ sessionId: 's2', cwd: '/home/dev/lib', timestamp: '2026-11-19T10:00:00.000Z', model: 'claude-haiku-4-5-20251001', input: 5_000_000, output: 0 }),
  ]);
  return isolatedEnv({ CLAUDE_CONFIG_DIR: claude, TOKENTALLY_NOW: '2026-11-20T12:00:00Z', TOKENTALLY_DESKTOP_NOTIFY: '0', ...extra });
}

const json = (s: string) => JSON.parse(s);

describe('tokentally budget', () => {
  it('refuses invalid definitions with exit 2 and a message naming the flag', () => {
    const env = isolatedEnv();
    const cases: [string[], RegExp][] = [
      [['budget', 'set', 'x', '--limit', 'abc'], /--limit: expected a positive number of USD, got "abc"/],
      [['budget', 'set', 'x'], /--limit: required for a new budget/],
      [['budget', 'set', 'x', '--limit', '5', '--period', 'fortnight'], /--period: expected one of day, week, month, block5h, session/],
      [['budget', 'set', 'x', '--limit', '5', '--scope', 'model:gpt-4'], /--scope: unknown model "gpt-4"/],
      [['budget', 'set', 'x', '--limit', '5', '--action', 'nuke'], /--action: expected one of warn, block, downgrade/],
      [['budget', 'set', 'x', '--limit', '5', '--alerts', '50,eighty'], /--alerts: .*got "eighty"/],
      [['budget', 'set', 'x', '--limit', '5', '--webhook', 'not a url'], /--webhook: expected an http:\/\/ or https:\/\/ URL/],
      [['budget', 'set', 'x', '--limit', '5', '--timezone', 'Nowhere/Land'], /--timezone: unknown time zone/],
      [['budget', 'set', 'bad name', '--limit', '5'], /name: expected 1-64 letters/],
    ];
    for (const [args, pattern] of cases) {
      const r = runCli(args, env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
    }
    assert.equal(json(runCli(['budget', 'list', '--json'], env).stdout).budgets.length, 0, 'nothing was saved');
  });

  it('sets, lists, updates and removes budgets', () => {
    const env = isolatedEnv();
    const set = runCli(['budget', 'set', 'daily', '--limit', '10', '--action', 'block', '--timezone', 'Europe/Paris', '--json'], env);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(json(set.stdout).result, 'created');
    // Flags left out keep their value.
    const upd = json(runCli(['budget', 'set', 'daily', '--limit', '12', '--json'], env).stdout);
    assert.equal(upd.result, 'updated');
    assert.deepEqual([upd.budget.limitUsd, upd.budget.action, upd.budget.timeZone, upd.budget.period], [12, 'block', 'Europe/Paris', 'day']);
    runCli(['budget', 'set', 'proj', '--limit', '3', '--scope', 'project:/home/dev/app', '--period', 'week', '--alerts', 'none'], env);
    const list = runCli(['budget', 'list'], env);
    assert.match(list.stdout, /daily\s+\$12\.00\s+day\s+all\s+block\s+50,80,100%/);
    assert.match(list.stdout, /proj\s+\$3\.00\s+week\s+project:\/home\/dev\/app\s+warn\s+none/);
    assert.equal(runCli(['budget', 'rm', 'proj'], env).code, 0);
    const missing = runCli(['budget', 'rm', 'proj'], env);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no budget named "proj"/);
    assert.deepEqual(json(runCli(['budget', 'list', '--json'], env).stdout).budgets.map((b: { name: string }) => b.name), ['daily']);
  });

  it('status shows spent, limit, percent, reset and projection from every source (hand-computed), and fires alerts once', () => {
    const env = envWithSpend();
    runCli(['budget', 'set', 'daily', '--limit', '10', '--action', 'block', '--timezone', 'UTC'], env);
    runCli(['budget', 'set', 'app', '--limit', '5', '--scope', 'project:/home/dev/app', '--timezone', 'UTC'], env);
    runCli(['budget', 'set', 'month', '--limit', '100', '--period', 'month', '--timezone', 'UTC'], env);
    const r = runCli(['budget', 'status', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const out = json(r.stdout);
    const by = Object.fromEntries(out.budgets.map((b: { name: string }) => [b.name, b]));
    // daily: 3 + 1.5 + 2 = $6.50 of $10 = 65%; since 09:00 (3 h) = $2.1667/h; 12 h left -> 6.5 + 26 = $32.50
    assert.equal(by.daily.spent, 6.5);
    assert.equal(by.daily.percent, 65);
    assert.equal(by.daily.requests, 3);
    assert.equal(by.daily.resetsAt, '2026-11-21T00:00:00.000Z');
    assert.equal(by.daily.msToReset, 12 * 3_600_000);
    assert.equal(by.daily.burnRatePerHour, 2.166667);
    assert.equal(by.daily.projected, 32.5);
    // app: only /home/dev/app: $4.50 of $5 = 90% (alerts 50 and 80 fired)
    assert.equal(by.app.spent, 4.5);
    assert.equal(by.app.percent, 90);
    // month: today's $6.50 + yesterday's $5 = $11.50; since 2026-11-19 10:00 (26 h); 10 days + 12 h left
    assert.equal(by.month.spent, 11.5);
    assert.equal(by.month.projected, Math.round((11.5 + (11.5 / 26) * (10 * 24 + 12)) * 1e6) / 1e6);
    assert.deepEqual(out.alertsFired.map((a: { budget: string; threshold: number }) => `${a.budget} ${a.threshold}`).sort(),
      ['app 50', 'app 80', 'daily 50']);
    assert.deepEqual(by.app.alertsThisPeriod.map((a: { threshold: number }) => a.threshold), [50, 80]);

    // Once per threshold per period: a second status fires nothing new.
    const again = json(runCli(['budget', 'status', '--json'], env).stdout);
    assert.deepEqual(again.alertsFired, []);
    const alerts = json(runCli(['alerts', '--json'], env).stdout).alerts;
    assert.equal(alerts.length, 3);
    assert.ok(alerts.every((a: { delivery: string | null }) => a.delivery !== null), 'delivery attempted and recorded');
    const table = runCli(['budget', 'status', '--no-sync'], env);
    assert.match(table.stdout, /daily\s+\$6\.50\s+\$10\.00\s+65\.0%\s+12h 00m\s+\$32\.50\s+block/);
    assert.match(table.stdout, /alerts this period: 50% at 12:00Z, 80% at 12:00Z/);
    const alertTable = runCli(['alerts'], env);
    assert.match(alertTable.stdout, /2026-11-20 12:00\s+app\s+80%\s+\$4\.50\s+\$5\.00\s+day:2026-11-20/);
  });

  it('posts alerts to the budget webhook (JSON with a Slack-compatible text field)', async () => {
    const { createServer } = await import('node:http');
    const bodies: { text: string; budget: string; spent: number; limit: number; percent: number; period: string }[] = [];
    const server = createServer((req, res) => {
      let d = '';
      req.on('data', (c) => (d += c));
      req.on('end', () => {
        bodies.push(JSON.parse(d));
        res.end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as { port: number }).port;
      const env = envWithSpend();
      runCli(['budget', 'set', 'daily', '--limit', '6', '--timezone', 'UTC', '--webhook', `http://127.0.0.1:${port}/slack`], env);
      const { runCliAsync } = await import('../helpers/cli.js');
      const r = await runCliAsync(['budget', 'status'], env);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /alert: tokentally budget "daily" \(daily, scope all\) reached: spent \$6\.50 of \$6\.00/);
      // 50, 80 and 100% crossed at once: one message, the highest.
      assert.equal(bodies.length, 1);
      assert.deepEqual({ ...bodies[0], text: undefined }, {
        text: undefined, budget: 'daily', spent: 6.5, limit: 6, percent: 108.3, period: 'day', threshold: 100, periodKey: 'day:2026-11-20',
        resetsAt: '2026-11-21T00:00:00.000Z',
      });
      assert.match(bodies[0].text, /budget "daily"/);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

describe('tokentally route', () => {
  it('adds, lists, switches dry-run and removes rules in TOKENTALLY_HOME/routes.json', () => {
    const env = isolatedEnv();
    const add = runCli(['route', 'add', 'titles', '--to', 'claude-haiku-4-5', '--tools', 'no', '--max-input-tokens', '4000', '--json'], env);
    assert.equal(add.code, 0, add.stderr);
    assert.deepEqual(json(add.stdout).rule, { name: 'titles', match: { maxInputTokens: 4000, tools: false }, target: 'claude-haiku-4-5-20251001' });
    const add2 = runCli(['route', 'add', 'subs', '--to', 'claude-sonnet-4-6', '--agent', 'subagent', '--max-complexity', '0.3', '--model', 'claude-opus-*', '--dry-run', '--position', '1'], env);
    assert.equal(add2.code, 0, `${add2.stdout}\n${add2.stderr}`);
    const file = JSON.parse(readFileSync(join(env.TOKENTALLY_HOME!, 'routes.json'), 'utf8'));
    assert.deepEqual(file.rules.map((r: { name: string }) => r.name), ['subs', 'titles']);
    assert.equal(file.rules[0].dryRun, true);
    const list = runCli(['route', 'list'], env);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /1\s+subs\s+model claude-opus-\*, subagent, complexity <= 0\.3\s+claude-sonnet-4-6\s+dry-run/);
    assert.match(list.stdout, /2\s+titles\s+input <= 4000, no tools\s+claude-haiku-4-5-20251001\s+live/);
    assert.equal(json(runCli(['route', 'dry-run', 'on', '--json'], env).stdout).dryRun, true);
    assert.equal(json(runCli(['route', 'list', '--json'], env).stdout).dryRun, true);
    assert.equal(runCli(['route', 'rm', 'subs'], env).code, 0);
    assert.deepEqual(json(runCli(['route', 'list', '--json'], env).stdout).rules.map((r: { name: string }) => r.name), ['titles']);
  });

  it('refuses invalid rules with exit 2 naming the flag, and a broken routes.json naming the field', async () => {
    const env = isolatedEnv();
    const cases: [string[], RegExp][] = [
      [['route', 'add', 'r', '--to', 'claude-haiku-4-5', '--max-input-tokens', 'abc'], /--max-input-tokens: expected a whole number of tokens >= 0, got "abc"/],
      [['route', 'add', 'r', '--to', 'gpt-4o'], /--to: expected a known model id/],
      [['route', 'add', 'r'], /--to: required/],
      [['route', 'add', 'r', '--to', 'claude-haiku-4-5', '--agent', 'robot'], /--agent: expected "main" or "subagent"/],
      [['route', 'add', 'r', '--to', 'claude-haiku-4-5', '--tools', 'maybe'], /--tools: expected true or false/],
      [['route', 'add', 'r', '--to', 'claude-haiku-4-5', '--max-complexity', '7'], /--max-complexity: expected a number from 0 to 1/],
      [['route', 'add', 'r', '--to', 'claude-haiku-4-5', '--system', 'zzz'], /--system: expected system-prompt fingerprints/],
    ];
    for (const [args, pattern] of cases) {
      const r = runCli(args, env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
    }
    const { mkdirSync, writeFileSync } = await import('node:fs');
    mkdirSync(env.TOKENTALLY_HOME!, { recursive: true });
    writeFileSync(join(env.TOKENTALLY_HOME!, 'routes.json'), JSON.stringify({ rules: [{ name: 'x', target: 'claude-haiku-4-5', match: { minComplexity: 'high' } }] }));
    const broken = runCli(['route', 'list'], env);
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /routes\.json: rules\[0\]\.match\.minComplexity: expected a number from 0 to 1, got "high"/);
  });

  it('explains a recorded request: features, fingerprint, complexity and the decision', () => {
    const env = isolatedEnv();
    runCli(['route', 'add', 'no-opus', '--model', 'claude-opus-4-8', '--to', 'claude-haiku-4-5'], env);
    const r = runCli(['route', 'explain', sharedPath('fixtures', 'claude-code-lab', 'wire', 'request-main-after-tool_result.abbrev.json'), '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const out = json(r.stdout);
    assert.equal(out.features.model, 'claude-opus-4-8');
    assert.equal(out.features.thinking, 'adaptive');
    assert.match(out.features.systemFingerprint, /^[0-9a-f]{12}$/);
    // Haiku 4.5 has no adaptive thinking: the rule matches but the route is refused.
    assert.equal(out.decision.outcome, 'refused');
    assert.match(out.decision.reason, /adaptive thinking|output limit/);
    assert.equal(out.downgrade.plan.to, 'claude-sonnet-5-5');
  });

  it('report is empty before any proxy traffic', () => {
    const env = isolatedEnv();
    const r = runCli(['route', 'report', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(json(r.stdout), { decisions: 0, rows: [], savedUsd: 0, wouldSaveUsd: 0 });
  });
});

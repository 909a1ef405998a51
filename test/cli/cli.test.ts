import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isolatedEnv, runCli } from '../helpers/cli.js';
import { assistantLine, writeTranscript } from '../helpers/transcripts.js';

function envWithData() {
  const claude = mkdtempSync(join(tmpdir(), 'tt-cli-'));
  writeTranscript(claude, '-home-dev-app/s1.jsonl', [
    // Sonnet 4.6: 1M input = $3; 1M 1h writes = $6; 1M 5m writes = $3.75; 1M reads = $0.30; 100K output = $1.50
    assistantLine({ sessionId: 's1', cwd: '/home/dev/app', timestamp: '2026-11-20T23:30:00.000Z', model: 'claude-sonnet-4-6',
      input: 1_000_000, cacheWrite1h: 1_000_000, cacheWrite5m: 1_000_000, cacheRead: 1_000_000, output: 100_000 }),
    assistantLine({ sessionId: 's1', cwd: '/home/dev/app', timestamp: '2026-11-21T08:00:00.000Z', model: 'claude-opus-9-experimental',
      input: 500, output: 500 }),
  ]);
  writeTranscript(claude, '-home-dev-lib/s2.jsonl', [
    // Haiku 4.5: 2M input x $1 = $2
    assistantLine({ sessionId: 's2', cwd: '/home/dev/lib', timestamp: '2026-11-21T09:00:00.000Z', model: 'claude-haiku-4-5-20251001',
      input: 2_000_000, output: 0 }),
  ]);
  return isolatedEnv({ CLAUDE_CONFIG_DIR: claude });
}

describe('tokentally CLI', () => {
  it('runs daily by default and prints a table within 80 columns with totals and cache hit rate', () => {
    const env = envWithData();
    const r = runCli([], env);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0], /^Date\s+Input\s+Output\s+Cache W\s+Cache R\s+Total\s+Cost\s+Hit %$/);
    assert.ok(lines.some((l) => l.startsWith('2026-11-20')));
    assert.ok(lines.some((l) => /^Total\b/.test(l) && /\$16\.55\+\?/.test(l)), r.stdout);
    for (const l of lines) assert.ok(l.length <= 80, `line longer than 80 columns: ${JSON.stringify(l)}`);
    assert.match(r.stdout.replace(/\n/g, " "), /Cost unknown for 1,000 tokens of models without a price: claude-opus-9-experimental/);
  });

  it('prints ccusage-compatible JSON with our extra fields', () => {
    const env = envWithData();
    const r = runCli(['daily', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepEqual(j.daily.map((d: { date: string }) => d.date), ['2026-11-20', '2026-11-21']);
    const d0 = j.daily[0];
    for (const k of ['period', 'date', 'inputTokens', 'outputTokens', 'cacheCreationTokens', 'cacheReadTokens', 'totalTokens', 'totalCost', 'modelsUsed', 'modelBreakdowns']) {
      assert.ok(k in d0, `missing ${k}`);
    }
    // 3 + 6 + 3.75 + 0.30 + 1.50
    assert.equal(d0.totalCost, 14.55);
    assert.equal(d0.cacheCreation1hTokens, 1_000_000);
    assert.equal(d0.cacheCreation5mTokens, 1_000_000);
    assert.equal(d0.cacheCreationTokens, 2_000_000);
    assert.equal(d0.cacheHitRate, 0.25);
    const d1 = j.daily[1];
    assert.equal(d1.costComplete, false);
    assert.equal(d1.unknownCostTokens, 1000);
    assert.deepEqual(d1.unknownModels, ['claude-opus-9-experimental']);
    const unknownBreakdown = d1.modelBreakdowns.find((m: { modelName: string }) => m.modelName === 'claude-opus-9-experimental');
    assert.equal(unknownBreakdown.cost, null);
    assert.equal(j.totals.totalCost, 16.55);
    assert.equal(j.totals.totalTokens, 4_100_000 + 1000 + 2_000_000);
  });

  it('groups days in --timezone', () => {
    const env = envWithData();
    const r = runCli(['daily', '--json', '--timezone', 'Asia/Tokyo'], env);
    const j = JSON.parse(r.stdout);
    // 2026-11-20T23:30Z is 2026-11-21 08:30 in Tokyo; every request falls on the 21st there.
    assert.deepEqual(j.daily.map((d: { date: string }) => d.date), ['2026-11-21']);
  });

  it('puts each request on its local day across a DST switch', () => {
    const claude = mkdtempSync(join(tmpdir(), 'tt-cli-dst-'));
    // New York switches to EDT at 2026-03-08 07:00Z; local midnight is 05:00Z before and 04:00Z after.
    const stamps = ['2026-03-08T04:30:00.000Z', '2026-03-08T05:10:00.000Z', '2026-03-09T03:50:00.000Z', '2026-03-09T04:05:00.000Z', '2026-03-10T03:59:00.000Z'];
    writeTranscript(claude, 'p/dst.jsonl', stamps.map((timestamp, i) => assistantLine({ sessionId: 'dst', timestamp, input: 10 ** i, output: 0 })));
    const env = isolatedEnv({ CLAUDE_CONFIG_DIR: claude });
    const j = JSON.parse(runCli(['daily', '--json', '--timezone', 'America/New_York'], env).stdout);
    const intl = new Intl.DateTimeFormat('en-CA', { timeZone: 'America/New_York', year: 'numeric', month: '2-digit', day: '2-digit' });
    const want = new Map<string, number>();
    stamps.forEach((t, i) => want.set(intl.format(new Date(t)), (want.get(intl.format(new Date(t))) ?? 0) + 10 ** i));
    assert.deepEqual(j.daily.map((d: { date: string; inputTokens: number }) => [d.date, d.inputTokens]), [...want.entries()]);
    const w = JSON.parse(runCli(['weekly', '--json', '--timezone', 'America/New_York', '--start-of-week', 'monday'], env).stdout);
    assert.deepEqual(w.weekly.map((x: { week: string }) => x.week), ['2026-03-02', '2026-03-09']);
  });

  it('filters with --since/--until and --project', () => {
    const env = envWithData();
    const j = JSON.parse(runCli(['daily', '--json', '--since', '2026-11-21', '--until', '20261121'], env).stdout);
    assert.deepEqual(j.daily.map((d: { date: string }) => d.date), ['2026-11-21']);
    const p = JSON.parse(runCli(['project', '--json', '--project', 'lib'], env).stdout);
    assert.deepEqual(p.projects.map((x: { project: string }) => x.project), ['/home/dev/lib']);
    assert.equal(p.totals.totalCost, 2);
  });

  it('has weekly, monthly, session, project and model reports in JSON', () => {
    const env = envWithData();
    assert.deepEqual(JSON.parse(runCli(['weekly', '--json'], env).stdout).weekly.map((w: { week: string }) => w.week), ['2026-11-15']);
    assert.deepEqual(JSON.parse(runCli(['weekly', '--json', '--start-of-week', 'monday'], env).stdout).weekly.map((w: { week: string }) => w.week), ['2026-11-16']);
    assert.deepEqual(JSON.parse(runCli(['monthly', '--json'], env).stdout).monthly.map((m: { month: string }) => m.month), ['2026-11']);
    const s = JSON.parse(runCli(['session', '--json'], env).stdout);
    assert.deepEqual(s.session.map((x: { sessionId: string }) => x.sessionId), ['s1', 's2']);
    assert.equal(s.session[0].projectPath, '/home/dev/app');
    assert.equal(s.session[0].lastActivity, '2026-11-21T08:00:00.000Z');
    const m = JSON.parse(runCli(['model', '--json'], env).stdout);
    assert.deepEqual(m.models.map((x: { model: string }) => x.model), ['claude-sonnet-4-6', 'claude-haiku-4-5-20251001', 'claude-opus-9-experimental']);
  });

  it('prints CSV with a header, and --breakdown rows per model', () => {
    const env = envWithData();
    const r = runCli(['daily', '--csv', '--breakdown'], env);
    const rows = r.stdout.trim().split('\n');
    assert.equal(rows[0], 'date,model,inputTokens,outputTokens,cacheCreation5mTokens,cacheCreation1hTokens,cacheReadTokens,totalTokens,cost,costComplete,cacheHitRate,requests');
    assert.ok(rows.some((l) => l.startsWith('2026-11-21,claude-opus-9-experimental,500,500,') && l.includes(',,false,')));
  });

  it('exits 2 with a message (no stack trace) on bad usage', () => {
    const env = isolatedEnv();
    for (const args of [['--bogus'], ['daily', '--since', '2026-02-30'], ['daily', '--since', 'yesterday'],
      ['daily', '--timezone', 'Mars/Olympus'], ['daily', '--json', '--csv'], ['weekly', '--start-of-week', 'someday'],
      ['daily', '--since', '2026-11-02', '--until', '2026-11-01'], ['no-such-command']]) {
      const r = runCli(args, env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(r.stderr.length > 0);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
  });

  it('reports a corrupt database with what to do, exit 1, file untouched', () => {
    const env = isolatedEnv();
    mkdirSync(env.TOKENTALLY_HOME!, { recursive: true });
    const db = join(env.TOKENTALLY_HOME!, 'tokentally.db');
    writeFileSync(db, 'garbage '.repeat(1000));
    const r = runCli(['daily'], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /corrupt/);
    assert.match(r.stderr, /mv /);
    assert.equal(readFileSync(db, 'utf8'), 'garbage '.repeat(1000));
  });

  it('uses TOKENTALLY_HOME/prices.json, and names the bad field when it is wrong', () => {
    const env = envWithData();
    writeFileSync(join(env.TOKENTALLY_HOME!, '..', 'x'), '');
    mkdirSync(env.TOKENTALLY_HOME!, { recursive: true });
    const prices = join(env.TOKENTALLY_HOME!, 'prices.json');
    writeFileSync(prices, JSON.stringify({ models: { 'claude-opus-9-experimental': { input: 10, output: 50 } } }));
    const j = JSON.parse(runCli(['daily', '--json'], env).stdout);
    // 500 x $10 + 500 x $50 per MTok = $0.03
    assert.equal(j.totals.totalCost, 16.58);
    assert.equal(j.totals.costComplete, true);
    writeFileSync(prices, JSON.stringify({ models: { 'claude-opus-9-experimental': { input: -1, output: 50 } } }));
    const bad = runCli(['daily'], env);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /models\["claude-opus-9-experimental"\]\.input/);
  });

  it('lists prices, and says a model is unknown rather than $0', () => {
    const env = isolatedEnv();
    const r = runCli(['prices', '--json'], env);
    const j = JSON.parse(r.stdout);
    assert.ok(j.models.some((m: { id: string }) => m.id === 'claude-haiku-5-5'));
    const table = runCli(['prices'], env);
    assert.match(table.stdout, /claude-sonnet-4-5-20250929\s+\$3\s+\$15\s+\$3\.75\s+\$6\s+\$0\.30\s+>200K/);
    const unknown = runCli(['prices', '--model', 'claude-opus-9'], env);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stdout, /unknown model/);
  });

  it('sync --json says what it read; --no-sync reads nothing', () => {
    const env = envWithData();
    const none = JSON.parse(runCli(['daily', '--json', '--no-sync'], env).stdout);
    assert.equal(none.daily.length, 0);
    const s = JSON.parse(runCli(['sync', '--json'], env).stdout);
    assert.equal(s.files.read, 2);
    assert.equal(s.newRequests, 3);
    assert.equal(s.lines, 3);
    assert.equal(JSON.parse(runCli(['sync', '--json'], env).stdout).files.unchanged, 2);
  });

  it('never prints control characters from transcripts to the terminal', () => {
    const claude = mkdtempSync(join(tmpdir(), 'tt-cli-esc-'));
    writeTranscript(claude, 'p/s.jsonl', [assistantLine({ sessionId: 'esc', cwd: '/home/\u001b[2J\u001b]0;pwned\u0007evil', model: 'claude-\u001b[31mred' })]);
    const env = isolatedEnv({ CLAUDE_CONFIG_DIR: claude });
    for (const args of [['project'], ['model'], ['session'], ['daily', '--breakdown']]) {
      const r = runCli(args, env);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout, /[\u001b\u0007]/, `${args.join(' ')} printed a control character`);
    }
  });

  it('says where it looked when there are no transcripts', () => {
    const env = isolatedEnv();
    const r = runCli(['daily'], env);
    assert.equal(r.code, 0);
    assert.match(r.stderr, /no Claude Code transcript folder found/);
    assert.match(r.stdout, /No usage recorded/);
  });
});

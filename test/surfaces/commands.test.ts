import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isolatedEnv, runCli } from '../helpers/cli.js';
import { sharedPath } from '../helpers/paths.js';
import { assistantLine, writeTranscript } from '../helpers/transcripts.js';

/** The Claude Code lab's transcripts (49 requests, 2026-11-22 12:00-12:12 UTC), clock pinned at 12:15. */
function labEnv(now = '2026-11-22T12:15:00Z') {
  const claude = mkdtempSync(join(tmpdir(), 'tt-cmd-'));
  cpSync(sharedPath('fixtures', 'claude-code-lab', 'projects'), join(claude, 'projects'), { recursive: true });
  return isolatedEnv({ CLAUDE_CONFIG_DIR: claude, TOKENTALLY_NOW: now });
}

const within80 = (out: string) => {
  for (const l of out.trimEnd().split('\n')) assert.ok(l.length <= 80, `line longer than 80 columns: ${JSON.stringify(l)}`);
};
const noStack = (s: string) => assert.doesNotMatch(s, /\n\s+at /);

describe('tokentally blocks', () => {
  it('lists 5-hour blocks with gaps as ccusage draws them, in JSON and an 80-column table', () => {
    const claude = mkdtempSync(join(tmpdir(), 'tt-blk-'));
    // ccusage-study §b.6: 10:45, 14:50, 15:50, 21:00 UTC -> 10:00-15:00 (2), 15:00-20:00, gap 20:50-21:00, 21:00-02:00.
    writeTranscript(claude, '-home-dev-app/s1.jsonl', ['10:45', '14:50', '15:50', '21:00'].map((t) =>
      assistantLine({ sessionId: 's1', timestamp: `2026-11-20T${t}:00.000Z`, model: 'claude-sonnet-4-6', input: 1_000_000, output: 0 })));
    writeTranscript(claude, '-home-dev-app/s2.jsonl', [
      assistantLine({ sessionId: 's2', timestamp: '2026-11-20T21:30:00.000Z', model: 'claude-opus-9', input: 10, output: 10 })]);
    const env = isolatedEnv({ CLAUDE_CONFIG_DIR: claude, TOKENTALLY_NOW: '2026-11-20T22:00:00Z' });
    const j = JSON.parse(runCli(['blocks', '--json'], env).stdout);
    assert.deepEqual(j.blocks.map((b: { id: string; entries: number; isActive: boolean }) => [b.id, b.entries, b.isActive]), [
      ['2026-11-20T10:00:00.000Z', 2, false], ['2026-11-20T15:00:00.000Z', 1, false], ['gap-2026-11-20T20:50:00.000Z', 0, false],
      ['2026-11-20T21:00:00.000Z', 2, true],
    ]);
    const active = j.blocks[3];
    assert.equal(active.costUSD, 3);
    assert.equal(active.costComplete, false);
    assert.equal(active.unknownCostTokens, 20);
    assert.equal(active.projection.remainingMinutes, 240);
    assert.equal(active.burnRate.costPerHour, 6); // $3 over the 30 minutes from 21:00 to 21:30
    const table = runCli(['blocks', '--no-sync'], env);
    assert.equal(table.code, 0, table.stderr);
    within80(table.stdout);
    assert.match(table.stdout, /^2026-11-20 21:00 \*\s+4h00m left\s+2\s+1\.00M\s+\$3\.00\+\?\s+\$6\.00\s+\$27\.00$/m);
    assert.match(table.stdout, /^\(idle 20:50-21:00\)\s+10m$/m);
    const recent = JSON.parse(runCli(['blocks', '--json', '--no-sync', '--since', '2026-11-20', '--until', '2026-11-20'], env).stdout);
    assert.equal(recent.blocks.length, 4);
  });

  it('shows only the active block with --active, and says so when there is none', () => {
    const env = labEnv();
    const a = runCli(['blocks', '--active'], env);
    assert.equal(a.code, 0, a.stderr);
    within80(a.stdout);
    assert.match(a.stdout, /^Active block 2026-11-22 12:00-17:00 \(UTC\), 4h45m left$/m);
    assert.match(a.stdout, /^ {2}Requests {3}49, last at 12:12$/m);
    assert.match(a.stdout, /^ {2}Cost {7}\$0\.71$/m);
    const j = JSON.parse(runCli(['blocks', '--active', '--json', '--no-sync'], env).stdout);
    assert.equal(j.blocks.length, 1);
    assert.equal(j.blocks[0].entries, 49);
    const later = runCli(['blocks', '--active', '--no-sync'], { ...env, TOKENTALLY_NOW: '2026-11-22T18:00:00Z' });
    assert.match(later.stdout, /No active block/);
  });

  it('rejects bad flags with exit 2 naming the flag', () => {
    const env = labEnv();
    for (const args of [['--session-length', 'x'], ['--since', '2026-13-01'], ['--timezone', 'Nowhere/Land'], ['--active', '--recent']]) {
      const r = runCli(['blocks', '--no-sync', ...args], env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(r.stderr.includes(args[0]) || /time zone/.test(r.stderr), r.stderr);
      noStack(r.stderr);
    }
  });
});

describe('tokentally forecast', () => {
  it('explains its projection in the table and in JSON, within 80 columns', () => {
    const claude = mkdtempSync(join(tmpdir(), 'tt-fc-'));
    // $3 (1M Sonnet 4.6 input) on each of 11-10..11-19, and on 11-20 before noon.
    writeTranscript(claude, '-home-dev-app/s.jsonl', Array.from({ length: 11 }, (_, i) => assistantLine({
      sessionId: 's', timestamp: `2026-11-${String(10 + i).padStart(2, '0')}T09:00:00.000Z`, model: 'claude-sonnet-4-6', input: 1_000_000, output: 0 })));
    const env = isolatedEnv({ CLAUDE_CONFIG_DIR: claude, TOKENTALLY_NOW: '2026-11-20T12:00:00Z' });
    const r = runCli(['forecast'], env);
    assert.equal(r.code, 0, r.stderr);
    within80(r.stdout);
    assert.match(r.stdout, /Month to date\s+\$33\.00/);
    assert.match(r.stdout, /Daily burn\s+\$3\.00 {2}mean of 7 days \(11-13\.\.11-19\), 7 active/);
    assert.match(r.stdout, /Projected month\s+\$64\.50/);
    assert.match(r.stdout, /Method:/);
    const j = JSON.parse(runCli(['forecast', '--json', '--no-sync', '--days', '3'], env).stdout);
    assert.equal(j.month, '2026-11');
    assert.equal(j.basis.days.length, 3);
    assert.equal(j.projection.totalUSD, 64.5);
    // No spread in the basis days: the range collapses onto the projection.
    assert.equal(j.projection.lowUSD, 64.5);
    assert.equal(j.projection.highUSD, 64.5);
    assert.match(j.method, /month-to-date/);
    const bad = runCli(['forecast', '--days', '0'], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--days/);
  });
});

describe('tokentally live (one frame)', () => {
  it('prints one frame when stdout is not a terminal, and a JSON snapshot with --json', () => {
    const env = labEnv();
    const r = runCli(['live'], env);
    assert.equal(r.code, 0, r.stderr);
    within80(r.stdout);
    assert.match(r.stdout, /^Current block {3}12:00-17:00, 4h45m left$/m);
    assert.match(r.stdout, /^Budgets {9}no budgets$/m);
    assert.doesNotMatch(r.stdout, /\x1b\[/);
    const j = JSON.parse(runCli(['live', '--json', '--no-sync'], env).stdout);
    assert.equal(j.block.entries, 49);
    assert.equal(j.today.requests, 49);
    assert.equal(j.budgets, null);
    assert.equal(j.activeSessions.length, 14);
  });

  it('shows budgets when some are defined', () => {
    const env = labEnv();
    assert.equal(runCli(['budget', 'set', 'daily', '--limit', '0.5', '--period', 'day', '--action', 'warn'], env).code, 0);
    assert.equal(runCli(['budget', 'set', 'blk', '--limit', '10', '--period', 'block5h', '--action', 'block'], env).code, 0);
    const r = runCli(['live', '--once'], env);
    assert.equal(r.code, 0, r.stderr);
    within80(r.stdout);
    assert.match(r.stdout, /^ {2}blk\s+\$0\.71 \/ \$10\.00\s+7% {2}block5h, 4h45m left, proj \$\d+\.\d\d$/m);
    assert.match(r.stdout, /^ {2}daily\s+\$0\.71 \/ \$0\.50\s+142% {2}day, 11h45m left {2}WARN$/m);
    const j = JSON.parse(runCli(['live', '--json', '--no-sync'], env).stdout);
    assert.deepEqual(j.budgets.map((b: { name: string }) => b.name).sort(), ['blk', 'daily']);
  });

  it('rejects a bad --interval with exit 2', () => {
    const r = runCli(['live', '--interval', '0'], labEnv());
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--interval/);
  });
});

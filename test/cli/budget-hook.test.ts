/**
 * `tokentally hook` as Claude Code runs it: the recorded UserPromptSubmit JSON on stdin, a spawned CLI.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import { emptyUsage, type RequestRecord } from '../../src/core/types.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { isolatedEnv, runCli } from '../helpers/cli.js';
import { sharedPath } from '../helpers/paths.js';
import { appendTranscript, assistantLine } from '../helpers/transcripts.js';

const LAB = sharedPath('fixtures', 'claude-code-lab');
const prices = PriceBook.builtin();

/** The recorded hook inputs, with transcript paths pointed at the shared copies of those transcripts. */
function recordedInputs(): Record<string, unknown>[] {
  return readFileSync(join(LAB, 'hooks', 'UserPromptSubmit.jsonl'), 'utf8').trim().split('\n').map((l) => {
    const d = JSON.parse(l) as Record<string, unknown>;
    d.transcript_path = String(d.transcript_path).replace(/^.*\/projects\//, `${LAB}/projects/`);
    return d;
  });
}

/** Cost of a transcript computed here, independently: the final usage of each message id, priced. */
function transcriptCost(path: string): number {
  const byId = new Map<string, { model: string; ts: number; usage: RequestRecord['usage'] }>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const d = JSON.parse(line);
    if (d.type !== 'assistant' || !d.message?.usage) continue;
    const u = d.message.usage;
    byId.set(d.message.id, {
      model: d.message.model, ts: Date.parse(d.timestamp),
      usage: { ...emptyUsage(), input: u.input_tokens, output: u.output_tokens, cacheRead: u.cache_read_input_tokens,
        cacheWrite5m: u.cache_creation?.ephemeral_5m_input_tokens ?? u.cache_creation_input_tokens, cacheWrite1h: u.cache_creation?.ephemeral_1h_input_tokens ?? 0 },
    });
  }
  return [...byId.values()].reduce((a, r) => a + prices.price(r.model, r.ts, r.usage).cost!, 0);
}

const NOW = '2026-11-22T13:00:00Z';
const hookEnv = () => isolatedEnv({ TOKENTALLY_NOW: NOW, TOKENTALLY_DESKTOP_NOTIFY: '0' });

describe('tokentally hook (UserPromptSubmit)', () => {
  const input = recordedInputs()[0];
  const stdin = JSON.stringify(input);

  it('allows silently when there is no database or no budget, and never creates a database', () => {
    const env = hookEnv();
    const r = runCli(['hook'], env, stdin);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, '', '']);
    assert.equal(existsSync(join(env.TOKENTALLY_HOME!, 'tokentally.db')), false);
    runCli(['budget', 'set', 'big', '--limit', '1000', '--action', 'block', '--timezone', 'UTC'], env);
    const r2 = runCli(['hook'], env, stdin);
    assert.deepEqual([r2.code, r2.stdout, r2.stderr], [0, '', '']);
  });

  it('blocks with exit 2 and a reason naming the budget, spent, limit and reset once a block budget is exhausted', () => {
    const env = hookEnv();
    runCli(['budget', 'set', 'tiny', '--limit', '0.01', '--action', 'block', '--timezone', 'UTC'], env);
    const r = runCli(['hook'], env, stdin);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    // The hook imported the session's transcript itself: its cost is the spend.
    const spent = transcriptCost(String(input.transcript_path));
    assert.ok(spent > 0.01);
    assert.ok(r.stderr.includes(`tokentally budget "tiny" (daily, scope all) reached: spent $${spent.toFixed(2)} of $0.01; `
      + 'resets 2026-11-23 00:00 UTC (in 11h 00m)'), r.stderr);
    // The same answer as JSON, for hooks configured to read it.
    const j = runCli(['hook', '--decision-json'], env, stdin);
    assert.equal(j.code, 0);
    const decision = JSON.parse(j.stdout);
    assert.equal(decision.decision, 'block');
    assert.match(decision.reason, /budget "tiny".*spent \$0\.\d\d of \$0\.01/);
    // The 100% alert was recorded once.
    const alerts = JSON.parse(runCli(['alerts', '--json'], env).stdout).alerts;
    assert.deepEqual(alerts.map((a: { threshold: number; source: string }) => `${a.threshold} ${a.source}`).sort(), ['100 hook', '50 hook', '80 hook']);
  });

  it('only applies budgets whose scope matches the prompt (project, session, action)', () => {
    const env = hookEnv();
    runCli(['budget', 'set', 'other-project', '--limit', '0.01', '--action', 'block', '--scope', 'project:/home/dev/elsewhere'], env);
    runCli(['budget', 'set', 'warn-only', '--limit', '0.01', '--action', 'warn'], env);
    assert.equal(runCli(['hook'], env, stdin).code, 0);
    runCli(['budget', 'set', 'this-project', '--limit', '0.01', '--action', 'block', '--scope', 'project:/home/dev/demo-app'], env);
    const r = runCli(['hook'], env, stdin);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /budget "this-project"/);
    assert.doesNotMatch(r.stderr, /other-project|warn-only/);
    // A per-session budget counts only this session.
    const env2 = hookEnv();
    runCli(['budget', 'set', 'per-session', '--limit', '0.01', '--action', 'block', '--period', 'session'], env2);
    const [, second] = recordedInputs();
    assert.equal(runCli(['hook'], env2, JSON.stringify({ ...second, transcript_path: '/nonexistent.jsonl' })).code, 0, 'nothing spent in that session yet');
    assert.equal(runCli(['hook'], env2, stdin).code, 2);
  });

  it('never breaks the prompt: malformed stdin or other events are allowed', () => {
    const env = hookEnv();
    runCli(['budget', 'set', 'tiny', '--limit', '0.01', '--action', 'block'], env);
    for (const bad of ['', 'not json', '[1,2]', '{"session_id": 1']) {
      const r = runCli(['hook'], env, bad);
      assert.equal(r.code, 0, `stdin ${JSON.stringify(bad)}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /not the hook JSON object; prompt allowed/);
    }
    const other = runCli(['hook'], env, JSON.stringify({ ...input, hook_event_name: 'Stop' }));
    assert.deepEqual([other.code, other.stdout, other.stderr], [0, '', '']);
    // A mistyped flag in settings.json must not turn into exit 2 (which would block every prompt).
    const typo = runCli(['hook', '--no-synk'], env, JSON.stringify({ ...input, transcript_path: '/nonexistent.jsonl' }));
    assert.equal(typo.code, 0, typo.stderr);
    assert.match(typo.stderr, /ignoring unknown argument\(s\) --no-synk/);
  });
  // Speed with a large history is measured by `npm run bench:hook`, not asserted in a timed test.

});

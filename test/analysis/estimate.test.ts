import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { currentFamilies, estimate, ModelArgError, parseModelId, resolveModels } from '../../src/analysis/estimate.js';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import { isolatedEnv, runCli } from '../helpers/cli.js';

const prices = PriceBook.builtin();
const AT = Date.parse('2026-11-22T12:00:00Z');
// The representative session of ../shared/seeds/003 ("Cost of One Session: Worked Example").
const SESSION = { input: 45_000, output: 13_000, cacheRead: 38_000, cacheWrite5m: 0, cacheWrite1h: 0 };
const cents = (x: number) => Math.round(x * 100) / 100;

describe('estimate (the cost article\'s calculator)', () => {
  it('reproduces the article\'s worked examples: $0.34 Sonnet 4.6, $0.57 Opus 4.6, $0.11 Haiku 4.5', () => {
    const e = estimate(prices, { sessionsPerDay: 6, days: 18, tokens: SESSION, models: resolveModels(prices, 'sonnet-4-6,opus-4-6,haiku-4-5'), at: AT });
    const by = Object.fromEntries(e.rows.map((r) => [r.model, r]));
    assert.deepEqual(Object.keys(by), ['claude-sonnet-4-6', 'claude-opus-4-6', 'claude-haiku-4-5-20251001']);
    assert.equal(cents(by['claude-sonnet-4-6'].perSession.total), 0.34);
    assert.equal(cents(by['claude-opus-4-6'].perSession.total), 0.57);
    assert.equal(cents(by['claude-haiku-4-5-20251001'].perSession.total), 0.11);
    // The article's line items: Sonnet input $0.135, output $0.195, cache reads $0.011 (38K x $0.30/M = 0.0114).
    const s = by['claude-sonnet-4-6'].perSession;
    assert.ok(Math.abs(s.input - 0.135) < 1e-12 && Math.abs(s.output - 0.195) < 1e-12 && Math.abs(s.cacheRead - 0.0114) < 1e-12);
    // Opus: input $0.225, output $0.325, cache reads $0.019; Haiku: $0.045, $0.065, $0.004 (0.0038).
    const o = by['claude-opus-4-6'].perSession;
    assert.ok(Math.abs(o.input - 0.225) < 1e-12 && Math.abs(o.output - 0.325) < 1e-12 && Math.abs(o.cacheRead - 0.019) < 1e-12);
    const h = by['claude-haiku-4-5-20251001'].perSession;
    assert.ok(Math.abs(h.input - 0.045) < 1e-12 && Math.abs(h.output - 0.065) < 1e-12 && Math.abs(h.cacheRead - 0.0038) < 1e-12);
    // "$0.34/session x 6 sessions/day x 18 active days = ~$37/month per light developer"
    assert.equal(e.sessions, 108);
    assert.equal(Math.round(by['claude-sonnet-4-6'].monthly), 37);
    assert.ok(Math.abs(by['claude-sonnet-4-6'].monthly - 0.3414 * 108) < 1e-9);
  });

  it('prices cache reads at 0.1 x the input rate for the article\'s models, and at the catalog rate elsewhere', () => {
    for (const id of ['claude-sonnet-4-6', 'claude-opus-4-6', 'claude-haiku-4-5']) {
      const [r] = estimate(prices, { sessionsPerDay: 1, days: 1, tokens: SESSION, models: [id], at: AT }).rows;
      assert.ok(Math.abs(r.rates.cacheRead - 0.1 * r.rates.input) < 1e-12, id);
    }
    // Opus 5.5 reads cost 0.05 x input ($0.20 of $4): the article's 0.1 x would overstate them.
    const [r] = estimate(prices, { sessionsPerDay: 1, days: 1, tokens: SESSION, models: ['claude-opus-5-5'], at: AT }).rows;
    assert.equal(r.rates.cacheRead, 0.2);
    assert.ok(Math.abs(r.perSession.cacheRead - 38_000 * 0.2e-6) < 1e-12);
  });

  it('uses flat per-token rates: no long-context premium on a session total above a per-request threshold', () => {
    // Haiku 5.5 charges 5x above a 100K-token prompt per request; a 300K-token session is many requests.
    const [r] = estimate(prices, { sessionsPerDay: 1, days: 1, tokens: { ...SESSION, input: 300_000 }, models: ['claude-haiku-5-5'], at: AT }).rows;
    assert.ok(Math.abs(r.perSession.input - 300_000 * 0.1e-6) < 1e-12);
  });

  it('adds optional cache writes at the 5-minute and 1-hour rates', () => {
    const [r] = estimate(prices, { sessionsPerDay: 1, days: 1, tokens: { ...SESSION, cacheWrite5m: 1000, cacheWrite1h: 1000 }, models: ['claude-sonnet-4-6'], at: AT }).rows;
    assert.ok(Math.abs(r.perSession.cacheWrite - (1000 * 3.75e-6 + 1000 * 6e-6)) < 1e-12);
  });

  it('resolves aliases, full and dated ids, families and comma lists; rejects unknown names', () => {
    assert.deepEqual(resolveModels(prices, 'sonnet-4-6, claude-opus-4-6,claude-haiku-4-5-20251001,haiku-4-5'),
      ['claude-sonnet-4-6', 'claude-opus-4-6', 'claude-haiku-4-5-20251001']);
    assert.deepEqual(resolveModels(prices, 'opus,sonnet,haiku'), ['claude-opus-5-5', 'claude-sonnet-5-5', 'claude-haiku-5-5']);
    assert.throws(() => resolveModels(prices, 'gpt-4o'), (e: Error) => e instanceof ModelArgError && /--model.*gpt-4o/.test(e.message));
    assert.equal(parseModelId('claude-3-5-haiku-20241022')?.family, 'haiku');
    assert.deepEqual(parseModelId('claude-sonnet-4-6')?.version, [4, 6]);
    // Default rows: the newest model of each family.
    assert.deepEqual(currentFamilies(prices).map((m) => m.id).sort(),
      ['claude-fable-5-2', 'claude-haiku-5-5', 'claude-mythos-5-2', 'claude-opus-5-5', 'claude-sonnet-5-5']);
  });
});

describe('tokentally estimate', () => {
  const args = ['estimate', '--sessions-per-day', '6', '--days', '18', '--model', 'sonnet-4-6,opus-4-6,haiku-4-5',
    '--input', '45000', '--output', '13000', '--cache-read', '38000'];

  it('prints the worked examples as a table within 80 columns', () => {
    const r = runCli(args, isolatedEnv());
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    for (const l of lines) assert.ok(l.length <= 80, `line longer than 80 columns: ${JSON.stringify(l)}`);
    assert.match(r.stdout, /^Sonnet 4\.6\s+\$0\.135\s+\$0\.195\s+\$0\.011\s+\$0\.34\s+\$36\.87$/m);
    assert.match(r.stdout, /^Opus 4\.6\s+\$0\.225\s+\$0\.325\s+\$0\.019\s+\$0\.57\s+\$61\.45$/m);
    assert.match(r.stdout, /^Haiku 4\.5\s+\$0\.045\s+\$0\.065\s+\$0\.004\s+\$0\.11\s+\$12\.29$/m);
    assert.match(r.stdout, /6 sessions\/day x 18 active days = 108 sessions\/month/);
  });

  it('prints JSON with per-session and monthly figures per model', () => {
    const r = runCli([...args, '--json'], isolatedEnv());
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.sessions, 108);
    assert.deepEqual(j.models.map((m: { perSession: { total: number } }) => cents(m.perSession.total)), [0.34, 0.57, 0.11]);
    assert.equal(j.models[0].ratesPerMTok.cacheRead, 0.3);
    assert.match(j.formula, /cache read/);
  });

  it('accepts 45K-style amounts and defaults to one row per current model family', () => {
    const r = runCli(['estimate', '--input', '45K', '--json'], isolatedEnv());
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.tokensPerSession.input, 45_000);
    assert.ok(j.models.length >= 3);
  });

  it('rejects bad values with exit 2, naming the flag, without a stack trace', () => {
    for (const [flag, value] of [['--sessions-per-day', 'many'], ['--days', '0'], ['--days', '40'], ['--input', '-5'],
      ['--output', '1.5'], ['--model', 'gpt-4o']]) {
      const r = runCli(['estimate', flag, value], isolatedEnv());
      assert.equal(r.code, 2, `${flag} ${value}: ${r.stderr}`);
      assert.ok(r.stderr.includes(flag), `${flag}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    }
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import { emptyUsage } from '../../src/core/types.js';
import { PolicyValidationError } from '../../src/policy/budgets.js';
import { capabilityProblem, ladderBelow, modelFamily, planDowngrade } from '../../src/policy/downgrade.js';
import { requestFeatures, systemFingerprint, type RequestFeatures } from '../../src/policy/features.js';
import {
  complexityScore, decideRoute, parseRoutingConfig, routeReport, rewriteModel, settleDecision, validateRule, type RoutingConfig,
} from '../../src/policy/routing.js';
import { sharedPath } from '../helpers/paths.js';

const prices = PriceBook.builtin();
const NOW = Date.parse('2026-11-20T12:00:00Z');

function features(over: Partial<RequestFeatures> = {}): RequestFeatures {
  return {
    model: 'claude-opus-4-8', bodyBytes: 40_000, estInputTokens: 10_000, maxTokens: 32_000, toolCount: 0, hasTools: false,
    thinking: null, thinkingInHistory: false, effort: null, fast: false, isSubagent: false, systemFingerprint: null, messageCount: 1,
    lastUserChars: 0, lastUserCodeBlocks: 0, toolResultTurn: false, hardWords: 0, easyWords: 0, ...over,
  };
}

function refusedRule(raw: unknown, field: string, pattern: RegExp): void {
  assert.throws(() => parseRoutingConfig({ rules: [raw] }, prices), (err: unknown) => {
    assert.ok(err instanceof PolicyValidationError, String(err));
    assert.equal(err.field, field);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('downgrade ladder', () => {
  it('parses model families and generations', () => {
    assert.deepEqual(modelFamily('claude-opus-4-1-20250805'), { family: 'opus', generation: 4.1 });
    assert.deepEqual(modelFamily('claude-sonnet-4-20250514'), { family: 'sonnet', generation: 4 });
    assert.deepEqual(modelFamily('claude-3-5-haiku-20241022'), { family: 'haiku', generation: 3.5 });
    assert.deepEqual(modelFamily('claude-haiku-5-5'), { family: 'haiku', generation: 5.5 });
    assert.deepEqual(modelFamily('claude-mythos-preview'), { family: 'mythos', generation: undefined });
    assert.equal(modelFamily('gpt-4o'), undefined);
  });

  it('steps opus -> sonnet -> haiku of the same generation, else the latest one', () => {
    const ids = (m: string, o?: string[][]) => ladderBelow(m, prices, o, NOW).map((x) => x.id);
    assert.deepEqual(ids('claude-opus-4-6'), ['claude-sonnet-4-6', 'claude-haiku-5-5']);
    assert.deepEqual(ids('claude-opus-4-5'), ['claude-sonnet-4-5-20250929', 'claude-haiku-4-5-20251001']);
    assert.deepEqual(ids('claude-opus-4-8'), ['claude-sonnet-5-5', 'claude-haiku-5-5']);
    assert.deepEqual(ids('claude-fable-5'), ['claude-opus-5', 'claude-sonnet-5', 'claude-haiku-5-5']);
    assert.deepEqual(ids('claude-haiku-4-5'), []);
    assert.deepEqual(ids('claude-opus-4-8', [['claude-opus-4-8', 'claude-sonnet-4-6', 'claude-haiku-4-5']]),
      ['claude-sonnet-4-6', 'claude-haiku-4-5-20251001']);
  });

  it('never downgrades to a model that lacks what the conversation uses', () => {
    const ladder = [['claude-opus-4-6', 'claude-sonnet-4-5', 'claude-haiku-4-5']];
    // A 1M-context conversation: ~300K tokens do not fit Sonnet 4.5's or Haiku 4.5's 200K window.
    const big = planDowngrade(prices, features({ model: 'claude-opus-4-6', estInputTokens: 300_000, maxTokens: 8000 }), ladder, NOW);
    assert.equal(big.plan, null);
    assert.deepEqual(big.skipped.map((s) => s.model), ['claude-sonnet-4-5-20250929', 'claude-haiku-4-5-20251001']);
    assert.match(big.skipped[0].reason, /exceeds claude-sonnet-4-5-20250929's 200000-token context window/);
    // Adaptive thinking exists from 4.6: the default ladder (Sonnet 4.6) takes it, Haiku 4.5 would not.
    const adaptive = features({ model: 'claude-opus-4-6', thinking: 'adaptive', maxTokens: 32_000 });
    assert.equal(planDowngrade(prices, adaptive, [], NOW).plan?.to, 'claude-sonnet-4-6');
    assert.match(capabilityProblem(prices.find('claude-haiku-4-5')!, adaptive)!, /adaptive thinking/);
    assert.match(capabilityProblem(prices.find('claude-3-5-haiku')!, features({ thinkingInHistory: true, maxTokens: 1000 }))!, /no extended thinking/);
    assert.match(capabilityProblem(prices.find('claude-3-5-haiku')!, features({ maxTokens: 64_000 }))!, /output limit/);
    assert.equal(capabilityProblem(prices.find('claude-haiku-4-5')!, features({ thinking: 'enabled', maxTokens: 32_000 })), null);
  });
});

describe('request features', () => {
  it('reads the recorded Claude Code request: thinking, tools, tool-result turn, fingerprint without the billing header', () => {
    const wire = JSON.parse(readFileSync(sharedPath('fixtures', 'claude-code-lab', 'wire', 'request-main-after-tool_result.abbrev.json'), 'utf8'));
    const f = requestFeatures(wire.body, 86_082, wire.headers);
    assert.equal(f.model, 'claude-opus-4-8');
    assert.equal(f.estInputTokens, 21_521);
    assert.equal(f.maxTokens, 64_000);
    assert.equal(f.thinking, 'adaptive');
    assert.equal(f.thinkingInHistory, true);
    assert.equal(f.effort, 'high');
    assert.equal(f.hasTools, true);
    assert.equal(f.isSubagent, false);
    assert.equal(f.toolResultTurn, true);
    assert.equal(f.messageCount, 4);
    assert.equal(f.lastUserChars, 'say hi'.length, 'system reminders are not the user\'s words');
    const expected = createHash('sha256').update(wire.body.system.slice(1).map((b: { text: string }) => b.text).join('\n')).digest('hex').slice(0, 12);
    assert.equal(f.systemFingerprint, expected);
    const other = structuredClone(wire.body);
    other.system[0].text = 'x-anthropic-billing-header: cc_version=9.9.9; cc_entrypoint=cli;';
    assert.equal(systemFingerprint(other.system), expected, 'the per-version billing header does not change the fingerprint');
    assert.equal(requestFeatures(wire.body, 10, { 'x-claude-code-agent-id': 'a148e86f38bc66d75' }).isSubagent, true);
    assert.equal(requestFeatures('not json', 3).model, null);
  });

  it('scores complexity with the documented weights', () => {
    // Nothing at all: 0.
    assert.equal(complexityScore(features({ estInputTokens: 0, maxTokens: 0, messageCount: 0 })), 0);
    // 999 chars (log10(1000)/4 = 0.75 -> 0.225), 3 hard words (0.2), thinking (0.15), 20 messages (0.05),
    // 1 code block (0.05), 50K tokens (0.05), 16K max_tokens (0.025) = 0.75
    const hard = features({ lastUserChars: 999, hardWords: 3, thinking: 'adaptive', messageCount: 20, lastUserCodeBlocks: 1,
      estInputTokens: 50_000, maxTokens: 16_000 });
    assert.equal(complexityScore(hard), 0.75);
    // 9 chars (0.075) and 2 easy words (-0.1), nothing else: clamped at 0.
    assert.equal(complexityScore(features({ lastUserChars: 9, easyWords: 2, estInputTokens: 0, maxTokens: 0, messageCount: 0 })), 0);
  });
});

describe('routing rules', () => {
  it('refuses invalid rules with a message naming the field', () => {
    const ok = { name: 'r', target: 'claude-haiku-4-5', match: {} };
    refusedRule({ ...ok, target: 'gpt-4o' }, 'rules[0].target', /known model id/);
    refusedRule({ ...ok, name: 'no spaces' }, 'rules[0].name', /letters, digits/);
    refusedRule({ ...ok, match: { maxInputTokens: 'abc' } }, 'rules[0].match.maxInputTokens', /whole number of tokens >= 0, got "abc"/);
    refusedRule({ ...ok, match: { maxComplexity: 2 } }, 'rules[0].match.maxComplexity', /from 0 to 1/);
    refusedRule({ ...ok, match: { agent: 'robot' } }, 'rules[0].match.agent', /"main" or "subagent"/);
    refusedRule({ ...ok, match: { system: ['xyz'] } }, 'rules[0].match.system', /12 lowercase hex digits/);
    refusedRule({ ...ok, match: { colour: 'red' } }, 'rules[0].match.colour', /unknown condition/);
    refusedRule({ ...ok, match: { minInputTokens: 10, maxInputTokens: 5 } }, 'rules[0].match.minInputTokens', /above maxInputTokens/);
    refusedRule({ ...ok, dryRun: 'yes' }, 'rules[0].dryRun', /true or false/);
    assert.throws(() => parseRoutingConfig({ rules: [ok, ok] }, prices), /rules\[1\]\.name: duplicate rule name "r"/);
    assert.throws(() => parseRoutingConfig({ rules: [], ladder: [['claude-opus-4-8', 'nope']] }, prices), /ladder\[0\]\[1\]: unknown model "nope"/);
    assert.throws(() => parseRoutingConfig({ rulez: [] }, prices), /rulez: unknown setting/);
    // The CLI names its flags instead.
    assert.throws(() => validateRule({ name: 'r', target: 'claude-haiku-4-5', match: { maxInputTokens: -1 } }, prices, 'rule',
      (p) => (p === 'match.maxInputTokens' ? '--max-input-tokens' : p)), /: --max-input-tokens: expected a whole number/);
  });

  const config = (over: Partial<RoutingConfig> = {}): RoutingConfig => parseRoutingConfig({
    rules: [
      { name: 'titles', match: { tools: false, maxInputTokens: 4000 }, target: 'claude-haiku-4-5' },
      { name: 'simple-subagents', match: { agent: 'subagent', maxComplexity: 0.3, model: 'claude-opus-*' }, target: 'claude-sonnet-4-6', dryRun: true },
      { name: 'long-to-haiku', match: { minInputTokens: 250_000 }, target: 'claude-haiku-4-5' },
    ],
    ...over,
  }, prices);

  it('routes by the first matching rule, records dry runs, and refuses targets that lack a capability', () => {
    const title = decideRoute(config(), features({ estInputTokens: 900, bodyBytes: 3600, maxTokens: 100 }), prices, NOW, 's1')!;
    assert.equal(title.rule, 'titles');
    assert.equal(title.outcome, 'routed');
    assert.equal(title.modelTo, 'claude-haiku-4-5-20251001');
    // Opus 4.8 vs Haiku 4.5 for 900 input + 100 output tokens: 900 x 5e-6 + 100 x 25e-6 = 0.007; 900 x 1e-6 + 100 x 5e-6 = 0.0014
    assert.ok(Math.abs(title.estCostFrom! - 0.007) < 1e-12);
    assert.ok(Math.abs(title.estCostTo! - 0.0014) < 1e-12);

    const sub = decideRoute(config(), features({ isSubagent: true, hasTools: true, toolCount: 3 }), prices, NOW)!;
    assert.deepEqual([sub.rule, sub.outcome, sub.modelTo], ['simple-subagents', 'dry-run', 'claude-sonnet-4-6']);
    assert.equal(decideRoute(config(), features({ isSubagent: false, hasTools: true }), prices, NOW), null, 'no rule matches the main loop');

    // A 1M-context conversation (~300K tokens) must not go to Haiku 4.5's 200K window.
    const long = decideRoute(config(), features({ model: 'claude-opus-4-6', estInputTokens: 300_000, bodyBytes: 1_200_000, hasTools: true }), prices, NOW)!;
    assert.equal(long.outcome, 'refused');
    assert.match(long.reason!, /context window/);

    // Global dry run applies to rules without their own setting.
    assert.equal(decideRoute(config({ dryRun: true }), features({ estInputTokens: 900, maxTokens: 100 }), prices, NOW)!.outcome, 'dry-run');
    // Already on the target: nothing to do.
    assert.equal(decideRoute(config(), features({ model: 'claude-haiku-4-5', estInputTokens: 900 }), prices, NOW), null);
  });

  it('reports savings made and would-be savings from dry runs, from settled usage', () => {
    const usage = { ...emptyUsage(), input: 1_000_000, output: 100_000 };
    const routed = settleDecision(decideRoute(config(), features({ estInputTokens: 900, maxTokens: 100 }), prices, NOW)!, usage, prices, 'm:1');
    // Answered by Haiku 4.5: 1 + 0.5 = $1.50; Opus 4.8 would have cost 5 + 2.5 = $7.50 -> saved $6
    assert.deepEqual([routed.costActual, routed.costAlternative, routed.requestKey], [1.5, 7.5, 'm:1']);
    const dry = settleDecision(decideRoute(config(), features({ isSubagent: true }), prices, NOW)!, usage, prices, 'm:2');
    // Answered by Opus 4.8 ($7.50); Sonnet 4.6 would have cost 3 + 1.5 = $4.50 -> would save $3
    assert.deepEqual([dry.costActual, dry.costAlternative], [7.5, 4.5]);
    const refused = decideRoute(config(), features({ model: 'claude-opus-4-6', estInputTokens: 300_000 }), prices, NOW)!;
    const unsettled = decideRoute(config(), features({ estInputTokens: 900, bodyBytes: 3600, maxTokens: 100 }), prices, NOW)!;
    const rep = routeReport([routed, dry, refused, unsettled]);
    assert.ok(Math.abs(rep.savedUsd - (6 + 0.0056)) < 1e-9, String(rep.savedUsd));
    assert.ok(Math.abs(rep.wouldSaveUsd - 3) < 1e-9);
    const titles = rep.rows.find((r) => r.rule === 'titles')!;
    assert.deepEqual([titles.routed, titles.estimated], [2, 1]);
    assert.equal(rep.rows.find((r) => r.rule === 'long-to-haiku')!.refused, 1);
  });

  it('rewrites only the model of a request body', () => {
    const doc = { model: 'claude-opus-4-8', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10, stream: true };
    assert.equal(rewriteModel(doc, 'claude-haiku-4-5').toString(),
      '{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"hi"}],"max_tokens":10,"stream":true}');
  });
});

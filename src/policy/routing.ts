/**
 * Routing rules: rewrite a request's model when it matches, or (dry run) only record what would have happened.
 * Pure logic; the rules live in TOKENTALLY_HOME/routes.json (see docs/budgets-and-routing.md).
 *
 * Rules are tried in order and the first whose every condition matches decides. A rule never routes a
 * request whose conversation already uses something the target lacks (capabilityProblem): the decision is
 * then recorded as `refused` and the request goes out unchanged.
 */
import type { PriceBook } from '../core/pricing/pricebook.js';
import type { Usage } from '../core/types.js';
import { PolicyValidationError } from './budgets.js';
import { capabilityProblem, validateLadder, type LadderOverrides } from './downgrade.js';
import type { RequestFeatures } from './features.js';
import { estimateRequestCostUsd } from './reservations.js';

export interface RouteMatch {
  /** Model ids as requested; `claude-opus-*` matches by prefix. */
  model?: string[];
  minInputTokens?: number;
  maxInputTokens?: number;
  /** The request defines tools (true) or none (false). */
  tools?: boolean;
  /** Thinking enabled or adaptive (true), or off/absent (false). */
  thinking?: boolean;
  agent?: 'main' | 'subagent';
  /** System-prompt fingerprints (12 hex digits, see `tokentally route fingerprint`). */
  system?: string[];
  minComplexity?: number;
  maxComplexity?: number;
}

export interface RouteRule {
  name: string;
  match: RouteMatch;
  /** Model to send the request to. */
  target: string;
  /** Record only; overrides the file's global `dryRun` when set. */
  dryRun?: boolean;
}

export interface RoutingConfig {
  /** Every rule records only, unless the rule says otherwise. */
  dryRun: boolean;
  rules: RouteRule[];
  /** Downgrade ladder chains for `downgrade` budgets (see downgrade.ts). */
  ladder: LadderOverrides;
}

export const EMPTY_ROUTING: RoutingConfig = { dryRun: false, rules: [], ladder: [] };

const RULE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const FINGERPRINT = /^[0-9a-f]{12}$/;

/** Display names for fields; the CLI maps them to its flags so messages name what the user typed. */
export type FieldNamer = (path: string) => string;

/**
 * Validate one rule. Errors name the field (`rules[2].match.maxInputTokens: expected a whole number >= 0`,
 * or `--max-input-tokens: ...` with the CLI's namer).
 */
export function validateRule(raw: unknown, prices: PriceBook, at = 'rule', name: FieldNamer = (p) => `${at}.${p}`): RouteRule {
  if (!isObject(raw)) throw new PolicyValidationError(at, 'expected an object {"name", "match", "target"}');
  const ruleName = raw.name;
  if (typeof ruleName !== 'string' || !RULE_NAME.test(ruleName)) {
    throw new PolicyValidationError(name('name'), `expected 1-64 letters, digits, ".", "_" or "-", got ${show(ruleName)}`);
  }
  if (typeof raw.target !== 'string' || !prices.find(raw.target)) {
    throw new PolicyValidationError(name('target'), `expected a known model id (see tokentally prices), got ${show(raw.target)}`);
  }
  const target = prices.find(raw.target)!.id;
  if (raw.dryRun !== undefined && typeof raw.dryRun !== 'boolean') throw new PolicyValidationError(name('dryRun'), `expected true or false, got ${show(raw.dryRun)}`);
  const m = raw.match ?? {};
  if (!isObject(m)) throw new PolicyValidationError(name('match'), 'expected an object of conditions');
  const known = ['model', 'minInputTokens', 'maxInputTokens', 'tools', 'thinking', 'agent', 'system', 'minComplexity', 'maxComplexity'];
  for (const k of Object.keys(m)) if (!known.includes(k)) throw new PolicyValidationError(name(`match.${k}`), `unknown condition (expected one of ${known.join(', ')})`);
  const match: RouteMatch = {};
  if (m.model !== undefined) {
    const list = typeof m.model === 'string' ? [m.model] : m.model;
    if (!Array.isArray(list) || list.length === 0 || list.some((x) => typeof x !== 'string' || !x.trim())) {
      throw new PolicyValidationError(name('match.model'), `expected a model id or a list of them (a trailing * matches a prefix), got ${show(m.model)}`);
    }
    match.model = (list as string[]).map((x) => x.trim().toLowerCase());
  }
  for (const k of ['minInputTokens', 'maxInputTokens'] as const) {
    if (m[k] === undefined) continue;
    const v = m[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new PolicyValidationError(name(`match.${k}`), `expected a whole number of tokens >= 0, got ${show(v)}`);
    match[k] = v;
  }
  for (const k of ['minComplexity', 'maxComplexity'] as const) {
    if (m[k] === undefined) continue;
    const v = m[k];
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new PolicyValidationError(name(`match.${k}`), `expected a number from 0 to 1, got ${show(v)}`);
    match[k] = v;
  }
  for (const k of ['tools', 'thinking'] as const) {
    if (m[k] === undefined) continue;
    if (typeof m[k] !== 'boolean') throw new PolicyValidationError(name(`match.${k}`), `expected true or false, got ${show(m[k])}`);
    match[k] = m[k] as boolean;
  }
  if (m.agent !== undefined) {
    if (m.agent !== 'main' && m.agent !== 'subagent') throw new PolicyValidationError(name('match.agent'), `expected "main" or "subagent", got ${show(m.agent)}`);
    match.agent = m.agent;
  }
  if (m.system !== undefined) {
    const list = typeof m.system === 'string' ? [m.system] : m.system;
    if (!Array.isArray(list) || list.length === 0 || list.some((x) => typeof x !== 'string' || !FINGERPRINT.test(x))) {
      throw new PolicyValidationError(name('match.system'), `expected system-prompt fingerprints of 12 lowercase hex digits, got ${show(m.system)}`);
    }
    match.system = list as string[];
  }
  if (match.minInputTokens !== undefined && match.maxInputTokens !== undefined && match.minInputTokens > match.maxInputTokens) {
    throw new PolicyValidationError(name('match.minInputTokens'), `is above maxInputTokens (${match.minInputTokens} > ${match.maxInputTokens})`);
  }
  if (match.minComplexity !== undefined && match.maxComplexity !== undefined && match.minComplexity > match.maxComplexity) {
    throw new PolicyValidationError(name('match.minComplexity'), `is above maxComplexity (${match.minComplexity} > ${match.maxComplexity})`);
  }
  const rule: RouteRule = { name: ruleName, match, target };
  if (raw.dryRun !== undefined) rule.dryRun = raw.dryRun as boolean;
  return rule;
}

/** Validate a whole routes.json document: `{"dryRun"?, "rules": [...], "ladder"?: [[...]]}`. */
export function parseRoutingConfig(doc: unknown, prices: PriceBook): RoutingConfig {
  if (!isObject(doc)) throw new PolicyValidationError('routes.json', 'expected an object {"dryRun": false, "rules": [], "ladder": []}');
  for (const k of Object.keys(doc)) {
    if (!['dryRun', 'rules', 'ladder', '$comment'].includes(k)) throw new PolicyValidationError(k, 'unknown setting (expected dryRun, rules or ladder)');
  }
  if (doc.dryRun !== undefined && typeof doc.dryRun !== 'boolean') throw new PolicyValidationError('dryRun', `expected true or false, got ${show(doc.dryRun)}`);
  const rawRules = doc.rules ?? [];
  if (!Array.isArray(rawRules)) throw new PolicyValidationError('rules', 'expected a list of rules');
  const rules = rawRules.map((r, i) => validateRule(r, prices, `rules[${i}]`));
  const names = new Set<string>();
  rules.forEach((r, i) => {
    if (names.has(r.name)) throw new PolicyValidationError(`rules[${i}].name`, `duplicate rule name "${r.name}"`);
    names.add(r.name);
  });
  return { dryRun: doc.dryRun === true, rules, ladder: validateLadder(doc.ladder, prices, 'ladder') };
}

/**
 * Complexity of a request, 0 (trivial) to 1 (hard), from local features only (no external API).
 * Weights (positive ones sum to 1):
 *   0.30  length of the latest human turn: log10(1 + chars) / 4, capped at 1 (10,000 chars = 1)
 *   0.20  "hard task" words in it (architecture, refactor, debug, race condition, security, why, plan...): hits / 3
 *  -0.10  "easy task" words (typo, rename, format, list, read, grep, summarize, title...): hits / 2
 *   0.15  thinking requested (enabled or adaptive)
 *   0.10  conversation depth: messages / 40
 *   0.10  code blocks in the latest human turn: blocks / 2
 *   0.10  prompt size: estimated input tokens / 100,000
 *   0.05  output room: max_tokens / 32,000
 * Each term is capped at 1 before weighting, and the sum is clamped to [0, 1].
 */
export function complexityScore(f: RequestFeatures): number {
  const cap = (x: number) => Math.max(0, Math.min(1, x));
  const s = 0.30 * cap(Math.log10(1 + f.lastUserChars) / 4)
    + 0.20 * cap(f.hardWords / 3)
    - 0.10 * cap(f.easyWords / 2)
    + 0.15 * (f.thinking === 'enabled' || f.thinking === 'adaptive' ? 1 : 0)
    + 0.10 * cap(f.messageCount / 40)
    + 0.10 * cap(f.lastUserCodeBlocks / 2)
    + 0.10 * cap(f.estInputTokens / 100_000)
    + 0.05 * cap((f.maxTokens ?? 0) / 32_000);
  return Math.round(cap(s) * 1000) / 1000;
}

export function ruleMatches(rule: RouteRule, f: RequestFeatures, complexity: number): boolean {
  const m = rule.match;
  if (m.model) {
    const model = f.model?.toLowerCase();
    if (!model || !m.model.some((p) => (p.endsWith('*') ? model.startsWith(p.slice(0, -1)) : model === p))) return false;
  }
  if (m.minInputTokens !== undefined && f.estInputTokens < m.minInputTokens) return false;
  if (m.maxInputTokens !== undefined && f.estInputTokens > m.maxInputTokens) return false;
  if (m.tools !== undefined && f.hasTools !== m.tools) return false;
  if (m.thinking !== undefined && (f.thinking === 'enabled' || f.thinking === 'adaptive') !== m.thinking) return false;
  if (m.agent !== undefined && (f.isSubagent ? 'subagent' : 'main') !== m.agent) return false;
  if (m.system !== undefined && (f.systemFingerprint === null || !m.system.includes(f.systemFingerprint))) return false;
  if (m.minComplexity !== undefined && complexity < m.minComplexity) return false;
  if (m.maxComplexity !== undefined && complexity > m.maxComplexity) return false;
  return true;
}

export type RouteOutcome = 'routed' | 'dry-run' | 'refused';

/** One routing (or budget downgrade) decision, as stored in `route_decisions`. Never holds prompt text. */
export interface RouteDecision {
  id?: number;
  ts: number;
  /** `route` for a rule, `downgrade` for a budget. */
  kind: 'route' | 'downgrade';
  /** Rule name, or budget name for a downgrade. */
  rule: string;
  outcome: RouteOutcome;
  modelFrom: string;
  modelTo: string;
  sessionId: string | null;
  /** The stored request's key, once known (set when the response is settled). */
  requestKey: string | null;
  complexity: number | null;
  estInputTokens: number;
  estCostFrom: number | null;
  estCostTo: number | null;
  /** Why a route was refused. */
  reason: string | null;
  systemFingerprint: string | null;
  /** Cost of the model that answered, from the actual usage (after settle). */
  costActual: number | null;
  /** Cost the other model would have had for the same usage. */
  costAlternative: number | null;
}

/** The first matching rule's decision for a request, or null when no rule matches (or it targets the same model). */
export function decideRoute(config: RoutingConfig, f: RequestFeatures, prices: PriceBook, now: number, sessionId: string | null = null): RouteDecision | null {
  if (!f.model || config.rules.length === 0) return null;
  const complexity = complexityScore(f);
  for (const rule of config.rules) {
    if (!ruleMatches(rule, f, complexity)) continue;
    const from = f.model;
    if ((prices.find(from)?.id ?? from) === rule.target) return null;
    const target = prices.find(rule.target);
    const problem = target ? capabilityProblem(target, f) : `unknown model ${rule.target}`;
    const dry = rule.dryRun ?? config.dryRun;
    return {
      ts: now, kind: 'route', rule: rule.name, outcome: problem ? 'refused' : dry ? 'dry-run' : 'routed',
      modelFrom: from, modelTo: rule.target, sessionId, requestKey: null, complexity, estInputTokens: f.estInputTokens,
      estCostFrom: estimateRequestCostUsd(prices, from, f.bodyBytes, f.maxTokens, now),
      estCostTo: estimateRequestCostUsd(prices, rule.target, f.bodyBytes, f.maxTokens, now),
      reason: problem, systemFingerprint: f.systemFingerprint, costActual: null, costAlternative: null,
    };
  }
  return null;
}

/**
 * Fill in actual and alternative costs once the response's usage is known: for a routed request the answer
 * came from modelTo and the alternative is modelFrom; for a dry run (or a refused route) the other way round.
 */
export function settleDecision(d: RouteDecision, usage: Usage, prices: PriceBook, requestKey: string | null, ts = d.ts): RouteDecision {
  const answered = d.outcome === 'routed' ? d.modelTo : d.modelFrom;
  const other = d.outcome === 'routed' ? d.modelFrom : d.modelTo;
  return {
    ...d, requestKey: requestKey ?? d.requestKey,
    costActual: prices.price(answered, ts, usage).cost,
    costAlternative: prices.price(other, ts, usage).cost,
  };
}

/** Replace the body's model (re-serialized JSON; keys keep their order). */
export function rewriteModel(doc: Record<string, unknown>, model: string): Buffer {
  return Buffer.from(JSON.stringify({ ...doc, model }));
}

export interface RouteReportRow {
  kind: 'route' | 'downgrade';
  rule: string;
  routed: number;
  dryRun: number;
  refused: number;
  /** Saved by routed requests: alternative - actual (actual usage when settled, else estimates). */
  savedUsd: number;
  /** Would have been saved by dry-run requests: actual - alternative. */
  wouldSaveUsd: number;
  /** How many of the counted savings come from estimates (no settled usage). */
  estimated: number;
}

/** Savings per rule: made by routed requests, and would-be from dry runs. */
export function routeReport(decisions: RouteDecision[]): { rows: RouteReportRow[]; savedUsd: number; wouldSaveUsd: number } {
  const by = new Map<string, RouteReportRow>();
  for (const d of decisions) {
    const k = `${d.kind}\u0000${d.rule}`;
    let row = by.get(k);
    if (!row) {
      row = { kind: d.kind, rule: d.rule, routed: 0, dryRun: 0, refused: 0, savedUsd: 0, wouldSaveUsd: 0, estimated: 0 };
      by.set(k, row);
    }
    if (d.outcome === 'refused') {
      row.refused++;
      continue;
    }
    const settled = d.costActual !== null && d.costAlternative !== null;
    let saving: number | null;
    if (settled) saving = d.outcome === 'routed' ? d.costAlternative! - d.costActual! : d.costActual! - d.costAlternative!;
    else saving = d.estCostFrom !== null && d.estCostTo !== null ? d.estCostFrom - d.estCostTo : null;
    if (!settled && saving !== null) row.estimated++;
    if (d.outcome === 'routed') {
      row.routed++;
      row.savedUsd += saving ?? 0;
    } else {
      row.dryRun++;
      row.wouldSaveUsd += saving ?? 0;
    }
  }
  const rows = [...by.values()].sort((a, b) => (b.savedUsd + b.wouldSaveUsd) - (a.savedUsd + a.wouldSaveUsd) || a.rule.localeCompare(b.rule));
  return { rows, savedUsd: rows.reduce((a, r) => a + r.savedUsd, 0), wouldSaveUsd: rows.reduce((a, r) => a + r.wouldSaveUsd, 0) };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

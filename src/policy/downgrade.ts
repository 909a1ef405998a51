/**
 * Model capabilities and the downgrade ladder. Pure logic over the price book.
 *
 * Default ladder: mythos / fable -> opus -> sonnet -> haiku. The next rung is the cheaper family's model of the
 * same generation when there is one (opus 4.6 -> sonnet 4.6), else that family's latest generation
 * (opus 4.8 -> sonnet 5.5), and it must be cheaper (input + output price) than the model it replaces.
 * `ladder` chains in routes.json override it for the models they list.
 * A rung is never taken when the target lacks what the request already uses (see capabilityProblem).
 */
import type { ModelPrice } from '../core/pricing/catalog.js';
import type { PriceBook } from '../core/pricing/pricebook.js';
import { PolicyValidationError } from './budgets.js';
import type { RequestFeatures } from './features.js';

export interface ModelFamily {
  family: string;
  /** 4.6 -> 4.6; 3.5 -> 3.5; undefined for ids like `claude-mythos-preview`. */
  generation: number | undefined;
}

const FAMILIES = ['mythos', 'fable', 'opus', 'sonnet', 'haiku'];
const NEXT_FAMILY: Record<string, string | undefined> = { mythos: 'opus', fable: 'opus', opus: 'sonnet', sonnet: 'haiku', haiku: undefined };

/** `claude-opus-4-1-20250805` -> opus 4.1; `claude-3-5-haiku-20241022` -> haiku 3.5; `claude-sonnet-4-20250514` -> sonnet 4. */
export function modelFamily(id: string): ModelFamily | undefined {
  const s = id.toLowerCase();
  let m = /^claude-([a-z]+)-(\d+)(?:-(\d{1,2}))?(?:-\d{8})?$/.exec(s);
  if (m && FAMILIES.includes(m[1])) return { family: m[1], generation: Number(m[2]) + (m[3] ? Number(m[3]) / 10 : 0) };
  m = /^claude-(\d+)(?:-(\d))?-([a-z]+)(?:-\d{8}|-latest)?$/.exec(s);
  if (m && FAMILIES.includes(m[3])) return { family: m[3], generation: Number(m[1]) + (m[2] ? Number(m[2]) / 10 : 0) };
  m = /^claude-([a-z]+)-/.exec(s);
  if (m && FAMILIES.includes(m[1])) return { family: m[1], generation: undefined };
  return undefined;
}

/**
 * Largest `max_tokens` per model where documented (Anthropic models overview); models not listed are not checked.
 */
const MAX_OUTPUT: Record<string, number> = {
  'claude-3-haiku-20240307': 4096,
  'claude-3-opus-20240229': 4096,
  'claude-3-sonnet-20240229': 4096,
  'claude-3-5-haiku-20241022': 8192,
  'claude-3-5-sonnet-20241022': 8192,
  'claude-3-7-sonnet-20250219': 64_000,
  'claude-sonnet-4-20250514': 64_000,
  'claude-opus-4-20250514': 32_000,
  'claude-opus-4-1-20250805': 32_000,
  'claude-sonnet-4-5-20250929': 64_000,
  'claude-haiku-4-5-20251001': 64_000,
  'claude-opus-4-5-20251101': 64_000,
  'claude-opus-4-6': 128_000,
  'claude-sonnet-4-6': 64_000,
};

export interface Capabilities {
  contextWindow: number;
  maxOutput: number | null;
  /** Extended thinking (`thinking: enabled`), and thinking blocks in the history. */
  thinking: boolean;
  /** `thinking: {type: "adaptive"}` and `output_config.effort`: Claude 4.6 and later (and Opus 4.5 for effort). */
  adaptiveThinking: boolean;
  effort: boolean;
  fast: boolean;
}

export function capabilities(m: ModelPrice): Capabilities {
  const fam = modelFamily(m.id);
  const gen = fam?.generation;
  const noThinking = gen !== undefined && gen < 3.7;
  const modern = gen === undefined || gen >= 4.6;
  return {
    contextWindow: m.contextWindow,
    maxOutput: MAX_OUTPUT[m.id] ?? null,
    thinking: !noThinking,
    adaptiveThinking: modern,
    effort: modern || (fam?.family === 'opus' && gen === 4.5),
    fast: m.fast !== undefined,
  };
}

/**
 * Why `target` cannot take this request, or null when it can: the estimated prompt plus `max_tokens` must fit
 * its context window, `max_tokens` its output limit, and it must support the thinking mode, effort, fast mode
 * and thinking blocks the conversation already uses.
 */
export function capabilityProblem(target: ModelPrice, f: Pick<RequestFeatures, 'estInputTokens' | 'maxTokens' | 'thinking' | 'thinkingInHistory' | 'effort' | 'fast'>): string | null {
  const c = capabilities(target);
  if (f.estInputTokens > c.contextWindow) {
    return `the prompt (~${f.estInputTokens} tokens) exceeds ${target.id}'s ${c.contextWindow}-token context window`;
  }
  if (f.maxTokens !== null && c.maxOutput !== null && f.maxTokens > c.maxOutput) {
    return `max_tokens ${f.maxTokens} exceeds ${target.id}'s ${c.maxOutput}-token output limit`;
  }
  if ((f.thinking === 'enabled' || f.thinking === 'adaptive' || f.thinkingInHistory) && !c.thinking) {
    return `${target.id} has no extended thinking and the conversation uses it`;
  }
  if (f.thinking === 'adaptive' && !c.adaptiveThinking) return `${target.id} does not support adaptive thinking`;
  if (f.effort !== null && !c.effort) return `${target.id} does not support output_config.effort`;
  if (f.fast && !c.fast) return `${target.id} has no fast mode`;
  return null;
}

function unitPrice(m: ModelPrice, prices: PriceBook, ts: number): number {
  const { rates } = prices.ratesAt(m, ts);
  return rates.input + rates.output;
}

/** Explicit chains from routes.json: each model steps to the one after it. */
export type LadderOverrides = string[][];

/** Models below `model` on the ladder, nearest first (without capability checks). */
export function ladderBelow(model: string, prices: PriceBook, overrides: LadderOverrides = [], ts = Date.now()): ModelPrice[] {
  const out: ModelPrice[] = [];
  const seen = new Set<string>();
  let current = prices.find(model);
  if (!current) return out;
  seen.add(current.id);
  for (let guard = 0; guard < 10; guard++) {
    const next = nextRung(current, prices, overrides, ts);
    if (!next || seen.has(next.id)) break;
    out.push(next);
    seen.add(next.id);
    current = next;
  }
  return out;
}

function nextRung(m: ModelPrice, prices: PriceBook, overrides: LadderOverrides, ts: number): ModelPrice | undefined {
  for (const chain of overrides) {
    const ids = chain.map((c) => prices.find(c)?.id ?? c);
    const i = ids.indexOf(m.id);
    if (i >= 0) return i + 1 < ids.length ? prices.find(ids[i + 1]) : undefined;
  }
  const fam = modelFamily(m.id);
  if (!fam) return undefined;
  const here = unitPrice(m, prices, ts);
  for (let f = NEXT_FAMILY[fam.family]; f; f = NEXT_FAMILY[f]) {
    const members = prices.models
      .map((x) => ({ x, fam: modelFamily(x.id) }))
      .filter((e) => e.fam?.family === f && e.fam.generation !== undefined && unitPrice(e.x, prices, ts) < here);
    if (!members.length) continue;
    const same = members.find((e) => fam.generation !== undefined && e.fam!.generation === fam.generation);
    if (same) return same.x;
    members.sort((a, b) => b.fam!.generation! - a.fam!.generation!);
    return members[0].x;
  }
  return undefined;
}

export interface DowngradePlan {
  from: string;
  to: string;
  /** Rungs passed over, with the reason (a capability the request needs). */
  skipped: { model: string; reason: string }[];
}

/**
 * The model a `downgrade` budget sends this request to: the nearest rung below that can take it,
 * or null (with the reasons) when none can.
 */
export function planDowngrade(prices: PriceBook, f: Pick<RequestFeatures, 'model' | 'estInputTokens' | 'maxTokens' | 'thinking' | 'thinkingInHistory' | 'effort' | 'fast'>,
  overrides: LadderOverrides = [], ts = Date.now()): { plan: DowngradePlan | null; skipped: { model: string; reason: string }[] } {
  const skipped: { model: string; reason: string }[] = [];
  if (!f.model) return { plan: null, skipped };
  for (const target of ladderBelow(f.model, prices, overrides, ts)) {
    const problem = capabilityProblem(target, f);
    if (problem) {
      skipped.push({ model: target.id, reason: problem });
      continue;
    }
    return { plan: { from: f.model, to: target.id, skipped }, skipped };
  }
  return { plan: null, skipped };
}

/** Validate ladder chains: every id must name a priced model. `field` prefixes messages. */
export function validateLadder(v: unknown, prices: PriceBook, field = 'ladder'): LadderOverrides {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new PolicyValidationError(field, 'expected a list of chains such as [["claude-opus-4-8", "claude-sonnet-4-6", "claude-haiku-4-5"]]');
  return v.map((chain, i) => {
    if (!Array.isArray(chain) || chain.length < 2) throw new PolicyValidationError(`${field}[${i}]`, 'expected a chain of at least two model ids, most expensive first');
    return chain.map((id, j) => {
      if (typeof id !== 'string' || !prices.find(id)) throw new PolicyValidationError(`${field}[${i}][${j}]`, `unknown model ${JSON.stringify(id)}`);
      return prices.find(id)!.id;
    });
  });
}

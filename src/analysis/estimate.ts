/**
 * Monthly cost calculator (no I/O): the formula of ../shared/seeds/003 ("Claude Code Cost Calculator"),
 *
 *   monthly = sessions/day x active days x (input x in-rate + output x out-rate + cache-read x read-rate)
 *
 * where the article writes the cache-read rate as 0.1 x in-rate. That is the catalog's cache-read price for
 * the models of its examples (Sonnet 4.6 $0.30, Opus 4.6 $0.50, Haiku 4.5 $0.10), so every token class is
 * priced at the PriceBook's own rate for it: models with cheaper reads (Opus 5.5 0.05x, Fable 5.1 0.025x) are
 * not overcharged. Cache writes are not in the article's formula; they are optional extra inputs here.
 *
 * Rates are flat per token: a session is many requests, and the long-context / long-prompt premium is
 * decided per request, so pricing a session's sum as one request would apply it wrongly.
 */
import type { Usage } from '../core/types.js';
import { emptyUsage } from '../core/types.js';
import type { ModelPrice } from '../core/pricing/catalog.js';
import type { PriceBook } from '../core/pricing/pricebook.js';

export interface SessionTokens {
  input: number;
  output: number;
  cacheRead: number;
  /** Cache writes with the 5-minute TTL (not in the article's formula; default 0). */
  cacheWrite5m: number;
  /** Cache writes with the 1-hour TTL (Claude Code subscribers' default; default 0). */
  cacheWrite1h: number;
}

export interface EstimateInput {
  sessionsPerDay: number;
  /** Active days in the month. */
  days: number;
  tokens: SessionTokens;
  /** Canonical model ids (see resolveModels). */
  models: string[];
  /** Prices in force at this instant (epoch ms). */
  at: number;
}

export interface EstimateRow {
  model: string;
  displayName: string;
  /** USD per session, per token class. */
  perSession: { input: number; output: number; cacheRead: number; cacheWrite: number; total: number };
  /** USD per million tokens used for each class. */
  rates: { input: number; output: number; cacheRead: number; cacheWrite5m: number; cacheWrite1h: number };
  sessions: number;
  monthly: number;
}

export interface Estimate {
  sessionsPerDay: number;
  days: number;
  sessions: number;
  tokens: SessionTokens;
  rows: EstimateRow[];
  formula: string;
}

export const ESTIMATE_FORMULA = 'monthly = sessions/day x active days x (input x input rate + output x output rate '
  + '+ cache read x cache-read rate [+ cache writes x write rate]); cache-read rate = the catalog\'s '
  + '(0.1 x input for Sonnet 4.6, Opus 4.6, Haiku 4.5, as in the article); flat per-token rates, no per-request '
  + 'long-context premium';

export class ModelArgError extends Error {}

export function estimate(prices: PriceBook, input: EstimateInput): Estimate {
  const sessions = input.sessionsPerDay * input.days;
  const t = input.tokens;
  const rows: EstimateRow[] = input.models.map((id) => {
    const m = prices.find(id);
    if (!m) throw new ModelArgError(`no price for model "${id}"`);
    // Price one token of each class through the PriceBook (so user prices.json and rate history apply),
    // then scale: linear, and never trips a per-request threshold.
    const unit = (field: keyof Pick<Usage, 'input' | 'output' | 'cacheRead' | 'cacheWrite5m' | 'cacheWrite1h'>) => {
      const cost = prices.price(m.id, input.at, { ...emptyUsage(), [field]: 1 }).cost;
      return cost ?? 0;
    };
    const r = { input: unit('input'), output: unit('output'), cacheRead: unit('cacheRead'),
      cacheWrite5m: unit('cacheWrite5m'), cacheWrite1h: unit('cacheWrite1h') };
    const perSession = {
      input: t.input * r.input,
      output: t.output * r.output,
      cacheRead: t.cacheRead * r.cacheRead,
      cacheWrite: t.cacheWrite5m * r.cacheWrite5m + t.cacheWrite1h * r.cacheWrite1h,
      total: 0,
    };
    perSession.total = perSession.input + perSession.output + perSession.cacheRead + perSession.cacheWrite;
    const perMillion = (x: number) => Math.round(x * 1e6 * 1e6) / 1e6;
    return {
      model: m.id, displayName: m.displayName, perSession,
      rates: { input: perMillion(r.input), output: perMillion(r.output), cacheRead: perMillion(r.cacheRead),
        cacheWrite5m: perMillion(r.cacheWrite5m), cacheWrite1h: perMillion(r.cacheWrite1h) },
      sessions, monthly: perSession.total * sessions,
    };
  });
  return { sessionsPerDay: input.sessionsPerDay, days: input.days, sessions, tokens: t, rows, formula: ESTIMATE_FORMULA };
}

interface ParsedId {
  family: string;
  version: number[];
  preview: boolean;
}

/** `claude-sonnet-4-6` -> sonnet [4, 6]; `claude-3-5-haiku-20241022` -> haiku [3, 5]; `claude-opus-5` -> opus [5]. */
export function parseModelId(id: string): ParsedId | undefined {
  const parts = id.replace(/^claude-/, '').replace(/-\d{8}$/, '').split('-');
  const nums = parts.filter((p) => /^\d{1,2}$/.test(p)).map(Number);
  const words = parts.filter((p) => !/^\d+$/.test(p));
  if (words.length === 0 || nums.length === 0) return undefined;
  const preview = words.includes('preview');
  const family = words.filter((w) => w !== 'preview' && w !== 'latest')[0];
  return family ? { family, version: nums, preview } : undefined;
}

function compareVersions(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The newest priced model of each family (opus, sonnet, haiku, ...), cheapest family first. */
export function currentFamilies(prices: PriceBook): ModelPrice[] {
  const best = new Map<string, { m: ModelPrice; v: number[] }>();
  for (const m of prices.models) {
    const p = parseModelId(m.id);
    if (!p || p.preview) continue;
    const cur = best.get(p.family);
    if (!cur || compareVersions(p.version, cur.v) > 0) best.set(p.family, { m, v: p.version });
  }
  return [...best.values()].map((x) => x.m).sort((a, b) => a.rates.input - b.rates.input || a.id.localeCompare(b.id));
}

/**
 * `--model` values: full ids (`claude-sonnet-4-6`, dated or provider-prefixed), short ids (`sonnet-4-6`),
 * family names (`sonnet` = the newest Sonnet), comma-separated. Returns canonical ids, de-duplicated.
 */
export function resolveModels(prices: PriceBook, spec: string | undefined): string[] {
  if (spec === undefined) return currentFamilies(prices).map((m) => m.id);
  const out: string[] = [];
  const families = currentFamilies(prices);
  for (const raw of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const name = raw.toLowerCase();
    const hit = prices.find(name) ?? prices.find(`claude-${name}`)
      ?? families.find((m) => parseModelId(m.id)?.family === name);
    if (!hit) {
      throw new ModelArgError(`--model: unknown model "${raw}" (use an id such as sonnet-4-6 or claude-opus-4-6, `
        + `or a family: ${families.map((m) => parseModelId(m.id)!.family).join(', ')})`);
    }
    if (!out.includes(hit.id)) out.push(hit.id);
  }
  if (out.length === 0) throw new ModelArgError('--model: no model given');
  return out;
}

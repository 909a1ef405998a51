import type { Usage } from '../types.js';
import { promptTokens } from '../types.js';
import {
  BATCH_MULTIPLIER, BUILTIN_MODELS, SYNTHETIC_MODEL, US_GEO_MULTIPLIER, WEB_SEARCH_USD_EACH,
  type LongContextRule, type ModelPrice, type Rates,
} from './catalog.js';

export interface CostBreakdown {
  input: number;
  output: number;
  cacheWrite5m: number;
  cacheWrite1h: number;
  cacheRead: number;
  webSearch: number;
}

export interface PricedRequest {
  /** USD, or null when the model has no price: never a silent zero. */
  cost: number | null;
  /** Canonical id of the price row used, or null when unknown. */
  priceId: string | null;
  longContext: boolean;
  fast: boolean;
  usGeo: boolean;
  batch: boolean;
  breakdown: CostBreakdown | null;
}

/**
 * Reduce the spellings a model id takes in logs and gateways to the first-party id:
 * `[1m]` suffixes, provider prefixes (`anthropic/`, `us.anthropic.`), Bedrock `-v1:0` and Vertex `@date`.
 */
export function normalizeModelId(raw: string): string {
  let id = raw.trim().toLowerCase();
  id = id.replace(/\[[^\]]*\]$/, '');
  id = id.replace(/^(anthropic|bedrock|vertex_ai|vertex)\//, '');
  id = id.replace(/^(us|eu|apac|global|jp|au)\.anthropic\./, '').replace(/^anthropic\./, '');
  id = id.replace(/-v\d+(:\d+)?$/, '');
  // Vertex writes `@date`, with a `-v2`-style revision before it on some ids (`claude-3-5-sonnet-v2@20241022`).
  id = id.replace(/(?:-v\d+)?@(\d{8})$/, '-$1');
  return id;
}

export class PriceBook {
  private readonly byId = new Map<string, ModelPrice>();
  private readonly found = new Map<string, ModelPrice | undefined>();
  readonly models: ModelPrice[];
  private print: string | undefined;

  constructor(models: ModelPrice[], fingerprint?: string) {
    this.models = models;
    for (const m of models) {
      this.byId.set(m.id, m);
      for (const a of m.aliases) if (!this.byId.has(a)) this.byId.set(a, m);
    }
    this.print = fingerprint;
  }

  /** Stable text of every price in force; stored costs are recomputed when it changes. */
  get fingerprint(): string {
    return (this.print ??= priceFingerprint(this.models));
  }

  static builtin(): PriceBook {
    // The statusline bundle carries the built-in catalog's fingerprint, computed at build time from this same
    // code (scripts/build-statusline.mjs): hashing the catalog took ~1-4 ms of every (cold, unoptimized) start.
    return new PriceBook(BUILTIN_MODELS, typeof __TT_BUILTIN_PRICE_FINGERPRINT__ === 'string' ? __TT_BUILTIN_PRICE_FINGERPRINT__ : undefined);
  }

  /** The price row for a model id as logged, or undefined when the model is unknown. */
  find(model: string): ModelPrice | undefined {
    // Logs repeat a handful of model ids: remember each lookup, including misses.
    if (this.found.has(model)) return this.found.get(model);
    const hit = this.lookup(model);
    if (this.found.size < 10_000) this.found.set(model, hit);
    return hit;
  }

  private lookup(model: string): ModelPrice | undefined {
    const id = normalizeModelId(model);
    const hit = this.byId.get(id);
    if (hit) return hit;
    // A dated snapshot we have not listed prices like its undated alias (e.g. claude-haiku-4-5-20991231).
    const undated = id.replace(/-\d{8}$/, '');
    return undated !== id ? this.byId.get(undated) : undefined;
  }

  isKnown(model: string | null): boolean {
    return model === SYNTHETIC_MODEL || (model !== null && this.find(model) !== undefined);
  }

  /** Rates and long-context rule in force for a model at an instant (epoch ms). */
  ratesAt(m: ModelPrice, ts: number): { rates: Rates; longContext: LongContextRule | undefined } {
    let rates = m.rates;
    let longContext = m.longContext;
    // Latest cut-over first, so that when several changes are still ahead of `ts` the earliest one
    // (the price that was in force at `ts`) is applied last and wins, whatever order `history` is in.
    const changes = [...(m.history ?? [])].sort((a, b) => Date.parse(b.before) - Date.parse(a.before));
    for (const change of changes) {
      if (ts < Date.parse(change.before)) {
        if (change.rates) rates = { ...rates, ...change.rates };
        if (change.longContext !== undefined) longContext = change.longContext ?? undefined;
      }
    }
    return { rates, longContext };
  }

  price(model: string | null, ts: number, u: Usage): PricedRequest {
    if (model === SYNTHETIC_MODEL) {
      return { cost: 0, priceId: SYNTHETIC_MODEL, longContext: false, fast: false, usGeo: false, batch: false,
        breakdown: { input: 0, output: 0, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0, webSearch: 0 } };
    }
    const m = model === null ? undefined : this.find(model);
    if (!m) return { cost: null, priceId: null, longContext: false, fast: false, usGeo: false, batch: false, breakdown: null };

    const { rates: base, longContext: rule } = this.ratesAt(m, ts);
    const fast = u.speed === 'fast' && m.fast !== undefined;
    // The long-context decision is per request: over the threshold, every token class pays the premium.
    const longContext = !fast && rule !== undefined && promptTokens(u) > rule.thresholdTokens;
    const rates = fast ? m.fast! : longContext ? rule!.rates : base;
    const usGeo = m.usGeoPremium && u.inferenceGeo === 'us';
    const batch = u.serviceTier === 'batch';
    const k = (usGeo ? US_GEO_MULTIPLIER : 1) * (batch ? BATCH_MULTIPLIER : 1) / 1_000_000;
    const breakdown: CostBreakdown = {
      input: u.input * rates.input * k,
      output: u.output * rates.output * k,
      cacheWrite5m: u.cacheWrite5m * rates.cacheWrite5m * k,
      cacheWrite1h: u.cacheWrite1h * rates.cacheWrite1h * k,
      cacheRead: u.cacheRead * rates.cacheRead * k,
      // Search fees are per search, outside the token multipliers.
      webSearch: u.webSearches * WEB_SEARCH_USD_EACH,
    };
    const cost = breakdown.input + breakdown.output + breakdown.cacheWrite5m + breakdown.cacheWrite1h
      + breakdown.cacheRead + breakdown.webSearch;
    return { cost, priceId: m.id, longContext, fast, usGeo, batch, breakdown };
  }
}

/** Replaced by a string literal in the bundles (esbuild define); never defined in the ES modules. */
declare const __TT_BUILTIN_PRICE_FINGERPRINT__: string | undefined;

export function priceFingerprint(models: ModelPrice[]): string {
  return fnv1a(JSON.stringify(models));
}

function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

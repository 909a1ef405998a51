import { BUILTIN_MODELS, type ModelPrice, type Rates } from './catalog.js';
import { normalizeModelId, PriceBook } from './pricebook.js';

export class PriceFileError extends Error {}

const RATE_FIELDS = ['input', 'output', 'cacheWrite5m', 'cacheWrite1h', 'cacheRead'] as const;

/**
 * Apply a user price file to the built-in catalog. Shape:
 * `{"models": {"<id>": {"input": 3, "output": 15, "cacheWrite5m"?, "cacheWrite1h"?, "cacheRead"?,
 *   "aliases"?: [], "longContext"?: {"thresholdTokens", "input", ...}, "fast"?: {...}, "usGeoPremium"?: bool}}}`.
 * An id that names a built-in model (or its alias) overrides the given fields; a new id adds a model,
 * with cache rates derived from input (x1.25, x2, x0.1) when not given.
 */
export function applyUserPrices(doc: unknown, where: string, base: ModelPrice[] = BUILTIN_MODELS): PriceBook {
  if (!isObject(doc) || !isObject(doc.models)) {
    throw new PriceFileError(`${where}: expected {"models": {"<model id>": {"input": <USD/MTok>, "output": <USD/MTok>}}}`);
  }
  const models = base.map((m) => ({ ...m, aliases: [...m.aliases] }));
  for (const [rawId, spec] of Object.entries(doc.models)) {
    const at = `${where}: models["${rawId}"]`;
    if (!isObject(spec)) throw new PriceFileError(`${at}: expected an object of prices`);
    const id = normalizeModelId(rawId);
    // Exact id or alias only: PriceBook.find() would map an unlisted dated snapshot
    // (claude-haiku-4-5-20260301) to its undated alias, and the user's new model would overwrite that one.
    const existing = models.find((m) => m.id === id) ?? models.find((m) => m.aliases.includes(id));
    const partial = readRates(spec, at, existing === undefined);
    const aliases = spec.aliases === undefined ? [] : readAliases(spec.aliases, `${at}.aliases`);
    const longContext = spec.longContext === undefined ? undefined : readLongContext(spec.longContext, `${at}.longContext`);
    if (spec.fast !== undefined && !isObject(spec.fast)) throw new PriceFileError(`${at}.fast: expected an object of fast-mode prices`);
    const fast = spec.fast === undefined ? undefined : fullRates(readRates(spec.fast, `${at}.fast`, true) as Rates);
    if (spec.usGeoPremium !== undefined && typeof spec.usGeoPremium !== 'boolean') {
      throw new PriceFileError(`${at}.usGeoPremium: expected true or false`);
    }
    if (existing) {
      const target = existing;
      target.rates = { ...target.rates, ...partial };
      target.aliases.push(...aliases.filter((a) => a !== target.id));
      if (id !== target.id && !target.aliases.includes(id)) target.aliases.push(id);
      if (longContext !== undefined) target.longContext = longContext ?? undefined;
      if (fast) target.fast = fast;
      if (typeof spec.usGeoPremium === 'boolean') target.usGeoPremium = spec.usGeoPremium;
      // A user price is a statement about today: it replaces the built-in dated history.
      if (Object.keys(partial).length > 0) target.history = undefined;
    } else {
      models.push({
        id, displayName: typeof spec.displayName === 'string' ? spec.displayName : id, aliases,
        rates: fullRates(partial as Partial<Rates> & { input: number }),
        longContext: longContext ?? undefined, fast, usGeoPremium: spec.usGeoPremium === true,
        contextWindow: typeof spec.contextWindow === 'number' ? spec.contextWindow : 200_000,
      });
    }
  }
  return new PriceBook(models);
}

function readRates(spec: Record<string, unknown>, at: string, requireInputOutput: boolean): Partial<Rates> {
  const out: Partial<Rates> = {};
  for (const f of RATE_FIELDS) {
    const v = spec[f];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new PriceFileError(`${at}.${f}: expected a non-negative number of USD per million tokens, got ${JSON.stringify(v)}`);
    }
    out[f] = v;
  }
  if (requireInputOutput) {
    for (const f of ['input', 'output'] as const) {
      if (out[f] === undefined) throw new PriceFileError(`${at}.${f}: required for a model that is not built in`);
    }
  }
  return out;
}

function fullRates(p: Partial<Rates> & { input: number }): Rates {
  return {
    input: p.input,
    output: p.output ?? p.input * 5,
    cacheWrite5m: p.cacheWrite5m ?? p.input * 1.25,
    cacheWrite1h: p.cacheWrite1h ?? p.input * 2,
    cacheRead: p.cacheRead ?? p.input * 0.1,
  };
}

function readLongContext(v: unknown, at: string) {
  if (v === null) return null;
  if (!isObject(v)) throw new PriceFileError(`${at}: expected {"thresholdTokens": N, "input": .., "output": ..} or null`);
  const t = v.thresholdTokens;
  if (typeof t !== 'number' || !Number.isInteger(t) || t <= 0) {
    throw new PriceFileError(`${at}.thresholdTokens: expected a positive integer`);
  }
  return { thresholdTokens: t, rates: fullRates(readRates(v, at, true) as Rates) };
}

function readAliases(v: unknown, at: string): string[] {
  if (!Array.isArray(v) || v.some((a) => typeof a !== 'string' || a.trim() === '')) {
    throw new PriceFileError(`${at}: expected a list of model id strings`);
  }
  return v.map((a: string) => normalizeModelId(a));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

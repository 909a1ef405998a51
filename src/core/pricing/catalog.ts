/**
 * Built-in Claude price catalog, USD per million tokens.
 * Sources for every row: ../shared/reference/pricing.json and pricing-telemetry-adminapi.md
 * (Anthropic pricing page copies of ~Feb/Mar 2026 and ~Sep 2026, the models overview, and the
 * rate tables inside Claude Code 2.1.330). See docs/pricing.md for the rules and their sources.
 */

export interface Rates {
  input: number;
  output: number;
  cacheWrite5m: number;
  cacheWrite1h: number;
  cacheRead: number;
}

export interface LongContextRule {
  /** A request whose prompt (input + cache reads + cache writes) exceeds this is priced entirely at `rates`. */
  thresholdTokens: number;
  rates: Rates;
}

/** A price that applied before a date: overrides the entry's current values for earlier requests. */
export interface PriceChange {
  /** ISO instant (UTC); requests strictly before it use these values. */
  before: string;
  rates?: Partial<Rates>;
  /** `null` removes the rule for earlier requests; a rule adds one. */
  longContext?: LongContextRule | null;
  note: string;
}

export interface ModelPrice {
  id: string;
  displayName: string;
  /** Other ids that name the same model (dated ids, `-0` aliases, `-latest`). */
  aliases: string[];
  rates: Rates;
  longContext?: LongContextRule;
  /** Rates when `usage.speed == "fast"` (flat across the context window). */
  fast?: Rates;
  /** `usage.inference_geo == "us"` multiplies token cost by 1.1 (Claude 4.6 and later). */
  usGeoPremium: boolean;
  history?: PriceChange[];
  contextWindow: number;
}

const r = (input: number, output: number, cacheWrite5m: number, cacheWrite1h: number, cacheRead: number): Rates =>
  ({ input, output, cacheWrite5m, cacheWrite1h, cacheRead });

const SONNET_LONG: LongContextRule = { thresholdTokens: 200_000, rates: r(6, 22.5, 7.5, 12, 0.6) };
const OPUS_46_FAST = r(30, 150, 37.5, 60, 3);
const OPUS_5_FAST = r(10, 50, 12.5, 20, 1);
const BEFORE_46_FLAT = '2026-03-13T00:00:00Z';

export const BUILTIN_MODELS: ModelPrice[] = [
  { id: 'claude-3-haiku-20240307', displayName: 'Claude Haiku 3', aliases: ['claude-3-haiku', 'claude-3-haiku-latest'],
    rates: r(0.25, 1.25, 0.3, 0.5, 0.03), usGeoPremium: false, contextWindow: 200_000 },
  { id: 'claude-3-opus-20240229', displayName: 'Claude Opus 3', aliases: ['claude-3-opus', 'claude-3-opus-latest'],
    rates: r(15, 75, 18.75, 30, 1.5), usGeoPremium: false, contextWindow: 200_000 },
  { id: 'claude-3-sonnet-20240229', displayName: 'Claude Sonnet 3', aliases: ['claude-3-sonnet'],
    rates: r(3, 15, 3.75, 6, 0.3), usGeoPremium: false, contextWindow: 200_000 },
  { id: 'claude-3-5-haiku-20241022', displayName: 'Claude Haiku 3.5', aliases: ['claude-3-5-haiku', 'claude-3-5-haiku-latest'],
    rates: r(0.8, 4, 1, 1.6, 0.08), usGeoPremium: false, contextWindow: 200_000 },
  { id: 'claude-3-5-sonnet-20241022', displayName: 'Claude Sonnet 3.5', aliases: ['claude-3-5-sonnet-20240620', 'claude-3-5-sonnet', 'claude-3-5-sonnet-latest'],
    rates: r(3, 15, 3.75, 6, 0.3), usGeoPremium: false, contextWindow: 200_000 },
  { id: 'claude-3-7-sonnet-20250219', displayName: 'Claude Sonnet 3.7', aliases: ['claude-3-7-sonnet', 'claude-3-7-sonnet-latest'],
    rates: r(3, 15, 3.75, 6, 0.3), usGeoPremium: false, contextWindow: 200_000 },
  { id: 'claude-sonnet-4-20250514', displayName: 'Claude Sonnet 4', aliases: ['claude-sonnet-4-0', 'claude-sonnet-4', 'claude-4-sonnet-20250514'],
    rates: r(3, 15, 3.75, 6, 0.3), longContext: SONNET_LONG, usGeoPremium: false, contextWindow: 200_000 },
  { id: 'claude-opus-4-20250514', displayName: 'Claude Opus 4', aliases: ['claude-opus-4-0', 'claude-opus-4', 'claude-4-opus-20250514'],
    rates: r(15, 75, 18.75, 30, 1.5), usGeoPremium: false, contextWindow: 200_000 },
  { id: 'claude-opus-4-1-20250805', displayName: 'Claude Opus 4.1', aliases: ['claude-opus-4-1'],
    rates: r(15, 75, 18.75, 30, 1.5), usGeoPremium: false, contextWindow: 200_000 },
  { id: 'claude-sonnet-4-5-20250929', displayName: 'Claude Sonnet 4.5', aliases: ['claude-sonnet-4-5'],
    rates: r(3, 15, 3.75, 6, 0.3), longContext: SONNET_LONG, usGeoPremium: false, contextWindow: 200_000 },
  { id: 'claude-haiku-4-5-20251001', displayName: 'Claude Haiku 4.5', aliases: ['claude-haiku-4-5'],
    rates: r(1, 5, 1.25, 2, 0.1), usGeoPremium: false, contextWindow: 200_000 },
  { id: 'claude-opus-4-5-20251101', displayName: 'Claude Opus 4.5', aliases: ['claude-opus-4-5'],
    rates: r(5, 25, 6.25, 10, 0.5), usGeoPremium: false, contextWindow: 200_000 },
  { id: 'claude-opus-4-6', displayName: 'Claude Opus 4.6', aliases: ['claude-opus-4-6-20260205'],
    rates: r(5, 25, 6.25, 10, 0.5), fast: OPUS_46_FAST, usGeoPremium: true, contextWindow: 1_000_000,
    history: [{ before: BEFORE_46_FLAT, longContext: { thresholdTokens: 200_000, rates: r(10, 37.5, 12.5, 20, 1) },
      note: '>200K premium until the 1M window became standard-priced (date per genai-prices)' }] },
  { id: 'claude-sonnet-4-6', displayName: 'Claude Sonnet 4.6', aliases: [],
    rates: r(3, 15, 3.75, 6, 0.3), usGeoPremium: true, contextWindow: 1_000_000,
    history: [{ before: BEFORE_46_FLAT, longContext: SONNET_LONG,
      note: '>200K premium until the 1M window became standard-priced (date per genai-prices)' }] },
  { id: 'claude-opus-4-7', displayName: 'Claude Opus 4.7', aliases: ['claude-opus-4-7-20260416'],
    rates: r(5, 25, 6.25, 10, 0.5), fast: OPUS_46_FAST, usGeoPremium: true, contextWindow: 1_000_000 },
  { id: 'claude-opus-4-8', displayName: 'Claude Opus 4.8', aliases: [],
    rates: r(5, 25, 6.25, 10, 0.5), fast: OPUS_5_FAST, usGeoPremium: true, contextWindow: 1_000_000 },
  { id: 'claude-opus-5', displayName: 'Claude Opus 5', aliases: [],
    rates: r(5, 25, 6.25, 10, 0.5), fast: OPUS_5_FAST, usGeoPremium: true, contextWindow: 1_000_000 },
  { id: 'claude-opus-5-5', displayName: 'Claude Opus 5.5', aliases: [],
    rates: r(4, 20, 5, 8, 0.2), fast: r(8, 40, 10, 16, 0.4), usGeoPremium: true, contextWindow: 1_000_000 },
  { id: 'claude-sonnet-5', displayName: 'Claude Sonnet 5', aliases: [],
    rates: r(2, 10, 2.5, 4, 0.2), usGeoPremium: true, contextWindow: 1_000_000 },
  { id: 'claude-sonnet-5-5', displayName: 'Claude Sonnet 5.5', aliases: [],
    rates: r(2, 10, 2.5, 4, 0.1), usGeoPremium: true, contextWindow: 1_000_000,
    history: [{ before: '2026-10-07T00:00:00Z', rates: { cacheRead: 0.2 }, note: 'cache reads cut from $0.20 to $0.10 on 2026-10-07' }] },
  { id: 'claude-haiku-5-5', displayName: 'Claude Haiku 5.5', aliases: [],
    rates: r(0.1, 0.5, 0.125, 0.2, 0.01), longContext: { thresholdTokens: 100_000, rates: r(0.5, 2.5, 0.625, 1, 0.05) },
    usGeoPremium: true, contextWindow: 1_000_000 },
  { id: 'claude-fable-5', displayName: 'Claude Fable 5', aliases: [],
    rates: r(10, 50, 12.5, 20, 1), usGeoPremium: true, contextWindow: 1_000_000 },
  { id: 'claude-fable-5-1', displayName: 'Claude Fable 5.1', aliases: [],
    rates: r(10, 50, 12.5, 20, 0.25), usGeoPremium: true, contextWindow: 1_000_000 },
  { id: 'claude-fable-5-2', displayName: 'Claude Fable 5.2', aliases: [],
    rates: r(8, 40, 10, 16, 0.2), fast: r(16, 80, 20, 32, 0.4), usGeoPremium: true, contextWindow: 1_000_000 },
  { id: 'claude-mythos-preview', displayName: 'Claude Mythos Preview', aliases: [],
    rates: r(10, 50, 12.5, 20, 1), usGeoPremium: true, contextWindow: 1_000_000 },
  { id: 'claude-mythos-5', displayName: 'Claude Mythos 5', aliases: [],
    rates: r(10, 50, 12.5, 20, 1), usGeoPremium: true, contextWindow: 1_000_000 },
  { id: 'claude-mythos-5-1', displayName: 'Claude Mythos 5.1', aliases: [],
    rates: r(10, 50, 12.5, 20, 0.25), usGeoPremium: true, contextWindow: 1_000_000 },
  { id: 'claude-mythos-5-2', displayName: 'Claude Mythos 5.2', aliases: [],
    rates: r(8, 40, 10, 16, 0.2), fast: r(16, 80, 20, 32, 0.4), usGeoPremium: true, contextWindow: 1_000_000 },
];

/** Claude Code writes this model on locally generated error lines; they carry no usage and cost nothing. */
export const SYNTHETIC_MODEL = '<synthetic>';

export const WEB_SEARCH_USD_EACH = 10 / 1000;
export const US_GEO_MULTIPLIER = 1.1;
export const BATCH_MULTIPLIER = 0.5;

/**
 * Every cost path of src/core/pricing, against expectations computed by hand.
 *
 * Rule for this file: an expected dollar figure is always a literal worked out in the comment beside it
 * (tokens x USD per MTok, summed in micro-dollars, then / 1,000,000). No expectation is obtained by calling
 * the code under test. Costs are compared with a tolerance of 1e-9 USD.
 *
 * Sources of the rates: ../shared/reference/pricing.json and pricing-telemetry-adminapi.md §1; the worked
 * example is from claude-code-observed.md. The rules are written up in docs/pricing.md.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { emptyUsage, type Usage } from '../../src/core/types.js';
import { BUILTIN_MODELS, SYNTHETIC_MODEL, type ModelPrice, type Rates } from '../../src/core/pricing/catalog.js';
import { normalizeModelId, PriceBook, type PricedRequest } from '../../src/core/pricing/pricebook.js';
import { applyUserPrices, PriceFileError } from '../../src/core/pricing/user-prices.js';
import { join } from 'node:path';
import { repoRoot, sharedPath } from '../helpers/paths.js';

const EPS = 1e-9;
const book = PriceBook.builtin();
/** A fixed instant after every dated change in the catalog (Claude Code worked example day). */
const NOW = Date.parse('2026-11-22T12:00:00Z');

function usage(p: Partial<Usage>): Usage {
  return { ...emptyUsage(), ...p };
}

function approx(actual: number | null | undefined, expected: number, what = 'cost'): void {
  assert.equal(typeof actual, 'number', `${what}: expected a number, got ${String(actual)}`);
  assert.ok(Math.abs((actual as number) - expected) <= EPS,
    `${what}: got ${actual}, expected ${expected} (diff ${(actual as number) - expected})`);
}

function priced(model: string | null, u: Partial<Usage>, ts = NOW, b: PriceBook = book): PricedRequest {
  return b.price(model, ts, usage(u));
}

function cost(model: string, u: Partial<Usage>, ts = NOW, b: PriceBook = book): number {
  const r = priced(model, u, ts, b);
  assert.notEqual(r.cost, null, `${model} should be priced`);
  return r.cost as number;
}

/** A "standard mix" request used for the modifier tests: one of each token class. */
const MIX: Partial<Usage> = { input: 10_000, output: 2_000, cacheWrite5m: 1_000, cacheWrite1h: 1_000, cacheRead: 20_000 };

// ---------------------------------------------------------------------------------------------------------
describe('each token class, several models', () => {
  // One request per token class, with these counts (each prompt stays under every long-context threshold):
  //   input 12_345, output 6_789, 5m write 54_321, 1h write 9_876, cache read 87_654
  const TOKENS = { input: 12_345, output: 6_789, cacheWrite5m: 54_321, cacheWrite1h: 9_876, cacheRead: 87_654 } as const;
  type Cls = keyof typeof TOKENS;
  const CASES: [string, Record<Cls, number>][] = [
    // claude-opus-4-8: 5 / 25 / 6.25 / 10 / 0.5
    //   12_345 * 5 = 61_725 ; 6_789 * 25 = 169_725 ; 54_321 * 6.25 = 339_506.25 ; 9_876 * 10 = 98_760 ; 87_654 * 0.5 = 43_827
    ['claude-opus-4-8', { input: 0.061725, output: 0.169725, cacheWrite5m: 0.33950625, cacheWrite1h: 0.09876, cacheRead: 0.043827 }],
    // claude-sonnet-4-6: 3 / 15 / 3.75 / 6 / 0.3
    //   12_345 * 3 = 37_035 ; 6_789 * 15 = 101_835 ; 54_321 * 3.75 = 203_703.75 ; 9_876 * 6 = 59_256 ; 87_654 * 0.3 = 26_296.2
    ['claude-sonnet-4-6', { input: 0.037035, output: 0.101835, cacheWrite5m: 0.20370375, cacheWrite1h: 0.059256, cacheRead: 0.0262962 }],
    // claude-haiku-4-5: 1 / 5 / 1.25 / 2 / 0.1
    //   12_345 ; 6_789 * 5 = 33_945 ; 54_321 * 1.25 = 67_901.25 ; 9_876 * 2 = 19_752 ; 87_654 * 0.1 = 8_765.4
    ['claude-haiku-4-5', { input: 0.012345, output: 0.033945, cacheWrite5m: 0.06790125, cacheWrite1h: 0.019752, cacheRead: 0.0087654 }],
    // claude-3-haiku-20240307: 0.25 / 1.25 / 0.30 (official 5m write is 1.2x, NOT 1.25x = 0.3125) / 0.5 / 0.03
    //   12_345 * 0.25 = 3_086.25 ; 6_789 * 1.25 = 8_486.25 ; 54_321 * 0.3 = 16_296.3 ; 9_876 * 0.5 = 4_938 ; 87_654 * 0.03 = 2_629.62
    ['claude-3-haiku-20240307', { input: 0.00308625, output: 0.00848625, cacheWrite5m: 0.0162963, cacheWrite1h: 0.004938, cacheRead: 0.00262962 }],
    // claude-opus-4-1: 15 / 75 / 18.75 / 30 / 1.5
    //   12_345 * 15 = 185_175 ; 6_789 * 75 = 509_175 ; 54_321 * 18.75 = 1_018_518.75 ; 9_876 * 30 = 296_280 ; 87_654 * 1.5 = 131_481
    ['claude-opus-4-1', { input: 0.185175, output: 0.509175, cacheWrite5m: 1.01851875, cacheWrite1h: 0.29628, cacheRead: 0.131481 }],
    // claude-3-5-haiku-20241022: 0.8 / 4 / 1 / 1.6 / 0.08
    //   12_345 * 0.8 = 9_876 ; 6_789 * 4 = 27_156 ; 54_321 * 1 = 54_321 ; 9_876 * 1.6 = 15_801.6 ; 87_654 * 0.08 = 7_012.32
    ['claude-3-5-haiku-20241022', { input: 0.009876, output: 0.027156, cacheWrite5m: 0.054321, cacheWrite1h: 0.0158016, cacheRead: 0.00701232 }],
    // claude-opus-5-5: 4 / 20 / 5 / 8 / 0.2 (read 0.05x)
    //   12_345 * 4 = 49_380 ; 6_789 * 20 = 135_780 ; 54_321 * 5 = 271_605 ; 9_876 * 8 = 79_008 ; 87_654 * 0.2 = 17_530.8
    ['claude-opus-5-5', { input: 0.04938, output: 0.13578, cacheWrite5m: 0.271605, cacheWrite1h: 0.079008, cacheRead: 0.0175308 }],
    // claude-sonnet-5-5 (after 2026-10-07): 2 / 10 / 2.5 / 4 / 0.1
    //   12_345 * 2 = 24_690 ; 6_789 * 10 = 67_890 ; 54_321 * 2.5 = 135_802.5 ; 9_876 * 4 = 39_504 ; 87_654 * 0.1 = 8_765.4
    ['claude-sonnet-5-5', { input: 0.02469, output: 0.06789, cacheWrite5m: 0.1358025, cacheWrite1h: 0.039504, cacheRead: 0.0087654 }],
    // claude-haiku-5-5 (prompt <= 100K): 0.1 / 0.5 / 0.125 / 0.2 / 0.01
    //   12_345 * 0.1 = 1_234.5 ; 6_789 * 0.5 = 3_394.5 ; 54_321 * 0.125 = 6_790.125 ; 9_876 * 0.2 = 1_975.2 ; 87_654 * 0.01 = 876.54
    ['claude-haiku-5-5', { input: 0.0012345, output: 0.0033945, cacheWrite5m: 0.006790125, cacheWrite1h: 0.0019752, cacheRead: 0.00087654 }],
    // claude-fable-5-1: 10 / 50 / 12.5 / 20 / 0.25 (read 0.025x)
    //   12_345 * 10 = 123_450 ; 6_789 * 50 = 339_450 ; 54_321 * 12.5 = 679_012.5 ; 9_876 * 20 = 197_520 ; 87_654 * 0.25 = 21_913.5
    ['claude-fable-5-1', { input: 0.12345, output: 0.33945, cacheWrite5m: 0.6790125, cacheWrite1h: 0.19752, cacheRead: 0.0219135 }],
    // claude-fable-5-2: 8 / 40 / 10 / 16 / 0.2
    //   12_345 * 8 = 98_760 ; 6_789 * 40 = 271_560 ; 54_321 * 10 = 543_210 ; 9_876 * 16 = 158_016 ; 87_654 * 0.2 = 17_530.8
    ['claude-fable-5-2', { input: 0.09876, output: 0.27156, cacheWrite5m: 0.54321, cacheWrite1h: 0.158016, cacheRead: 0.0175308 }],
  ];

  for (const [model, expected] of CASES) {
    test(model, () => {
      for (const cls of Object.keys(TOKENS) as Cls[]) {
        const r = priced(model, { [cls]: TOKENS[cls] });
        approx(r.cost, expected[cls], `${model} ${cls}`);
        approx(r.breakdown?.[cls], expected[cls], `${model} breakdown.${cls}`);
        assert.ok(r.priceId, `${model} resolves to a price row`);
        assert.equal(r.longContext, false);
      }
    });
  }

  test('one request with every class is the sum of the classes (Opus 4.8)', () => {
    // 0.061725 + 0.169725 + 0.33950625 + 0.09876 + 0.043827 = 0.71354325
    approx(cost('claude-opus-4-8', TOKENS), 0.71354325);
  });

  test('Haiku 5.5 with every class in one request is over 100K, so every class is x5', () => {
    // prompt = 12_345 + 54_321 + 9_876 + 87_654 = 164_196 > 100_000 -> 0.5 / 2.5 / 0.625 / 1 / 0.05
    // 12_345*0.5 = 6_172.5 ; 6_789*2.5 = 16_972.5 ; 54_321*0.625 = 33_950.625 ; 9_876*1 = 9_876 ; 87_654*0.05 = 4_382.7
    // sum = 71_354.325 -> 0.071354325
    const r = priced('claude-haiku-5-5', TOKENS);
    approx(r.cost, 0.071354325);
    assert.equal(r.longContext, true);
  });
});

// ---------------------------------------------------------------------------------------------------------
describe("Claude Code's own worked example (claude-code-observed.md, r01)", () => {
  const R01: Partial<Usage> = { input: 21, cacheWrite5m: 2_070, cacheWrite1h: 407, cacheRead: 24_700, output: 47 };
  test('opus-4-8 = $0.0306375', () => {
    // 21*5 = 105 ; 2_070*6.25 = 12_937.5 ; 407*10 = 4_070 ; 24_700*0.5 = 12_350 ; 47*25 = 1_175
    // 105 + 12_937.5 + 4_070 + 12_350 + 1_175 = 30_637.5 -> 0.0306375
    const r = priced('claude-opus-4-8', R01, Date.parse('2026-11-22T12:00:14.942Z'));
    approx(r.cost, 0.0306375);
    approx(r.breakdown?.input, 0.000105, 'input');
    approx(r.breakdown?.cacheWrite5m, 0.0129375, '5m');
    approx(r.breakdown?.cacheWrite1h, 0.00407, '1h');
    approx(r.breakdown?.cacheRead, 0.01235, 'read');
    approx(r.breakdown?.output, 0.001175, 'output');
    approx(r.breakdown?.webSearch, 0, 'webSearch');
  });
  test('the modelUsage key claude-opus-4-8[1m] prices the same', () => {
    approx(cost('claude-opus-4-8[1m]', R01), 0.0306375);
  });
  test('speed "standard" and inference_geo "" (as written by Claude Code) change nothing', () => {
    approx(cost('claude-opus-4-8', { ...R01, speed: 'standard', inferenceGeo: '', serviceTier: 'standard' }), 0.0306375);
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('long context: decided per request on input + cache writes + cache reads', () => {
  // Sonnet 4 / 4.5 premium: 6 / 22.5 / 7.5 / 12 / 0.6 above 200,000 prompt tokens.
  const OVER: Partial<Usage> = { input: 150_000, cacheRead: 60_000, cacheWrite5m: 5_000, output: 2_000 }; // prompt 215_000
  const EXACT: Partial<Usage> = { input: 140_000, cacheRead: 55_000, cacheWrite5m: 5_000, output: 2_000 }; // prompt 200_000

  for (const model of ['claude-sonnet-4-5-20250929', 'claude-sonnet-4-5', 'claude-sonnet-4-20250514', 'claude-sonnet-4-0']) {
    test(`${model}: 215K prompt is priced entirely at the premium`, () => {
      // 150_000*6 = 900_000 ; 60_000*0.6 = 36_000 ; 5_000*7.5 = 37_500 ; 2_000*22.5 = 45_000
      // sum = 1_018_500 -> 1.0185
      const r = priced(model, OVER);
      approx(r.cost, 1.0185);
      assert.equal(r.longContext, true);
      approx(r.breakdown?.cacheRead, 0.036, 'read at 0.6');
      approx(r.breakdown?.output, 0.045, 'output at 22.5');
    });
    test(`${model}: exactly 200,000 is not premium`, () => {
      // 140_000*3 = 420_000 ; 55_000*0.3 = 16_500 ; 5_000*3.75 = 18_750 ; 2_000*15 = 30_000
      // sum = 485_250 -> 0.48525
      const r = priced(model, EXACT);
      approx(r.cost, 0.48525);
      assert.equal(r.longContext, false);
    });
  }

  test('Sonnet 4.5: 200,001 tokens tips the whole request over', () => {
    // 140_001*6 = 840_006 ; 55_000*0.6 = 33_000 ; 5_000*7.5 = 37_500 ; 2_000*22.5 = 45_000 -> 955_506 -> 0.955506
    approx(cost('claude-sonnet-4-5', { ...EXACT, input: 140_001 }), 0.955506);
  });

  test('Sonnet 4.5: 1h cache writes count towards the threshold (and pay 12)', () => {
    // prompt = 190_000 + 10_001 = 200_001 > 200_000
    // 190_000*6 = 1_140_000 ; 10_001*12 = 120_012 -> 1_260_012 -> 1.260012
    const r = priced('claude-sonnet-4-5', { input: 190_000, cacheWrite1h: 10_001 });
    approx(r.cost, 1.260012);
    assert.equal(r.longContext, true);
  });

  test('Sonnet 4.5: output does not count towards the threshold', () => {
    // prompt = 199_000 (output 50_000 ignored) -> standard
    // 199_000*3 = 597_000 ; 50_000*15 = 750_000 -> 1_347_000 -> 1.347
    const r = priced('claude-sonnet-4-5', { input: 199_000, output: 50_000 });
    approx(r.cost, 1.347);
    assert.equal(r.longContext, false);
  });

  test('Sonnet 4.5: a prompt that is mostly cache hits still pays the premium on every class', () => {
    // prompt = 1_000 + 250_000 = 251_000 ; 1_000*6 = 6_000 ; 250_000*0.6 = 150_000 ; 100*22.5 = 2_250 -> 158_250 -> 0.15825
    approx(cost('claude-sonnet-4-5', { input: 1_000, cacheRead: 250_000, output: 100 }), 0.15825);
  });

  test('Haiku 5.5 over 100,000: whole request at 0.5 / 2.5 / 0.625 / 1 / 0.05', () => {
    // prompt = 70_000 + 20_000 + 5_000 + 5_001 = 100_001
    // 70_000*0.5 = 35_000 ; 20_000*0.05 = 1_000 ; 5_000*0.625 = 3_125 ; 5_001*1 = 5_001 ; 1_000*2.5 = 2_500
    // sum = 46_626 -> 0.046626
    const r = priced('claude-haiku-5-5', { input: 70_000, cacheRead: 20_000, cacheWrite5m: 5_000, cacheWrite1h: 5_001, output: 1_000 });
    approx(r.cost, 0.046626);
    assert.equal(r.longContext, true);
  });

  test('Haiku 5.5 at exactly 100,000: standard 0.1 / 0.5 / 0.125 / 0.2 / 0.01', () => {
    // 70_000*0.1 = 7_000 ; 20_000*0.01 = 200 ; 5_000*0.125 = 625 ; 5_000*0.2 = 1_000 ; 1_000*0.5 = 500
    // sum = 9_325 -> 0.009325
    const r = priced('claude-haiku-5-5', { input: 70_000, cacheRead: 20_000, cacheWrite5m: 5_000, cacheWrite1h: 5_000, output: 1_000 });
    approx(r.cost, 0.009325);
    assert.equal(r.longContext, false);
  });

  test('Opus 4.7 at 300K is flat (no premium)', () => {
    // 250_000*5 = 1_250_000 ; 50_000*0.5 = 25_000 ; 3_000*25 = 75_000 -> 1_350_000 -> 1.35
    const r = priced('claude-opus-4-7', { input: 250_000, cacheRead: 50_000, output: 3_000 });
    approx(r.cost, 1.35);
    assert.equal(r.longContext, false);
  });

  test('Opus 4.8, Sonnet 5.5, Fable 5.2 at 900K are flat', () => {
    // opus-4-8: 900_000*5 = 4_500_000 ; 1_000*25 = 25_000 -> 4.525
    approx(cost('claude-opus-4-8', { input: 900_000, output: 1_000 }), 4.525);
    // sonnet-5-5: 900_000*2 = 1_800_000 ; 1_000*10 = 10_000 -> 1.81
    approx(cost('claude-sonnet-5-5', { input: 900_000, output: 1_000 }), 1.81);
    // fable-5-2: 900_000*8 = 7_200_000 ; 1_000*40 = 40_000 -> 7.24
    approx(cost('claude-fable-5-2', { input: 900_000, output: 1_000 }), 7.24);
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('price changes by date', () => {
  const CUT_55 = Date.parse('2026-10-07T00:00:00Z');
  test('Sonnet 5.5 cache read: $0.20 until 2026-10-07T00:00Z, $0.10 from then', () => {
    const u = { cacheRead: 123_456, input: 1_000 };
    // before: 123_456*0.2 = 24_691.2 ; 1_000*2 = 2_000 -> 26_691.2 -> 0.0266912
    approx(cost('claude-sonnet-5-5', u, CUT_55 - 1), 0.0266912, '1 ms before');
    // from:   123_456*0.1 = 12_345.6 ; 1_000*2 = 2_000 -> 14_345.6 -> 0.0143456
    approx(cost('claude-sonnet-5-5', u, CUT_55), 0.0143456, 'at the cut');
    approx(cost('claude-sonnet-5-5', u, CUT_55 + 1), 0.0143456, '1 ms after');
  });
  test('Sonnet 5.5 other classes are the same on both sides of the cut', () => {
    // 1_000*2.5 = 2_500 ; 1_000*4 = 4_000 ; 1_000*10 = 10_000 -> 16_500 -> 0.0165
    const u = { cacheWrite5m: 1_000, cacheWrite1h: 1_000, output: 1_000 };
    approx(cost('claude-sonnet-5-5', u, CUT_55 - 1), 0.0165);
    approx(cost('claude-sonnet-5-5', u, CUT_55), 0.0165);
  });

  const CUT_46 = Date.parse('2026-03-13T00:00:00Z');
  const BIG = { input: 250_000, output: 2_000 }; // prompt 250_000 > 200_000
  test('Opus 4.6: >200K premium (10 / 37.5) before 2026-03-13, flat after', () => {
    // before: 250_000*10 = 2_500_000 ; 2_000*37.5 = 75_000 -> 2.575
    const before = priced('claude-opus-4-6', BIG, CUT_46 - 1);
    approx(before.cost, 2.575, 'before');
    assert.equal(before.longContext, true);
    // after:  250_000*5 = 1_250_000 ; 2_000*25 = 50_000 -> 1.3
    const after = priced('claude-opus-4-6', BIG, CUT_46);
    approx(after.cost, 1.3, 'after');
    assert.equal(after.longContext, false);
  });
  test('Opus 4.6 premium cache rates before the cut: 12.5 / 20 / 1', () => {
    // prompt = 100_000 + 100_000 + 100_000 = 300_000 ; 100_000*12.5 = 1_250_000 ; 100_000*20 = 2_000_000 ; 100_000*1 = 100_000
    // -> 3_350_000 -> 3.35
    approx(cost('claude-opus-4-6', { cacheWrite5m: 100_000, cacheWrite1h: 100_000, cacheRead: 100_000 }, CUT_46 - 1), 3.35);
  });
  test('Sonnet 4.6: >200K premium (6 / 22.5) before 2026-03-13, flat after', () => {
    // before: 250_000*6 = 1_500_000 ; 2_000*22.5 = 45_000 -> 1.545
    approx(cost('claude-sonnet-4-6', BIG, CUT_46 - 1), 1.545, 'before');
    // after:  250_000*3 = 750_000 ; 2_000*15 = 30_000 -> 0.78
    approx(cost('claude-sonnet-4-6', BIG, CUT_46), 0.78, 'after');
  });
  test('Opus 4.6 before the cut but at 200,000 exactly is standard', () => {
    // 200_000*5 = 1_000_000 -> 1
    approx(cost('claude-opus-4-6', { input: 200_000 }, CUT_46 - 1), 1);
  });

  test('several dated changes: the one in force at the instant wins, whatever the array order', () => {
    // Synthetic model: today input 5 / read 0.5; input 4 and read 0.4 before 2026-06-01; input 3 before 2026-01-01.
    const base: ModelPrice = {
      id: 'test-dated', displayName: 'dated', aliases: [], usGeoPremium: false, contextWindow: 200_000,
      rates: { input: 5, output: 25, cacheWrite5m: 6.25, cacheWrite1h: 10, cacheRead: 0.5 },
    };
    const older = { before: '2026-01-01T00:00:00Z', rates: { input: 3 }, note: 'older' };
    const newer = { before: '2026-06-01T00:00:00Z', rates: { input: 4, cacheRead: 0.4 }, note: 'newer' };
    for (const history of [[older, newer], [newer, older]]) {
      const b = new PriceBook([{ ...base, history }]);
      const u = { input: 1_000_000, cacheRead: 1_000_000 };
      // 2025-12-31: input 3 (older change), read 0.4 (newer change still ahead) -> 3 + 0.4 = 3.4
      approx(cost('test-dated', u, Date.parse('2025-12-31T00:00:00Z'), b), 3.4, `2025 (${history[0].note} first)`);
      // 2026-03-01: input 4, read 0.4 -> 4.4
      approx(cost('test-dated', u, Date.parse('2026-03-01T00:00:00Z'), b), 4.4, `2026-03 (${history[0].note} first)`);
      // 2026-07-01: today's prices -> 5 + 0.5 = 5.5
      approx(cost('test-dated', u, Date.parse('2026-07-01T00:00:00Z'), b), 5.5, `2026-07 (${history[0].note} first)`);
    }
  });

  test('a dated change with longContext: null removes the rule for earlier requests', () => {
    const b = new PriceBook([{
      id: 'test-lc', displayName: 'lc', aliases: [], usGeoPremium: false, contextWindow: 1_000_000,
      rates: { input: 1, output: 5, cacheWrite5m: 1.25, cacheWrite1h: 2, cacheRead: 0.1 },
      longContext: { thresholdTokens: 100_000, rates: { input: 2, output: 10, cacheWrite5m: 2.5, cacheWrite1h: 4, cacheRead: 0.2 } },
      history: [{ before: '2026-05-01T00:00:00Z', longContext: null, note: 'rule introduced 2026-05-01' }],
    }]);
    // 200_000 input: before -> 200_000*1 = 0.2 ; after -> 200_000*2 = 0.4
    approx(cost('test-lc', { input: 200_000 }, Date.parse('2026-04-30T23:59:59.999Z'), b), 0.2);
    approx(cost('test-lc', { input: 200_000 }, Date.parse('2026-05-01T00:00:00Z'), b), 0.4);
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('fast mode (usage.speed == "fast")', () => {
  // MIX = 10_000 in, 2_000 out, 1_000 5m, 1_000 1h, 20_000 read
  test('Opus 4.6 and 4.7: 30 / 150 / 37.5 / 60 / 3', () => {
    // 10_000*30 = 300_000 ; 2_000*150 = 300_000 ; 1_000*37.5 = 37_500 ; 1_000*60 = 60_000 ; 20_000*3 = 60_000
    // sum = 757_500 -> 0.7575
    for (const model of ['claude-opus-4-6', 'claude-opus-4-7']) {
      const r = priced(model, { ...MIX, speed: 'fast' });
      approx(r.cost, 0.7575, model);
      assert.equal(r.fast, true);
    }
  });
  test('Opus 4.8 and Opus 5: 10 / 50 / 12.5 / 20 / 1', () => {
    // 10_000*10 = 100_000 ; 2_000*50 = 100_000 ; 1_000*12.5 = 12_500 ; 1_000*20 = 20_000 ; 20_000*1 = 20_000
    // sum = 252_500 -> 0.2525
    approx(cost('claude-opus-4-8', { ...MIX, speed: 'fast' }), 0.2525, 'opus-4-8');
    approx(cost('claude-opus-5', { ...MIX, speed: 'fast' }), 0.2525, 'opus-5');
  });
  test('Opus 5.5: 8 / 40 / 10 / 16 / 0.4', () => {
    // 10_000*8 = 80_000 ; 2_000*40 = 80_000 ; 1_000*10 = 10_000 ; 1_000*16 = 16_000 ; 20_000*0.4 = 8_000
    // sum = 194_000 -> 0.194
    approx(cost('claude-opus-5-5', { ...MIX, speed: 'fast' }), 0.194);
  });
  test('Fable 5.2 and Mythos 5.2: 16 / 80 / 20 / 32 / 0.4', () => {
    // 10_000*16 = 160_000 ; 2_000*80 = 160_000 ; 1_000*20 = 20_000 ; 1_000*32 = 32_000 ; 20_000*0.4 = 8_000
    // sum = 380_000 -> 0.38
    approx(cost('claude-fable-5-2', { ...MIX, speed: 'fast' }), 0.38, 'fable-5-2');
    approx(cost('claude-mythos-5-2', { ...MIX, speed: 'fast' }), 0.38, 'mythos-5-2');
  });
  test('fast on a model without fast rates (Sonnet 4.6, Haiku 4.5) prices at standard', () => {
    // sonnet-4-6: 10_000*3 = 30_000 ; 2_000*15 = 30_000 ; 1_000*3.75 = 3_750 ; 1_000*6 = 6_000 ; 20_000*0.3 = 6_000
    // sum = 75_750 -> 0.07575
    const r = priced('claude-sonnet-4-6', { ...MIX, speed: 'fast' });
    approx(r.cost, 0.07575);
    assert.equal(r.fast, false);
    // haiku-4-5: 10_000*1 + 2_000*5 + 1_000*1.25 + 1_000*2 + 20_000*0.1 = 10_000 + 10_000 + 1_250 + 2_000 + 2_000 = 25_250
    approx(cost('claude-haiku-4-5', { ...MIX, speed: 'fast' }), 0.02525);
  });
  test('fast is flat: Opus 4.6 fast at 250K before the 4.6 cut gets fast rates, not the >200K premium', () => {
    // 250_000*30 = 7_500_000 ; 2_000*150 = 300_000 -> 7_800_000 -> 7.8
    const r = priced('claude-opus-4-6', { input: 250_000, output: 2_000, speed: 'fast' }, Date.parse('2026-03-01T00:00:00Z'));
    approx(r.cost, 7.8);
    assert.equal(r.fast, true);
    assert.equal(r.longContext, false);
  });
  test('fast is flat: Opus 4.8 fast at 500K', () => {
    // 500_000*10 = 5_000_000 ; 1_000*50 = 50_000 -> 5.05
    approx(cost('claude-opus-4-8', { input: 500_000, output: 1_000, speed: 'fast' }), 5.05);
  });
  test('fast on a long-context model without fast rates still takes the premium (Sonnet 4.5)', () => {
    // no fast rates -> 215K prompt premium: same as the long-context case = 1.0185
    approx(cost('claude-sonnet-4-5', { input: 150_000, cacheRead: 60_000, cacheWrite5m: 5_000, output: 2_000, speed: 'fast' }), 1.0185);
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('US-only inference (inference_geo == "us")', () => {
  test('x1.1 on Opus 4.6', () => {
    // base: 10_000*5 = 50_000 ; 2_000*25 = 50_000 ; 1_000*6.25 = 6_250 ; 1_000*10 = 10_000 ; 20_000*0.5 = 10_000 -> 126_250
    // x1.1 = 138_875 -> 0.138875
    const r = priced('claude-opus-4-6', { ...MIX, inferenceGeo: 'us' });
    approx(r.cost, 0.138875);
    assert.equal(r.usGeo, true);
    // each class is multiplied: read 10_000 * 1.1 = 11_000 -> 0.011
    approx(r.breakdown?.cacheRead, 0.011, 'read x1.1');
  });
  test('x1.1 on Sonnet 4.6, Opus 4.8, Opus 5.5, Sonnet 5.5, Haiku 5.5, Fable 5.2', () => {
    // sonnet-4-6 base 75_750 (see fast test) x1.1 = 83_325 -> 0.083325
    approx(cost('claude-sonnet-4-6', { ...MIX, inferenceGeo: 'us' }), 0.083325, 'sonnet-4-6');
    // opus-4-8 base 126_250 x1.1 = 138_875
    approx(cost('claude-opus-4-8', { ...MIX, inferenceGeo: 'us' }), 0.138875, 'opus-4-8');
    // opus-5-5: 10_000*4 = 40_000 ; 2_000*20 = 40_000 ; 1_000*5 = 5_000 ; 1_000*8 = 8_000 ; 20_000*0.2 = 4_000 -> 97_000
    //   x1.1 = 106_700 -> 0.1067
    approx(cost('claude-opus-5-5', { ...MIX, inferenceGeo: 'us' }), 0.1067, 'opus-5-5');
    // sonnet-5-5: 10_000*2 = 20_000 ; 2_000*10 = 20_000 ; 1_000*2.5 = 2_500 ; 1_000*4 = 4_000 ; 20_000*0.1 = 2_000 -> 48_500
    //   x1.1 = 53_350 -> 0.05335
    approx(cost('claude-sonnet-5-5', { ...MIX, inferenceGeo: 'us' }), 0.05335, 'sonnet-5-5');
    // haiku-5-5: 10_000*0.1 = 1_000 ; 2_000*0.5 = 1_000 ; 1_000*0.125 = 125 ; 1_000*0.2 = 200 ; 20_000*0.01 = 200 -> 2_525
    //   x1.1 = 2_777.5 -> 0.0027775
    approx(cost('claude-haiku-5-5', { ...MIX, inferenceGeo: 'us' }), 0.0027775, 'haiku-5-5');
    // fable-5-2: 10_000*8 = 80_000 ; 2_000*40 = 80_000 ; 1_000*10 = 10_000 ; 1_000*16 = 16_000 ; 20_000*0.2 = 4_000 -> 190_000
    //   x1.1 = 209_000 -> 0.209
    approx(cost('claude-fable-5-2', { ...MIX, inferenceGeo: 'us' }), 0.209, 'fable-5-2');
  });
  test('not on Haiku 4.5, Opus 4.5, Sonnet 4.5 (they reject inference_geo)', () => {
    // haiku-4-5 base = 25_250 -> 0.02525
    const h = priced('claude-haiku-4-5', { ...MIX, inferenceGeo: 'us' });
    approx(h.cost, 0.02525, 'haiku-4-5');
    assert.equal(h.usGeo, false);
    // opus-4-5 base = 126_250 -> 0.12625
    approx(cost('claude-opus-4-5', { ...MIX, inferenceGeo: 'us' }), 0.12625, 'opus-4-5');
    // sonnet-4-5 base = 75_750 -> 0.07575
    approx(cost('claude-sonnet-4-5', { ...MIX, inferenceGeo: 'us' }), 0.07575, 'sonnet-4-5');
  });
  test('other geo values cost the standard price', () => {
    approx(cost('claude-opus-4-8', { ...MIX, inferenceGeo: 'global' }), 0.12625);
    approx(cost('claude-opus-4-8', { ...MIX, inferenceGeo: '' }), 0.12625);
    approx(cost('claude-opus-4-8', { ...MIX, inferenceGeo: null }), 0.12625);
  });
  test('the web-search fee is never multiplied', () => {
    // 10_000*5*1.1 = 55_000 -> 0.055 ; 3 searches * $0.01 = 0.03 -> 0.085
    const r = priced('claude-opus-4-8', { input: 10_000, webSearches: 3, inferenceGeo: 'us' });
    approx(r.cost, 0.085);
    approx(r.breakdown?.webSearch, 0.03, 'webSearch');
  });
  test('fast + us stack', () => {
    // opus-4-8 fast 252_500 x1.1 = 277_750 -> 0.27775
    approx(cost('claude-opus-4-8', { ...MIX, speed: 'fast', inferenceGeo: 'us' }), 0.27775, 'opus-4-8');
    // opus-4-6 fast 757_500 x1.1 = 833_250 -> 0.83325
    approx(cost('claude-opus-4-6', { ...MIX, speed: 'fast', inferenceGeo: 'us' }), 0.83325, 'opus-4-6');
    // fable-5-2 fast 380_000 x1.1 = 418_000 -> 0.418
    approx(cost('claude-fable-5-2', { ...MIX, speed: 'fast', inferenceGeo: 'us' }), 0.418, 'fable-5-2');
  });
  test('us + long context (Haiku 5.5 over 100K) stack', () => {
    // 200_000*0.5 = 100_000 ; 1_000*2.5 = 2_500 -> 102_500 x1.1 = 112_750 -> 0.11275
    approx(cost('claude-haiku-5-5', { input: 200_000, output: 1_000, inferenceGeo: 'us' }), 0.11275);
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('web search and batch', () => {
  test('web search is $10 per 1,000', () => {
    // 1_000 searches * 0.01 = 10
    approx(cost('claude-sonnet-4-6', { webSearches: 1_000 }), 10);
    // 7 * 0.01 = 0.07 ; 1_000*3 = 3_000 -> 0.003 -> 0.073
    approx(cost('claude-sonnet-4-6', { webSearches: 7, input: 1_000 }), 0.073);
  });
  test('web fetches are free', () => {
    approx(cost('claude-sonnet-4-6', { webFetches: 50 }), 0);
  });
  test('batch halves token costs', () => {
    // opus-4-8 MIX base 126_250 x0.5 = 63_125 -> 0.063125
    const r = priced('claude-opus-4-8', { ...MIX, serviceTier: 'batch' });
    approx(r.cost, 0.063125);
    assert.equal(r.batch, true);
    // haiku-3: 1_000_000 input -> 0.25 x0.5 = 0.125 ; 1_000_000 output -> 1.25 x0.5 = 0.625 (pricing page batch row)
    approx(cost('claude-3-haiku-20240307', { input: 1_000_000, serviceTier: 'batch' }), 0.125);
    approx(cost('claude-3-haiku-20240307', { output: 1_000_000, serviceTier: 'batch' }), 0.625);
  });
  test('batch does not halve the web-search fee', () => {
    // 10_000*5*0.5 = 25_000 -> 0.025 ; 2 * 0.01 = 0.02 -> 0.045
    approx(cost('claude-opus-4-8', { input: 10_000, webSearches: 2, serviceTier: 'batch' }), 0.045);
  });
  test('batch applies to long-context prices (Sonnet 4.5 215K, Haiku 5.5 >100K)', () => {
    // sonnet-4-5 215K request 1_018_500 x0.5 = 509_250 -> 0.50925
    approx(cost('claude-sonnet-4-5', { input: 150_000, cacheRead: 60_000, cacheWrite5m: 5_000, output: 2_000, serviceTier: 'batch' }), 0.50925);
    // haiku-5-5 200_000 input at 0.5 x0.5 = 50_000 -> 0.05 (= $0.25/MTok batch >100K)
    approx(cost('claude-haiku-5-5', { input: 200_000, serviceTier: 'batch' }), 0.05);
  });
  test('batch + us stack', () => {
    // opus-4-8 MIX 126_250 x1.1 x0.5 = 69_437.5 -> 0.0694375
    approx(cost('claude-opus-4-8', { ...MIX, serviceTier: 'batch', inferenceGeo: 'us' }), 0.0694375);
  });
  test('other service tiers are standard price', () => {
    approx(cost('claude-opus-4-8', { ...MIX, serviceTier: 'priority' }), 0.12625);
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('unknown models and <synthetic>', () => {
  for (const model of ['claude-opus-9', 'gpt-4o', 'claude-opus-9-20991231', '']) {
    test(`"${model}" has no price: cost null, never 0`, () => {
      const r = priced(model, { input: 1_000, output: 1_000 });
      assert.equal(r.cost, null);
      assert.equal(r.priceId, null);
      assert.equal(r.breakdown, null);
      assert.equal(book.isKnown(model), false);
      // even with no tokens, an unknown model is not "free"
      assert.equal(priced(model, {}).cost, null);
    });
  }
  test('a null model has no price', () => {
    assert.equal(priced(null, { input: 1 }).cost, null);
    assert.equal(book.isKnown(null), false);
  });
  test('<synthetic> costs 0 and is known', () => {
    assert.equal(SYNTHETIC_MODEL, '<synthetic>');
    const r = priced('<synthetic>', { input: 1_000, output: 1_000, webSearches: 3 });
    assert.equal(r.cost, 0);
    assert.equal(r.priceId, '<synthetic>');
    assert.equal(book.isKnown('<synthetic>'), true);
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('model id normalisation', () => {
  const CASES: [string, string][] = [
    ['claude-opus-4-8[1m]', 'claude-opus-4-8'],
    ['claude-sonnet-4-6[1m]', 'claude-sonnet-4-6'],
    ['us.anthropic.claude-sonnet-4-5-20250929-v1:0', 'claude-sonnet-4-5-20250929'],
    ['eu.anthropic.claude-haiku-4-5-20251001-v1:0', 'claude-haiku-4-5-20251001'],
    ['global.anthropic.claude-opus-4-5-20251101-v1:0', 'claude-opus-4-5-20251101'],
    ['us.anthropic.claude-opus-4-6-v1', 'claude-opus-4-6'],
    ['us.anthropic.claude-opus-4-8', 'claude-opus-4-8'],
    ['anthropic.claude-haiku-4-5', 'claude-haiku-4-5-20251001'],
    ['us.anthropic.claude-3-5-sonnet-20241022-v2:0', 'claude-3-5-sonnet-20241022'],
    ['claude-sonnet-4@20250514', 'claude-sonnet-4-20250514'],
    ['claude-opus-4-1@20250805', 'claude-opus-4-1-20250805'],
    // Vertex id from Claude Code's catalog (provider_ids.vertex): a -v2 revision before @date
    ['claude-3-5-sonnet-v2@20241022', 'claude-3-5-sonnet-20241022'],
    ['anthropic/claude-haiku-4-5', 'claude-haiku-4-5-20251001'],
    ['vertex_ai/claude-opus-4-1@20250805', 'claude-opus-4-1-20250805'],
    ['claude-sonnet-4-0', 'claude-sonnet-4-20250514'],
    ['claude-opus-4-0', 'claude-opus-4-20250514'],
    ['claude-opus-4-1', 'claude-opus-4-1-20250805'],
    ['claude-3-opus-latest', 'claude-3-opus-20240229'],
    ['claude-3-5-sonnet-20240620', 'claude-3-5-sonnet-20241022'],
    ['claude-4-sonnet-20250514', 'claude-sonnet-4-20250514'],
    ['Claude-Opus-4-8', 'claude-opus-4-8'],
    ['  claude-opus-4-8  ', 'claude-opus-4-8'],
    // an unlisted dated snapshot falls back to its undated alias
    ['claude-haiku-4-5-20991231', 'claude-haiku-4-5-20251001'],
    ['claude-opus-4-8-20991231', 'claude-opus-4-8'],
  ];
  for (const [raw, id] of CASES) {
    test(`${JSON.stringify(raw)} -> ${id}`, () => {
      assert.equal(book.find(raw)?.id, id);
      assert.equal(book.isKnown(raw), true);
      assert.equal(priced(raw, { input: 1 }).priceId, id);
    });
  }
  test('normalizeModelId strips only the decorations', () => {
    assert.equal(normalizeModelId('claude-opus-4-8[1m]'), 'claude-opus-4-8');
    assert.equal(normalizeModelId('us.anthropic.claude-sonnet-4-5-20250929-v1:0'), 'claude-sonnet-4-5-20250929');
    assert.equal(normalizeModelId('claude-sonnet-4@20250514'), 'claude-sonnet-4-20250514');
    assert.equal(normalizeModelId('anthropic/claude-haiku-4-5'), 'claude-haiku-4-5');
    assert.equal(normalizeModelId('claude-3-5-sonnet-v2@20241022'), 'claude-3-5-sonnet-20241022');
    assert.equal(normalizeModelId('claude-opus-9'), 'claude-opus-9');
  });
  test('a made-up id stays unknown', () => {
    assert.equal(book.find('claude-opus-9'), undefined);
    assert.equal(book.find('claude-opus-9[1m]'), undefined);
    assert.equal(book.find('us.anthropic.claude-opus-9-v1:0'), undefined);
  });
  test('Haiku 4.5 via an unlisted snapshot prices like Haiku 4.5', () => {
    // 1_000*1 + 1_000*5 = 6_000 -> 0.006
    approx(cost('claude-haiku-4-5-20991231', { input: 1_000, output: 1_000 }), 0.006);
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('user price file (applyUserPrices)', () => {
  const WHERE = '/home/u/.tokentally/prices.json';

  test('an empty file changes nothing (same fingerprint as built-in)', () => {
    const b = applyUserPrices({ models: {} }, WHERE);
    assert.equal(b.fingerprint, book.fingerprint);
    approx(cost('claude-opus-4-8', MIX, NOW, b), 0.12625);
  });

  test('override one field of a built-in model: others kept, dated history dropped', () => {
    const b = applyUserPrices({ models: { 'claude-sonnet-5-5': { output: 12 } } }, WHERE);
    // output now 12: 1_000*12 = 12_000 -> 0.012
    approx(cost('claude-sonnet-5-5', { output: 1_000 }, NOW, b), 0.012, 'output');
    // input kept at 2: 1_000*2 -> 0.002 ; cache read kept at 0.1 today: 100_000*0.1 = 10_000 -> 0.01
    approx(cost('claude-sonnet-5-5', { input: 1_000 }, NOW, b), 0.002, 'input kept');
    approx(cost('claude-sonnet-5-5', { cacheRead: 100_000 }, NOW, b), 0.01, 'read kept');
    // history dropped: before 2026-10-07 the read is now 0.1 too (built-in: 100_000*0.2 = 0.02)
    const before = Date.parse('2026-10-01T00:00:00Z');
    approx(cost('claude-sonnet-5-5', { cacheRead: 100_000 }, before, b), 0.01, 'read before cut, user book');
    approx(cost('claude-sonnet-5-5', { cacheRead: 100_000 }, before), 0.02, 'read before cut, built-in untouched');
    assert.equal(b.find('claude-sonnet-5-5')?.history, undefined);
  });

  test('override through an alias (Opus 4.6 dated id) hits the canonical row and drops its premium history', () => {
    const b = applyUserPrices({ models: { 'claude-opus-4-6-20260205': { input: 6 } } }, WHERE);
    assert.equal(b.models.filter((m) => m.id.startsWith('claude-opus-4-6')).length, 1);
    // before 2026-03-13, 250K input: no premium any more -> 250_000*6 = 1_500_000 ; 2_000*25 = 50_000 -> 1.55
    approx(cost('claude-opus-4-6', { input: 250_000, output: 2_000 }, Date.parse('2026-03-01T00:00:00Z'), b), 1.55);
    // fast rates untouched: 1_000*30 = 0.03
    approx(cost('claude-opus-4-6', { input: 1_000, speed: 'fast' }, NOW, b), 0.03);
  });

  test('an override does not leak into the built-in catalog', () => {
    applyUserPrices({ models: { 'claude-opus-4-8': { input: 99, aliases: ['leak-test'] } } }, WHERE);
    assert.equal(BUILTIN_MODELS.find((m) => m.id === 'claude-opus-4-8')?.rates.input, 5);
    assert.equal(PriceBook.builtin().find('leak-test'), undefined);
    approx(cost('claude-opus-4-8', { input: 1_000_000 }, NOW, PriceBook.builtin()), 5);
  });

  test('a new model with only input/output gets cache rates 1.25x / 2x / 0.1x', () => {
    const b = applyUserPrices({ models: { 'acme-model': { input: 2, output: 8 } } }, WHERE);
    const m = b.find('acme-model');
    assert.deepEqual(m?.rates, { input: 2, output: 8, cacheWrite5m: 2.5, cacheWrite1h: 4, cacheRead: 0.2 });
    assert.equal(b.isKnown('acme-model'), true);
    // 1_000*2 = 2_000 ; 1_000*8 = 8_000 ; 1_000*2.5 = 2_500 ; 1_000*4 = 4_000 ; 1_000*0.2 = 200 -> 16_700 -> 0.0167
    approx(cost('acme-model', { input: 1_000, output: 1_000, cacheWrite5m: 1_000, cacheWrite1h: 1_000, cacheRead: 1_000 }, NOW, b), 0.0167);
    // no US premium unless asked for: same 0.0167
    approx(cost('acme-model', { input: 1_000, output: 1_000, cacheWrite5m: 1_000, cacheWrite1h: 1_000, cacheRead: 1_000, inferenceGeo: 'us' }, NOW, b), 0.0167);
  });

  test('a new model keeps explicit cache rates', () => {
    const b = applyUserPrices({ models: { 'acme-model': { input: 2, output: 8, cacheWrite5m: 3, cacheWrite1h: 3.5, cacheRead: 0.05 } } }, WHERE);
    assert.deepEqual(b.find('acme-model')?.rates, { input: 2, output: 8, cacheWrite5m: 3, cacheWrite1h: 3.5, cacheRead: 0.05 });
  });

  test('aliases on a new model and on a built-in one', () => {
    const b = applyUserPrices({ models: {
      'acme-model': { input: 2, output: 8, aliases: ['acme-model-latest', 'ACME-Model-Old'] },
      'claude-opus-4-8': { aliases: ['my-opus'] },
    } }, WHERE);
    assert.equal(b.find('acme-model-latest')?.id, 'acme-model');
    assert.equal(b.find('acme-model-old')?.id, 'acme-model');
    assert.equal(b.find('my-opus')?.id, 'claude-opus-4-8');
    // an alias-only entry changes no price: my-opus r01 = 0.0306375
    approx(cost('my-opus', { input: 21, cacheWrite5m: 2_070, cacheWrite1h: 407, cacheRead: 24_700, output: 47 }, NOW, b), 0.0306375);
  });

  test('a longContext block (cache rates derived from its input)', () => {
    const b = applyUserPrices({ models: {
      'acme-long': { input: 2, output: 8, longContext: { thresholdTokens: 100_000, input: 4, output: 16 } },
    } }, WHERE);
    assert.deepEqual(b.find('acme-long')?.longContext,
      { thresholdTokens: 100_000, rates: { input: 4, output: 16, cacheWrite5m: 5, cacheWrite1h: 8, cacheRead: 0.4 } });
    // 100_001 input at 4 = 400_004 ; 1_000 output at 16 = 16_000 -> 416_004 -> 0.416004
    approx(cost('acme-long', { input: 100_001, output: 1_000 }, NOW, b), 0.416004);
    // 100_000 input at 2 = 200_000 ; 1_000 at 8 = 8_000 -> 0.208
    approx(cost('acme-long', { input: 100_000, output: 1_000 }, NOW, b), 0.208);
  });

  test('longContext: null removes a built-in premium (Sonnet 4.5)', () => {
    const b = applyUserPrices({ models: { 'claude-sonnet-4-5': { longContext: null } } }, WHERE);
    // 150_000*3 = 450_000 ; 60_000*0.3 = 18_000 ; 5_000*3.75 = 18_750 ; 2_000*15 = 30_000 -> 516_750 -> 0.51675
    approx(cost('claude-sonnet-4-5', { input: 150_000, cacheRead: 60_000, cacheWrite5m: 5_000, output: 2_000 }, NOW, b), 0.51675);
  });

  test('a fast block (cache rates derived) and usGeoPremium', () => {
    const b = applyUserPrices({ models: {
      'acme-fast': { input: 3, output: 15, fast: { input: 6, output: 30 }, usGeoPremium: true },
    } }, WHERE);
    // fast: 1_000*6 = 6_000 ; 1_000*30 = 30_000 ; 1_000*7.5 = 7_500 ; 1_000*12 = 12_000 ; 1_000*0.6 = 600 -> 56_100 -> 0.0561
    const all = { input: 1_000, output: 1_000, cacheWrite5m: 1_000, cacheWrite1h: 1_000, cacheRead: 1_000 };
    approx(cost('acme-fast', { ...all, speed: 'fast' }, NOW, b), 0.0561);
    // us: standard 3_000 + 15_000 + 3_750 + 6_000 + 300 = 28_050 x1.1 = 30_855 -> 0.030855
    approx(cost('acme-fast', { ...all, inferenceGeo: 'us' }, NOW, b), 0.030855);
  });

  test('a fast block on a built-in model replaces its fast rates', () => {
    const b = applyUserPrices({ models: { 'claude-opus-4-8': { fast: { input: 12, output: 60 } } } }, WHERE);
    // 1_000*12 + 1_000*60 = 72_000 -> 0.072
    approx(cost('claude-opus-4-8', { input: 1_000, output: 1_000, speed: 'fast' }, NOW, b), 0.072);
  });

  test('an unlisted dated snapshot in the file is a new model, not an override of its undated alias', () => {
    const b = applyUserPrices({ models: { 'claude-haiku-4-5-20260301': { input: 2, output: 10 } } }, WHERE);
    assert.equal(b.find('claude-haiku-4-5-20260301')?.id, 'claude-haiku-4-5-20260301');
    // new snapshot: 1_000_000 * 2 -> 2
    approx(cost('claude-haiku-4-5-20260301', { input: 1_000_000 }, NOW, b), 2, 'new snapshot');
    // Haiku 4.5 itself keeps $1: 1_000_000 * 1 -> 1
    approx(cost('claude-haiku-4-5', { input: 1_000_000 }, NOW, b), 1, 'haiku-4-5 unchanged');
    approx(cost('claude-haiku-4-5-20251001', { input: 1_000_000 }, NOW, b), 1, 'haiku-4-5 dated id unchanged');
    // and, being new, it needs both input and output
    assert.throws(() => applyUserPrices({ models: { 'claude-haiku-4-5-20260301': { input: 2 } } }, WHERE),
      /models\["claude-haiku-4-5-20260301"\]\.output/);
  });

  test('model ids in the file are normalised like logged ids', () => {
    const b = applyUserPrices({ models: { 'anthropic/acme-model[1m]': { input: 1, output: 2 } } }, WHERE);
    assert.equal(b.find('acme-model')?.id, 'acme-model');
  });

  test('the example in docs/pricing.md is accepted and means what the doc says', () => {
    const md = readFileSync(join(repoRoot, 'docs', 'pricing.md'), 'utf8');
    const block = /```json\n([\s\S]*?)\n```/.exec(md);
    assert.ok(block, 'docs/pricing.md has a json example');
    const b = applyUserPrices(JSON.parse(block[1]), WHERE);
    // claude-opus-4-8 input 4.5, output 22.5, cache rates kept: 1_000*4.5 + 1_000*22.5 + 1_000*6.25 = 33_250 -> 0.03325
    approx(cost('claude-opus-4-8', { input: 1_000, output: 1_000, cacheWrite5m: 1_000 }, NOW, b), 0.03325);
    // claude-sonnet-4-5 longContext removed: 250_000*3 = 750_000 -> 0.75
    approx(cost('claude-sonnet-4-5', { input: 250_000 }, NOW, b), 0.75);
    // my-gateway-model via alias, 250_000 input over its 200K threshold: 250_000*6 = 1_500_000 -> 1.5 ; x1.1 us -> 1.65
    approx(cost('sonnet-latest', { input: 250_000, inferenceGeo: 'us' }, NOW, b), 1.65);
    // fast: 1_000*6 + 1_000*30 = 36_000 -> 0.036
    approx(cost('gateway/sonnet', { input: 1_000, output: 1_000, speed: 'fast' }, NOW, b), 0.036);
    assert.equal(b.find('my-gateway-model')?.displayName, 'Gateway Sonnet');
    assert.equal(b.find('my-gateway-model')?.contextWindow, 1_000_000);
  });

  describe('refusals name the field', () => {
    const refuse = (doc: unknown, pattern: RegExp): void => {
      assert.throws(() => applyUserPrices(doc, WHERE), (err: unknown) => {
        assert.ok(err instanceof PriceFileError, `expected PriceFileError, got ${String(err)}`);
        assert.ok(err.message.startsWith(WHERE), `message should start with the file path: ${err.message}`);
        assert.match(err.message, pattern);
        return true;
      });
    };
    const name = (s: string) => new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    test('non-object documents', () => {
      for (const doc of [null, [], 'x', 3, true, {}, { models: [] }, { models: null }, { models: 'x' }]) {
        refuse(doc, name('expected {"models"'));
      }
    });
    test('a model entry that is not an object', () => {
      refuse({ models: { x: 5 } }, name('models["x"]: expected an object'));
      refuse({ models: { x: [1, 2] } }, name('models["x"]: expected an object'));
    });
    test('a new model without input or output', () => {
      refuse({ models: { x: { output: 5 } } }, name('models["x"].input'));
      refuse({ models: { x: { input: 1 } } }, name('models["x"].output'));
    });
    test('negative, non-numeric or non-finite prices', () => {
      refuse({ models: { x: { input: -1, output: 5 } } }, name('models["x"].input'));
      refuse({ models: { 'claude-opus-4-8': { cacheRead: -0.1 } } }, name('models["claude-opus-4-8"].cacheRead'));
      refuse({ models: { x: { input: '3', output: 5 } } }, name('models["x"].input'));
      refuse({ models: { x: { input: 3, output: null } } }, name('models["x"].output'));
      refuse({ models: { x: { input: 3, output: Infinity } } }, name('models["x"].output'));
      refuse({ models: { x: { input: 3, output: 15, cacheWrite1h: NaN } } }, name('models["x"].cacheWrite1h'));
    });
    test('bad aliases, longContext, fast, usGeoPremium', () => {
      refuse({ models: { x: { input: 1, output: 2, aliases: 'y' } } }, name('models["x"].aliases'));
      refuse({ models: { x: { input: 1, output: 2, aliases: [''] } } }, name('models["x"].aliases'));
      refuse({ models: { x: { input: 1, output: 2, longContext: 5 } } }, name('models["x"].longContext'));
      refuse({ models: { x: { input: 1, output: 2, longContext: { input: 2, output: 4 } } } }, name('models["x"].longContext.thresholdTokens'));
      refuse({ models: { x: { input: 1, output: 2, longContext: { thresholdTokens: -5, input: 2, output: 4 } } } }, name('models["x"].longContext.thresholdTokens'));
      refuse({ models: { x: { input: 1, output: 2, longContext: { thresholdTokens: 1000, input: 2 } } } }, name('models["x"].longContext.output'));
      refuse({ models: { x: { input: 1, output: 2, fast: 2 } } }, name('models["x"].fast'));
      refuse({ models: { x: { input: 1, output: 2, fast: { input: 2 } } } }, name('models["x"].fast.output'));
      refuse({ models: { x: { input: 1, output: 2, fast: { input: -2, output: 4 } } } }, name('models["x"].fast.input'));
      refuse({ models: { x: { input: 1, output: 2, usGeoPremium: 'yes' } } }, name('models["x"].usGeoPremium'));
    });
  });

  describe('PriceBook.fingerprint', () => {
    test('is stable for the same prices', () => {
      assert.equal(PriceBook.builtin().fingerprint, book.fingerprint);
      const doc = { models: { 'claude-opus-4-8': { input: 6 } } };
      assert.equal(applyUserPrices(doc, WHERE).fingerprint, applyUserPrices(doc, WHERE).fingerprint);
    });
    test('changes when a user override changes a price', () => {
      const a = applyUserPrices({ models: { 'claude-opus-4-8': { input: 6 } } }, WHERE).fingerprint;
      const b = applyUserPrices({ models: { 'claude-opus-4-8': { input: 7 } } }, WHERE).fingerprint;
      assert.notEqual(a, book.fingerprint);
      assert.notEqual(b, book.fingerprint);
      assert.notEqual(a, b);
    });
    test('changes when a model is added or a rule changes', () => {
      assert.notEqual(applyUserPrices({ models: { 'acme-model': { input: 1, output: 2 } } }, WHERE).fingerprint, book.fingerprint);
      assert.notEqual(applyUserPrices({ models: { 'claude-sonnet-4-5': { longContext: null } } }, WHERE).fingerprint, book.fingerprint);
      assert.notEqual(applyUserPrices({ models: { 'claude-opus-4-8': { fast: { input: 12, output: 60 } } } }, WHERE).fingerprint, book.fingerprint);
    });
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('catalog agrees with shared/reference/pricing.json', () => {
  interface RefRates { input: number; output: number; cache_write_5m: number; cache_write_1h: number; cache_read: number }
  interface RefRow extends RefRates {
    display_name: string;
    model_ids: string[];
    context_window: number;
    long_context: (RefRates & { threshold_tokens: number; applies_when?: string }) | null;
    fast_mode: RefRates | null;
    batch: { input: number; output: number; long_prompt?: { input: number; output: number } } | null;
    price_history: Record<string, unknown>[];
    claude_code_catalog?: {
      tier_rates: RefRates & { web_search: number; long_prompt?: RefRates & { above_prompt_tokens: number } };
      provider_ids: Record<string, string | null>;
    };
  }
  const ref = JSON.parse(readFileSync(sharedPath('reference', 'pricing.json'), 'utf8')) as { models: RefRow[] };
  const today = Date.now();
  const toRates = (x: RefRates): Rates => ({
    input: x.input, output: x.output, cacheWrite5m: x.cache_write_5m, cacheWrite1h: x.cache_write_1h, cacheRead: x.cache_read,
  });

  /**
   * Documented exceptions: pricing.json fields that the catalog deliberately does not apply today.
   * Each is checked in its own way below, and an exception that no longer applies fails the test.
   */
  const EXCEPTIONS: Record<string, { field: 'long_context'; reason: string; historicalBefore: string }> = {
    'Claude Opus 4.6': {
      field: 'long_context', historicalBefore: '2026-03-13T00:00:00Z',
      reason: 'pricing.json long_context is "HISTORICAL ONLY": genai-prices applies the >200K premium before 2026-03-13; '
        + 'pricing-page copies from ~Mar 2026 price the full 1M window at standard rates. The catalog keeps it as dated history.',
    },
    'Claude Sonnet 4.6': {
      field: 'long_context', historicalBefore: '2026-03-13T00:00:00Z',
      reason: 'same as Opus 4.6: the >200K premium is historical only (before 2026-03-13 per genai-prices).',
    },
  };

  test('there are 28 model rows and every catalog row is one of them', () => {
    assert.equal(ref.models.length, 28);
    const refIds = new Set(ref.models.flatMap((m) => m.model_ids));
    for (const m of BUILTIN_MODELS) assert.ok(refIds.has(m.id), `catalog id ${m.id} is not in pricing.json`);
    assert.equal(BUILTIN_MODELS.length, ref.models.length);
  });

  for (const row of ref.models) {
    test(row.display_name, () => {
      const exception = EXCEPTIONS[row.display_name];
      const canonical = new Set<string>();
      for (const id of row.model_ids) {
        const m = book.find(id);
        assert.ok(m, `${id} is unknown to the catalog`);
        canonical.add(m.id);
        const { rates, longContext } = book.ratesAt(m, today);
        assert.deepEqual(rates, toRates(row), `${id}: rates today`);
        assert.equal(m.contextWindow, row.context_window, `${id}: context window`);

        if (exception?.field === 'long_context') {
          assert.ok(row.long_context, `${row.display_name}: stale exception (pricing.json has no long_context)`);
          assert.match(row.long_context.applies_when ?? '', /HISTORICAL ONLY/);
          assert.equal(longContext, undefined, `${id}: no long-context rule today`);
          const past = book.ratesAt(m, Date.parse(exception.historicalBefore) - 1).longContext;
          assert.deepEqual(past, { thresholdTokens: row.long_context.threshold_tokens, rates: toRates(row.long_context) },
            `${id}: historical long-context rule`);
        } else if (row.long_context) {
          assert.deepEqual(longContext, { thresholdTokens: row.long_context.threshold_tokens, rates: toRates(row.long_context) },
            `${id}: long context`);
        } else {
          assert.equal(longContext, undefined, `${id}: no long context`);
        }

        if (row.fast_mode) assert.deepEqual(m.fast, toRates(row.fast_mode), `${id}: fast`);
        else assert.equal(m.fast, undefined, `${id}: no fast rates`);

        if (row.batch) {
          // 100K tokens (at or under every long-context threshold) of batch input / output cost a tenth of the
          // row's batch price per MTok; over the threshold, the row's long_prompt batch price applies.
          approx(cost(id, { input: 100_000, serviceTier: 'batch' }, today), row.batch.input / 10, `${id}: batch input`);
          approx(cost(id, { output: 100_000, serviceTier: 'batch' }, today), row.batch.output / 10, `${id}: batch output`);
          if (row.batch.long_prompt) {
            approx(cost(id, { input: 1_000_000, serviceTier: 'batch' }, today), row.batch.long_prompt.input, `${id}: batch input, long prompt`);
          }
        }
      }
      assert.equal(canonical.size, 1, `${row.display_name}: all ids resolve to one catalog row (${[...canonical].join(', ')})`);

      // Dated rows in price_history ({until: day, ...rates} / {from: day, ...rates}) hold on those days.
      const fields: [string, keyof Rates][] = [['input', 'input'], ['output', 'output'], ['cache_write_5m', 'cacheWrite5m'],
        ['cache_write_1h', 'cacheWrite1h'], ['cache_read', 'cacheRead']];
      const m = book.find(row.model_ids[0])!;
      for (const h of row.price_history) {
        const day = (h.until ?? h.from) as string | undefined;
        if (!day) continue;
        const ts = h.until ? Date.parse(`${day}T23:59:59.999Z`) : Date.parse(`${day}T00:00:00Z`);
        for (const [refField, field] of fields) {
          if (typeof h[refField] === 'number') assert.equal(book.ratesAt(m, ts).rates[field], h[refField], `${day}: ${refField}`);
        }
      }

      // Claude Code 2.1.330's own tier: same base rates; its long_prompt tier (Haiku 5.5) matches ours.
      const cc = row.claude_code_catalog;
      if (cc) {
        assert.deepEqual(book.ratesAt(m, today).rates, toRates(cc.tier_rates), 'Claude Code tier rates');
        assert.equal(cc.tier_rates.web_search, 0.01);
        if (cc.tier_rates.long_prompt) {
          assert.deepEqual(book.ratesAt(m, today).longContext,
            { thresholdTokens: cc.tier_rates.long_prompt.above_prompt_tokens, rates: toRates(cc.tier_rates.long_prompt) });
        }
        // every provider spelling Claude Code knows resolves to this row
        for (const pid of Object.values(cc.provider_ids)) {
          if (pid) assert.equal(book.find(pid)?.id, m.id, `provider id ${pid}`);
        }
      }
    });
  }

  test('every documented exception names a row that exists', () => {
    for (const name of Object.keys(EXCEPTIONS)) {
      assert.ok(ref.models.some((m) => m.display_name === name), `exception for unknown row ${name}`);
    }
  });
});

/**
 * tokentally's totals on the shared fixture trees against an independent, deliberately naive count.
 *
 * The "truth" below shares no code with src/: it reads every line with JSON.parse, keeps assistant lines
 * that carry `message.usage`, keys them by message.id (else requestId, else file:line), keeps the copy
 * with the largest token total and sums the token classes. Cost is recomputed from
 * shared/reference/pricing.json (the source the built-in catalog cites), not from src/core/pricing.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { sharedPath } from '../helpers/paths.js';
import { isolatedEnv, runCli } from '../helpers/cli.js';

// ---------------------------------------------------------------------------------------------------------
// Independent truth

interface TruthRequest {
  key: string;
  file: string;
  line: number;
  ts: string;
  session: string;
  model: string | null;
  input: number;
  output: number;
  cc5m: number;
  cc1h: number;
  cacheRead: number;
  inferenceGeo: string | null;
  speed: string | null;
}

interface BadLine {
  file: string;
  line: number;
  reason: 'invalid_json' | 'not_an_object' | 'bad_timestamp';
  tokens: number;
}

interface Truth {
  requests: Map<string, TruthRequest>;
  /** Every file each key was seen in (forks re-contain earlier requests). */
  filesByKey: Map<string, Set<string>>;
  badLines: BadLine[];
  usageLines: number;
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const text = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
const tokensOf = (r: Pick<TruthRequest, 'input' | 'output' | 'cc5m' | 'cc1h' | 'cacheRead'>) =>
  r.input + r.output + r.cc5m + r.cc1h + r.cacheRead;

/** Every .jsonl file under the given folders (or the given files themselves), sorted by path. */
function jsonlFiles(dir: string): string[] {
  if (dir.endsWith('.jsonl')) return [dir];
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...jsonlFiles(p));
    else if (name.endsWith('.jsonl')) out.push(p);
  }
  return out.sort();
}

/** Session a file belongs to by its path: `<sid>.jsonl`, or `<sid>/subagents/agent-x.jsonl`. */
function pathSession(file: string): string {
  const parent = dirname(file);
  return basename(parent) === 'subagents' ? basename(dirname(parent)) : basename(file, '.jsonl');
}

function computeTruth(projectDirs: string[]): Truth {
  // Files in path order, like a walk of the projects folder.
  const truth: Truth = { requests: new Map(), filesByKey: new Map(), badLines: [], usageLines: 0 };
  for (const file of projectDirs.flatMap(jsonlFiles).sort()) {
    const lines = readFileSync(file, 'utf8').split('\n');
    lines.forEach((raw, i) => {
      if (raw.trim() === '') return;
      let v: any;
      try {
        v = JSON.parse(raw);
      } catch {
        truth.badLines.push({ file, line: i + 1, reason: 'invalid_json', tokens: 0 });
        return;
      }
      if (typeof v !== 'object' || v === null || Array.isArray(v)) {
        truth.badLines.push({ file, line: i + 1, reason: 'not_an_object', tokens: 0 });
        return;
      }
      // Claude Code 2.1.17-2.1.81 also wrote a subagent's assistant line nested in a progress line.
      const line = v.type === 'progress' && v.data?.message?.message ? v.data.message : v;
      if (line.type !== undefined && line.type !== 'assistant') return;
      const u = line.message?.usage;
      if (typeof u !== 'object' || u === null) return;
      truth.usageLines++;
      const split = u.cache_creation && typeof u.cache_creation === 'object'
        && (typeof u.cache_creation.ephemeral_5m_input_tokens === 'number' || typeof u.cache_creation.ephemeral_1h_input_tokens === 'number');
      const req: TruthRequest = {
        key: text(line.message.id) ?? text(line.requestId) ?? `${file}:${i + 1}`,
        file, line: i + 1, ts: line.timestamp,
        session: text(line.sessionId) ?? pathSession(file),
        model: text(line.message.model),
        input: num(u.input_tokens),
        output: num(u.output_tokens),
        cc5m: split ? num(u.cache_creation.ephemeral_5m_input_tokens) : num(u.cache_creation_input_tokens),
        cc1h: split ? num(u.cache_creation.ephemeral_1h_input_tokens) : 0,
        cacheRead: num(u.cache_read_input_tokens),
        inferenceGeo: text(u.inference_geo),
        speed: text(u.speed),
      };
      // A line that cannot be dated cannot be put on a day: it is reported, not counted.
      if (typeof line.timestamp !== 'string' || Number.isNaN(Date.parse(line.timestamp))) {
        truth.badLines.push({ file, line: i + 1, reason: 'bad_timestamp', tokens: tokensOf(req) });
        return;
      }
      if (!truth.filesByKey.has(req.key)) truth.filesByKey.set(req.key, new Set());
      truth.filesByKey.get(req.key)!.add(file);
      const prev = truth.requests.get(req.key);
      if (!prev || tokensOf(req) > tokensOf(prev)) truth.requests.set(req.key, prev ? { ...req, session: prev.session } : req);
    });
  }
  return truth;
}

interface Sums {
  inputTokens: number;
  outputTokens: number;
  cacheCreation5mTokens: number;
  cacheCreation1hTokens: number;
  cacheCreationTokens: number;
  cacheReadTokens: number;
  totalTokens: number;
  requests: number;
}

function sum(reqs: Iterable<TruthRequest>): Sums {
  const s: Sums = {
    inputTokens: 0, outputTokens: 0, cacheCreation5mTokens: 0, cacheCreation1hTokens: 0, cacheCreationTokens: 0,
    cacheReadTokens: 0, totalTokens: 0, requests: 0,
  };
  for (const r of reqs) {
    s.inputTokens += r.input;
    s.outputTokens += r.output;
    s.cacheCreation5mTokens += r.cc5m;
    s.cacheCreation1hTokens += r.cc1h;
    s.cacheReadTokens += r.cacheRead;
    s.requests++;
  }
  s.cacheCreationTokens = s.cacheCreation5mTokens + s.cacheCreation1hTokens;
  s.totalTokens = s.inputTokens + s.outputTokens + s.cacheCreationTokens + s.cacheReadTokens;
  return s;
}

function pick(row: Record<string, unknown>): Sums {
  return {
    inputTokens: row.inputTokens as number, outputTokens: row.outputTokens as number,
    cacheCreation5mTokens: row.cacheCreation5mTokens as number, cacheCreation1hTokens: row.cacheCreation1hTokens as number,
    cacheCreationTokens: row.cacheCreationTokens as number, cacheReadTokens: row.cacheReadTokens as number,
    totalTokens: row.totalTokens as number, requests: row.requests as number,
  };
}

// Independent cost, from the reference price table (USD per million tokens).
interface RefRates { input: number; output: number; cache_write_5m: number; cache_write_1h: number; cache_read: number }
interface RefModel extends RefRates {
  model_ids: string[];
  long_context: (RefRates & { threshold_tokens: number; applies_when?: string }) | null;
  fast_mode: RefRates | null;
}
/** Old hand-made fixtures use an undated id that the reference table lists only in its dated form. */
const REF_ALIASES: Record<string, string> = { 'claude-sonnet-4': 'claude-sonnet-4-20250514' };
/** pricing.json: the 4.6 long-context premium is "HISTORICAL ONLY", before this instant. */
const FLAT_46_FROM = Date.parse('2026-03-13T00:00:00Z');

function referenceCost(reqs: Iterable<TruthRequest>): { cost: number; unknownTokens: number } {
  const models = (JSON.parse(readFileSync(sharedPath('reference', 'pricing.json'), 'utf8')) as { models: RefModel[] }).models;
  let cost = 0;
  let unknownTokens = 0;
  for (const r of reqs) {
    if (r.model === '<synthetic>') continue;
    const id = r.model === null ? null : REF_ALIASES[r.model] ?? r.model;
    const m = id === null ? undefined : models.find((x) => x.model_ids.includes(id));
    if (!m) {
      unknownTokens += tokensOf(r);
      continue;
    }
    const prompt = r.input + r.cc5m + r.cc1h + r.cacheRead;
    const lc = m.long_context;
    const lcApplies = lc !== null && prompt > lc.threshold_tokens
      && (!lc.applies_when?.startsWith('HISTORICAL') || Date.parse(r.ts) < FLAT_46_FROM);
    const rates: RefRates = r.speed === 'fast' && m.fast_mode ? m.fast_mode : lcApplies ? lc! : m;
    // Data residency: x1.1 on Claude 4.6 and later (every newer id in the table has a 4-6+ or 5 in it).
    const geo = r.inferenceGeo === 'us' && /-4-[6-9]|-5/.test(m.model_ids[0]) ? 1.1 : 1;
    cost += geo * (r.input * rates.input + r.output * rates.output + r.cc5m * rates.cache_write_5m
      + r.cc1h * rates.cache_write_1h + r.cacheRead * rates.cache_read) / 1e6;
  }
  return { cost, unknownTokens };
}

// ---------------------------------------------------------------------------------------------------------
// Running tokentally

function tt(configDirs: string[], args: string[], env = isolatedEnv({ CLAUDE_CONFIG_DIR: configDirs.join(',') })) {
  const res = runCli(args, env);
  assert.equal(res.code, 0, `tokentally ${args.join(' ')} failed: ${res.stderr}`);
  return { json: args.includes('--json') ? JSON.parse(res.stdout) : undefined, stdout: res.stdout, stderr: res.stderr, env };
}

const PUBLIC = () => sharedPath('fixtures', 'transcripts-public');
const LAB = () => sharedPath('fixtures', 'claude-code-lab');

const TREES: { name: string; roots: () => string[] }[] = [
  { name: 'transcripts-public', roots: () => [PUBLIC()] },
  { name: 'claude-code-lab', roots: () => [LAB()] },
  { name: 'both trees together', roots: () => [PUBLIC(), LAB()] },
];

for (const tree of TREES) {
  describe(`fixtures: ${tree.name}`, () => {
    let roots: string[];
    let truth: Truth;
    let daily: any;
    let session: any;

    before(() => {
      roots = tree.roots();
      truth = computeTruth(roots.map((r) => join(r, 'projects')));
      const first = tt(roots, ['daily', '--json', '--timezone', 'UTC']);
      daily = first.json;
      // Same store, already synced: the session report must agree with the daily one.
      session = tt(roots, ['session', '--json', '--no-sync'], first.env).json;
    });

    it('daily --json totals equal the de-duplicated truth, per token class', () => {
      assert.ok(truth.requests.size > 0);
      assert.deepEqual(pick(daily.totals), sum(truth.requests.values()));
    });

    it('each day equals the truth for that UTC day', () => {
      const byDay = new Map<string, TruthRequest[]>();
      for (const r of truth.requests.values()) {
        const day = new Date(Date.parse(r.ts)).toISOString().slice(0, 10);
        if (!byDay.has(day)) byDay.set(day, []);
        byDay.get(day)!.push(r);
      }
      assert.deepEqual(daily.daily.map((d: any) => d.date), [...byDay.keys()].sort());
      for (const d of daily.daily) assert.deepEqual(pick(d), sum(byDay.get(d.date)!), d.date);
    });

    it('cost equals an independent computation from the reference price table, and is complete', () => {
      const ref = referenceCost(truth.requests.values());
      assert.equal(ref.unknownTokens, 0, 'every fixture model has a reference price');
      assert.ok(Math.abs(daily.totals.totalCost - ref.cost) < 2e-6, `${daily.totals.totalCost} vs ${ref.cost}`);
      assert.equal(daily.totals.unknownCostTokens, 0);
      assert.equal(daily.totals.costComplete, true);
    });

    it('session --json partitions the same totals (nothing counted twice across sessions)', () => {
      assert.deepEqual(pick(session.totals), pick(daily.totals));
      const rowSum = sum([]);
      for (const row of session.session) {
        const p = pick(row);
        for (const k of Object.keys(rowSum) as (keyof Sums)[]) rowSum[k] += p[k];
      }
      assert.deepEqual(rowSum, pick(daily.totals));
    });

    it('sessions not touched by a fork equal the truth grouped by sessionId (subagents under their parent)', () => {
      // Requests copied into a fork belong to whichever copy was read first: compare those sessions as a pair below.
      const shared = new Set<string>();
      for (const [key, files] of truth.filesByKey) {
        if (files.size < 2) continue;
        shared.add(truth.requests.get(key)!.session);
        for (const f of files) shared.add(pathSession(f));
      }
      const bySession = new Map<string, TruthRequest[]>();
      for (const r of truth.requests.values()) {
        if (!bySession.has(r.session)) bySession.set(r.session, []);
        bySession.get(r.session)!.push(r);
      }
      const rows = new Map<string, any>(session.session.map((r: any) => [r.sessionId, r]));
      assert.deepEqual([...rows.keys()].sort(), [...bySession.keys()].sort());
      for (const [sid, reqs] of bySession) {
        if (shared.has(sid)) continue;
        assert.deepEqual(pick(rows.get(sid)), sum(reqs), sid);
      }
      // No subagent file became a session of its own.
      for (const sid of rows.keys()) assert.ok(!/^agent-/.test(sid), `subagent file reported as session ${sid}`);
    });

    it('a second run reads nothing new and reports the same totals', () => {
      const env = isolatedEnv({ CLAUDE_CONFIG_DIR: roots.join(',') });
      const a = tt(roots, ['daily', '--json'], env).json;
      const sync = tt(roots, ['sync', '--json'], env).json;
      const b = tt(roots, ['daily', '--json'], env).json;
      assert.equal(sync.bytesRead, 0);
      assert.equal(sync.newRequests, 0);
      assert.deepEqual(pick(b.totals), pick(a.totals));
    });
  });
}

describe('fixtures: claude-code-lab forks and subagents', () => {
  let truth: Truth;
  let session: any;
  let daily: any;
  const lab = () => join(LAB(), 'projects');

  before(() => {
    truth = computeTruth([lab()]);
    const d = tt([LAB()], ['daily', '--json']);
    daily = d.json;
    session = tt([LAB()], ['session', '--json', '--no-sync'], d.env).json;
  });

  it('the forked session re-contains earlier requests, and they are counted once', () => {
    const sharedKeys = [...truth.filesByKey].filter(([, files]) => files.size > 1);
    assert.ok(sharedKeys.length >= 1, 'the lab fixture has a --fork-session copy');
    const files = new Set(sharedKeys.flatMap(([, f]) => [...f]));
    assert.equal(files.size, 2, 'one original and one fork');
    const sessions = [...files].map((f) => basename(f, '.jsonl'));

    // Counting each file on its own would count the shared requests twice.
    const perFile = [...files].map((f) => sum(computeTruth([f]).requests.values()).totalTokens);
    const pair = [...truth.requests.values()].filter((r) => sessions.includes(r.session));
    const rows = session.session.filter((r: any) => sessions.includes(r.sessionId));
    assert.equal(rows.length, 2);
    const got = rows.map(pick).reduce((a: Sums, b: Sums) => {
      for (const k of Object.keys(a) as (keyof Sums)[]) a[k] += b[k];
      return a;
    });
    assert.deepEqual(got, sum(pair));
    assert.ok(got.totalTokens < perFile[0] + perFile[1], 'fork copies were not added on top of the original');
    assert.equal(daily.totals.requests, truth.requests.size);
  });

  it('subagent usage is counted once and reported under the parent session', () => {
    const subFiles = jsonlFiles(lab()).filter((f) => f.includes('/subagents/'));
    assert.ok(subFiles.length >= 2);
    for (const sub of subFiles) {
      const parentId = basename(dirname(dirname(sub)));
      const parentFile = join(dirname(dirname(dirname(sub))), `${parentId}.jsonl`);
      const expected = computeTruth([parentFile, sub]);
      const subOnly = sum(computeTruth([sub]).requests.values());
      assert.ok(subOnly.totalTokens > 0, `${sub} has usage`);
      const row = session.session.find((r: any) => r.sessionId === parentId);
      assert.ok(row, `session ${parentId}`);
      assert.deepEqual(pick(row), sum(expected.requests.values()), parentId);
    }
    // The parent's Agent tool_result repeats the subagent's last usage in toolUseResult: never counted.
    const toolResultUsage = jsonlFiles(lab()).flatMap((f) => readFileSync(f, 'utf8').split('\n'))
      .filter((l) => l.includes('"toolUseResult"') && l.includes('"usage"'));
    assert.ok(toolResultUsage.length >= 1);
    assert.deepEqual(pick(daily.totals), sum(truth.requests.values()));
  });

  it('old flat agent-<id>.jsonl files (Claude Code 2.0) are attributed to the sessionId their lines carry', () => {
    const pub = join(PUBLIC(), 'projects');
    const t = computeTruth([pub]);
    const s = tt([PUBLIC()], ['session', '--json']).json;
    const flat = jsonlFiles(pub).filter((f) => /\/agent-[0-9a-f]{8}\.jsonl$/.test(f));
    assert.ok(flat.length >= 2);
    for (const f of flat) {
      const parent = [...computeTruth([f]).requests.values()][0].session;
      assert.notEqual(parent, basename(f, '.jsonl'));
      const expected = [...t.requests.values()].filter((r) => r.session === parent);
      const row = s.session.find((r: any) => r.sessionId === parent);
      assert.ok(row, parent);
      assert.deepEqual(pick(row), sum(expected), parent);
    }
  });
});

describe('fixtures: malformed, undatable, synthetic and unknown-model lines', () => {
  let truth: Truth;
  before(() => {
    truth = computeTruth([join(PUBLIC(), 'projects')]);
  });

  it('sync --json counts skipped lines by reason, and lists them as file:line with --verbose', () => {
    const env = isolatedEnv({ CLAUDE_CONFIG_DIR: PUBLIC() });
    const sync = tt([PUBLIC()], ['sync', '--json', '--verbose'], env).json;
    const count = (reason: string) => truth.badLines.filter((b) => b.reason === reason).length;
    assert.ok(count('invalid_json') >= 2 && count('not_an_object') >= 3 && count('bad_timestamp') >= 1);
    assert.deepEqual(sync.skipped, {
      invalid_json: count('invalid_json'), not_an_object: count('not_an_object'), bad_timestamp: count('bad_timestamp'),
      invalid_usage: 0, line_too_long: 0,
    });
    const listed = sync.skippedLines.map((s: any) => `${s.file}:${s.line}:${s.reason}`).sort();
    assert.deepEqual(listed, truth.badLines.map((b) => `${b.file}:${b.line}:${b.reason}`).sort());
    assert.equal(sync.requestLines, truth.usageLines - count('bad_timestamp'));

    const text = tt([PUBLIC()], ['sync', '--verbose'], isolatedEnv({ CLAUDE_CONFIG_DIR: PUBLIC() })).stdout;
    assert.match(text, /skipped \d+ malformed lines/);
    for (const b of truth.badLines) assert.ok(text.includes(`${b.file}:${b.line}: ${b.reason.replace(/_/g, ' ')}`), `${b.file}:${b.line}`);

    // The undatable lines in the fixtures ("[trimmed for fixture]" timestamps) carry no tokens: nothing is lost.
    assert.equal(truth.badLines.reduce((s, b) => s + b.tokens, 0), 0);
  });

  it('a report still succeeds on the corrupted fixture and counts only its valid lines', () => {
    const dir = join(PUBLIC(), 'projects', 'fixture-claude-code-history');
    const t = computeTruth([dir]);
    const root = mkdtempSync(join(tmpdir(), 'tt-corrupt-'));
    mkdirSync(join(root, 'projects', 'p'), { recursive: true });
    for (const f of jsonlFiles(dir)) writeFileSync(join(root, 'projects', 'p', basename(f)), readFileSync(f));
    const res = runCli(['daily', '--json'], isolatedEnv({ CLAUDE_CONFIG_DIR: root }));
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(pick(JSON.parse(res.stdout).totals), sum(t.requests.values()));
  });

  it('<synthetic> lines cost 0 and do not make the cost incomplete', () => {
    // The fixture's own <synthetic> line (a Claude Code rate-limit error) has a trimmed timestamp;
    // give it a real one, plus a made-up synthetic line carrying tokens.
    const small = readFileSync(join(PUBLIC(), 'projects', 'fixture-agent-sessions', 'small.jsonl'), 'utf8').split('\n');
    const synthetic = JSON.parse(small.find((l) => l.includes('"<synthetic>"'))!);
    assert.equal(truth.badLines.some((b) => b.reason === 'bad_timestamp'), true);
    synthetic.timestamp = '2026-04-16T20:10:42.522Z';
    synthetic.sessionId = 'synthetic-session';
    const withTokens = structuredClone(synthetic);
    withTokens.message.id = 'synthetic-with-tokens';
    withTokens.message.usage.input_tokens = 100;
    withTokens.message.usage.output_tokens = 100;
    const root = mkdtempSync(join(tmpdir(), 'tt-synth-'));
    mkdirSync(join(root, 'projects', 'p'), { recursive: true });
    writeFileSync(join(root, 'projects', 'p', 'synthetic-session.jsonl'), [synthetic, withTokens].map((l) => JSON.stringify(l) + '\n').join(''));
    const res = runCli(['daily', '--json'], isolatedEnv({ CLAUDE_CONFIG_DIR: root }));
    assert.equal(res.code, 0, res.stderr);
    const t = JSON.parse(res.stdout).totals;
    assert.equal(t.totalTokens, 200);
    assert.equal(t.totalCost, 0);
    assert.equal(t.unknownCostTokens, 0);
    assert.deepEqual(t.unknownModels, []);
    assert.equal(t.costComplete, true);
  });

  it('an unknown model makes the cost incomplete, never $0', () => {
    // Real lab lines, one of them re-labelled with a model no price table has.
    const labFile = jsonlFiles(join(LAB(), 'projects')).find((f) => f.endsWith('b0fc82b9-641d-47bd-970d-4d8f8ca2c404.jsonl'))!;
    const lines = readFileSync(labFile, 'utf8').split('\n').filter(Boolean);
    const firstId = lines.map((l) => JSON.parse(l)).find((v) => v.message?.usage)!.message.id as string;
    const renamed = lines.map((l) => {
      const v = JSON.parse(l);
      if (v.message?.id === firstId) v.message.model = 'claude-imaginary-9';
      return JSON.stringify(v);
    });
    const root = mkdtempSync(join(tmpdir(), 'tt-unknown-'));
    mkdirSync(join(root, 'projects', 'p'), { recursive: true });
    writeFileSync(join(root, 'projects', 'p', basename(labFile)), renamed.map((l) => l + '\n').join(''));
    const t = computeTruth([join(root, 'projects')]);
    const unknown = [...t.requests.values()].filter((r) => r.model === 'claude-imaginary-9');
    const known = [...t.requests.values()].filter((r) => r.model !== 'claude-imaginary-9');
    assert.equal(unknown.length, 1);
    assert.ok(known.length >= 1);

    const res = runCli(['daily', '--json'], isolatedEnv({ CLAUDE_CONFIG_DIR: root }));
    assert.equal(res.code, 0, res.stderr);
    const out = JSON.parse(res.stdout);
    assert.equal(out.totals.unknownCostTokens, sum(unknown).totalTokens);
    assert.ok(out.totals.unknownCostTokens > 0);
    assert.equal(out.totals.costComplete, false);
    assert.deepEqual(out.totals.unknownModels, ['claude-imaginary-9']);
    // The known requests are still priced; the unknown one adds nothing rather than pretending $0 is its cost.
    assert.ok(Math.abs(out.totals.totalCost - referenceCost(known).cost) < 2e-6);
    const breakdown = out.daily.flatMap((d: any) => d.modelBreakdowns).find((m: any) => m.modelName === 'claude-imaginary-9');
    assert.ok(breakdown);
    assert.equal(breakdown.cost, null);
    assert.equal(out.daily.find((d: any) => d.modelsUsed.includes('claude-imaginary-9')).costComplete, false);
  });
});

/**
 * Budgets and routing enforced by the REAL proxy (createProxy + store worker + SQLite), driven by the official
 * @anthropic-ai/sdk against the mock Messages API: block (429 billing_error, never retried), warn, downgrade,
 * count_tokens, routing rules and dry runs, routes.json reloads, and 50 concurrent requests at the limit.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import { emptyUsage, type RequestRecord } from '../../src/core/types.js';
import type { BudgetDefinition } from '../../src/policy/budgets.js';
import { estimateRequestCostUsd } from '../../src/policy/reservations.js';
import { ProxyPolicy } from '../../src/sources/proxy/policy.js';
import { createProxy, type ProxyHandle } from '../../src/sources/proxy/server.js';
import { WorkerRecorder } from '../../src/sources/proxy/worker-recorder.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { loadRoutingConfig } from '../../src/surfaces/cli/routes-file.js';
import { runCliAsync } from '../helpers/cli.js';
import { startMockAnthropic, textSse, type MockAnthropic, type MockOptions } from '../helpers/mock-anthropic.js';
import { budget } from '../policy/fixtures.js';

const prices = PriceBook.builtin();
const KEY = 'sk-ant-policy-test';

interface PolicyStack {
  dir: string;
  dbPath: string;
  mock: MockAnthropic;
  proxy: ProxyHandle;
  sink: WorkerRecorder;
  policy: ProxyPolicy;
  url: string;
  /** Proxy log lines (alerts, reloads) and problems. */
  log: string[];
  problems: string[];
  client(extra?: Partial<ConstructorParameters<typeof Anthropic>[0]>): Anthropic;
  /** Wait for `n` records in total, settle their budgets and write everything. */
  settle(n: number): Promise<void>;
  withStore<T>(fn: (s: SqliteStore) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** $`usd` of Sonnet 4.6 spent one second ago (an imported transcript row: $3 per million input tokens). */
function spendRecord(usd: number, key = 'm:seed'): RequestRecord {
  return {
    key, requestId: null, messageId: key.slice(2), ts: Date.now() - 1000, sessionId: 'seed-session', project: '/w/app', agentId: null,
    isSubagent: false, model: 'claude-sonnet-4-6', usage: { ...emptyUsage(), input: Math.round((usd / 3) * 1e6) }, stopReason: null,
    tools: [], clientVersion: null, sources: 1,
  };
}

async function startPolicyStack(opts: { budgets?: BudgetDefinition[]; spendUsd?: number; routes?: unknown; mock?: MockOptions } = {}): Promise<PolicyStack> {
  const dir = mkdtempSync(join(tmpdir(), 'tt-policy-proxy-'));
  const dbPath = join(dir, 'tokentally.db');
  const seed = SqliteStore.open(dbPath, prices);
  for (const b of opts.budgets ?? []) await seed.saveBudget(b);
  if (opts.spendUsd) await seed.upsertRequests([spendRecord(opts.spendUsd)]);
  await seed.close();
  if (opts.routes !== undefined) writeFileSync(join(dir, 'routes.json'), JSON.stringify(opts.routes));
  const log: string[] = [];
  const problems: string[] = [];
  const mock = await startMockAnthropic({ echoModel: true, uniqueIds: true, ...opts.mock });
  const sink = new WorkerRecorder({ dbPath, spoolDir: join(dir, 'spool'), onProblem: (m) => problems.push(m) });
  const policy = await ProxyPolicy.start({
    store: sink.policyStore(), prices, loadRouting: () => loadRoutingConfig(prices, { TOKENTALLY_HOME: dir }),
    routesPath: join(dir, 'routes.json'), refreshMs: 0, log: (l) => log.push(l), problem: (m) => problems.push(m),
  });
  const proxy = createProxy({ upstream: mock.url, sink, policy, onProblem: (m) => problems.push(m) });
  const { url } = await proxy.listen(0, '127.0.0.1');
  const withStore = async <T>(fn: (s: SqliteStore) => Promise<T>): Promise<T> => {
    const s = SqliteStore.open(dbPath, prices);
    try {
      return await fn(s);
    } finally {
      await s.close();
    }
  };
  return {
    dir, dbPath, mock, proxy, sink, policy, url, log, problems, withStore,
    client: (extra = {}) => new Anthropic({ apiKey: KEY, baseURL: url, timeout: 10_000, ...extra }),
    async settle(n) {
      const deadline = Date.now() + 10_000;
      while (proxy.stats().recorded < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      assert.ok(proxy.stats().recorded >= n, `expected ${n} records, the proxy built ${proxy.stats().recorded}`);
      await policy.drain();
      await sink.flush();
    },
    async close() {
      policy.close();
      await proxy.close(1000);
      await policy.drain();
      await sink.close();
      await mock.close();
    },
  };
}

const hi = { max_tokens: 1000, messages: [{ role: 'user' as const, content: 'say hi' }] };

/** Seconds from now to the next UTC midnight (the fixture budgets' day period). */
function secondsToUtcMidnight(): number {
  const now = Date.now();
  const next = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), new Date(now).getUTCDate() + 1);
  return (next - now) / 1000;
}

describe('proxy policy: budgets and routing through the real proxy with @anthropic-ai/sdk', () => {
  it('block: 429 billing_error answered by the proxy once (the SDK with default retries does not retry), nothing reaches the API; count_tokens still goes through', async () => {
    const st = await startPolicyStack({ spendUsd: 10.5 });
    try {
      // No budget yet: idle, the request streams through unchanged.
      assert.ok(st.policy.idle);
      const { response } = await st.client().messages.create({ model: 'claude-opus-4-8', ...hi }).withResponse();
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('x-tokentally-budget-warning'), null);
      assert.equal(st.mock.messageCount, 1);

      // `tokentally budget set daily --limit 10` from another process: picked up by the next refresh.
      await st.withStore((s) => s.saveBudget(budget({ name: 'daily', limitUsd: 10, action: 'block' })));
      await st.policy.refresh();
      assert.ok(!st.policy.idle);
      const before = { mock: st.mock.count, requests: st.proxy.stats().requests };
      const err = await st.client().messages.create({ model: 'claude-opus-4-8', ...hi }).then(() => null, (e: unknown) => e);
      assert.ok(err instanceof Anthropic.APIError, `expected an APIError, got ${String(err)}`);
      assert.equal(err.status, 429);
      const body = err.error as { type: string; error: { type: string; message: string } };
      assert.equal(body.type, 'error');
      assert.equal(body.error.type, 'billing_error');
      // Which budget, spent, limit, when it resets.
      assert.match(body.error.message, /^spend limit reached \(daily; resets \d{4}-\d\d-\d\d 00:00 UTC \(in \d+h \d\dm\)\): tokentally budget "daily" \(scope all\) spent \$10\.5\d of \$10\.00$/);
      assert.equal(err.headers?.get('x-should-retry'), 'false');
      const retryAfter = Number(err.headers?.get('retry-after'));
      assert.ok(Math.abs(retryAfter - secondsToUtcMidnight()) <= 3, `retry-after ${retryAfter}`);
      // Default maxRetries (2): exactly one request, answered by the proxy; the mock saw nothing.
      assert.equal(st.mock.count - before.mock, 0);
      assert.equal(st.proxy.stats().requests - before.requests, 1);
      assert.equal(st.proxy.stats().blocked, 1);

      // count_tokens is never blocked, even with the budget exhausted.
      const counted = await st.client().messages.countTokens({ model: 'claude-opus-4-8', messages: hi.messages });
      assert.equal(counted.input_tokens, 2095);
      assert.equal(st.mock.lastRequest!.url.split('?')[0], '/v1/messages/count_tokens');
      assert.equal(st.proxy.stats().blocked, 1);

      await st.settle(3);
      const rows = await st.withStore((s) => s.listRequests({}));
      const blocked = rows.find((r) => r.proxy?.status === '429');
      assert.ok(blocked, 'the blocked attempt is recorded');
      assert.equal(blocked.proxy!.errorType, 'billing_error');
      assert.equal(blocked.cost, 0);
      assert.equal(st.policy.gate.ledger.inFlight(), 0);
    } finally {
      await st.close();
    }
  });

  it('warn: the request goes through with a warning header; each threshold alerts once, stored and logged', async () => {
    const st = await startPolicyStack({ spendUsd: 10.5, budgets: [budget({ name: 'soft', limitUsd: 10, action: 'warn' })] });
    try {
      for (let i = 1; i <= 2; i++) {
        const { data, response } = await st.client().messages.create({ model: 'claude-opus-4-8', ...hi }).withResponse();
        assert.equal(data.model, 'claude-opus-4-8');
        assert.match(response.headers.get('x-tokentally-budget-warning') ?? '', /^budget "soft" \(day\) at 10\d%: \$10\.5\d of \$10\.00, resets \d{4}-\d\d-\d\dT00:00:00\.000Z$/);
        await st.settle(i);
      }
      assert.equal(st.mock.messageCount, 2);
      const alertLines = st.log.filter((l) => l.startsWith('alert: '));
      assert.equal(alertLines.length, 3, alertLines.join('\n'));
      assert.ok(alertLines.some((l) => /^alert: tokentally budget "soft" \(daily, scope all\) reached: spent \$10\.5\d of \$10\.00/.test(l)), alertLines.join('\n'));
      const alerts = await st.withStore((s) => s.listAlerts({ budget: 'soft' }));
      assert.deepEqual(alerts.map((a) => a.threshold).sort((a, b) => a - b), [50, 80, 100]);
    } finally {
      await st.close();
    }
  });

  it('downgrade: the API receives the cheaper model, the record keeps both, the cost is the answered model\'s', async () => {
    const st = await startPolicyStack({ spendUsd: 10.5, budgets: [budget({ name: 'cap', limitUsd: 10, action: 'downgrade' })] });
    try {
      const stream = st.client().messages.stream({ model: 'claude-opus-4-6', ...hi });
      const final = await stream.finalMessage();
      const { response } = await stream.withResponse();
      assert.equal(final.model, 'claude-sonnet-4-6');
      assert.equal(response.headers.get('x-tokentally-model-rewrite'), 'claude-opus-4-6 -> claude-sonnet-4-6 (budget "cap")');
      const seen = st.mock.lastRequest!;
      const sent = JSON.parse(seen.body!.toString('utf8')) as { model: string; stream: boolean; messages: unknown[] };
      assert.equal(sent.model, 'claude-sonnet-4-6');
      assert.equal(sent.stream, true);
      assert.deepEqual(sent.messages, hi.messages);
      assert.equal(Number(seen.headers['content-length']), seen.bodyBytes, 'content-length matches the rewritten body');
      await st.settle(1);
      const [row] = await st.withStore((s) => s.listRequests({ sessionId: undefined })).then((r) => r.filter((x) => x.proxy));
      assert.equal(row.model, 'claude-sonnet-4-6');
      assert.equal(row.proxy!.modelRequested, 'claude-opus-4-6');
      const sonnet = prices.price('claude-sonnet-4-6', row.ts, row.usage).cost!;
      const opus = prices.price('claude-opus-4-6', row.ts, row.usage).cost!;
      assert.ok(sonnet < opus);
      assert.equal(row.cost, sonnet);
      const [d] = await st.withStore((s) => s.listRouteDecisions({}));
      assert.deepEqual([d.kind, d.rule, d.outcome, d.modelFrom, d.modelTo, d.requestKey], ['downgrade', 'cap', 'routed', 'claude-opus-4-6', 'claude-sonnet-4-6', row.key]);
      assert.equal(d.costActual, sonnet);
      assert.equal(d.costAlternative, opus);
      assert.equal(st.proxy.stats().rewritten, 1);
    } finally {
      await st.close();
    }
  });

  it('routing: a rule rewrites the model, a dry-run rule only records (route report shows the would-be saving); routes.json reloads, an invalid one is refused naming the field', async () => {
    const routes = {
      rules: [
        { name: 'small', match: { model: 'claude-opus-4-8' }, target: 'claude-haiku-4-5' },
        { name: 'try-sonnet', match: { model: 'claude-opus-4-6' }, target: 'claude-sonnet-4-6', dryRun: true },
      ],
    };
    const st = await startPolicyStack({ routes });
    try {
      assert.ok(!st.policy.idle);
      const routed = await st.client().messages.create({ model: 'claude-opus-4-8', ...hi }).withResponse();
      assert.equal(JSON.parse(st.mock.lastRequest!.body!.toString()).model, 'claude-haiku-4-5-20251001');
      assert.equal(routed.data.model, 'claude-haiku-4-5-20251001');
      assert.equal(routed.response.headers.get('x-tokentally-model-rewrite'), 'claude-opus-4-8 -> claude-haiku-4-5-20251001 (rule "small")');
      const dry = await st.client().messages.create({ model: 'claude-opus-4-6', ...hi }).withResponse();
      assert.equal(JSON.parse(st.mock.lastRequest!.body!.toString()).model, 'claude-opus-4-6', 'dry run: unchanged');
      assert.equal(dry.response.headers.get('x-tokentally-model-rewrite'), null);
      await st.settle(2);
      const rows = (await st.withStore((s) => s.listRequests({}))).filter((r) => r.proxy);
      const r1 = rows.find((r) => r.proxy!.modelRequested === 'claude-opus-4-8')!;
      assert.equal(r1.model, 'claude-haiku-4-5-20251001');
      const decisions = await st.withStore((s) => s.listRouteDecisions({}));
      const dd = decisions.find((d) => d.rule === 'try-sonnet')!;
      assert.equal(dd.outcome, 'dry-run');
      const r2 = rows.find((r) => r.proxy!.modelRequested === 'claude-opus-4-6')!;
      assert.equal(dd.requestKey, r2.key);
      assert.equal(dd.costActual, prices.price('claude-opus-4-6', r2.ts, r2.usage).cost);
      assert.equal(dd.costAlternative, prices.price('claude-sonnet-4-6', r2.ts, r2.usage).cost);
      const cli = await runCliAsync(['route', 'report', '--json'], { PATH: process.env.PATH, HOME: st.dir, TOKENTALLY_HOME: st.dir, TZ: 'UTC' });
      assert.equal(cli.code, 0, cli.stderr);
      const rep = JSON.parse(cli.stdout) as { wouldSaveUsd: number; savedUsd: number; rows: { rule: string; dryRun: number; routed: number; wouldSaveUsd: number }[] };
      const row = rep.rows.find((r) => r.rule === 'try-sonnet')!;
      assert.equal(row.dryRun, 1);
      assert.ok(Math.abs(row.wouldSaveUsd - (dd.costActual! - dd.costAlternative!)) < 1e-12 && row.wouldSaveUsd > 0, `would save ${row.wouldSaveUsd}`);
      assert.equal(rep.rows.find((r) => r.rule === 'small')!.routed, 1);

      // An invalid routes.json is refused, naming the field; the rules in force stay.
      writeFileSync(join(st.dir, 'routes.json'), JSON.stringify({ rules: [{ name: 'bad', match: { maxInputTokens: -1 }, target: 'claude-haiku-4-5' }] }));
      await st.policy.refresh();
      assert.ok(st.problems.some((p) => /routes\.json: rules\[0\]\.match\.maxInputTokens: expected a whole number/.test(p)), st.problems.join('\n'));
      await st.client().messages.create({ model: 'claude-opus-4-8', ...hi });
      assert.equal(JSON.parse(st.mock.lastRequest!.body!.toString()).model, 'claude-haiku-4-5-20251001');
      // A valid change applies on the next refresh (or when the watcher sees it).
      writeFileSync(join(st.dir, 'routes.json'), JSON.stringify({ rules: [] }));
      await st.policy.refresh();
      assert.ok(st.policy.idle);
      await st.client().messages.create({ model: 'claude-opus-4-8', ...hi });
      assert.equal(JSON.parse(st.mock.lastRequest!.body!.toString()).model, 'claude-opus-4-8');
      assert.ok(st.log.includes('routes reloaded: 0 rule(s)'), st.log.join('\n'));
      // A proxy started with an invalid routes.json does not start.
      writeFileSync(join(st.dir, 'routes.json'), JSON.stringify({ rules: [{ name: 'x', target: 'claude-nope-1' }] }));
      await assert.rejects(ProxyPolicy.start({ store: st.sink.policyStore(), prices, loadRouting: () => loadRoutingConfig(prices, { TOKENTALLY_HOME: st.dir }), refreshMs: 0 }),
        /routes\.json: rules\[0\]\.target: expected a known model id/);
    } finally {
      await st.close();
    }
  });

  it('a request no budget can refuse is forwarded before it is read, and still reserved and counted: the budget blocks once exhausted; per-session budgets always check first', async () => {
    // Each answer: 10 input + 16,000 output tokens of Opus 4.8 = $0.40005 (the mock's plan), spend starts at $9.
    const answer = (i: number) => ({
      kind: 'sse' as const,
      body: textSse({ id: `msg_01First${String(i).padStart(20, '0')}`, text: 'ok', usage: { input: 10, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0, output: 16_000 } }),
    });
    const params = { model: 'claude-opus-4-8', max_tokens: 100, messages: [{ role: 'user' as const, content: 'hi' }] };
    const st = await startPolicyStack({ spendUsd: 9, budgets: [budget({ name: 'daily', limitUsd: 10, action: 'block' })], mock: { plan: [0, 1, 2, 3].map(answer) } });
    try {
      const client = st.client({ maxRetries: 0 });
      // 1st: the day's baseline is not loaded yet: read, checked (store lookup), then forwarded.
      await client.messages.create(params);
      await st.settle(1);
      assert.equal(st.proxy.stats().forwardedFirst, 0);
      // 2nd and 3rd: $9.40 and $9.80 spent, nothing exhausted: forwarded first, reserved in the same step.
      await client.messages.create(params);
      await st.settle(2);
      assert.equal(st.proxy.stats().forwardedFirst, 1);
      assert.equal(st.policy.gate.ledger.inFlight(), 0, 'the reservation was settled');
      await client.messages.create(params);
      await st.settle(3);
      assert.equal(st.proxy.stats().forwardedFirst, 2);
      // $10.20 spent: the budget is exhausted, so the next request is checked first and refused.
      await assert.rejects(client.messages.create(params), (e: unknown) => e instanceof Anthropic.APIError && e.status === 429);
      assert.equal(st.proxy.stats().forwardedFirst, 2);
      assert.equal(st.mock.messageCount, 3);
      const status = st.policy.gate.ledger.statuses().find((s) => s.budget.name === 'daily')!;
      assert.ok(Math.abs(status.spentUsd - (9 + 3 * 0.40005)) < 1e-9, `spent ${status.spentUsd}`);
    } finally {
      await st.close();
    }
    const perSession = await startPolicyStack({ budgets: [budget({ name: 'per-session', limitUsd: 10, action: 'block', scope: 'session' })], mock: { plan: [0, 1].map(answer) } });
    try {
      const client = perSession.client({ maxRetries: 0 });
      for (let i = 1; i <= 2; i++) {
        await client.messages.create(params, { headers: { 'x-claude-code-session-id': 'sess-a' } });
        await perSession.settle(i);
      }
      assert.equal(perSession.proxy.stats().forwardedFirst, 0, 'a per-session budget is checked before each request is forwarded');
    } finally {
      await perSession.close();
    }
  });

  it('50 concurrent SDK requests at $9 of a $10 block budget: 3 forwarded, 47 blocked, overshoot below one request\'s reservation', async () => {
    // Each answer costs 10 input + 16,000 output tokens of Opus 4.8: $0.40005; each reservation is its estimate,
    // ceil(body bytes / 4) input tokens + max_tokens (16,000) of output: a little more.
    const N = 50;
    const plan = Array.from({ length: N }, (_, i) => ({
      kind: 'sse' as const, delayMs: 5,
      body: textSse({ id: `msg_01Conc${String(i).padStart(20, '0')}`, text: 'ok', usage: { input: 10, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0, output: 16_000 } }),
    }));
    const st = await startPolicyStack({ spendUsd: 9, budgets: [budget({ name: 'daily', limitUsd: 10, action: 'block' })], mock: { plan } });
    try {
      const params = { model: 'claude-opus-4-8', max_tokens: 16_000, messages: [{ role: 'user' as const, content: 'hi' }] };
      const results = await Promise.all(Array.from({ length: N }, () => st.client().messages.stream(params).finalMessage()
        .then(() => 'ok', (e: unknown) => (e instanceof Anthropic.APIError && e.status === 429 ? 'blocked' : `error ${String(e)}`))));
      await st.settle(N);
      const ok = results.filter((r) => r === 'ok').length;
      assert.deepEqual([ok, results.filter((r) => r === 'blocked').length], [3, N - 3], results.filter((r) => r.startsWith('error')).join('\n'));
      assert.equal(st.mock.messageCount, 3, 'blocked requests never reach the API (and the SDK did not retry them)');
      assert.equal(st.proxy.stats().requests, N);
      assert.equal(st.proxy.stats().blocked, N - 3);

      const bodyBytes = st.mock.requests.find((r) => r.url.startsWith('/v1/messages'))!.bodyBytes;
      const estimate = estimateRequestCostUsd(prices, 'claude-opus-4-8', bodyBytes, 16_000, Date.now())!;
      const actual = prices.price('claude-opus-4-8', Date.now(), { ...emptyUsage(), input: 10, output: 16_000 }).cost!;
      assert.ok(actual <= estimate);
      // Admission: settled + reserved < limit. 9 -> 9 + e -> 9 + 2e -> 9 + 3e >= 10: whatever the timing, since a
      // settle replaces a reservation e by a cost a <= e, exactly ceil((10 - 9) / e) = 3 are admitted.
      assert.equal(Math.ceil((10 - 9) / estimate), 3);
      const spent = (await st.withStore((s) => s.listRequests({}))).reduce((a, r) => a + (r.cost ?? 0), 0);
      assert.ok(Math.abs(spent - (9 + 3 * actual)) < 1e-9, `spent ${spent}`);
      // The bound: the last admission saw settled + reserved < limit, and each admitted request costs at most its
      // reservation, so the overshoot is below the reservation of the last request admitted (the one in flight).
      const overshoot = spent - 10;
      assert.ok(overshoot > 0 && overshoot < estimate, `overshoot ${overshoot} vs one reservation ${estimate}`);
      assert.equal(st.policy.gate.ledger.inFlight(), 0, 'every reservation settled or released');
      // 50 % and 80 % on the first settle, 100 % once the spend reached $10: each once.
      const alerts = await st.withStore((s) => s.listAlerts({ budget: 'daily' }));
      assert.deepEqual(alerts.map((a) => a.threshold).sort((a, b) => a - b), [50, 80, 100]);
      assert.equal(st.log.filter((l) => l.startsWith('alert: ')).length, 3);
    } finally {
      await st.close();
    }
  });
});

/**
 * The Store conformance suite: every implementation (SQLite now, PostgreSQL later) runs these same cases,
 * the way Hono runs one case file against all of its routers.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { RequestRecord } from '../../src/core/types.js';
import { emptyUsage, SOURCE_TRANSCRIPT } from '../../src/core/types.js';
import type { Store } from '../../src/store/store.js';

export type StoreFactory = () => Promise<Store>;

export function record(over: Partial<RequestRecord> & { key: string }): RequestRecord {
  return {
    requestId: null, messageId: null, ts: Date.parse('2026-11-20T10:00:00Z'), sessionId: 's1', project: '/p/app',
    agentId: null, isSubagent: false, model: 'claude-sonnet-4-6',
    usage: { ...emptyUsage(), input: 100, output: 50 },
    stopReason: 'end_turn', tools: [], clientVersion: '2.1.197', sources: SOURCE_TRANSCRIPT,
    ...over,
  };
}

const usage = (input: number, output: number, extra: Partial<RequestRecord['usage']> = {}) =>
  ({ ...emptyUsage(), input, output, ...extra });

export function runStoreConformance(name: string, factory: StoreFactory): void {
  describe(`Store conformance: ${name}`, () => {
    let store: Store;
    before(async () => { store = await factory(); });
    after(async () => { await store.close(); });

    it('inserts new requests and prices them with the price book', async () => {
      const res = await store.upsertRequests([record({ key: 'm:a1', usage: usage(1_000_000, 0) })]);
      assert.deepEqual(res, { inserted: 1, updated: 0 });
      const [row] = await store.listRequests({ sessionId: 's1' });
      assert.equal(row.key, 'm:a1');
      // Sonnet 4.6 input: 1,000,000 tokens x $3/MTok = $3.
      assert.ok(Math.abs((row.cost ?? NaN) - 3) < 1e-9);
    });

    it('merges copies of one request: the larger usage wins, a smaller copy never shrinks it', async () => {
      await store.upsertRequests([record({ key: 'm:b1', sessionId: 'merge', usage: usage(10, 5), stopReason: null })]);
      const res = await store.upsertRequests([record({ key: 'm:b1', sessionId: 'merge', usage: usage(10, 500) })]);
      assert.deepEqual(res, { inserted: 0, updated: 1 });
      await store.upsertRequests([record({ key: 'm:b1', sessionId: 'merge', usage: usage(10, 50) })]);
      const rows = await store.listRequests({ sessionId: 'merge' });
      assert.equal(rows.length, 1);
      assert.equal(rows[0].usage.output, 500);
      assert.equal(rows[0].stopReason, 'end_turn');
      // 10 x $3 + 500 x $15 per MTok = 0.00003 + 0.0075
      assert.ok(Math.abs(rows[0].cost! - 0.00753) < 1e-12);
    });

    it('fills attribution gaps and lets a main-thread copy win over a subagent replay', async () => {
      await store.upsertRequests([record({ key: 'm:c1', sessionId: 'attr', project: null, isSubagent: true, agentId: 'ag1', requestId: null })]);
      await store.upsertRequests([record({ key: 'm:c1', sessionId: 'attr', project: '/p/other', isSubagent: false, requestId: 'req_c1' })]);
      const [row] = await store.listRequests({ sessionId: 'attr' });
      assert.equal(row.project, '/p/other');
      assert.equal(row.requestId, 'req_c1');
      assert.equal(row.isSubagent, false);
    });

    it('stores an unknown model with a null cost and reports its tokens as unknown, never $0', async () => {
      await store.upsertRequests([record({ key: 'm:d1', sessionId: 'unknown', model: 'claude-opus-9', usage: usage(1000, 1000) })]);
      const [row] = await store.listRequests({ sessionId: 'unknown' });
      assert.equal(row.cost, null);
      const [g] = await store.summarize({ sessionId: 'unknown' }, []);
      assert.equal(g.unknownCostTokens, 2000);
      assert.equal(g.unknownCostRequests, 1);
      assert.equal(g.cost, 0);
    });

    it('summarizes by quarter hour, model, session and project with filters', async () => {
      const t0 = Date.parse('2026-10-01T00:00:00Z');
      await store.upsertRequests([
        record({ key: 'm:e1', sessionId: 'sum', project: '/w/one', ts: t0 + 1000, model: 'claude-haiku-4-5', usage: usage(1, 2) }),
        record({ key: 'm:e2', sessionId: 'sum', project: '/w/one', ts: t0 + 2000, model: 'claude-haiku-4-5', usage: usage(3, 4) }),
        record({ key: 'm:e3', sessionId: 'sum', project: '/w/two', ts: t0 + 16 * 60_000, model: 'claude-opus-4-8', usage: usage(5, 6) }),
      ]);
      const filter = { fromTs: t0, toTs: t0 + 3_600_000 };
      const byQuarter = await store.summarize(filter, ['quarterHour', 'model']);
      assert.equal(byQuarter.length, 2);
      const first = byQuarter.find((g) => g.quarterHour === t0 / 900_000)!;
      assert.equal(first.model, 'claude-haiku-4-5');
      assert.equal(first.requests, 2);
      assert.equal(first.input, 4);
      assert.equal(first.output, 6);
      assert.equal(first.firstTs, t0 + 1000);
      assert.equal(first.lastTs, t0 + 2000);
      const byProject = await store.summarize({ ...filter, project: 'two' }, ['project']);
      assert.deepEqual(byProject.map((g) => [g.project, g.input]), [['/w/two', 5]]);
      const none = await store.summarize({ fromTs: t0 + 3_600_000, toTs: t0 + 7_200_000 }, []);
      assert.equal(none.length, 0);
    });

    it('commits records and file checkpoints together', async () => {
      const cp = { path: '/tmp/x.jsonl', dev: 1, ino: 2, size: 300, mtimeMs: 1234, offset: 300, lines: 3, head: '300:abc' };
      const cp2 = { ...cp, path: '/tmp/y.jsonl', offset: 10 };
      const res = await store.commitBatch([cp, cp2], [record({ key: 'm:f1', sessionId: 'cp' })]);
      assert.equal(res.inserted, 1);
      assert.deepEqual(await store.getCheckpoint('/tmp/x.jsonl'), cp);
      await store.commitBatch([{ ...cp, offset: 400, size: -1, mtimeMs: -1 }], []);
      assert.equal((await store.getCheckpoint('/tmp/x.jsonl'))!.offset, 400);
      assert.equal(await store.getCheckpoint('/tmp/none.jsonl'), undefined);
      const all = await store.listCheckpoints();
      assert.deepEqual([...all.keys()].sort(), ['/tmp/x.jsonl', '/tmp/y.jsonl']);
      assert.deepEqual(all.get('/tmp/y.jsonl'), cp2);
      const states = await store.listCheckpointStates();
      assert.deepEqual([...states].sort(), [['/tmp/x.jsonl', '1:2:-1:-1'], ['/tmp/y.jsonl', '1:2:300:1234']]);
      assert.equal((await store.listCheckpointStates('facts')).size, 0);
    });

    it('keeps time-and-model sums exact through inserts, merges, re-keys and unaligned ranges', async () => {
      const t0 = Date.parse('2026-08-01T00:00:00Z');
      await store.upsertRequests([
        record({ key: 'm:k1', sessionId: 'roll', ts: t0 + 60_000, usage: usage(10, 1) }),
        record({ key: 'r:req_k2', requestId: 'req_k2', sessionId: 'roll', ts: t0 + 2 * 900_000 + 5, model: 'claude-opus-4-8', usage: usage(20, 2) }),
        record({ key: 'm:k3', sessionId: 'roll', ts: t0 + 3 * 900_000 + 7, model: 'acme-unknown', usage: usage(30, 3) }),
      ]);
      // A larger copy replaces the usage; the r: row is absorbed by the m: row of the same request id.
      await store.upsertRequests([record({ key: 'm:k1', sessionId: 'roll', ts: t0 + 60_000, usage: usage(10, 100) })]);
      await store.upsertRequests([record({ key: 'm:k2', requestId: 'req_k2', sessionId: 'roll', ts: t0 + 2 * 900_000 + 5, model: 'claude-opus-4-8', usage: usage(20, 200) })]);
      // The same in one batch: a request-id row and its message-id row, and a key inserted then merged.
      await store.upsertRequests([
        record({ key: 'r:req_k4', requestId: 'req_k4', sessionId: 'roll', ts: t0 + 5 * 900_000, usage: usage(40, 4) }),
        record({ key: 'm:k4', requestId: 'req_k4', sessionId: 'roll', ts: t0 + 5 * 900_000, usage: usage(40, 400) }),
        record({ key: 'm:k5', sessionId: 'roll', ts: t0 + 6 * 900_000, usage: usage(50, 5) }),
        record({ key: 'm:k5', sessionId: 'roll', ts: t0 + 6 * 900_000, usage: usage(50, 500) }),
      ]);
      const rows = (await store.listRequests({ sessionId: 'roll' }));
      assert.equal(rows.length, 5);
      for (const [fromTs, toTs] of [[t0, t0 + 86_400_000], [t0 + 30_000, t0 + 3 * 900_000 + 8], [t0 + 61_000, t0 + 3 * 900_000 + 7], [t0, t0 + 7 * 900_000]]) {
        const inRange = rows.filter((r) => r.ts >= fromTs && r.ts < toTs);
        const groups = await store.summarize({ fromTs, toTs }, ['quarterHour', 'model']);
        const got = groups.map((g) => `${g.quarterHour}|${g.model}|${g.requests}|${g.input}|${g.output}|${g.unknownCostTokens}`).sort();
        const want = inRange.map((r) => `${Math.floor(r.ts / 900_000)}|${r.model}|1|${r.usage.input}|${r.usage.output}|${r.cost === null ? r.usage.input + r.usage.output : 0}`).sort();
        assert.deepEqual(got, want, `range ${fromTs - t0}..${toTs - t0}`);
        const [total] = await store.summarize({ fromTs, toTs }, []);
        const knownCost = inRange.reduce((a, r) => a + (r.cost ?? 0), 0);
        assert.ok(Math.abs((total?.cost ?? 0) - knownCost) < 1e-12);
      }
    });

    it('filters tool facts by time', async () => {
      const t = Date.parse('2026-07-01T00:00:00Z');
      await store.commitBatch([], [], {
        toolCalls: [{ toolUseId: 'tu_f1', requestKey: 'm:x', sessionId: 'facts', agentId: null, ts: t, name: 'Read', inputChars: 10, target: '/a' }],
        toolResults: [{ toolUseId: 'tu_f1', sessionId: 'facts', agentId: null, ts: t + 1000, resultChars: 400, isError: false }],
        compactions: [{ sessionId: 'facts', agentId: null, ts: t + 2000, trigger: 'auto', preTokens: 1000 }],
      });
      assert.equal((await store.listToolCalls({ sessionId: 'facts', fromTs: t, toTs: t + 1 })).length, 1);
      assert.equal((await store.listToolResults({ fromTs: t + 1001, toTs: t + 5000 })).length, 0);
      assert.equal((await store.listCompactions({ sessionId: 'facts', fromTs: t + 2000 })).length, 1);
    });

    it('lists requests newest first with a limit', async () => {
      const base = Date.parse('2026-09-01T00:00:00Z');
      await store.upsertRequests([0, 1, 2].map((i) => record({ key: `m:g${i}`, sessionId: 'list', ts: base + i })));
      const rows = await store.listRequests({ sessionId: 'list', limit: 2 });
      assert.deepEqual(rows.map((r) => r.key), ['m:g2', 'm:g1']);
    });

    it('lists usage points in a time range, oldest first, with unknown costs as null', async () => {
      const base = Date.parse('2026-08-01T00:00:00Z');
      await store.upsertRequests([
        record({ key: 'm:u2', sessionId: 'usage', ts: base + 2000, usage: usage(1_000_000, 0, { cacheWrite1h: 7, cacheRead: 9 }) }),
        record({ key: 'm:u1', sessionId: 'usage', ts: base + 1000, model: 'claude-opus-9', usage: usage(10, 20, { cacheWrite5m: 5 }) }),
        record({ key: 'm:u3', sessionId: 'usage', ts: base + 3000 }),
      ]);
      const pts = await store.listUsage({ fromTs: base, toTs: base + 3000 });
      assert.deepEqual(pts.map((p) => p.ts), [base + 1000, base + 2000]);
      assert.deepEqual({ ...pts[0] }, {
        ts: base + 1000, sessionId: 'usage', model: 'claude-opus-9', input: 10, output: 20, cacheWrite5m: 5, cacheWrite1h: 0,
        cacheRead: 0, cost: null,
      });
      assert.equal(pts[1].cacheWrite1h, 7);
      assert.equal(pts[1].cacheRead, 9);
      // 1M Sonnet 4.6 input = $3, + 7 x $6 + 9 x $0.30 per MTok
      assert.ok(Math.abs(pts[1].cost! - (3 + 7 * 6e-6 + 9 * 0.3e-6)) < 1e-9);
      const last = await store.listUsage({ toTs: base + 2500, limit: 1, newestFirst: true });
      assert.deepEqual(last.map((p) => p.ts), [base + 2000]);
      assert.equal((await store.listUsage({ fromTs: base + 4000, toTs: base + 5000 })).length, 0);
    });

    it('saves, updates, lists and deletes budgets', async () => {
      const b = {
        name: 'daily', limitUsd: 10, period: 'day' as const, scope: 'all', action: 'block' as const, alerts: [50, 80, 100],
        webhook: null, timeZone: 'UTC', weekStart: 1, createdAt: 1000, updatedAt: 1000,
      };
      assert.equal(await store.saveBudget(b), 'created');
      assert.equal(await store.saveBudget({ ...b, name: 'proj', scope: 'project:/w/app', webhook: 'http://127.0.0.1:9/x', alerts: [] }), 'created');
      assert.equal(await store.saveBudget({ ...b, limitUsd: 12.5, createdAt: 2000, updatedAt: 2000 }), 'updated');
      const list = await store.listBudgets();
      assert.deepEqual(list.map((x) => x.name), ['daily', 'proj']);
      assert.deepEqual(list[0], { ...b, limitUsd: 12.5, updatedAt: 2000 });
      assert.deepEqual(list[1].alerts, []);
      assert.equal(list[1].webhook, 'http://127.0.0.1:9/x');
      assert.equal(await store.deleteBudget('proj'), true);
      assert.equal(await store.deleteBudget('proj'), false);
      assert.deepEqual((await store.listBudgets()).map((x) => x.name), ['daily']);
      await store.deleteBudget('daily');
    });

    it('sums spend by window, session, project path, model and key hash', async () => {
      const t0 = Date.parse('2026-07-01T00:00:00Z');
      const proxy = (keyHash: string) => ({
        endpoint: '/v1/messages', modelRequested: null, stream: true, status: '200', errorType: null, latencyMs: 1, ttftMs: null,
        requestBytes: 10, messageCount: 1, userAgent: null, keyHash,
      });
      await store.upsertRequests([
        // Sonnet 4.6: 1M input = $3; Haiku 4.5: 1M input = $1; unknown model: null cost.
        record({ key: 'm:s1', ts: t0 + 1, sessionId: 'sp1', project: '/w/app', usage: usage(1_000_000, 0), proxy: proxy('aaaaaaaaaaaa') }),
        record({ key: 'm:s2', ts: t0 + 2, sessionId: 'sp1', project: '/w/app/sub', model: 'claude-haiku-4-5-20251001', usage: usage(1_000_000, 0) }),
        record({ key: 'm:s3', ts: t0 + 3, sessionId: 'sp2', project: '/w/app2', usage: usage(2_000_000, 0), proxy: proxy('bbbbbbbbbbbb') }),
        record({ key: 'm:s4', ts: t0 + 4, sessionId: 'sp2', project: '/w/app', model: 'claude-opus-9', usage: usage(5, 5) }),
        record({ key: 'm:s5', ts: t0 + 86_400_000, sessionId: 'sp3', project: '/w/app', usage: usage(1_000_000, 0) }),
      ]);
      const day = { fromTs: t0, toTs: t0 + 86_400_000 };
      const all = await store.sumSpend(day);
      assert.ok(Math.abs(all.cost - 10) < 1e-9);
      assert.deepEqual({ ...all, cost: 0 }, { cost: 0, requests: 4, unknownCostRequests: 1, firstTs: t0 + 1, lastTs: t0 + 4 });
      const proj = await store.sumSpend({ ...day, projectPath: '/w/app' });
      assert.ok(Math.abs(proj.cost - 4) < 1e-9, 'the project and folders under it, not /w/app2');
      assert.equal(proj.requests, 3);
      assert.ok(Math.abs((await store.sumSpend({ sessionId: 'sp1' })).cost - 4) < 1e-9);
      assert.ok(Math.abs((await store.sumSpend({ ...day, models: ['claude-haiku-4-5', 'claude-haiku-4-5-20251001'] })).cost - 1) < 1e-9);
      assert.ok(Math.abs((await store.sumSpend({ ...day, modelPrefix: 'claude-sonnet-' })).cost - 9) < 1e-9);
      assert.ok(Math.abs((await store.sumSpend({ ...day, keyHash: 'bbbbbbbbbbbb' })).cost - 6) < 1e-9);
      const none = await store.sumSpend({ ...day, models: [] });
      assert.deepEqual(none, { cost: 0, requests: 0, unknownCostRequests: 0, firstTs: null, lastTs: null });
      assert.deepEqual(await store.listRequestTimes(t0, t0 + 4), [t0 + 1, t0 + 2, t0 + 3]);
    });

    it('records each alert once per budget version, period and threshold', async () => {
      const a = {
        ts: 5000, budget: 'daily', budgetVersion: 1000, period: 'day' as const, periodKey: 'day:2026-11-20', threshold: 50,
        spentUsd: 5.2, limitUsd: 10, percent: 52, resetsAt: 9000, source: 'status', message: 'at 52%', delivery: null,
      };
      const first = await store.recordAlert(a);
      assert.ok(first && typeof first.id === 'number');
      assert.equal(await store.recordAlert({ ...a, ts: 6000, spentUsd: 6 }), null, 'same threshold in the same period');
      assert.ok(await store.recordAlert({ ...a, threshold: 80, ts: 7000 }));
      assert.ok(await store.recordAlert({ ...a, periodKey: 'day:2026-11-21', ts: 8000 }), 'next period fires again');
      assert.ok(await store.recordAlert({ ...a, budgetVersion: 2000, ts: 8500 }), 'a redefined budget fires again');
      const listed = await store.listAlerts({ budget: 'daily', periodKey: 'day:2026-11-20', budgetVersion: 1000 });
      assert.deepEqual(listed.map((x) => x.threshold), [80, 50]);
      assert.deepEqual({ ...listed[1] }, { ...a, id: first!.id });
      await store.markAlertDelivered(first!.id!, 'webhook:ok');
      const pending = await store.listAlerts({ pending: true });
      assert.equal(pending.length, 3);
      assert.ok(!pending.some((x) => x.id === first!.id));
      assert.deepEqual((await store.listAlerts({ limit: 1 })).map((x) => x.ts), [8500]);
      assert.equal((await store.listAlerts({ fromTs: 7500 })).length, 2);
    });

    it('records routing decisions and their settled costs', async () => {
      const d = {
        ts: 100, kind: 'route' as const, rule: 'small', outcome: 'dry-run' as const, modelFrom: 'claude-opus-4-8',
        modelTo: 'claude-haiku-4-5', sessionId: 's1', requestKey: null, complexity: 0.2, estInputTokens: 1200,
        estCostFrom: 0.5, estCostTo: 0.1, reason: null, systemFingerprint: 'abcdefabcdef', costActual: null, costAlternative: null,
      };
      const id = await store.recordRouteDecision(d);
      const id2 = await store.recordRouteDecision({ ...d, ts: 200, outcome: 'refused', reason: 'window' });
      assert.ok(id2 > id);
      await store.updateRouteDecision(id, { requestKey: 'm:x', costActual: 0.4, costAlternative: 0.08 });
      const rows = await store.listRouteDecisions({});
      assert.deepEqual(rows.map((r) => r.id), [id2, id]);
      assert.deepEqual(rows[1], { ...d, id, requestKey: 'm:x', costActual: 0.4, costAlternative: 0.08 });
      assert.equal(rows[0].reason, 'window');
      assert.deepEqual((await store.listRouteDecisions({ fromTs: 150 })).map((r) => r.id), [id2]);
      assert.equal((await store.listRouteDecisions({ limit: 1 })).length, 1);
    });
  });
}

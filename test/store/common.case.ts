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
  });
}

/**
 * A transcript line and a proxy record of the same request are one request: same key (`m:<message id>`),
 * or merged through the request id when one copy lacks the message id.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { mergeRecords } from '../../src/core/merge.js';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import { emptyUsage, SOURCE_PROXY, SOURCE_TRANSCRIPT, type RequestRecord } from '../../src/core/types.js';
import { syncTranscripts } from '../../src/sources/transcripts/sync.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { RECORDED } from '../helpers/mock-anthropic.js';
import { sharedPath } from '../helpers/paths.js';
import { startStack } from './harness.js';

const proxyDetails = { endpoint: '/v1/messages', modelRequested: 'claude-opus-4-8', stream: true, status: '200', errorType: null,
  latencyMs: 120, ttftMs: 80, requestBytes: 86082, messageCount: 4, userAgent: 'claude-cli/2.1.197 (external, sdk-cli)', keyHash: 'abcdef012345' };

function rec(over: Partial<RequestRecord> & { key: string }): RequestRecord {
  return {
    requestId: null, messageId: null, ts: Date.parse('2026-11-22T12:00:14Z'), sessionId: null, project: null, agentId: null,
    isSubagent: false, model: 'claude-opus-4-8', usage: { ...emptyUsage(), input: 10, output: 23, cacheRead: 12300 },
    stopReason: 'tool_use', tools: ['Bash'], clientVersion: null, sources: SOURCE_PROXY, ...over,
  };
}

describe('proxy records merge with transcript lines', () => {
  it('the real flow: a request through the proxy, then the transcript Claude Code wrote for it, is one row', async () => {
    // The mock answers with the recorded stream and the recorded request-id, as the API did for the transcript.
    const stack = await startStack({ mock: { requestIds: [RECORDED.requestId] } });
    try {
      const client = new Anthropic({ apiKey: 'sk-ant-test', baseURL: stack.url, maxRetries: 0 });
      await client.messages.stream({ model: 'claude-opus-4-8', max_tokens: 100, messages: [{ role: 'user', content: 'say hi' }] },
        { headers: { 'x-claude-code-session-id': RECORDED.sessionId } }).finalMessage();
      await stack.settle(1);

      // Import that session's transcript into the same database.
      const claude = mkdtempSync(join(tmpdir(), 'tt-claude-'));
      const file = `${RECORDED.sessionId}.jsonl`;
      mkdirSync(join(claude, 'projects', '-home-dev-demo-app'), { recursive: true });
      cpSync(sharedPath('fixtures', 'claude-code-lab', 'projects', '-home-dev-demo-app', file), join(claude, 'projects', '-home-dev-demo-app', file));
      const store = SqliteStore.open(stack.dbPath, PriceBook.builtin());
      try {
        const transcriptOnly = SqliteStore.open(':memory:', PriceBook.builtin());
        await syncTranscripts(transcriptOnly, { env: { HOME: claude, CLAUDE_CONFIG_DIR: claude } });
        const expected = await transcriptOnly.summarize({ sessionId: RECORDED.sessionId }, []);
        await transcriptOnly.close();

        await syncTranscripts(store, { env: { HOME: claude, CLAUDE_CONFIG_DIR: claude } });
        const rows = await store.listRequests({ sessionId: RECORDED.sessionId });
        const same = rows.filter((r) => r.requestId === RECORDED.requestId);
        assert.equal(same.length, 1, 'one row for the request both sources saw');
        const row = same[0];
        assert.equal(row.key, `m:${RECORDED.messageId}`);
        assert.equal(row.sources, SOURCE_TRANSCRIPT | SOURCE_PROXY);
        assert.equal(row.project, '/home/dev/demo-app', 'the transcript fills the project');
        assert.equal(row.clientVersion, '2.1.197');
        assert.equal(row.proxy?.status, '200', 'proxy fields stay');
        assert.equal(row.proxy?.keyHash?.length, 12);
        assert.deepEqual(row.tools, ['Bash']);
        // Session totals equal the transcript's alone: the proxy copy added nothing twice.
        const [merged] = await store.summarize({ sessionId: RECORDED.sessionId }, []);
        for (const k of ['requests', 'input', 'output', 'cacheWrite5m', 'cacheWrite1h', 'cacheRead'] as const) {
          assert.equal(merged[k], expected[0][k], k);
        }
        assert.ok(Math.abs(merged.cost - expected[0].cost) < 1e-12);
      } finally {
        await store.close();
      }
    } finally {
      await stack.close();
    }
  });

  it('merges in either order; the larger usage wins and proxy fields fill in', async () => {
    for (const order of ['proxy-first', 'transcript-first']) {
      const store = SqliteStore.open(':memory:', PriceBook.builtin());
      const proxy = rec({ key: 'm:msg_a', messageId: 'msg_a', requestId: 'req_a', sessionId: 's1', proxy: proxyDetails });
      const transcript = rec({ key: 'm:msg_a', messageId: 'msg_a', requestId: 'req_a', sessionId: 's1', project: '/w/app',
        clientVersion: '2.1.197', sources: SOURCE_TRANSCRIPT, tools: ['Bash'], toolIds: ['toolu_1'] });
      await store.upsertRequests(order === 'proxy-first' ? [proxy] : [transcript]);
      await store.upsertRequests(order === 'proxy-first' ? [transcript] : [proxy]);
      const rows = await store.listRequests({});
      assert.equal(rows.length, 1, order);
      assert.equal(rows[0].sources, 3);
      assert.equal(rows[0].project, '/w/app');
      assert.deepEqual(rows[0].proxy, proxyDetails, order);
      assert.equal(rows[0].usage.output, 23);
      await store.close();
    }
  });

  it('a record keyed by request id (cut before message_start) and one with both ids become one row, in either order', async () => {
    for (const order of ['r-first', 'm-first']) {
      const store = SqliteStore.open(':memory:', PriceBook.builtin());
      const partial = rec({ key: 'r:req_b', requestId: 'req_b', messageId: null, usage: emptyUsage(), stopReason: null, tools: [],
        sessionId: 'sb', proxy: { ...proxyDetails, status: 'client_aborted', ttftMs: null } });
      const full = rec({ key: 'm:msg_b', requestId: 'req_b', messageId: 'msg_b', sessionId: 'sb', project: '/w/b', sources: SOURCE_TRANSCRIPT });
      await store.upsertRequests([order === 'r-first' ? partial : full]);
      await store.upsertRequests([order === 'r-first' ? full : partial]);
      const rows = await store.listRequests({});
      assert.deepEqual(rows.map((r) => r.key), ['m:msg_b'], order);
      assert.equal(rows[0].sources, 3);
      assert.equal(rows[0].usage.output, 23, 'the larger usage wins');
      assert.equal(rows[0].proxy?.status, 'client_aborted');
      assert.equal(rows[0].project, '/w/b');
      // Unrelated request ids are left alone.
      await store.upsertRequests([rec({ key: 'r:req_other', requestId: 'req_other' })]);
      assert.equal((await store.listRequests({})).length, 2);
      await store.close();
    }
  });

  it('mergeRecords (in memory) keeps the proxy view of the winning copy and fills gaps', () => {
    const a = rec({ key: 'm:x', proxy: { ...proxyDetails, ttftMs: null, userAgent: null } });
    const b = rec({ key: 'm:x', sources: SOURCE_TRANSCRIPT, project: '/p', usage: { ...emptyUsage(), input: 10, output: 99, cacheRead: 12300 } });
    const m = mergeRecords(a, b);
    assert.equal(m.sources, 3);
    assert.deepEqual(m.proxy, { ...proxyDetails, ttftMs: null, userAgent: null });
    assert.equal(m.usage.output, 99);
    const both = mergeRecords(rec({ key: 'm:y', proxy: { ...proxyDetails, ttftMs: null } }), rec({ key: 'm:y', proxy: { ...proxyDetails, ttftMs: 5 } }));
    assert.equal(both.proxy!.ttftMs, 5);
    assert.equal('proxy' in mergeRecords(rec({ key: 'm:z', sources: 1 }), rec({ key: 'm:z', sources: 1 })), false, 'no proxy key for transcript-only merges');
  });
});

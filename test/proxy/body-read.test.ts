/**
 * Request bodies are read for the record (model, messages count, metadata session) on the store worker, not on
 * the thread that forwards traffic: a Claude Code body is 100 KB-1 MB and its JSON.parse holds every other stream
 * for 0.5-2 ms. The worker's JSON is its own global, so counting large JSON.parse calls on this thread (the
 * proxy's, in this process) shows where the parse happened.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { WorkerRecorder } from '../../src/sources/proxy/worker-recorder.js';
import { startStack } from './harness.js';

const METADATA = { user_id: JSON.stringify({ device_id: 'd', account_uuid: '', session_id: 'body-read-session' }) };

/** A conversation of `turns` user/assistant messages with ~`bytes` of text in all. */
function conversation(turns: number, bytes: number): Anthropic.MessageParam[] {
  const text = 'x'.repeat(Math.ceil(bytes / turns));
  return Array.from({ length: turns }, (_, i) => ({ role: i % 2 === 0 ? 'user' as const : 'assistant' as const, content: `${i} ${text}` }));
}

describe('request bodies are read off the forwarding thread', () => {
  it('a 1 MB request: its record has model, messages count and metadata session, and this thread never parsed it', async () => {
    const stack = await startStack();
    const parse = JSON.parse;
    let largeParses = 0;
    JSON.parse = ((text: string, reviver?: (this: unknown, key: string, value: unknown) => unknown) => {
      // The mock Messages API runs in this process too: count the proxy's own parses only.
      if (typeof text === 'string' && text.length > 500_000 && /[\\/]sources[\\/]proxy[\\/]/.test(new Error().stack ?? '')) largeParses++;
      return parse(text, reviver);
    }) as typeof JSON.parse;
    try {
      const client = new Anthropic({ apiKey: 'sk-ant-body-read', baseURL: stack.url, maxRetries: 0 });
      const messages = conversation(41, 1_000_000);
      const msg = await client.messages.create({ model: 'claude-opus-4-8', max_tokens: 100, messages, metadata: METADATA });
      assert.equal(msg.type, 'message');
      await stack.settle(1);
      JSON.parse = parse;
      assert.equal(largeParses, 0, 'the proxy thread parsed the 1 MB body');
      const [row] = await stack.rows();
      assert.ok(row.proxy!.requestBytes > 1_000_000, String(row.proxy!.requestBytes));
      assert.equal(row.proxy!.modelRequested, 'claude-opus-4-8');
      assert.equal(row.proxy!.messageCount, 41);
      assert.equal(row.sessionId, 'body-read-session', 'from metadata.user_id: the SDK sends no session header');
    } finally {
      JSON.parse = parse;
      await stack.close();
    }
  });

  it('WorkerRecorder.readBody: read by the worker; read on the calling thread once the worker is gone; never rejects', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tt-body-read-'));
    const sink = new WorkerRecorder({ dbPath: join(dir, 'tokentally.db'), spoolDir: join(dir, 'spool') });
    const body = Buffer.from(JSON.stringify({ model: 'claude-sonnet-4-6', stream: true, metadata: METADATA, messages: conversation(3, 100) }));
    const expected = { modelRequested: 'claude-sonnet-4-6', messageCount: 3, metadataSession: 'body-read-session', streamRequested: true };
    // A body inside a larger buffer (a socket read holding more than this request): only its bytes are read.
    const framed = Buffer.concat([Buffer.from('HEAD'), body, Buffer.from('{"next":1}')]).subarray(4, 4 + body.length);
    assert.deepEqual(await sink.readBody(framed), expected);
    assert.deepEqual(await sink.readBody(Buffer.from('not json')), { modelRequested: null, messageCount: null, metadataSession: null, streamRequested: null });
    await sink.close();
    assert.deepEqual(await sink.readBody(body), expected, 'after close: read here');
  });
});

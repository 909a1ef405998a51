import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { factsFromJson, SseUsageScanner, type ResponseFacts } from '../../src/sources/proxy/sse-usage.js';
import { clientVersionOf, inspectRequestBody, keyHash, sessionFromUserId } from '../../src/sources/proxy/record.js';
import { RECORDED, recordedMessageJson, recordedSse, sseEvents, benchSse } from '../helpers/mock-anthropic.js';

function scan(chunks: (string | Buffer)[]): { facts: ResponseFacts; deltas: number } {
  let deltas = 0;
  const s = new SseUsageScanner(() => deltas++);
  for (const c of chunks) s.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  s.end();
  return { facts: s.facts, deltas };
}

function assertRecorded(f: ResponseFacts): void {
  assert.equal(f.messageId, RECORDED.messageId);
  assert.equal(f.model, 'claude-opus-4-8');
  assert.equal(f.stopReason, 'tool_use');
  assert.deepEqual(f.tools, ['Bash']);
  assert.deepEqual(f.toolIds, [RECORDED.toolId]);
  assert.equal(f.errorType, null);
  assert.deepEqual(f.usage(), {
    input: 10, output: 23, cacheWrite5m: 1030, cacheWrite1h: 203, cacheRead: 12300, webSearches: 0, webFetches: 0,
    speed: null, inferenceGeo: null, serviceTier: 'standard',
  });
}

const ev = (name: string | null, data: unknown) => `${name ? `event: ${name}\n` : ''}data: ${JSON.stringify(data)}\n\n`;
const start = (usage: Record<string, unknown>) => ev('message_start', { type: 'message_start', message: { id: 'msg_x', model: 'claude-opus-4-8', usage } });
const delta = (usage: Record<string, unknown>, stop = 'end_turn') => ev('message_delta', { type: 'message_delta', delta: { stop_reason: stop }, usage });

describe('SSE usage scanner', () => {
  it('reads ids, final usage, stop reason and tools from the recorded stream', () => {
    const { facts, deltas } = scan([recordedSse()]);
    assertRecorded(facts);
    assert.equal(deltas, 1, 'time to first token fires once');
  });

  it('gives the same answer however the bytes are split (every split point, and 1..64-byte chunks)', () => {
    const bytes = Buffer.from(recordedSse());
    for (let at = 0; at <= bytes.length; at++) assertRecorded(scan([bytes.subarray(0, at), bytes.subarray(at)]).facts);
    for (let size = 1; size <= 64; size++) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
      const { facts, deltas } = scan(chunks);
      assertRecorded(facts);
      assert.equal(deltas, 1);
    }
  });

  it('accepts CRLF line endings and streams without event: lines', () => {
    assertRecorded(scan([recordedSse().replace(/\n/g, '\r\n')]).facts);
    const noEventLines = recordedSse().split('\n').filter((l) => !l.startsWith('event:')).join('\n');
    const { facts, deltas } = scan([noEventLines]);
    assertRecorded(facts);
    assert.equal(deltas, 1);
  });

  it('message_delta usage overwrites message_start (never adds); absent fields keep their value', () => {
    const cc = { ephemeral_5m_input_tokens: 100, ephemeral_1h_input_tokens: 20 };
    let f = scan([start({ input_tokens: 10, cache_creation_input_tokens: 120, cache_creation: cc, cache_read_input_tokens: 5, output_tokens: 1 }),
      delta({ output_tokens: 40 })]).facts;
    assert.deepEqual([f.usage().input, f.usage().output, f.usage().cacheWrite5m, f.usage().cacheWrite1h, f.usage().cacheRead], [10, 40, 100, 20, 5]);
    // Cumulative input/cache counts in message_delta replace the start values (Claude Code does the same).
    f = scan([start({ input_tokens: 10, cache_creation_input_tokens: 120, cache_creation: cc, cache_read_input_tokens: 5, output_tokens: 1 }),
      delta({ input_tokens: 1010, cache_creation_input_tokens: 1120, cache_read_input_tokens: 1005, output_tokens: 40 })]).facts;
    // The 1h part stays from the split; the rest of the new total is 5m.
    assert.deepEqual([f.usage().input, f.usage().output, f.usage().cacheWrite5m, f.usage().cacheWrite1h, f.usage().cacheRead], [1010, 40, 1100, 20, 1005]);
    // Two deltas: the last one wins.
    f = scan([start({ input_tokens: 3, output_tokens: 1 }), delta({ output_tokens: 5 }), delta({ output_tokens: 9, server_tool_use: { web_search_requests: 2 } })]).facts;
    assert.equal(f.usage().output, 9);
    assert.equal(f.usage().webSearches, 2);
    assert.equal(f.usage().input, 3);
  });

  it('reads service tier, speed and inference geo; an error event sets the error type', () => {
    const f = scan([start({ input_tokens: 1, output_tokens: 1, service_tier: 'priority', speed: 'fast', inference_geo: 'us' }),
      ev('error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } })]).facts;
    assert.equal(f.usage().serviceTier, 'priority');
    assert.equal(f.usage().speed, 'fast');
    assert.equal(f.usage().inferenceGeo, 'us');
    assert.equal(f.errorType, 'overloaded_error');
  });

  it('skips huge content deltas without keeping them (a 20 MB input_json_delta line)', () => {
    const events = sseEvents();
    const huge = ev('content_block_delta', { type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: 'x'.repeat(20 * 1024 * 1024) } });
    const bytes = Buffer.from(events.slice(0, 12).join('') + huge + events.slice(12).join(''));
    const chunks: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += 65536) chunks.push(bytes.subarray(i, i + 65536));
    const t0 = performance.now();
    assertRecorded(scan(chunks).facts);
    assert.ok(performance.now() - t0 < 2000);
  });

  it('the benchmark stream is 20 events with the recorded usage', () => {
    assert.equal(sseEvents(benchSse()).length, 20);
    assertRecorded(scan([benchSse()]).facts);
  });

  it('reads a non-streamed message and an error body', () => {
    assertRecorded(factsFromJson(JSON.stringify(recordedMessageJson())));
    assert.equal(factsFromJson('{"type":"error","error":{"type":"rate_limit_error","message":"x"}}').errorType, 'rate_limit_error');
    assert.equal(factsFromJson('not json').usageSeen, false);
  });
});

describe('request inspection', () => {
  it('reads model, messages count, stream flag and the metadata session; never fails on odd bodies', () => {
    const body = Buffer.from(JSON.stringify({
      model: 'claude-opus-4-8', stream: true, messages: [{ role: 'user', content: 'x' }, { role: 'system', content: 'y' }],
      metadata: { user_id: JSON.stringify({ device_id: 'd', account_uuid: '', session_id: 'b0fc82b9-641d-47bd-970d-4d8f8ca2c404' }) },
    }));
    assert.deepEqual(inspectRequestBody(body), { modelRequested: 'claude-opus-4-8', messageCount: 2, metadataSession: 'b0fc82b9-641d-47bd-970d-4d8f8ca2c404', streamRequested: true });
    const none = { modelRequested: null, messageCount: null, metadataSession: null, streamRequested: null };
    for (const odd of ['', 'not json', '[1,2]', '{"model":', 'null', '"x"']) assert.deepEqual(inspectRequestBody(Buffer.from(odd)), none);
    assert.deepEqual(inspectRequestBody(Buffer.from('{"model":5,"messages":{},"metadata":{"user_id":7}}')), none);
    assert.deepEqual(inspectRequestBody(null), none);
  });

  it('finds the session in both metadata.user_id shapes', () => {
    assert.equal(sessionFromUserId('{"device_id":"6caa","account_uuid":"","session_id":"b0fc82b9-641d-47bd-970d-4d8f8ca2c404"}'), 'b0fc82b9-641d-47bd-970d-4d8f8ca2c404');
    assert.equal(sessionFromUserId('user_6caaaf2b_account_1d5e8b3c-aaaa-bbbb-cccc-000000000000_session_0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0'),
      '0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0');
    assert.equal(sessionFromUserId('user-42'), null);
    assert.equal(sessionFromUserId('{"session_id":"a b"}'), null);
  });

  it('hashes the key the same from x-api-key and from a bearer token, and reads the Claude Code version', () => {
    const h = keyHash({ 'x-api-key': 'sk-ant-test' });
    assert.match(h!, /^[0-9a-f]{12}$/);
    assert.equal(keyHash({ authorization: 'Bearer sk-ant-test' }), h);
    assert.equal(keyHash({}), null);
    assert.equal(clientVersionOf('claude-cli/2.1.197 (external, sdk-cli)'), '2.1.197');
    assert.equal(clientVersionOf('Anthropic/JS 1.12.0'), null);
  });
});

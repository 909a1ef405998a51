import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, symlinkSync, truncateSync, utimesSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { syncTranscripts } from '../../src/sources/transcripts/sync.js';
import { DirCache, transcriptRoots } from '../../src/sources/transcripts/discover.js';
import { appendTranscript, assistantLine, compactBoundaryLine, toolResultLine, userLine, writeTranscript } from '../helpers/transcripts.js';

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'tt-sync-'));
  const claude = join(dir, 'claude');
  const env = { HOME: join(dir, 'home'), CLAUDE_CONFIG_DIR: claude };
  const store = SqliteStore.open(join(dir, 'tt', 'tokentally.db'), PriceBook.builtin());
  return { dir, claude, env, store };
}

async function totals(store: SqliteStore) {
  const [g] = await store.summarize({}, []);
  return g ? { requests: g.requests, input: g.input, output: g.output, cacheRead: g.cacheRead } : { requests: 0, input: 0, output: 0, cacheRead: 0 };
}

describe('transcript roots', () => {
  it('follows CLAUDE_CONFIG_DIR (comma-separated, config dir or its projects folder) like Claude Code', () => {
    const { claude } = setup();
    writeTranscript(claude, 'p/a.jsonl', [userLine()]);
    const other = mkdtempSync(join(tmpdir(), 'tt-other-'));
    writeTranscript(other, 'p/b.jsonl', [userLine()]);
    const { roots, missing } = transcriptRoots({ HOME: '/nonexistent', CLAUDE_CONFIG_DIR: ` ${claude} ,${join(other, 'projects')},/nope` });
    assert.deepEqual(roots.map((r) => r.projectsDir), [join(claude, 'projects'), join(other, 'projects')]);
    assert.deepEqual(missing, ['/nope/projects']);
  });

  it('defaults to ~/.config/claude/projects and ~/.claude/projects', () => {
    const home = mkdtempSync(join(tmpdir(), 'tt-home-'));
    writeTranscript(join(home, '.claude'), 'p/a.jsonl', [userLine()]);
    const { roots } = transcriptRoots({ HOME: home });
    assert.deepEqual(roots.map((r) => r.projectsDir), [join(home, '.claude', 'projects')]);
  });
});

describe('incremental, durable sync', () => {
  it('reads only appended bytes on the second run', async () => {
    const { claude, env, store } = setup();
    const path = writeTranscript(claude, '-home-dev-app/sess-1.jsonl', [userLine(), assistantLine({ input: 100, output: 10 })]);
    const first = await syncTranscripts(store, { env });
    assert.equal(first.newRequests, 1);
    const sizeBefore = statSync(path).size;

    const appended = [assistantLine({ input: 200, output: 20 }), assistantLine({ input: 300, output: 30 })];
    appendTranscript(path, appended);
    const second = await syncTranscripts(store, { env });
    assert.equal(second.bytesRead, statSync(path).size - sizeBefore);
    assert.equal(second.newRequests, 2);
    assert.equal(second.files.read, 1);
    assert.deepEqual(await totals(store), { requests: 3, input: 600, output: 60, cacheRead: 0 });

    const third = await syncTranscripts(store, { env });
    assert.equal(third.bytesRead, 0);
    assert.equal(third.files.unchanged, 1);
  });

  it('does not consume a partial last line until it is complete', async () => {
    const { claude, env, store } = setup();
    const path = writeTranscript(claude, 'p/s.jsonl', [assistantLine({ input: 1 })]);
    const next = assistantLine({ input: 7, messageId: 'msg_partial' });
    appendFileSync(path, next.slice(0, 40));
    await syncTranscripts(store, { env });
    assert.equal((await totals(store)).requests, 1);
    appendFileSync(path, next.slice(40) + '\n');
    const r = await syncTranscripts(store, { env });
    assert.equal(r.newRequests, 1);
    assert.equal(r.skipped.invalid_json, 0);
    assert.equal((await totals(store)).input, 8);
  });

  it('takes an unterminated last line once the file has been quiet for a while', async () => {
    const { claude, env, store } = setup();
    const path = writeTranscript(claude, 'p/s.jsonl', []);
    writeFileSync(path, assistantLine({ input: 5 }));
    const old = new Date(Date.now() - 3600_000);
    utimesSync(path, old, old);
    await syncTranscripts(store, { env });
    assert.equal((await totals(store)).input, 5);
  });

  it('re-reads a truncated or replaced file without double counting', async () => {
    const { claude, env, store } = setup();
    const lines = [assistantLine({ input: 1, messageId: 'msg_x1' }), assistantLine({ input: 2, messageId: 'msg_x2' })];
    const path = writeTranscript(claude, 'p/s.jsonl', lines);
    await syncTranscripts(store, { env });
    // Rewritten in place with different content (same inode, smaller): detected and read from the start.
    truncateSync(path, 0);
    writeFileSync(path, [assistantLine({ input: 4, messageId: 'msg_x3' }), lines[0]].join('\n') + '\n');
    const r = await syncTranscripts(store, { env });
    assert.equal(r.files.reread, 1);
    assert.equal(r.newRequests, 1);
    assert.equal(r.mergedCopies, 1);
    assert.deepEqual(await totals(store), { requests: 3, input: 7, output: 60, cacheRead: 0 });
  });

  it('keeps records after Claude Code deletes the transcript', async () => {
    const { claude, env, store } = setup();
    const path = writeTranscript(claude, 'p/s.jsonl', [assistantLine({ input: 9 })]);
    await syncTranscripts(store, { env });
    rmSync(path);
    await syncTranscripts(store, { env });
    assert.equal((await totals(store)).input, 9);
  });

  it('counts a response written as several lines once, with its final usage and all its tool calls', async () => {
    const { claude, env, store } = setup();
    const common = { messageId: 'msg_multi', requestId: 'req_multi', input: 3, cacheRead: 1000 };
    writeTranscript(claude, 'p/s.jsonl', [
      assistantLine({ ...common, output: 1, tools: [{ id: 'toolu_1', name: 'Read' }] }),
      assistantLine({ ...common, output: 420, tools: [{ id: 'toolu_2', name: 'Bash' }] }),
      assistantLine({ ...common, output: 420, tools: [{ id: 'toolu_3', name: 'Bash' }] }),
    ]);
    const r = await syncTranscripts(store, { env });
    assert.equal(r.requestLines, 3);
    const [row] = await store.listRequests({});
    assert.equal(row.usage.output, 420);
    assert.deepEqual(row.tools, ['Read', 'Bash', 'Bash']);
    assert.equal((await totals(store)).requests, 1);
  });

  it('attributes subagent files to the parent session and marks them', async () => {
    const { claude, env, store } = setup();
    writeTranscript(claude, 'p/parent-sess.jsonl', [assistantLine({ sessionId: 'parent-sess' })]);
    writeTranscript(claude, 'p/parent-sess/subagents/agent-abc123.jsonl', [assistantLine({ sessionId: 'parent-sess', isSidechain: true, agentId: 'abc123' })]);
    await syncTranscripts(store, { env });
    const rows = await store.listRequests({ sessionId: 'parent-sess' });
    assert.equal(rows.length, 2);
    const sub = rows.find((r) => r.isSubagent)!;
    assert.equal(sub.agentId, 'abc123');
  });

  it('skips and counts malformed lines, reporting file:line, and keeps the rest', async () => {
    const { claude, env, store } = setup();
    const path = writeTranscript(claude, 'p/s.jsonl', [
      assistantLine({ input: 1 }), 'not json at all', '{"type":"user","message":{"content":"trunc', '[1,2,3]', '"a string"',
      JSON.stringify({ type: 'assistant', timestamp: 'yesterday', message: { id: 'm', usage: { input_tokens: 1, output_tokens: 1 } } }),
      JSON.stringify({ type: 'assistant', timestamp: '2026-11-20T10:00:00Z', message: { id: 'm2', usage: { input_tokens: -5, output_tokens: 'x' } } }),
      '', assistantLine({ input: 2 }),
    ]);
    const r = await syncTranscripts(store, { env });
    assert.deepEqual(r.skipped, { invalid_json: 2, not_an_object: 2, bad_timestamp: 1, invalid_usage: 1, line_too_long: 0 });
    assert.deepEqual(r.skippedLines.map((s) => `${s.line}:${s.reason}`), ['2:invalid_json', '3:invalid_json', '4:not_an_object', '5:not_an_object', '6:bad_timestamp', '7:invalid_usage']);
    assert.ok(r.skippedLines.every((s) => s.file === path));
    assert.equal((await totals(store)).input, 3);
  });

  it('reports an unreadable file and imports the others', async () => {
    const { claude, env, store } = setup();
    writeTranscript(claude, 'p/good.jsonl', [assistantLine({ input: 11 })]);
    symlinkSync('/nonexistent/target.jsonl', join(claude, 'projects', 'p', 'broken.jsonl'));
    const r = await syncTranscripts(store, { env });
    assert.equal(r.files.unreadable, 1);
    assert.match(r.errors[0].file, /broken\.jsonl$/);
    assert.equal((await totals(store)).input, 11);
  });

  it('de-duplicates a forked session that copies earlier lines into a new file', async () => {
    const { claude, env, store } = setup();
    const original = [assistantLine({ sessionId: 'orig', messageId: 'msg_f1', uuid: 'u-f1' }), assistantLine({ sessionId: 'orig', messageId: 'msg_f2', uuid: 'u-f2' })];
    writeTranscript(claude, 'p/orig.jsonl', original);
    await syncTranscripts(store, { env });
    const forked = original.map((l) => l.replace(/"sessionId":"orig"/, '"sessionId":"fork"'));
    writeTranscript(claude, 'p/fork.jsonl', [...forked, assistantLine({ sessionId: 'fork', messageId: 'msg_f3' })]);
    const r = await syncTranscripts(store, { env });
    assert.equal(r.newRequests, 1);
    assert.equal((await totals(store)).requests, 3);
    assert.equal((await store.listRequests({ sessionId: 'orig' })).length, 2);
  });

  it('skips a line longer than the limit without holding it in memory, and reads on', async () => {
    const { claude, env, store } = setup();
    const path = writeTranscript(claude, 'p/s.jsonl', [assistantLine({ input: 1 })]);
    const huge = '{"type":"file-history-snapshot","blob":"' + 'x'.repeat(70 * 1024 * 1024) + '"}\n';
    appendFileSync(path, huge);
    appendTranscript(path, [assistantLine({ input: 2 })]);
    const r = await syncTranscripts(store, { env });
    assert.equal(r.skipped.line_too_long, 1);
    assert.equal((await totals(store)).input, 3);
  });

  it('finds files added to and removed from folders whose listings are cached, and appends to files in them', async () => {
    const { dir, claude, env, store } = setup();
    const settle = DirCache.settleMs;
    DirCache.settleMs = 0; // keep listings of folders changed just now (normally 5 s)
    const tick = () => new Promise((r) => setTimeout(r, 30)); // past the file system's timestamp tick
    try {
      const a = writeTranscript(claude, 'p/a.jsonl', [assistantLine({ sessionId: 'a', messageId: 'msg_c1', input: 1 })]);
      writeTranscript(claude, 'p/s1/subagents/agent-1.jsonl', [assistantLine({ sessionId: 's1', messageId: 'msg_c2', input: 2 })]);
      await tick();
      assert.equal((await syncTranscripts(store, { env })).newRequests, 2);
      assert.ok(existsSync(join(dir, 'tt', 'transcript-dirs.json')), 'listings kept beside the database');
      await tick();
      writeTranscript(claude, 'p/b.jsonl', [assistantLine({ sessionId: 'b', messageId: 'msg_c3', input: 4 })]);
      writeTranscript(claude, 'p/s1/subagents/agent-2.jsonl', [assistantLine({ sessionId: 's1', messageId: 'msg_c4', input: 8 })]);
      writeTranscript(claude, 'q/s2/subagents/agent-3.jsonl', [assistantLine({ sessionId: 's2', messageId: 'msg_c5', input: 16 })]);
      appendTranscript(a, [assistantLine({ sessionId: 'a', messageId: 'msg_c6', input: 32 })]);
      let r = await syncTranscripts(store, { env });
      assert.equal(r.newRequests, 4);
      assert.equal(r.files.seen, 5);
      assert.equal((await totals(store)).input, 63);
      await tick();
      rmSync(a);
      rmSync(join(claude, 'projects', 'q'), { recursive: true });
      r = await syncTranscripts(store, { env });
      assert.deepEqual([r.files.seen, r.files.read, r.errors.length], [3, 0, 0]);
      await tick();
      writeTranscript(claude, 'p/a.jsonl', [assistantLine({ sessionId: 'a', messageId: 'msg_c7', input: 64 })]);
      r = await syncTranscripts(store, { env });
      assert.deepEqual([r.files.seen, r.newRequests], [4, 1]);
      // A corrupt cache is ignored.
      writeFileSync(join(dir, 'tt', 'transcript-dirs.json'), '{"v":1,"dirs":{"x":');
      r = await syncTranscripts(store, { env });
      assert.deepEqual([r.files.seen, r.files.unchanged, r.errors.length], [4, 4, 0]);
      assert.equal((await totals(store)).input, 127);
    } finally {
      DirCache.settleMs = settle;
    }
  });

  it('can read just the given files (the statusline reads only its session)', async () => {
    const { claude, env, store } = setup();
    const a = writeTranscript(claude, 'p/a.jsonl', [assistantLine({ sessionId: 'a', input: 1 })]);
    writeTranscript(claude, 'p/b.jsonl', [assistantLine({ sessionId: 'b', input: 2 })]);
    const r = await syncTranscripts(store, { env, onlyPaths: [a] });
    assert.equal(r.files.read, 1);
    assert.deepEqual((await store.listRequests({})).map((x) => x.sessionId), ['a']);
    const again = await syncTranscripts(store, { env, onlyPaths: [a] });
    assert.equal(again.files.unchanged, 1);
  });

  it('records tool calls with their targets, tool result sizes and compaction points', async () => {
    const { claude, env, store } = setup();
    const callLine = JSON.parse(assistantLine({ sessionId: 'tools', messageId: 'msg_t1', tools: [{ id: 'toolu_r1', name: 'Read' }, { id: 'toolu_b1', name: 'Bash' }] }));
    callLine.message.content[0].input = { file_path: '/home/dev/app/big.log' };
    callLine.message.content[1].input = { command: 'export SECRET=hunter2; ls' };
    writeTranscript(claude, 'p/tools.jsonl', [
      JSON.stringify(callLine),
      toolResultLine('toolu_r1', 'x'.repeat(12_000), { sessionId: 'tools' }),
      toolResultLine('toolu_b1', [{ type: 'text', text: 'abc' }, { type: 'image', source: {} }], { sessionId: 'tools', isError: true }),
      compactBoundaryLine('tools', '2026-11-20T11:00:00.000Z', 167_345),
    ]);
    await syncTranscripts(store, { env });
    assert.equal((await store.listToolCalls({ sessionId: 'tools' })).length, 0, 'the requests pass reads no tool facts');
    const facts = await syncTranscripts(store, { env, pass: 'facts' });
    assert.equal(facts.files.read, 1);
    assert.equal((await syncTranscripts(store, { env, pass: 'facts' })).files.unchanged, 1);
    const calls = await store.listToolCalls({ sessionId: 'tools' });
    assert.deepEqual(calls.map((c) => [c.toolUseId, c.name, c.target, c.requestKey]),
      [['toolu_r1', 'Read', '/home/dev/app/big.log', 'm:msg_t1'], ['toolu_b1', 'Bash', null, 'm:msg_t1']]);
    const results = await store.listToolResults({ sessionId: 'tools' });
    // 3 text chars + one image counted as 1,600 tokens x 4 chars
    assert.deepEqual(results.map((r) => [r.toolUseId, r.resultChars, r.isError]), [['toolu_r1', 12_000, false], ['toolu_b1', 3 + 6400, true]]);
    const compactions = await store.listCompactions({ sessionId: 'tools' });
    assert.deepEqual(compactions.map((c) => [c.trigger, c.preTokens]), [['auto', 167_345]]);
  });
});

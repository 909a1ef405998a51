import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { assistantLine, userLine, writeTranscript } from '../helpers/transcripts.js';
import { isolatedEnv, runCli } from '../helpers/cli.js';
import { cliPath } from '../helpers/paths.js';

const FILES = 240;

function buildTree(): string {
  const claude = mkdtempSync(join(tmpdir(), 'tt-kill-'));
  const pad = 'x'.repeat(2000);
  for (let f = 0; f < FILES; f++) {
    const session = `sess-${f}`;
    const lines: string[] = [];
    for (let i = 0; i < 120; i++) {
      lines.push(userLine(session).replace('"hello"', `"${pad}"`));
      // Two lines per response, the second with the final usage, as Claude Code writes them.
      const spec = { sessionId: session, messageId: `msg_${f}_${i}`, requestId: `req_${f}_${i}`, input: 3 + i, cacheRead: 1000 * i,
        timestamp: new Date(Date.parse('2026-11-01T00:00:00Z') + f * 3_600_000 + i * 1000).toISOString() };
      lines.push(assistantLine({ ...spec, output: 1 }));
      lines.push(assistantLine({ ...spec, output: 50 + i }));
    }
    writeTranscript(claude, `-home-dev-p${f % 7}/${session}.jsonl`, lines);
  }
  return claude;
}

it('a sync killed midway resumes to exactly the totals of an uninterrupted sync', async () => {
  const claude = buildTree();
  const killedEnv = isolatedEnv({ CLAUDE_CONFIG_DIR: claude });
  const cleanEnv = isolatedEnv({ CLAUDE_CONFIG_DIR: claude });
  const dbPath = join(killedEnv.TOKENTALLY_HOME!, 'tokentally.db');

  const child = spawn(process.execPath, [cliPath, 'sync'], { env: killedEnv, stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  // Kill as soon as the first files are committed.
  let committedAtKill = 0;
  for (let i = 0; i < 4000 && committedAtKill === 0; i++) {
    await new Promise((r) => setTimeout(r, 2));
    if (!existsSync(dbPath)) continue;
    try {
      const db = new Database(dbPath, { readonly: true, fileMustExist: true });
      committedAtKill = (db.prepare("SELECT count(*) AS n FROM files").get() as { n: number }).n;
      db.close();
    } catch {
      // schema not created yet
    }
  }
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL', 'the sync must still have been running when killed');
  assert.ok(committedAtKill > 0 && committedAtKill < FILES, `killed midway (${committedAtKill}/${FILES} files committed)`);

  const resumed = runCli(['sync', '--json'], killedEnv);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.ok(JSON.parse(resumed.stdout).files.read < FILES, 'the resumed run skips files committed before the kill');

  const a = runCli(['daily', '--json', '--no-sync'], killedEnv);
  const b = runCli(['daily', '--json'], cleanEnv);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const ta = JSON.parse(a.stdout).totals;
  const tb = JSON.parse(b.stdout).totals;
  assert.deepEqual(ta, tb);
  assert.equal(tb.requests, FILES * 120);
  // Independent sum: output per response is 50 + i, i = 0..119, in every file.
  assert.equal(tb.outputTokens, FILES * (120 * 50 + (119 * 120) / 2));
});

/**
 * End to end: the real `claude -p` (@anthropic-ai/claude-code, installed on demand into test/e2e/.cache, ~235 MB)
 * runs through `tokentally proxy` to the mock Messages API, then its transcript is imported with
 * `tokentally sync`. Checks: the proxy's records carry the session id of the transcript; the merged store's
 * totals equal the transcript's plus only the requests the transcript never shows (a 529 attempt, title
 * generation when Claude Code sends one); nothing is counted twice; the cost equals Claude Code's own total.
 *
 * Run: `npm run test:e2e` (not part of `npm test`). TOKENTALLY_CLAUDE_BIN=<path> uses an installed claude instead;
 * TOKENTALLY_E2E_CLAUDE_VERSION picks the package version (default 2.1.197, the version the wire notes describe).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import { SOURCE_PROXY, SOURCE_TRANSCRIPT } from '../../src/core/types.js';
import { syncTranscripts } from '../../src/sources/transcripts/sync.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { UsageGroup } from '../../src/store/store.js';
import { startMockAnthropic, type MockAnthropic } from '../helpers/mock-anthropic.js';
import { cliPath, repoRoot } from '../helpers/paths.js';

const VERSION = process.env.TOKENTALLY_E2E_CLAUDE_VERSION ?? '2.1.197';
const CACHE = join(repoRoot, 'test', 'e2e', '.cache', `claude-code-${VERSION}`);
const CLAUDE_TIMEOUT_MS = 150_000;

/** The claude binary: TOKENTALLY_CLAUDE_BIN, else the cached install, else `npm install` it (bounded to 10 min). */
function ensureClaude(): string {
  const configured = process.env.TOKENTALLY_CLAUDE_BIN;
  if (configured) return configured;
  const bin = join(CACHE, 'node_modules', '.bin', 'claude');
  if (existsSync(bin)) return bin;
  mkdirSync(CACHE, { recursive: true });
  writeFileSync(join(CACHE, 'package.json'), JSON.stringify({ name: 'tokentally-e2e-claude-code', private: true }));
  process.stderr.write(`e2e: installing @anthropic-ai/claude-code@${VERSION} into ${CACHE} (~235 MB)...\n`);
  const res = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--prefix', CACHE, `@anthropic-ai/claude-code@${VERSION}`],
    { encoding: 'utf8', timeout: 600_000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (res.status !== 0 || !existsSync(bin)) {
    throw new Error(`npm install @anthropic-ai/claude-code@${VERSION} failed (${res.status ?? res.signal}): ${res.stderr.slice(-2000)}`);
  }
  return bin;
}

function run(cmd: string, args: string[], opts: { env: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: opts.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function sum(groups: UsageGroup[]) {
  const t = { requests: 0, input: 0, output: 0, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0, cost: 0 };
  for (const g of groups) for (const k of Object.keys(t) as (keyof typeof t)[]) t[k] += g[k];
  return t;
}

describe('claude -p through tokentally proxy (end to end)', { timeout: 900_000 }, () => {
  let claude: string;
  let mock: MockAnthropic;
  let proxy: ChildProcess | null = null;
  let proxyErr = '';
  const base = mkdtempSync(join(tmpdir(), 'tt-e2e-'));
  const home = join(base, 'home');
  const work = join(base, 'work');
  const ttHome = join(base, 'tokentally');

  before(async () => {
    claude = ensureClaude();
    mkdirSync(home, { recursive: true });
    mkdirSync(work, { recursive: true });
    // The first attempt is refused with 529 (Claude Code retries it): a request no transcript shows.
    mock = await startMockAnthropic({ scenario: 'claude-code', plan: [{ kind: 'error', status: 529, headers: { 'retry-after-ms': '10' } }] });
  });
  after(async () => {
    if (proxy && proxy.exitCode === null) proxy.kill('SIGKILL');
    await mock?.close();
  });

  it('finds the session\'s requests with the right session id and the same totals as the transcript', async (tc) => {
    const ttEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, TOKENTALLY_HOME: ttHome, TZ: 'UTC' };
    proxy = spawn(process.execPath, [cliPath, 'proxy', '--port', '0', '--json', '--verbose', '--upstream', mock.url],
      { env: ttEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    proxy.stderr!.on('data', (d) => (proxyErr += d));
    const proxyUrl = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`proxy did not start: ${proxyErr}`)), 20_000);
      proxy!.stdout!.once('data', (d) => {
        clearTimeout(t);
        resolve((JSON.parse(String(d).split('\n')[0]) as { listening: string }).listening);
      });
    });

    // Minimal environment, as observed working: empty HOME, base URL and key, no updater, no side traffic.
    const cc = await run(claude, ['-p', 'say hi', '--output-format', 'json'], {
      cwd: work, timeoutMs: CLAUDE_TIMEOUT_MS,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, TERM: 'dumb', LANG: 'C.UTF-8',
        ANTHROPIC_BASE_URL: proxyUrl, ANTHROPIC_API_KEY: 'sk-ant-test', DISABLE_AUTOUPDATER: '1',
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_TELEMETRY: '1',
      },
    });
    assert.equal(cc.code, 0, `claude exited ${cc.code}: ${cc.stderr.slice(-2000)}\nproxy: ${proxyErr}`);
    const result = JSON.parse(cc.stdout) as { session_id: string; total_cost_usd: number; is_error: boolean };
    assert.equal(result.is_error, false);
    const sessionId = result.session_id;

    // What reached the upstream through the proxy.
    const posts = mock.requests.filter((r) => r.method === 'POST');
    assert.ok(mock.requests.some((r) => r.method === 'HEAD' && r.url === '/'), 'the HEAD / preflight passed through');
    assert.ok(posts.length >= 3, `expected the 529 attempt and two turns, got ${posts.length}`);
    assert.ok(posts.every((r) => r.url === '/v1/messages?beta=true'));
    assert.ok(posts.every((r) => r.headers['x-claude-code-session-id'] === sessionId));
    assert.ok(posts.every((r) => r.headers['x-api-key'] === 'sk-ant-test'));

    // Stop the proxy: it writes every record before exiting.
    const exited = new Promise<number | null>((resolve) => proxy!.once('exit', resolve));
    proxy.kill('SIGTERM');
    assert.equal(await exited, 0, proxyErr);

    // Import the transcript Claude Code wrote into the same store.
    const claudeDir = join(home, '.claude');
    const sync = await run(process.execPath, [cliPath, 'sync', '--json'], { env: { ...ttEnv, CLAUDE_CONFIG_DIR: claudeDir }, timeoutMs: 60_000 });
    assert.equal(sync.code, 0, sync.stderr);
    assert.ok((JSON.parse(sync.stdout) as { newRequests: number; mergedCopies: number }).newRequests >= 0);
    const projects = readdirSync(join(claudeDir, 'projects'));
    const transcript = readdirSync(join(claudeDir, 'projects', projects[0])).find((f) => f === `${sessionId}.jsonl`);
    assert.ok(transcript, 'the transcript is named after the session id');

    // The transcript alone, imported into a scratch store.
    const alone = SqliteStore.open(':memory:', PriceBook.builtin());
    await syncTranscripts(alone, { env: { HOME: home, CLAUDE_CONFIG_DIR: claudeDir } });
    const t = sum(await alone.summarize({ sessionId }, []));
    const transcriptRows = await alone.listRequests({ sessionId });
    await alone.close();
    assert.ok(t.requests >= 2, `transcript has ${t.requests} requests`);

    const store = SqliteStore.open(join(ttHome, 'tokentally.db'), PriceBook.builtin());
    try {
      const rows = await store.listRequests({ sessionId });
      const proxyRows = rows.filter((r) => r.sources & SOURCE_PROXY);
      assert.equal(proxyRows.length, posts.length, 'one proxy record per request that reached the upstream');
      assert.ok(proxyRows.every((r) => r.sessionId === sessionId));
      // Every request of the transcript was also seen by the proxy, merged into one row.
      for (const tr of transcriptRows) {
        const same = rows.filter((r) => r.key === tr.key);
        assert.equal(same.length, 1);
        assert.equal(same[0].sources, SOURCE_PROXY | SOURCE_TRANSCRIPT, `${tr.key} seen by both`);
        // Same billed tokens from both sources (Claude Code also writes `speed: "standard"`, which the wire
        // did not carry; the store keeps the first copy's attributes when totals are equal).
        const tokens = (u: typeof tr.usage) => [u.input, u.output, u.cacheWrite5m, u.cacheWrite1h, u.cacheRead, u.webSearches];
        assert.deepEqual(tokens(same[0].usage), tokens(tr.usage), `${tr.key}: same usage from both sources`);
      }
      const proxyOnly = rows.filter((r) => r.sources === SOURCE_PROXY);
      assert.ok(proxyOnly.some((r) => r.proxy?.status === '529' && r.proxy.errorType === 'overloaded_error'), 'the 529 attempt is recorded');
      for (const r of proxyOnly) {
        // Only failed attempts and title generation (no tools, never in the transcript) are proxy-only.
        assert.ok(r.proxy?.status !== '200' || r.tools.length === 0, `unexpected proxy-only row ${r.key}`);
      }
      const m = sum(await store.summarize({ sessionId }, []));
      const p = { requests: proxyOnly.length, input: 0, output: 0, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0, cost: 0 };
      for (const r of proxyOnly) {
        p.input += r.usage.input;
        p.output += r.usage.output;
        p.cacheWrite5m += r.usage.cacheWrite5m;
        p.cacheWrite1h += r.usage.cacheWrite1h;
        p.cacheRead += r.usage.cacheRead;
        p.cost += r.cost ?? 0;
      }
      for (const k of ['requests', 'input', 'output', 'cacheWrite5m', 'cacheWrite1h', 'cacheRead'] as const) {
        assert.equal(m[k], t[k] + p[k], `${k}: merged ${m[k]} = transcript ${t[k]} + proxy-only ${p[k]}`);
      }
      assert.ok(Math.abs(m.cost - (t.cost + p.cost)) < 1e-9, `cost ${m.cost} vs ${t.cost} + ${p.cost}`);
      tc.diagnostic(`claude ${VERSION}: ${posts.length} requests through the proxy, ${t.requests} in the transcript, proxy-only: `
        + `${proxyOnly.map((r) => `${r.proxy?.status}${r.tools.length === 0 && r.proxy?.status === '200' ? ' (title)' : ''}`).join(', ')}; `
        + `session cost $${m.cost.toFixed(7)} (claude says $${result.total_cost_usd.toFixed(7)})`);
      // And the whole session costs what Claude Code says it cost (it counts title calls, not failed attempts).
      assert.ok(Math.abs(m.cost - result.total_cost_usd) < 1e-9, `store ${m.cost} vs claude ${result.total_cost_usd}`);
    } finally {
      await store.close();
    }
  });
});

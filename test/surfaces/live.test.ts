/**
 * `tokentally live` under a real pseudo-terminal: a detached tmux session of fixed size runs a shell, the test
 * types the command, reads frames with `capture-pane`, appends transcript lines, and quits with q / Ctrl-C.
 * CI needs tmux (`apt-get install -y tmux`); without it these tests are skipped, loudly.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliPath, sharedPath } from '../helpers/paths.js';
import { appendTranscript, assistantLine } from '../helpers/transcripts.js';

const hasTmux = spawnSync('tmux', ['-V']).status === 0;
const WIDTH = 100;
const HEIGHT = 40;
const SESSION = '54518870-8f23-41b7-8800-ac63ca425b74';

function fileHas(path: string): boolean {
  try {
    return readFileSync(path, 'utf8').length > 0;
  } catch {
    return false;
  }
}

class Tmux {
  readonly socket = `tt-live-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

  run(...args: string[]): string {
    const r = spawnSync('tmux', ['-L', this.socket, ...args], { encoding: 'utf8', timeout: 10_000 });
    if (r.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }

  screen(): string {
    return this.run('capture-pane', '-p', '-t', 'live');
  }

  /** alternate screen on?, cursor visible? */
  modes(): { alternate: boolean; cursor: boolean } {
    const [alt, cur] = this.run('display-message', '-p', '-t', 'live', '#{alternate_on} #{cursor_flag}').trim().split(' ');
    return { alternate: alt === '1', cursor: cur === '1' };
  }

  keys(...keys: string[]): void {
    this.run('send-keys', '-t', 'live', ...keys);
  }

  /** Poll the screen until `test` passes; bounded. */
  async waitFor(what: string, test: (screen: string) => boolean, timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      last = this.screen();
      if (test(last)) return last;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out waiting for ${what}; screen was:\n${last}`);
  }

  kill(): void {
    spawnSync('tmux', ['-L', this.socket, 'kill-server']);
  }
}

describe('tokentally live (tmux pseudo-terminal)', { skip: hasTmux ? false : 'tmux is not installed (CI: apt-get install -y tmux)' }, () => {
  let tmux: Tmux;
  let claude: string;
  let work: string;

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'tt-live-'));
    claude = join(work, 'claude');
    cpSync(sharedPath('fixtures', 'claude-code-lab', 'projects'), join(claude, 'projects'), { recursive: true });
    tmux = new Tmux();
    const env = [`PATH=${process.env.PATH}`, `HOME=${work}`, 'TERM=xterm-256color', `TOKENTALLY_HOME=${join(work, 'tt')}`,
      `CLAUDE_CONFIG_DIR=${claude}`, 'TZ=UTC', 'TOKENTALLY_NOW=2026-11-22T12:15:00Z', 'PS1=$ '];
    tmux.run('new-session', '-d', '-s', 'live', '-x', String(WIDTH), '-y', String(HEIGHT), 'env', '-i', ...env, 'sh');
  });
  after(() => tmux?.kill());

  it('starts, shows the first frame, refreshes with appended transcript lines, and exits 0 on q restoring the terminal', async () => {
    const before = join(work, 'stty-before');
    const afterQ = join(work, 'stty-after');
    tmux.keys(`stty -g > ${before}; clear; ${process.execPath} ${cliPath} live --interval 1; echo EXIT:$?; stty -g > ${afterQ}`, 'Enter');

    // First frame: the lab's 49 requests in the current block (12:00-17:00 UTC), today, budgets, sessions.
    const first = await tmux.waitFor('the first frame', (s) => /Requests\s+49\b/.test(s));
    assert.match(first, /^tokentally live {2}2026-11-22 12:15 UTC\s+every 1s, q to quit$/m);
    assert.match(first, /^Current block {3}12:00-17:00, 4h45m left$/m);
    assert.match(first, /^Today {11}\$0\.71 {3}49 requests$/m);
    assert.match(first, /^Budgets {9}no budgets$/m);
    assert.match(first, /^Active sessions \(requests in the last 10 min\): 14$/m);
    assert.match(first, /^ {2}54518870 \/home\/dev\/demo-app\s+opus-4-8\s+4\s+\$0\.06 {2}7m ago$/m);
    for (const l of first.split('\n')) assert.ok(l.length <= WIDTH, l);
    assert.deepEqual(tmux.modes(), { alternate: true, cursor: false });

    // Refresh: two new responses ($5 + $5 of Opus 4.8 input) appear in the next frame.
    appendTranscript(join(claude, 'projects', '-home-dev-demo-app', `${SESSION}.jsonl`), [
      assistantLine({ sessionId: SESSION, cwd: '/home/dev/demo-app', model: 'claude-opus-4-8', timestamp: '2026-11-22T12:14:00.000Z', input: 1_000_000, output: 0 }),
      assistantLine({ sessionId: SESSION, cwd: '/home/dev/demo-app', model: 'claude-opus-4-8', timestamp: '2026-11-22T12:14:30.000Z', input: 1_000_000, output: 0 }),
    ]);
    const next = await tmux.waitFor('a frame with the appended lines', (s) => /Requests\s+51\b/.test(s));
    assert.match(next, /^Today {11}\$10\.71 {3}51 requests$/m);
    assert.match(next, /^ {2}54518870 \/home\/dev\/demo-app\s+opus-4-8\s+6\s+\$10\.06 {2}<1m ago$/m);
    assert.match(next, /refreshed \d\d:\d\d: 2 new requests/);

    tmux.keys('q');
    const done = await tmux.waitFor('the shell after exit', (s) => /^EXIT:\d+$/m.test(s));
    assert.match(done, /^EXIT:0$/m);
    await tmux.waitFor('stty to be saved', () => fileHas(afterQ));
    assert.deepEqual(tmux.modes(), { alternate: false, cursor: true });
    assert.equal(readFileSync(afterQ, 'utf8'), readFileSync(before, 'utf8'), 'terminal modes (stty) restored');
    assert.doesNotMatch(done, /Error|\n\s+at /);
  });

  it('exits 0 on Ctrl-C and restores the terminal', async () => {
    const before = join(work, 'stty-before-2');
    const afterC = join(work, 'stty-after-2');
    tmux.keys(`clear; stty -g > ${before}; ${process.execPath} ${cliPath} live --interval 1 --no-sync; echo EXIT2:$?; stty -g > ${afterC}`, 'Enter');
    await tmux.waitFor('the first frame', (s) => /Current block/.test(s) && /refreshed/.test(s));
    assert.equal(tmux.modes().alternate, true);
    tmux.keys('C-c');
    const done = await tmux.waitFor('the shell after Ctrl-C', (s) => /^EXIT2:\d+$/m.test(s));
    assert.match(done, /^EXIT2:0$/m);
    await tmux.waitFor('stty to be saved', () => fileHas(afterC));
    assert.deepEqual(tmux.modes(), { alternate: false, cursor: true });
    assert.equal(readFileSync(afterC, 'utf8'), readFileSync(before, 'utf8'));
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fastStat, fastStatMode } from '../../src/sources/transcripts/fast-stat.js';

const reduce = (p: string) => {
  const st = statSync(p);
  return { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, isFile: st.isFile(), isDirectory: st.isDirectory() };
};

describe('fastStat', () => {
  it('gives exactly what fs.statSync gives, for files and folders, before and after an append', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tt-faststat-'));
    const file = join(dir, 'a.jsonl');
    writeFileSync(file, '{"x":1}\n');
    assert.deepEqual(fastStat(file), reduce(file)); // the first call decides which implementation answers
    mkdirSync(join(dir, 'sub'));
    for (let i = 0; i < 50; i++) {
      appendFileSync(file, `{"i":${i}}\n`);
      assert.deepEqual(fastStat(file), reduce(file));
    }
    assert.deepEqual(fastStat(join(dir, 'sub')), reduce(join(dir, 'sub')));
    assert.deepEqual(fastStat(dir), reduce(dir));
    if (process.versions.node.startsWith('20.')) assert.equal(fastStatMode(), 'binding', 'Node 20 takes the fast path');
  });

  it('throws what fs.statSync throws for a missing path', () => {
    const missing = join(tmpdir(), 'tt-faststat-missing', 'nope.jsonl');
    assert.throws(() => fastStat(missing), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
  });
});

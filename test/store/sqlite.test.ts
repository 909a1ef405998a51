import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PriceBook } from '../../src/core/pricing/pricebook.js';
import { applyUserPrices } from '../../src/core/pricing/user-prices.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import { StoreError } from '../../src/store/store.js';
import { record, runStoreConformance } from './common.case.js';

const tempDb = () => join(mkdtempSync(join(tmpdir(), 'tt-store-')), 'tokentally.db');

runStoreConformance('sqlite in memory', async () => SqliteStore.open(':memory:', PriceBook.builtin()));
runStoreConformance('sqlite file (WAL)', async () => SqliteStore.open(tempDb(), PriceBook.builtin()));

describe('SqliteStore specifics', () => {
  it('close({ atExit }) leaves a small WAL to the next open when the process exits, and loses nothing', async () => {
    const path = tempDb();
    const storeUrl = new URL('../../src/store/sqlite/sqlite-store.js', import.meta.url).href;
    const pricesUrl = new URL('../../src/core/pricing/pricebook.js', import.meta.url).href;
    const script = `
      const { SqliteStore } = await import(${JSON.stringify(storeUrl)});
      const { PriceBook } = await import(${JSON.stringify(pricesUrl)});
      const store = SqliteStore.open(${JSON.stringify(path)}, PriceBook.builtin());
      await store.upsertRequests([${JSON.stringify(record({ key: 'm:exit1', sessionId: 'exit' }))}]);
      await store.close({ atExit: true });
      process.exit(0);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(statSync(`${path}-wal`).size > 0, 'the WAL was not checkpointed at exit');
    const store = SqliteStore.open(path, PriceBook.builtin());
    assert.deepEqual((await store.listRequests({ sessionId: 'exit' })).map((x) => x.key), ['m:exit1']);
    await store.close();
    assert.equal(existsSync(`${path}-wal`), false, 'a plain close checkpoints and removes the WAL');
  });

  it('uses WAL mode for file databases', () => {
    const path = tempDb();
    const store = SqliteStore.open(path, PriceBook.builtin());
    void store.close();
    const db = new Database(path);
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    db.close();
  });

  it('upgrades a version-1 database in place, keeping its rows', async () => {
    const path = tempDb();
    const old = new Database(path);
    old.exec(MIGRATIONS[0]);
    old.pragma('user_version = 1');
    old.prepare(`INSERT INTO requests (key, ts, model, input, output, cache_write_5m, cache_write_1h, cache_read, total_tokens, cost, sources)
      VALUES ('m:old', ?, 'claude-sonnet-4-6', 1000000, 0, 0, 0, 0, 1000000, 3, 1)`).run(Date.parse('2026-01-01T00:00:00Z'));
    old.close();

    const store = SqliteStore.open(path, PriceBook.builtin());
    assert.equal(store.schemaVersion(), MIGRATIONS.length);
    const rows = await store.listRequests({});
    assert.equal(rows.length, 1);
    assert.equal(rows[0].key, 'm:old');
    assert.equal(rows[0].usage.input, 1_000_000);
    // The rollup (migration 8) is built from the rows already there.
    const [day] = await store.summarize({ fromTs: Date.parse('2026-01-01T00:00:00Z'), toTs: Date.parse('2026-01-02T00:00:00Z') }, ['model']);
    assert.equal(day.input, 1_000_000);
    assert.equal(day.requests, 1);
    await store.close();
  });

  it('refuses a database written by a newer tokentally instead of damaging it', () => {
    const path = tempDb();
    const db = new Database(path);
    db.pragma(`user_version = ${MIGRATIONS.length + 5}`);
    db.close();
    assert.throws(() => SqliteStore.open(path, PriceBook.builtin()), (err: unknown) =>
      err instanceof StoreError && /newer than this tokentally/.test(err.message) && /upgrade/.test(err.hint ?? ''));
  });

  it('reports a corrupt database with what to do, and leaves the file untouched', () => {
    const path = tempDb();
    const garbage = Buffer.from('this is not a sqlite database, just some bytes '.repeat(200));
    writeFileSync(path, garbage);
    assert.throws(() => SqliteStore.open(path, PriceBook.builtin()), (err: unknown) =>
      err instanceof StoreError && /corrupt/.test(err.message) && /tokentally sync/.test(err.hint ?? ''));
    assert.deepEqual(readFileSync(path), garbage);
  });

  it('re-prices stored rows when the price book changes (e.g. a prices.json entry for an unknown model)', async () => {
    const path = tempDb();
    const first = SqliteStore.open(path, PriceBook.builtin());
    await first.upsertRequests([record({ key: 'm:custom', model: 'acme-coder-1', usage: { ...record({ key: 'x' }).usage, input: 2_000_000, output: 0 } })]);
    assert.equal((await first.listRequests({}))[0].cost, null);
    await first.close();

    const custom = applyUserPrices({ models: { 'acme-coder-1': { input: 0.5, output: 2 } } }, 'prices.json');
    const second = SqliteStore.open(path, custom);
    // 2,000,000 input tokens x $0.50/MTok = $1.00
    assert.ok(Math.abs((await second.listRequests({}))[0].cost! - 1) < 1e-12);
    await second.close();
  });
});

import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { PriceBook } from '../../core/pricing/pricebook.js';
import { applyUserPrices, PriceFileError } from '../../core/pricing/user-prices.js';
import { SqliteStore } from '../../store/sqlite/sqlite-store.js';
import { StoreError, type Store } from '../../store/store.js';
import { UserFacingError } from './errors.js';

/** `TOKENTALLY_HOME` holds the database and config; default `~/.tokentally`. */
export function tokentallyHome(env: NodeJS.ProcessEnv = process.env): string {
  const configured = env.TOKENTALLY_HOME?.trim();
  return configured ? resolve(configured) : join(env.HOME || homedir(), '.tokentally');
}

export function databasePath(env: NodeJS.ProcessEnv = process.env): string {
  return join(tokentallyHome(env), 'tokentally.db');
}

export function pricesPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(tokentallyHome(env), 'prices.json');
}

/** Built-in prices plus `TOKENTALLY_HOME/prices.json` when present. */
export function loadPriceBook(env: NodeJS.ProcessEnv = process.env): PriceBook {
  const path = pricesPath(env);
  if (!existsSync(path)) return PriceBook.builtin();
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new UserFacingError(`cannot read the price file ${path}: ${(err as Error).message}`,
      'fix the JSON or move the file away; nothing was changed');
  }
  try {
    return applyUserPrices(doc, path);
  } catch (err) {
    if (err instanceof PriceFileError) throw new UserFacingError(err.message, 'nothing was changed; fix the price file and retry');
    throw err;
  }
}

export function openStore(prices: PriceBook, env: NodeJS.ProcessEnv = process.env): Store {
  try {
    return SqliteStore.open(databasePath(env), prices);
  } catch (err) {
    if (err instanceof StoreError) throw new UserFacingError(err.message, err.hint);
    throw err;
  }
}

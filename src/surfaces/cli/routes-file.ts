/**
 * `TOKENTALLY_HOME/routes.json`: routing rules, the global dry-run switch and downgrade ladder chains.
 * Hand-editable; `tokentally route add|rm|dry-run` edit it with the same validation (and an atomic rewrite).
 *
 *   {
 *     "dryRun": false,
 *     "rules": [
 *       {"name": "title-to-haiku", "match": {"tools": false, "maxInputTokens": 4000}, "target": "claude-haiku-4-5"},
 *       {"name": "simple-subagents", "match": {"agent": "subagent", "maxComplexity": 0.3}, "target": "claude-sonnet-4-6", "dryRun": true}
 *     ],
 *     "ladder": [["claude-opus-4-8", "claude-sonnet-4-6", "claude-haiku-4-5"]]
 *   }
 */
import { existsSync, readFileSync, renameSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { PriceBook } from '../../core/pricing/pricebook.js';
import { PolicyValidationError } from '../../policy/budgets.js';
import { EMPTY_ROUTING, parseRoutingConfig, type RoutingConfig } from '../../policy/routing.js';
import { tokentallyHome } from './context.js';
import { UserFacingError } from './errors.js';

export function routesPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(tokentallyHome(env), 'routes.json');
}

/** The validated routing config; an absent file means no rules. */
export function loadRoutingConfig(prices: PriceBook, env: NodeJS.ProcessEnv = process.env): RoutingConfig {
  const path = routesPath(env);
  if (!existsSync(path)) return { ...EMPTY_ROUTING, rules: [], ladder: [] };
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new UserFacingError(`cannot read ${path}: ${(err as Error).message}`, 'fix the JSON or move the file away; nothing was changed');
  }
  try {
    return parseRoutingConfig(doc, prices);
  } catch (err) {
    if (err instanceof PolicyValidationError) throw new UserFacingError(`${path}: ${err.message}`, 'fix the routing file; nothing was changed');
    throw err;
  }
}

/** Write atomically (temp file + rename), so the proxy never reads half a file. */
export function saveRoutingConfig(config: RoutingConfig, env: NodeJS.ProcessEnv = process.env): string {
  const path = routesPath(env);
  mkdirSync(dirname(path), { recursive: true });
  const doc: Record<string, unknown> = { dryRun: config.dryRun, rules: config.rules };
  if (config.ladder.length) doc.ladder = config.ladder;
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(doc, null, 2) + '\n');
  renameSync(tmp, path);
  return path;
}

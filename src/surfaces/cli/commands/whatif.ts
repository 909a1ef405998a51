/** `tokentally whatif`: re-price the recorded token flow under another policy; before / after / saving and the assumptions. */
import type { Command } from 'commander';
import { loadSessionModels } from '../../../analysis/audit-data.js';
import { parseRouteRules, RouteRuleError, type RouteRule } from '../../../analysis/route-rules.js';
import { whatIf, type WhatIfPolicy, type WhatIfResult } from '../../../analysis/whatif.js';
import type { PriceBook } from '../../../core/pricing/pricebook.js';
import { UsageError } from '../errors.js';
import { formatInt, formatUsd, wrap, printable } from '../format.js';
import { item, parsePositiveInt, scopeFrom, withStore, type CommonFlags, type ScopeFlags } from './session-audit.js';

interface WhatIfFlags extends CommonFlags, ScopeFlags {
  model?: string;
  route?: string;
  compactAfter?: string;
  clearEvery?: string;
  cache: boolean;
}

export function registerWhatIf(program: Command): void {
  program.command('whatif')
    .description('re-price recorded sessions under another policy: --model, --route, --compact-after, --clear-every, --no-cache')
    .option('--session <id>', 'one session (id, unique prefix or "latest")')
    .option('-s, --since <date>', 'first day to include (YYYY-MM-DD)')
    .option('-u, --until <date>', 'last day to include (YYYY-MM-DD)')
    .option('-p, --project <path>', 'only projects whose path contains this text')
    .option('-z, --timezone <zone>', 'IANA time zone for days (default: the system zone)')
    .option('--model <model>', 'every request on this model (same tokens at its price)')
    .option('--route <rules>', 'per-request model rules, e.g. "output<800&prompt<30k=claude-haiku-4-5,model~opus=claude-sonnet-4-6"')
    .option('--compact-after <n>', 'drop tool results older than N requests from the re-sent context')
    .option('--clear-every <n>', 'restart each thread\'s context at its first-request size every N requests')
    .option('--no-cache', 'price cache reads and writes as plain input')
    .option('--json', 'JSON output')
    .option('--no-sync', 'report from the store without reading transcripts first')
    .option('-v, --verbose', 'list skipped transcript lines')
    .action(async (flags: WhatIfFlags) => {
      await withStore(flags, async (store, prices) => {
        const policy = policyFrom(flags, prices);
        const { scope, label } = await scopeFrom(store, flags);
        const models = await loadSessionModels(store, prices, scope);
        const result = whatIf(models, policy, prices);
        if (flags.json) process.stdout.write(JSON.stringify({ scope: label, sessionsInScope: models.length, ...result }, null, 2) + '\n');
        else process.stdout.write(printable(whatIfText(result, label)) + '\n');
      });
    });
}

function policyFrom(flags: WhatIfFlags, prices: PriceBook): WhatIfPolicy {
  const policy: WhatIfPolicy = {};
  if (flags.model !== undefined && flags.route !== undefined) throw new UsageError('choose one of --model and --route');
  if (flags.model !== undefined) {
    const m = prices.find(flags.model);
    if (!m) throw new UsageError(`--model: no price for "${flags.model}" (tokentally prices lists the known models)`);
    policy.model = flags.model;
  }
  if (flags.route !== undefined) {
    let rules: RouteRule[];
    try {
      rules = parseRouteRules(flags.route);
    } catch (err) {
      if (err instanceof RouteRuleError) throw new UsageError(`--route: ${err.message}`);
      throw err;
    }
    for (const r of rules) {
      if (!prices.find(r.model)) throw new UsageError(`--route: no price for "${r.model}" in "${r.text}"`);
    }
    policy.route = rules;
  }
  policy.compactAfter = parsePositiveInt(flags.compactAfter, '--compact-after');
  policy.clearEvery = parsePositiveInt(flags.clearEvery, '--clear-every');
  if (flags.cache === false) policy.noCache = true;
  if (policy.compactAfter === undefined) delete policy.compactAfter;
  if (policy.clearEvery === undefined) delete policy.clearEvery;
  if (Object.keys(policy).length === 0) {
    throw new UsageError('choose a policy: --model M, --route RULES, --compact-after N, --clear-every N or --no-cache');
  }
  return policy;
}

export function whatIfText(w: WhatIfResult, label: string): string {
  const out: string[] = [];
  out.push(wrap(`What if: ${w.policy.join('; ')}`));
  const sessions = w.sessions.length;
  out.push(wrap(`Scope: ${label} (${formatInt(sessions)} session${sessions === 1 ? '' : 's'}, `
    + `${formatInt(w.requests - w.unpricedRequests)} priced requests)`));
  out.push('');
  const pct = w.savingPct === null ? '' : ` (${(w.savingPct * 100).toFixed(1)}%)`;
  out.push(`  Before  ${formatUsd(w.before).padStart(12)}`);
  out.push(`  After   ${formatUsd(w.after).padStart(12)}`);
  out.push(`  Saving  ${formatUsd(w.saving).padStart(12)}${pct}${w.saving < 0 ? '  (costs more)' : ''}`);
  if (w.tokens.promptAfter !== w.tokens.promptBefore) {
    out.push(`  Context tokens sent: ${formatInt(w.tokens.promptBefore)} -> ${formatInt(w.tokens.promptAfter)}`);
  }
  if (w.moves.length) {
    out.push('');
    out.push('By model:');
    for (const m of w.moves.slice(0, 10)) {
      const move = m.from === m.to ? `${m.from} (kept)` : `${m.from} -> ${m.to}`;
      out.push(item(`${move}: ${formatInt(m.requests)} requests, ${formatUsd(m.before)} -> ${formatUsd(m.after)}`));
    }
  }
  if (w.sessions.length > 1) {
    out.push('');
    out.push('Sessions with the largest saving:');
    for (const s of w.sessions.slice(0, 5)) {
      out.push(item(`${s.sessionId}: ${formatUsd(s.before)} -> ${formatUsd(s.after)} (${formatUsd(s.saving)})`));
    }
  }
  if (w.unpricedRequests) {
    out.push('');
    out.push(wrap(`${formatInt(w.unpricedRequests)} requests left out: no price for ${w.unpricedModels.join(', ')} (cost unknown, not $0).`));
  }
  out.push('');
  out.push('Assumptions:');
  for (const a of w.assumptions) out.push(item(`- ${a}`, ''));
  return out.join('\n');
}

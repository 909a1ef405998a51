/** `tokentally insights`: ranked findings with dollar amounts, each with the numbers behind it. */
import type { Command } from 'commander';
import { loadSessionModels } from '../../../analysis/audit-data.js';
import { buildInsights, CLEAR_EVERY, type Insights } from '../../../analysis/insights.js';
import { formatInt, formatUsd, wrap, printable } from '../format.js';
import { item, parsePositiveInt, scopeFrom, withStore, type CommonFlags, type ScopeFlags } from './session-audit.js';

interface InsightsFlags extends CommonFlags, Omit<ScopeFlags, 'session'> {
  limit?: string;
  clearEvery?: string;
}

const MEANING: Record<string, string> = { spent: 'spent', avoidable: 'avoidable', saving: 'could save' };

export function registerInsights(program: Command): void {
  program.command('insights')
    .description('ranked findings with dollar amounts: costliest sessions and tools, cache misses, repeated reads, model choice, long sessions, retries')
    .option('-s, --since <date>', 'first day to include (YYYY-MM-DD)')
    .option('-u, --until <date>', 'last day to include (YYYY-MM-DD)')
    .option('-p, --project <path>', 'only projects whose path contains this text')
    .option('-z, --timezone <zone>', 'IANA time zone for days (default: the system zone)')
    .option('-n, --limit <n>', 'how many findings to show', '12')
    .option('--clear-every <n>', 'requests per thread before a long session counts as "should have been cleared"', String(CLEAR_EVERY))
    .option('--json', 'JSON output')
    .option('--no-sync', 'report from the store without reading transcripts first')
    .option('-v, --verbose', 'list skipped transcript lines')
    .action(async (flags: InsightsFlags) => {
      const limit = parsePositiveInt(flags.limit, '--limit') ?? 12;
      const clearEvery = parsePositiveInt(flags.clearEvery, '--clear-every') ?? CLEAR_EVERY;
      await withStore(flags, async (store, prices) => {
        const { scope, label } = await scopeFrom(store, flags);
        const models = await loadSessionModels(store, prices, scope);
        const insights = buildInsights(models, prices, { clearEvery });
        if (flags.json) {
          process.stdout.write(JSON.stringify({ label, ...insights, findings: insights.findings.slice(0, limit) }, null, 2) + '\n');
        } else {
          process.stdout.write(printable(insightsText(insights, label, limit)) + '\n');
        }
      });
    });
}

export function insightsText(x: Insights, label: string, limit: number): string {
  const out: string[] = [];
  out.push(wrap(`Insights, ${label}: ${formatInt(x.scope.sessions)} sessions, ${formatInt(x.scope.requests)} requests, `
    + `${formatUsd(x.scope.cost)}${x.scope.unpricedRequests ? ' + unknown' : ''}`));
  out.push('');
  if (x.findings.length === 0) out.push('No findings: nothing recorded in this range, or nothing worth a cent.');
  x.findings.slice(0, limit).forEach((f, i) => {
    out.push(item(`${String(i + 1).padStart(2)}. ${formatUsd(f.dollars)} ${MEANING[f.meaning]} · ${f.title}`, '').replace(/\n  /g, '\n    '));
    out.push(item(f.explanation, '    '));
  });
  if (x.findings.length > limit) out.push(`(${x.findings.length - limit} more: --limit ${x.findings.length})`);
  for (const n of x.notes) {
    out.push('');
    out.push(wrap(`Note: ${n}`));
  }
  out.push('');
  out.push(wrap('spent = money that went there; avoidable = paid beyond what the better behaviour costs; could save = a what-if '
    + 'estimate (see tokentally whatif). Definitions: docs/insights.md.'));
  return out.join('\n');
}

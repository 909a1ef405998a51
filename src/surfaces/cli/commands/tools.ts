/** `tokentally tools`: what tool results cost, sent once and carried on later requests, per tool and across sessions. */
import { printable } from '../format.js';
import type { Command } from 'commander';
import { loadSessionModels } from '../../../analysis/audit-data.js';
import { attributeTools } from '../../../analysis/tool-attribution.js';
import { parsePositiveInt, scopeFrom, toolsJson, toolsText, withStore, type CommonFlags, type ScopeFlags } from './session-audit.js';

interface ToolsFlags extends CommonFlags, ScopeFlags {
  limit?: string;
}

export function registerTools(program: Command): void {
  program.command('tools')
    .description('cost of tool results: what sending each result, and re-sending it on every later request, cost (by tool, MCP server, file)')
    .option('--session <id>', 'one session (id, unique prefix or "latest")')
    .option('-s, --since <date>', 'first day to include (YYYY-MM-DD)')
    .option('-u, --until <date>', 'last day to include (YYYY-MM-DD)')
    .option('-p, --project <path>', 'only projects whose path contains this text')
    .option('-z, --timezone <zone>', 'IANA time zone for days (default: the system zone)')
    .option('-n, --limit <n>', 'how many largest results and repeated files to list', '10')
    .option('--json', 'JSON output (every result with its size, method and costs)')
    .option('--no-sync', 'report from the store without reading transcripts first')
    .option('-v, --verbose', 'list skipped transcript lines')
    .action(async (flags: ToolsFlags) => {
      const limit = parsePositiveInt(flags.limit, '--limit') ?? 10;
      await withStore(flags, async (store, prices) => {
        const { scope, label } = await scopeFrom(store, flags);
        const models = (await loadSessionModels(store, prices, scope)).filter((m) => !m.unthreaded);
        const tools = attributeTools(models, { largest: limit });
        if (flags.json) {
          process.stdout.write(JSON.stringify({ scope: label, sessions: models.length, ...toolsJson(tools) }, null, 2) + '\n');
        } else {
          process.stdout.write(printable(toolsText(tools, { limit, title: `Tool results, ${label} (${models.length} sessions)` })) + '\n');
        }
      });
    });
}

import type { Command } from 'commander';
import { loadPriceBook, pricesPath } from '../context.js';
import { formatUsd, renderTable } from '../format.js';

export function registerPrices(program: Command): void {
  program.command('prices')
    .description('list the price table (USD per million tokens), built-in plus TOKENTALLY_HOME/prices.json')
    .option('--json', 'JSON output')
    .option('--model <id>', 'only the model matching this id or alias')
    .action((opts: { json?: boolean; model?: string }) => {
      const book = loadPriceBook();
      let models = book.models;
      if (opts.model) {
        const m = book.find(opts.model);
        if (!m) {
          process.stdout.write(`${opts.model}: unknown model (no price). Add it to ${pricesPath()}.\n`);
          process.exitCode = 1;
          return;
        }
        models = [m];
      }
      if (opts.json) {
        process.stdout.write(JSON.stringify({ unit: 'USD per million tokens', models }, null, 2) + '\n');
        return;
      }
      const p = (x: number) => formatUsd(x).replace(/\.00$/, '');
      const rows = models.map((m) => [
        m.id, p(m.rates.input), p(m.rates.output), p(m.rates.cacheWrite5m), p(m.rates.cacheWrite1h), p(m.rates.cacheRead),
        [m.longContext ? `>${m.longContext.thresholdTokens / 1000}K` : '', m.fast ? 'fast' : '', m.history?.length ? 'dated' : '']
          .filter(Boolean).join(' '),
      ]);
      process.stdout.write(renderTable([
        { header: 'Model', align: 'left' }, { header: 'Input' }, { header: 'Output' }, { header: '5m W' },
        { header: '1h W' }, { header: 'Read' }, { header: 'Rules', align: 'left' },
      ], rows) + '\n');
      process.stdout.write('USD per million tokens. Rules: >NK = whole request at the long-context rate above N tokens of prompt;\n'
        + 'fast = fast-mode rates when usage.speed is "fast"; dated = earlier prices by request date (see --json).\n'
        + 'US-only inference (inference_geo "us") costs x1.1 on Claude 4.6 and later; web search $10 per 1,000.\n');
    });
}

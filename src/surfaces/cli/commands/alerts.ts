import type { Command } from 'commander';
import { deliverAlerts } from '../../notify.js';
import { loadPriceBook, openStore } from '../context.js';
import { UsageError } from '../errors.js';
import { formatUsd, renderTable } from '../format.js';

export function registerAlerts(program: Command): void {
  program.command('alerts')
    .description('budget alerts fired so far (each threshold once per period), newest first')
    .option('--json', 'JSON output')
    .option('--budget <name>', 'only this budget')
    .option('--limit <n>', 'at most this many (default 50)', '50')
    .option('--deliver', 'send the alerts not delivered yet (webhook, desktop), then list them')
    .action(async (flags: { json?: boolean; budget?: string; limit: string; deliver?: boolean }) => {
      const limit = Number(flags.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit: expected a whole number >= 1, got "${flags.limit}"`);
      const store = openStore(loadPriceBook());
      try {
        let delivered: { id: number; delivery: string }[] = [];
        if (flags.deliver) {
          const pending = await store.listAlerts({ pending: true, budget: flags.budget });
          delivered = await deliverAlerts(store, pending, await store.listBudgets());
        }
        const alerts = await store.listAlerts({ budget: flags.budget, limit });
        if (flags.json) {
          process.stdout.write(JSON.stringify({
            alerts: alerts.map((a) => ({
              id: a.id, ts: new Date(a.ts).toISOString(), budget: a.budget, period: a.period, periodKey: a.periodKey,
              threshold: a.threshold, spent: Math.round(a.spentUsd * 1e6) / 1e6, limit: a.limitUsd,
              percent: Math.round(a.percent * 100) / 100, resetsAt: a.resetsAt === null ? null : new Date(a.resetsAt).toISOString(),
              source: a.source, message: a.message, delivery: a.delivery,
            })),
            ...(flags.deliver ? { delivered } : {}),
          }, null, 2) + '\n');
          return;
        }
        if (flags.deliver) process.stdout.write(`delivered ${delivered.length} pending alert(s)\n`);
        if (!alerts.length) {
          process.stdout.write('no alerts yet\n');
          return;
        }
        process.stdout.write(renderTable(
          [{ header: 'When (UTC)', align: 'left' }, { header: 'Budget', align: 'left' }, { header: 'At' }, { header: 'Spent' },
            { header: 'Limit' }, { header: 'Period', align: 'left' }, { header: 'Delivery', align: 'left' }],
          alerts.map((a) => [
            new Date(a.ts).toISOString().slice(0, 16).replace('T', ' '), a.budget, `${a.threshold}%`, formatUsd(a.spentUsd),
            formatUsd(a.limitUsd), a.periodKey.replace(/\|s:.*/, ' (session)'), a.delivery ?? 'pending',
          ]),
        ) + '\n');
      } finally {
        await store.close();
      }
    });
}

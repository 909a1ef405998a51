import type { Command } from 'commander';
import { systemTimeZone, WEEKDAYS } from '../../../core/time.js';
import type { AlertRecord } from '../../../policy/alerts.js';
import {
  formatDuration, formatInstant, PolicyValidationError, validateBudget, type BudgetDefinition, type BudgetInput, type BudgetStatus,
} from '../../../policy/budgets.js';
import { evaluateBudgets, recordDueAlerts } from '../../../policy/evaluate.js';
import type { Store } from '../../../store/store.js';
import { deliverAlerts } from '../../notify.js';
import { loadPriceBook, openStore } from '../context.js';
import { UsageError, UserFacingError } from '../errors.js';
import { formatPercent, formatUsd, renderTable } from '../format.js';
import { clock } from './hook.js';
import { runSync } from './sync.js';

interface SetFlags {
  limit?: string;
  period?: string;
  scope?: string;
  action?: string;
  alerts?: string;
  webhook?: string;
  timezone?: string;
  startOfWeek?: string;
  json?: boolean;
}

export function registerBudget(program: Command): void {
  const budget = program.command('budget')
    .description('spending limits per day/week/month/5-hour block/session, with alerts and enforcement (proxy, hook)');

  budget.command('set <name>')
    .description('create or change a budget (flags left out keep their current value)')
    .option('--limit <usd>', 'limit in USD, e.g. 10')
    .option('--period <period>', 'day | week | month | block5h | session (default day)')
    .option('--scope <scope>', 'all | project:<path> | session | model:<id> | key:<hash> (default all)')
    .option('--action <action>', 'warn | block | downgrade, at the limit (default warn)')
    .option('--alerts <percents>', 'alert thresholds in percent of the limit (default 50,80,100; "none" for none)')
    .option('--webhook <url>', 'POST each alert as JSON (Slack-compatible "text" field); "" removes it')
    .option('--timezone <zone>', 'IANA zone for day/week/month boundaries (default: the system zone)')
    .option('--start-of-week <day>', `first day of a week period (${WEEKDAYS.join(', ')}; default monday)`)
    .option('--json', 'JSON output')
    .action(async (name: string, flags: SetFlags) => withStore(async (store) => {
      const existing = (await store.listBudgets()).find((b) => b.name === name);
      if (!existing && flags.limit === undefined) throw new UsageError('--limit: required for a new budget (USD, e.g. --limit 10)');
      const input: BudgetInput = {
        name,
        limit: flags.limit ?? existing?.limitUsd,
        period: flags.period ?? existing?.period,
        scope: flags.scope ?? existing?.scope,
        action: flags.action ?? existing?.action,
        alerts: flags.alerts ?? existing?.alerts,
        webhook: flags.webhook ?? existing?.webhook ?? undefined,
        timezone: flags.timezone ?? existing?.timeZone,
        startOfWeek: flags.startOfWeek ?? (existing ? WEEKDAYS[existing.weekStart] : undefined),
      };
      let def: BudgetDefinition;
      try {
        const now = Date.now();
        def = validateBudget(input, { prices: loadPriceBook(), now, defaultTimeZone: systemTimeZone() });
        // A changed definition gets a new version (its alerts can fire again); createdAt is kept.
        if (existing) def = { ...def, createdAt: existing.createdAt, updatedAt: Math.max(now, existing.updatedAt + 1) };
      } catch (err) {
        if (err instanceof PolicyValidationError) throw new UsageError(err.message);
        throw err;
      }
      const result = await store.saveBudget(def);
      if (flags.json) process.stdout.write(JSON.stringify({ result, budget: def }, null, 2) + '\n');
      else process.stdout.write(`${result} budget ${def.name}: ${describe(def)}\n`);
    }));

  budget.command('list')
    .description('list the budgets')
    .option('--json', 'JSON output')
    .action(async (flags: { json?: boolean }) => withStore(async (store) => {
      const list = await store.listBudgets();
      if (flags.json) {
        process.stdout.write(JSON.stringify({ budgets: list }, null, 2) + '\n');
        return;
      }
      if (!list.length) {
        process.stdout.write('no budgets (add one: tokentally budget set daily --limit 10 --period day --action block)\n');
        return;
      }
      process.stdout.write(renderTable(
        [{ header: 'Budget', align: 'left' }, { header: 'Limit' }, { header: 'Period', align: 'left' }, { header: 'Scope', align: 'left' },
          { header: 'Action', align: 'left' }, { header: 'Alerts', align: 'left' }],
        list.map((b) => [b.name, formatUsd(b.limitUsd), b.period, b.scope, b.action, b.alerts.length ? b.alerts.join(',') + '%' : 'none']),
      ) + '\n');
      const hooks = list.filter((b) => b.webhook).map((b) => `${b.name} -> ${b.webhook}`);
      if (hooks.length) process.stdout.write(`webhooks: ${hooks.join('; ')}\n`);
    }));

  budget.command('status')
    .description('spent, limit, percent, time to reset and projected spend of each budget; fires due alerts')
    .option('--json', 'JSON output')
    .option('--session <id>', 'session for per-session budgets (default: the most recent one)')
    .option('--no-sync', 'use the store as is, without importing new transcript lines first')
    .option('--no-notify', 'record due alerts without sending webhooks or desktop notifications')
    .action(async (flags: { json?: boolean; session?: string; sync: boolean; notify: boolean }) => withStore(async (store) => {
      const budgets = await store.listBudgets();
      if (flags.sync && budgets.length) await runSync(store, true);
      const now = clock();
      const prices = loadPriceBook();
      const statuses = await evaluateBudgets(store, budgets, now, { prices, sessionId: flags.session });
      const fired = await recordDueAlerts(store, statuses, now, 'status');
      if (fired.length && flags.notify) await deliverAlerts(store, fired, budgets);
      const periodAlerts = new Map<string, AlertRecord[]>();
      for (const s of statuses) {
        periodAlerts.set(s.budget.name, (await store.listAlerts({ budget: s.budget.name, budgetVersion: s.budget.updatedAt, periodKey: s.window.key }))
          .sort((a, b) => a.threshold - b.threshold));
      }
      if (flags.json) {
        process.stdout.write(JSON.stringify({
          now: new Date(now).toISOString(),
          budgets: statuses.map((s) => statusJson(s, periodAlerts.get(s.budget.name) ?? [])),
          alertsFired: fired.map((a) => ({ budget: a.budget, threshold: a.threshold, message: a.message })),
        }, null, 2) + '\n');
        return;
      }
      if (!statuses.length) {
        process.stdout.write('no budgets (add one: tokentally budget set daily --limit 10 --period day --action block)\n');
        return;
      }
      process.stdout.write(renderTable(
        [{ header: 'Budget', align: 'left' }, { header: 'Spent' }, { header: 'Limit' }, { header: '%' }, { header: 'Resets in' },
          { header: 'Projected' }, { header: 'Action', align: 'left' }],
        statuses.map((s) => [
          s.budget.name, formatUsd(s.spentUsd) + (s.unknownCostRequests ? '+?' : ''), formatUsd(s.limitUsd), formatPercent(s.percent / 100),
          s.msToReset === null ? 'session' : formatDuration(s.msToReset), s.projectedUsd === null ? '-' : formatUsd(s.projectedUsd),
          s.exhausted ? `${s.budget.action.toUpperCase()}` : s.budget.action,
        ]),
      ) + '\n');
      for (const s of statuses) {
        const sess = s.sessionId ? ` session ${s.sessionId}` : '';
        const reset = s.resetsAt === null ? 'no reset (per session)' : `resets ${formatInstant(s.resetsAt, s.budget.timeZone)}`;
        const burn = s.burnRatePerHour === null ? '' : `, burn ${formatUsd(s.burnRatePerHour)}/h`;
        process.stdout.write(`  ${s.budget.name}: ${s.budget.period}, scope ${s.budget.scope}${sess}; ${s.requests} requests${burn}; ${reset}\n`);
        const fired = periodAlerts.get(s.budget.name) ?? [];
        if (fired.length) process.stdout.write(`    alerts this period: ${fired.map((a) => `${a.threshold}% at ${new Date(a.ts).toISOString().slice(11, 16)}Z`).join(', ')}\n`);
        if (s.unknownCostRequests) process.stdout.write(`    ${s.unknownCostRequests} requests of models without a price are not counted (see tokentally prices)\n`);
      }
      for (const a of fired) process.stdout.write(`alert: ${a.message}\n`);
    }));

  budget.command('rm <name>')
    .alias('remove')
    .description('delete a budget (its past alerts stay listed)')
    .option('--json', 'JSON output')
    .action(async (name: string, flags: { json?: boolean }) => withStore(async (store) => {
      const removed = await store.deleteBudget(name);
      if (!removed) throw new UserFacingError(`no budget named "${name}"`, 'see tokentally budget list');
      if (flags.json) process.stdout.write(JSON.stringify({ removed: name }) + '\n');
      else process.stdout.write(`removed budget ${name}\n`);
    }));
}

async function withStore(fn: (store: Store) => Promise<void>): Promise<void> {
  const store = openStore(loadPriceBook());
  try {
    await fn(store);
  } finally {
    await store.close();
  }
}

function describe(b: BudgetDefinition): string {
  const tz = b.period === 'day' || b.period === 'week' || b.period === 'month' ? ` (${b.timeZone}${b.period === 'week' ? `, weeks start ${WEEKDAYS[b.weekStart]}` : ''})` : '';
  return `${formatUsd(b.limitUsd)} per ${b.period}${tz}, scope ${b.scope}, action ${b.action}, `
    + `alerts ${b.alerts.length ? b.alerts.join(',') + '%' : 'none'}${b.webhook ? `, webhook ${b.webhook}` : ''}`;
}

function statusJson(s: BudgetStatus, alerts: AlertRecord[]) {
  const r = (x: number | null) => (x === null ? null : Math.round(x * 1e6) / 1e6);
  return {
    name: s.budget.name, period: s.budget.period, scope: s.budget.scope, action: s.budget.action,
    spent: r(s.spentUsd), limit: s.limitUsd, remaining: r(s.remainingUsd), percent: Math.round(s.percent * 100) / 100,
    exhausted: s.exhausted, requests: s.requests, unknownCostRequests: s.unknownCostRequests, sessionId: s.sessionId,
    periodKey: s.window.key, periodStart: new Date(s.window.start).toISOString(),
    resetsAt: s.resetsAt === null ? null : new Date(s.resetsAt).toISOString(), msToReset: s.msToReset,
    burnRatePerHour: r(s.burnRatePerHour), projected: r(s.projectedUsd), timeZone: s.budget.timeZone,
    alertsThisPeriod: alerts.map((a) => ({ threshold: a.threshold, ts: new Date(a.ts).toISOString(), delivery: a.delivery })),
  };
}

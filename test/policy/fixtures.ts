import type { BudgetDefinition } from '../../src/policy/budgets.js';

/** A budget definition with test defaults ($10 per UTC day, block, alerts 50/80/100). */
export function budget(over: Partial<BudgetDefinition> = {}): BudgetDefinition {
  return {
    name: 'b', limitUsd: 10, period: 'day', scope: 'all', action: 'block', alerts: [50, 80, 100], webhook: null,
    timeZone: 'UTC', weekStart: 1, createdAt: 1, updatedAt: 1, ...over,
  };
}

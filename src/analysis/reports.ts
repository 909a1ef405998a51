import { SYNTHETIC_MODEL } from '../core/pricing/catalog.js';
import { LocalCalendar, weekStartOf } from '../core/time.js';
import type { RequestFilter, Store, UsageGroup } from '../store/store.js';

export type ReportKind = 'daily' | 'weekly' | 'monthly' | 'session' | 'project' | 'model';

export interface ReportOptions {
  since?: string;
  until?: string;
  timeZone: string;
  project?: string;
  /** 0 = Sunday (ccusage's default), 1 = Monday. */
  weekStart: number;
}

export interface TokenTotals {
  inputTokens: number;
  outputTokens: number;
  cacheCreationTokens: number;
  cacheCreation5mTokens: number;
  cacheCreation1hTokens: number;
  cacheReadTokens: number;
  totalTokens: number;
  /** Cost of the priced requests, USD. */
  totalCost: number;
  /** Tokens from models without a price: their cost is unknown, not zero. */
  unknownCostTokens: number;
  unknownModels: string[];
  /** Cache reads over all prompt tokens (input + cache writes + cache reads). */
  cacheHitRate: number;
  requests: number;
  webSearchRequests: number;
}

export interface ModelBreakdown {
  modelName: string;
  inputTokens: number;
  outputTokens: number;
  cacheCreationTokens: number;
  cacheReadTokens: number;
  /** null when the model has no price. */
  cost: number | null;
  requests: number;
}

export interface ReportRow extends TokenTotals {
  key: string;
  modelsUsed: string[];
  modelBreakdowns: ModelBreakdown[];
  firstTs: number;
  lastTs: number;
  project?: string | null;
}

export interface Report {
  kind: ReportKind;
  rows: ReportRow[];
  totals: TokenTotals;
  timeZone: string;
}

export async function buildReport(store: Store, kind: ReportKind, opts: ReportOptions): Promise<Report> {
  const cal = new LocalCalendar(opts.timeZone);
  const filter: RequestFilter = { project: opts.project };
  if (opts.since) filter.fromTs = cal.startOfDay(opts.since);
  if (opts.until) filter.toTs = cal.startOfDay(nextDay(opts.until));

  let groups: UsageGroup[];
  let keyOf: (g: UsageGroup) => string;
  switch (kind) {
    case 'daily':
    case 'weekly':
    case 'monthly': {
      // Let the store add up whole local days: a few hundred rows instead of one per quarter hour and model.
      const [range] = await store.summarize(filter, []);
      groups = range ? await store.summarize({ ...filter, localDayOffsets: cal.offsetChanges(range.firstTs, range.lastTs + 1) },
        ['localDay', 'model']) : [];
      const dateOf = (g: UsageGroup) => new Date(g.localDay! * 86_400_000).toISOString().slice(0, 10);
      keyOf = kind === 'daily' ? dateOf : kind === 'monthly' ? (g) => dateOf(g).slice(0, 7) : (g) => weekStartOf(dateOf(g), opts.weekStart);
      break;
    }
    case 'session':
      groups = await store.summarize(filter, ['session', 'project', 'model']);
      keyOf = (g) => g.session ?? '(no session)';
      break;
    case 'project':
      groups = await store.summarize(filter, ['project', 'model']);
      keyOf = (g) => g.project ?? '(unknown project)';
      break;
    case 'model':
      groups = await store.summarize(filter, ['model']);
      keyOf = (g) => g.model ?? '(unknown model)';
      break;
  }

  const rows = new Map<string, { groups: UsageGroup[]; project?: string | null }>();
  for (const g of groups) {
    const key = keyOf(g);
    let row = rows.get(key);
    if (!row) rows.set(key, (row = { groups: [] }));
    row.groups.push(g);
    if (kind === 'session' && g.project && !row.project) row.project = g.project;
  }
  const out: ReportRow[] = [];
  for (const [key, row] of rows) {
    const r = rowFrom(key, row.groups);
    if (kind === 'session') r.project = row.project ?? null;
    if (r.totalTokens > 0 || r.requests > 0) out.push(r);
  }
  if (kind === 'session' || kind === 'project' || kind === 'model') {
    out.sort((a, b) => b.totalCost - a.totalCost || b.totalTokens - a.totalTokens || a.key.localeCompare(b.key));
  } else {
    // ISO dates and months: code-unit order is date order. (localeCompare would load ICU's collator, ~13 ms.)
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
  return { kind, rows: out, totals: totalsOf(groups), timeZone: opts.timeZone };
}

function rowFrom(key: string, groups: UsageGroup[]): ReportRow {
  const byModel = new Map<string, UsageGroup[]>();
  for (const g of groups) {
    const m = g.model ?? '(unknown model)';
    if (!byModel.has(m)) byModel.set(m, []);
    byModel.get(m)!.push(g);
  }
  const modelBreakdowns: ModelBreakdown[] = [];
  for (const [modelName, gs] of byModel) {
    const t = totalsOf(gs);
    if (modelName === SYNTHETIC_MODEL && t.totalTokens === 0) continue;
    modelBreakdowns.push({
      modelName, inputTokens: t.inputTokens, outputTokens: t.outputTokens,
      cacheCreationTokens: t.cacheCreationTokens, cacheReadTokens: t.cacheReadTokens,
      cost: t.unknownModels.length ? null : t.totalCost,
      requests: t.requests,
    });
  }
  modelBreakdowns.sort((a, b) => (b.cost ?? -1) - (a.cost ?? -1) || a.modelName.localeCompare(b.modelName));
  const totals = totalsOf(groups);
  return {
    key, ...totals,
    modelsUsed: modelBreakdowns.map((m) => m.modelName).sort(),
    modelBreakdowns,
    firstTs: Math.min(...groups.map((g) => g.firstTs)),
    lastTs: Math.max(...groups.map((g) => g.lastTs)),
  };
}

export function totalsOf(groups: UsageGroup[]): TokenTotals {
  const t: TokenTotals = {
    inputTokens: 0, outputTokens: 0, cacheCreationTokens: 0, cacheCreation5mTokens: 0, cacheCreation1hTokens: 0,
    cacheReadTokens: 0, totalTokens: 0, totalCost: 0, unknownCostTokens: 0, unknownModels: [], cacheHitRate: 0,
    requests: 0, webSearchRequests: 0,
  };
  const unknown = new Set<string>();
  for (const g of groups) {
    t.inputTokens += g.input;
    t.outputTokens += g.output;
    t.cacheCreation5mTokens += g.cacheWrite5m;
    t.cacheCreation1hTokens += g.cacheWrite1h;
    t.cacheReadTokens += g.cacheRead;
    t.totalCost += g.cost;
    t.unknownCostTokens += g.unknownCostTokens;
    t.requests += g.requests;
    t.webSearchRequests += g.webSearches;
    if (g.unknownCostRequests > 0) unknown.add(g.model ?? '(unknown model)');
  }
  t.cacheCreationTokens = t.cacheCreation5mTokens + t.cacheCreation1hTokens;
  t.totalTokens = t.inputTokens + t.outputTokens + t.cacheCreationTokens + t.cacheReadTokens;
  const prompt = t.inputTokens + t.cacheCreationTokens + t.cacheReadTokens;
  t.cacheHitRate = prompt > 0 ? t.cacheReadTokens / prompt : 0;
  t.unknownModels = [...unknown].sort();
  return t;
}

function nextDay(date: string): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
}

/**
 * Budgets: definitions, validation, period windows, scope matching, spend status and projection.
 * Pure logic: no I/O. Spend is summed by the store (`Store.sumSpend`) from the filter built here.
 */
import type { PriceBook } from '../core/pricing/pricebook.js';
import { assertTimeZone, TimeZoneError, weekStartOf, WEEKDAYS } from '../core/time.js';

export const PERIODS = ['day', 'week', 'month', 'block5h', 'session'] as const;
export type Period = (typeof PERIODS)[number];
export const ACTIONS = ['warn', 'block', 'downgrade'] as const;
export type BudgetAction = (typeof ACTIONS)[number];
export const DEFAULT_ALERTS = [50, 80, 100];

/** Which requests count against a budget. */
export type Scope =
  | { kind: 'all' }
  | { kind: 'project'; path: string }
  | { kind: 'session' }
  | { kind: 'model'; model: string }
  | { kind: 'key'; hash: string };

export interface BudgetDefinition {
  /** Unique, 1-64 of letters, digits, `.`, `_`, `-`. */
  name: string;
  limitUsd: number;
  period: Period;
  /** As typed: `all`, `project:<path>`, `session`, `model:<id or prefix*>`, `key:<12 hex>`. */
  scope: string;
  action: BudgetAction;
  /** Percent thresholds that raise an alert, ascending (default 50, 80, 100). */
  alerts: number[];
  webhook: string | null;
  /** IANA zone for day/week/month boundaries, fixed when the budget is set. */
  timeZone: string;
  /** 0 = Sunday ... 6 = Saturday. */
  weekStart: number;
  createdAt: number;
  /** Changes when the definition changes: alerts already fired under an older definition fire again. */
  updatedAt: number;
}

/** A definition or rule was refused; `field` is the flag or JSON path at fault, and the message starts with it. */
export class PolicyValidationError extends Error {
  constructor(readonly field: string, message: string) {
    super(`${field}: ${message}`);
  }
}

/** Raw input, as typed on the command line (strings) or read from JSON. */
export interface BudgetInput {
  name?: unknown;
  limit?: unknown;
  period?: unknown;
  scope?: unknown;
  action?: unknown;
  alerts?: unknown;
  webhook?: unknown;
  timezone?: unknown;
  startOfWeek?: unknown;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const KEY_HASH_RE = /^[0-9a-f]{12}$/;

/**
 * Validate a budget; every error names its field (`--limit: expected a positive number of USD, got "abc"`).
 * `prices` checks `model:` scopes against known models; `now` stamps createdAt/updatedAt.
 */
export function validateBudget(input: BudgetInput, opts: { prices?: PriceBook; now?: number; defaultTimeZone?: string } = {}): BudgetDefinition {
  const now = opts.now ?? Date.now();
  const name = typeof input.name === 'string' ? input.name.trim() : '';
  if (!NAME_RE.test(name)) {
    throw new PolicyValidationError('name', `expected 1-64 letters, digits, ".", "_" or "-" (starting with a letter or digit), got ${show(input.name)}`);
  }
  const limitUsd = parseUsd(input.limit);
  if (limitUsd === null) throw new PolicyValidationError('--limit', `expected a positive number of USD, got ${show(input.limit)}`);

  const period = input.period === undefined ? 'day' : input.period;
  if (typeof period !== 'string' || !(PERIODS as readonly string[]).includes(period)) {
    throw new PolicyValidationError('--period', `expected one of ${PERIODS.join(', ')}, got ${show(input.period)}`);
  }
  const action = input.action === undefined ? 'warn' : input.action;
  if (typeof action !== 'string' || !(ACTIONS as readonly string[]).includes(action)) {
    throw new PolicyValidationError('--action', `expected one of ${ACTIONS.join(', ')}, got ${show(input.action)}`);
  }
  const scopeText = input.scope === undefined ? 'all' : input.scope;
  if (typeof scopeText !== 'string') throw new PolicyValidationError('--scope', `expected text, got ${show(input.scope)}`);
  const scope = parseScope(scopeText, opts.prices);

  const alerts = parseAlerts(input.alerts);
  let webhook: string | null = null;
  if (input.webhook !== undefined && input.webhook !== null && input.webhook !== '') {
    if (typeof input.webhook !== 'string' || !isHttpUrl(input.webhook)) {
      throw new PolicyValidationError('--webhook', `expected an http:// or https:// URL, got ${show(input.webhook)}`);
    }
    webhook = input.webhook;
  }
  let timeZone: string;
  const tz = input.timezone ?? opts.defaultTimeZone ?? 'UTC';
  try {
    if (typeof tz !== 'string') throw new TimeZoneError('not text');
    timeZone = assertTimeZone(tz);
  } catch {
    throw new PolicyValidationError('--timezone', `unknown time zone ${show(tz)} (use an IANA name such as UTC, Europe/Paris)`);
  }
  let weekStart = 1;
  if (input.startOfWeek !== undefined) {
    weekStart = typeof input.startOfWeek === 'string' ? WEEKDAYS.indexOf(input.startOfWeek.toLowerCase()) : -1;
    if (weekStart < 0) throw new PolicyValidationError('--start-of-week', `expected one of ${WEEKDAYS.join(', ')}, got ${show(input.startOfWeek)}`);
  }
  return {
    name, limitUsd, period: period as Period, scope: formatScope(scope), action: action as BudgetAction, alerts, webhook,
    timeZone, weekStart, createdAt: now, updatedAt: now,
  };
}

function parseUsd(v: unknown): number | null {
  let n: number;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string' && /^\s*\$?\s*\d+(\.\d+)?\s*$/.test(v)) n = Number(v.replace(/[$\s]/g, ''));
  else return null;
  return Number.isFinite(n) && n > 0 && n <= 1e9 ? n : null;
}

/** `50,80,100` (percent of the limit); `none` or an empty list turns alerts off. */
export function parseAlerts(v: unknown): number[] {
  if (v === undefined || v === null) return [...DEFAULT_ALERTS];
  let parts: unknown[];
  if (Array.isArray(v)) parts = v;
  else if (typeof v === 'string') parts = v.trim() === '' || v.trim().toLowerCase() === 'none' ? [] : v.split(',');
  else throw new PolicyValidationError('--alerts', `expected percentages such as 50,80,100, got ${show(v)}`);
  const out = new Set<number>();
  for (const p of parts) {
    const n = typeof p === 'number' ? p : typeof p === 'string' && /^\s*\d+(\.\d+)?\s*%?\s*$/.test(p) ? Number(p.replace(/[%\s]/g, '')) : NaN;
    if (!Number.isFinite(n) || n <= 0 || n > 1000) {
      throw new PolicyValidationError('--alerts', `expected percentages between 0 and 1000 such as 50,80,100, got ${show(p)}`);
    }
    out.add(n);
  }
  return [...out].sort((a, b) => a - b);
}

export function parseScope(text: string, prices?: PriceBook): Scope {
  const t = text.trim();
  if (t === 'all') return { kind: 'all' };
  if (t === 'session') return { kind: 'session' };
  const colon = t.indexOf(':');
  const kind = colon > 0 ? t.slice(0, colon) : '';
  const value = colon > 0 ? t.slice(colon + 1).trim() : '';
  if (kind === 'project') {
    if (!value) throw new PolicyValidationError('--scope', 'project:<path> needs a path, e.g. project:/home/me/app');
    return { kind: 'project', path: value.length > 1 ? value.replace(/\/+$/, '') : value };
  }
  if (kind === 'model') {
    if (!value) throw new PolicyValidationError('--scope', 'model:<id> needs a model id, e.g. model:claude-opus-4-8 or model:claude-opus-*');
    if (!value.includes('*') && prices && !prices.find(value)) {
      throw new PolicyValidationError('--scope', `unknown model "${value}" (see tokentally prices; a prefix ending in * matches a family)`);
    }
    return { kind: 'model', model: value.includes('*') ? value.toLowerCase() : (prices?.find(value)?.id ?? value) };
  }
  if (kind === 'key') {
    if (!KEY_HASH_RE.test(value)) {
      throw new PolicyValidationError('--scope', `key:<hash> expects the 12 lowercase hex digits of the key hash (as tokentally records it), got ${show(value)}`);
    }
    return { kind: 'key', hash: value };
  }
  throw new PolicyValidationError('--scope', `expected all, project:<path>, session, model:<id> or key:<hash>, got ${show(text)}`);
}

export function formatScope(s: Scope): string {
  switch (s.kind) {
    case 'all': return 'all';
    case 'session': return 'session';
    case 'project': return `project:${s.path}`;
    case 'model': return `model:${s.model}`;
    case 'key': return `key:${s.hash}`;
  }
}

/** What the proxy or the hook knows about a request (or the prompt about to be sent). */
export interface RequestContext {
  sessionId: string | null;
  /** Working directory (project) of the session, when known. */
  project: string | null;
  model: string | null;
  keyHash: string | null;
}

/** Session-wide budgets (`--scope session` or `--period session`) count each session separately. */
export function perSession(b: Pick<BudgetDefinition, 'scope' | 'period'>): boolean {
  return b.period === 'session' || b.scope === 'session';
}

/**
 * Does this budget apply to the request? Unknown attributes never match a narrowed scope
 * (a `key:` budget does not apply to a hook call, which has no key).
 */
export function scopeMatches(b: Pick<BudgetDefinition, 'scope' | 'period'>, ctx: RequestContext, prices?: PriceBook): boolean {
  if (perSession(b) && !ctx.sessionId) return false;
  const s = parsedScope(b.scope);
  switch (s.kind) {
    case 'all':
    case 'session':
      return true;
    case 'project':
      return ctx.project !== null && underPath(ctx.project, s.path);
    case 'model':
      return ctx.model !== null && modelMatches(s.model, ctx.model, prices);
    case 'key':
      return ctx.keyHash === s.hash;
  }
}

/** Stored scopes are valid (checked when saved) and few: parsed once each, not on every request the proxy checks. */
const scopeCache = new Map<string, Scope>();
function parsedScope(text: string): Scope {
  let s = scopeCache.get(text);
  if (s === undefined) {
    s = parseScope(text);
    if (scopeCache.size >= 1000) scopeCache.clear();
    scopeCache.set(text, s);
  }
  return s;
}

export function underPath(p: string, root: string): boolean {
  if (root === '/') return p.startsWith('/');
  return p === root || p.startsWith(root + '/');
}

function modelMatches(pattern: string, model: string, prices?: PriceBook): boolean {
  const m = model.toLowerCase();
  if (pattern.endsWith('*')) return m.startsWith(pattern.slice(0, -1));
  if (m === pattern) return true;
  const a = prices?.find(m)?.id;
  return a !== undefined && a === (prices?.find(pattern)?.id ?? pattern);
}

/** A period instance: [start, end); `end` null for a session, which never resets. */
export interface PeriodWindow {
  start: number;
  end: number | null;
  /** Identifies the instance: alerts fire once per threshold per key. */
  key: string;
}

export const HOUR = 3_600_000;
export const BLOCK_MS = 5 * HOUR;
/** How far back `tokentally` looks for the start of the current 5-hour block. */
export const BLOCK_LOOKBACK_MS = 24 * HOUR;

export interface WindowHints {
  /** Request times (ascending, epoch ms) over at least the last BLOCK_LOOKBACK_MS: needed for block5h. */
  recentTimes?: number[];
  /** First request of the session (epoch ms): the start of a `session` period. */
  sessionStart?: number | null;
  sessionId?: string | null;
}

/**
 * Local dates and midnights in a zone, with one cached formatter per zone (building an Intl formatter costs
 * about a millisecond, and the hook runs before every prompt); UTC needs no Intl at all.
 */
const zoneFormatters = new Map<string, Intl.DateTimeFormat>();

function zoneParts(ts: number, timeZone: string): { date: string; offsetMs: number } {
  if (timeZone === 'UTC' || timeZone === 'Etc/UTC') return { date: new Date(ts).toISOString().slice(0, 10), offsetMs: 0 };
  let f = zoneFormatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    zoneFormatters.set(timeZone, f);
  }
  const p = f.formatToParts(new Date(ts));
  const v = (t: string) => p.find((x) => x.type === t)!.value;
  const date = `${v('year')}-${v('month')}-${v('day')}`;
  const wall = Date.parse(`${date}T${v('hour')}:${v('minute')}:00Z`);
  return { date, offsetMs: wall - Math.floor(ts / 60_000) * 60_000 };
}

/** YYYY-MM-DD of `ts` in the zone. */
export function zoneDate(ts: number, timeZone: string): string {
  return zoneParts(ts, timeZone).date;
}

/** Epoch ms of local midnight starting `date` in the zone (DST-safe: the offset is re-read at the result). */
export function zoneMidnight(date: string, timeZone: string): number {
  const utcMidnight = Date.parse(`${date}T00:00:00Z`);
  let guess = utcMidnight;
  for (let i = 0; i < 3; i++) {
    const next = utcMidnight - zoneParts(guess, timeZone).offsetMs;
    if (next === guess) break;
    guess = next;
  }
  return guess;
}

/** The period instance holding `now`. */
export function periodWindow(b: Pick<BudgetDefinition, 'period' | 'timeZone' | 'weekStart' | 'scope'>, now: number, hints: WindowHints = {}): PeriodWindow {
  const tz = b.timeZone;
  let w: PeriodWindow;
  switch (b.period) {
    case 'day': {
      const d = zoneDate(now, tz);
      w = { start: zoneMidnight(d, tz), end: zoneMidnight(addDays(d, 1), tz), key: `day:${d}` };
      break;
    }
    case 'week': {
      const d = weekStartOf(zoneDate(now, tz), b.weekStart);
      w = { start: zoneMidnight(d, tz), end: zoneMidnight(addDays(d, 7), tz), key: `week:${d}` };
      break;
    }
    case 'month': {
      const m = zoneDate(now, tz).slice(0, 7);
      w = { start: zoneMidnight(`${m}-01`, tz), end: zoneMidnight(`${nextMonth(m)}-01`, tz), key: `month:${m}` };
      break;
    }
    case 'block5h': {
      const blk = block5hWindow(hints.recentTimes ?? [], now);
      w = { start: blk.start, end: blk.end, key: `block:${new Date(blk.start).toISOString()}` };
      break;
    }
    case 'session':
      w = { start: hints.sessionStart ?? now, end: null, key: 'session' };
      break;
  }
  if (perSession(b)) w.key += `|s:${hints.sessionId ?? ''}`;
  return w;
}

export function addDays(date: string, n: number): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
}

function nextMonth(ym: string): string {
  const [y, m] = ym.split('-').map(Number);
  return m === 12 ? `${y + 1}-01` : `${y}-${String(m + 1).padStart(2, '0')}`;
}

/**
 * The 5-hour block holding `now`, the way ccusage draws them (blocks.rs identify_session_blocks): the first
 * request opens a block at its UTC hour; a request more than 5 h after the block start, or more than 5 h after
 * the previous request, opens a new one. With no active block, the block the next request would open
 * (`now` floored to the hour). `times` must be ascending; those after `now` are ignored.
 */
export function block5hWindow(times: number[], now: number): { start: number; end: number; active: boolean } {
  let start: number | null = null;
  let last: number | null = null;
  for (const t of times) {
    if (t > now) break;
    if (start === null || t - start > BLOCK_MS || (last !== null && t - last > BLOCK_MS)) start = floorHour(t);
    last = t;
  }
  if (start !== null && last !== null && now - last < BLOCK_MS && now < start + BLOCK_MS) {
    return { start, end: start + BLOCK_MS, active: true };
  }
  const s = floorHour(now);
  return { start: s, end: s + BLOCK_MS, active: false };
}

function floorHour(t: number): number {
  return Math.floor(t / HOUR) * HOUR;
}

/** What to sum in the store for one budget window (every source counts: proxy and transcripts). */
export interface SpendFilter {
  /** Inclusive. */
  fromTs?: number;
  /** Exclusive. */
  toTs?: number;
  sessionId?: string;
  /** The project itself or any folder under it. */
  projectPath?: string;
  /** Any of these model ids (as written by the API). */
  models?: string[];
  /** Model ids starting with this text. */
  modelPrefix?: string;
  keyHash?: string;
}

export interface SpendTotal {
  /** Sum of known costs, USD. */
  cost: number;
  requests: number;
  /** Requests whose model has no price: not in `cost`. */
  unknownCostRequests: number;
  firstTs: number | null;
  lastTs: number | null;
}

/** The store filter for a budget's window; null when it cannot apply (a per-session budget without a session). */
export function spendFilter(b: Pick<BudgetDefinition, 'scope' | 'period'>, w: PeriodWindow, sessionId: string | null, prices?: PriceBook): SpendFilter | null {
  const f: SpendFilter = { fromTs: w.start };
  if (w.end !== null) f.toTs = w.end;
  if (perSession(b)) {
    if (!sessionId) return null;
    f.sessionId = sessionId;
    if (b.period === 'session') delete f.fromTs;
  }
  const s = parseScope(b.scope);
  if (s.kind === 'project') f.projectPath = s.path;
  if (s.kind === 'key') f.keyHash = s.hash;
  if (s.kind === 'model') {
    if (s.model.endsWith('*')) f.modelPrefix = s.model.slice(0, -1);
    else f.models = modelSpellings(s.model, prices);
  }
  return f;
}

/** A model id, its aliases and the dated ids the API may write for it. */
export function modelSpellings(model: string, prices?: PriceBook): string[] {
  const m = prices?.find(model);
  const ids = new Set<string>([model]);
  if (m) {
    ids.add(m.id);
    for (const a of m.aliases) ids.add(a);
  }
  return [...ids];
}

/** In-memory equivalent of the store's sum (tests, small lists). */
export function sumRequests(rows: { ts: number; cost: number | null; sessionId: string | null; project: string | null; model: string | null; keyHash?: string | null }[], f: SpendFilter): SpendTotal {
  const out: SpendTotal = { cost: 0, requests: 0, unknownCostRequests: 0, firstTs: null, lastTs: null };
  for (const r of rows) {
    if (f.fromTs !== undefined && r.ts < f.fromTs) continue;
    if (f.toTs !== undefined && r.ts >= f.toTs) continue;
    if (f.sessionId !== undefined && r.sessionId !== f.sessionId) continue;
    if (f.projectPath !== undefined && (r.project === null || !underPath(r.project, f.projectPath))) continue;
    if (f.models !== undefined && (r.model === null || !f.models.includes(r.model))) continue;
    if (f.modelPrefix !== undefined && (r.model === null || !r.model.startsWith(f.modelPrefix))) continue;
    if (f.keyHash !== undefined && r.keyHash !== f.keyHash) continue;
    out.requests++;
    if (r.cost === null) out.unknownCostRequests++;
    else out.cost += r.cost;
    out.firstTs = out.firstTs === null ? r.ts : Math.min(out.firstTs, r.ts);
    out.lastTs = out.lastTs === null ? r.ts : Math.max(out.lastTs, r.ts);
  }
  return out;
}

export interface BudgetStatus {
  budget: BudgetDefinition;
  window: PeriodWindow;
  /** The session a per-session budget was measured for. */
  sessionId: string | null;
  spentUsd: number;
  limitUsd: number;
  remainingUsd: number;
  /** spent / limit x 100. */
  percent: number;
  requests: number;
  unknownCostRequests: number;
  exhausted: boolean;
  /** Epoch ms when the period resets; null for a session budget. */
  resetsAt: number | null;
  msToReset: number | null;
  /** USD per hour since the first request of the period (at least BURN_MIN_ELAPSED_MS); null without spend. */
  burnRatePerHour: number | null;
  /** spent + burn rate x time to reset; null for a session budget. */
  projectedUsd: number | null;
}

/** The burn rate is averaged over at least this long, so one early request does not project a fortune. */
export const BURN_MIN_ELAPSED_MS = 10 * 60_000;

/**
 * Status of a budget from its spend. Burn rate = spent / (now - first request of the period), with the elapsed
 * time at least 10 minutes; projected = spent + burn rate x time left until the reset.
 */
export function budgetStatus(budget: BudgetDefinition, window: PeriodWindow, spend: SpendTotal, now: number, sessionId: string | null = null): BudgetStatus {
  const spent = spend.cost;
  const resetsAt = window.end;
  const msToReset = resetsAt === null ? null : Math.max(0, resetsAt - now);
  let burn: number | null = null;
  if (spend.requests > 0 && spend.firstTs !== null && spent > 0) {
    const elapsed = Math.max(BURN_MIN_ELAPSED_MS, now - spend.firstTs);
    burn = (spent / elapsed) * HOUR;
  }
  const projectedUsd = msToReset === null ? null : spent + (burn ?? 0) * (msToReset / HOUR);
  return {
    budget, window, sessionId, spentUsd: spent, limitUsd: budget.limitUsd, remainingUsd: Math.max(0, budget.limitUsd - spent),
    percent: (spent / budget.limitUsd) * 100, requests: spend.requests, unknownCostRequests: spend.unknownCostRequests,
    exhausted: spent >= budget.limitUsd, resetsAt, msToReset, burnRatePerHour: burn, projectedUsd,
  };
}

/** `$12.34`; below a cent with four decimals (`$0.0042`), so small limits never read as $0.00. */
export function usd(x: number): string {
  return Math.abs(x) > 0 && Math.abs(x) < 0.01 ? `$${x.toFixed(4)}` : `$${x.toFixed(2)}`;
}

/** `2h 05m`, `3d 4h`, `45s`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** `2026-11-21 00:00 Europe/Paris`: the reset instant in the budget's own zone. */
export function formatInstant(ts: number, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  }).formatToParts(new Date(ts));
  const p = (t: string) => parts.find((x) => x.type === t)?.value ?? '';
  return `${p('year')}-${p('month')}-${p('day')} ${p('hour')}:${p('minute')} ${timeZone}`;
}

export function periodLabel(p: Period): string {
  return p === 'block5h' ? '5-hour block' : p === 'day' ? 'daily' : p === 'week' ? 'weekly' : p === 'month' ? 'monthly' : 'per session';
}

/** One sentence naming the budget, spent, limit and the reset: used by blocks, the hook and alerts. */
export function describeExhausted(s: BudgetStatus): string {
  const reset = s.resetsAt === null ? 'it does not reset (start a new session)' : `resets ${formatInstant(s.resetsAt, s.budget.timeZone)} (in ${formatDuration(s.msToReset ?? 0)})`;
  return `tokentally budget "${s.budget.name}" (${periodLabel(s.budget.period)}, scope ${s.budget.scope}) reached: `
    + `spent ${usd(s.spentUsd)} of ${usd(s.budget.limitUsd)}; ${reset}`;
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return `"${v}"`;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

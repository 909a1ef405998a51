/**
 * Reads what the session audit, tool attribution, insights and what-if need from the Store, and builds one
 * SessionModel per session. The analysis itself (session-model.ts and friends) stays free of I/O.
 */
import type { PriceBook } from '../core/pricing/pricebook.js';
import type { Compaction, ToolCall, ToolResult } from '../core/session-facts.js';
import type { Store, StoredRequest } from '../store/store.js';
import { buildSessionModel, type SessionModel } from './session-model.js';

export interface AuditScope {
  sessionId?: string;
  /** Inclusive, epoch ms. */
  fromTs?: number;
  /** Exclusive, epoch ms. */
  toTs?: number;
  /** Substring of the project path. */
  project?: string;
}

/** Requests without a session id are grouped under this pseudo-session and never treated as one context. */
export const NO_SESSION = '(no session)';

function groupBy<T>(items: T[], key: (x: T) => string | null): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const x of items) {
    const k = key(x) ?? NO_SESSION;
    let list = m.get(k);
    if (!list) m.set(k, (list = []));
    list.push(x);
  }
  return m;
}

export async function loadSessionModels(store: Store, prices: PriceBook, scope: AuditScope = {}): Promise<SessionModel[]> {
  const requests = await store.listRequests({ sessionId: scope.sessionId, fromTs: scope.fromTs, toTs: scope.toTs, project: scope.project });
  const factFilter = { sessionId: scope.sessionId, fromTs: scope.fromTs, toTs: scope.toTs };
  const [calls, results, compactions] = await Promise.all([
    store.listToolCalls(factFilter), store.listToolResults(factFilter), store.listCompactions(factFilter),
  ]);
  const bySession = groupBy<StoredRequest>(requests, (r) => r.sessionId);
  const callsBy = groupBy<ToolCall>(calls, (c) => c.sessionId);
  const resultsBy = groupBy<ToolResult>(results, (r) => r.sessionId);
  const compactionsBy = groupBy<Compaction>(compactions, (c) => c.sessionId);
  const models: SessionModel[] = [];
  for (const [sessionId, reqs] of bySession) {
    const unthreaded = sessionId === NO_SESSION;
    const model = buildSessionModel({
      sessionId, requests: reqs,
      calls: unthreaded ? [] : callsBy.get(sessionId) ?? [],
      results: unthreaded ? [] : resultsBy.get(sessionId) ?? [],
      compactions: unthreaded ? [] : compactionsBy.get(sessionId) ?? [],
    }, prices);
    if (unthreaded) model.unthreaded = true;
    models.push(model);
  }
  models.sort((a, b) => (a.requests[0]?.req.ts ?? 0) - (b.requests[0]?.req.ts ?? 0) || a.sessionId.localeCompare(b.sessionId));
  return models;
}

export type SessionLookup = { id: string } | { none: true } | { ambiguous: string[] };

/** `latest` (the session with the most recent request), an exact id, or a unique prefix of one. */
export async function resolveSession(store: Store, arg: string): Promise<SessionLookup> {
  const groups = (await store.summarize({}, ['session'])).filter((g) => g.session);
  if (arg === 'latest') {
    const latest = groups.sort((a, b) => b.lastTs - a.lastTs)[0];
    return latest ? { id: latest.session! } : { none: true };
  }
  if (groups.some((g) => g.session === arg)) return { id: arg };
  const matches = groups.filter((g) => g.session!.startsWith(arg)).map((g) => g.session!);
  if (matches.length === 1) return { id: matches[0] };
  if (matches.length > 1) return { ambiguous: matches.sort() };
  return { none: true };
}

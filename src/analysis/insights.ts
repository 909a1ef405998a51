/**
 * Ranked findings with dollar amounts, each traceable to requests: where the money went (sessions, tools,
 * results carried for many turns) and what was avoidable (cache expiries, prefix changes, low cache hit
 * rates, repeated reads, an expensive model for small turns, sessions never cleared, retries).
 * Pure: session models and a PriceBook in. Definitions: docs/insights.md.
 */
import type { PriceBook } from '../core/pricing/pricebook.js';
import { emptyUsage } from '../core/types.js';
import type { StoredRequest } from '../store/store.js';
import { auditSession, type SessionAudit } from './session-audit.js';
import { isFailedAttempt, type SessionModel } from './session-model.js';
import { attributeTools, type ToolAttribution } from './tool-attribution.js';
import { whatIf } from './whatif.js';

/** "Small turn" on an expensive model: at most this much output ... */
export const SMALL_TURN_OUTPUT = 300;
/** ... and at most this much context. */
export const SMALL_TURN_PROMPT = 30_000;
/** Long sessions are re-priced as if cleared every this many requests per thread. */
export const CLEAR_EVERY = 50;
/** A session whose cache hit rate is under this (and that cost at least LOW_HIT_MIN_COST) is flagged. */
export const LOW_HIT_RATE = 0.6;
export const LOW_HIT_MIN_COST = 0.05;
/** A failed attempt followed within this time by a success of the same request size is a retry. */
export const RETRY_WINDOW_MS = 120_000;
/** How many sessions / tools / results get a finding of their own. */
export const TOP_N = 3;

export type FindingKind =
  | 'top-session' | 'tool-cost' | 'carried-result' | 'cache-expiry' | 'prefix-change' | 'low-cache-hit'
  | 'repeated-reads' | 'expensive-model' | 'long-sessions' | 'retries';

export interface Finding {
  kind: FindingKind;
  title: string;
  /** What ranks the finding, USD. */
  dollars: number;
  /** spent: money that went there; avoidable: paid beyond what the better behaviour costs; saving: a what-if's estimate. */
  meaning: 'spent' | 'avoidable' | 'saving';
  explanation: string;
  numbers: Record<string, number | string>;
  sessions: string[];
}

export interface Insights {
  scope: { sessions: number; requests: number; cost: number; unpricedRequests: number; proxyRequests: number };
  findings: Finding[];
  notes: string[];
}

interface ParsedModel { family: string; version: number[] }

/** `claude-opus-4-5-20251101` -> opus [4,5]; `claude-3-5-haiku-20241022` -> haiku [3,5]. */
export function parseModelId(id: string): ParsedModel | null {
  const s = id.replace(/-\d{8}$/, '');
  let m = /^claude-(opus|sonnet|haiku|fable|mythos)-(\d+)(?:-(\d{1,2}))?$/.exec(s);
  if (m) return { family: m[1], version: m[3] !== undefined ? [Number(m[2]), Number(m[3])] : [Number(m[2]), 0] };
  m = /^claude-(\d+)(?:-(\d+))?-(opus|sonnet|haiku)$/.exec(s);
  if (m) return { family: m[3], version: [Number(m[1]), m[2] !== undefined ? Number(m[2]) : 0] };
  return null;
}

const EXPENSIVE = new Set(['opus', 'fable', 'mythos']);
const cmp = (a: number[], b: number[]) => a[0] - b[0] || a[1] - b[1];

/** The same generation's Sonnet (newest not newer than the model), else its Haiku; null when none is priced. */
export function cheaperSibling(model: string, prices: PriceBook): string | null {
  const row = prices.find(model);
  if (!row) return null;
  const me = parseModelId(row.id);
  if (!me || !EXPENSIVE.has(me.family)) return null;
  for (const family of ['sonnet', 'haiku']) {
    const same = prices.models
      .map((m) => ({ id: m.id, p: parseModelId(m.id) }))
      .filter((x) => x.p && x.p.family === family && x.p.version[0] === me.version[0] && cmp(x.p.version, me.version) <= 0)
      .sort((a, b) => cmp(b.p!.version, a.p!.version));
    if (same.length) return same[0].id;
  }
  return null;
}

export function isExpensiveModel(model: string | null, prices: PriceBook): boolean {
  const row = model ? prices.find(model) : undefined;
  const p = row ? parseModelId(row.id) : null;
  return p !== null && EXPENSIVE.has(p.family);
}

const short = (id: string) => (id.length > 8 ? id.slice(0, 8) : id);
/** The informative end of a long path. */
const tail = (p: string, max: number) => (p.length <= max ? p : `…${p.slice(p.length - max + 1)}`);
const usd = (x: number) => (Math.abs(x) >= 0.01 || x === 0 ? `$${x.toFixed(2)}` : `$${x.toFixed(4)}`);
const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
const int = (x: number) => Math.round(x).toLocaleString('en-US');

export function buildInsights(models: SessionModel[], prices: PriceBook, opts: { clearEvery?: number } = {}): Insights {
  const threaded = models.filter((m) => !m.unthreaded);
  const audits: SessionAudit[] = threaded.map((m) => auditSession(m, prices));
  const tools: ToolAttribution = attributeTools(threaded, { largest: TOP_N });
  const findings: Finding[] = [];
  const notes: string[] = [];

  const allRequests = models.flatMap((m) => m.requests);
  const totalCost = allRequests.reduce((s, r) => s + (r.cost ?? 0), 0);
  const proxyRequests = models.reduce((s, m) => s + m.failed.length + m.requests.filter((r) => r.req.proxy).length, 0);
  const scope = {
    sessions: threaded.length, requests: allRequests.length, cost: totalCost,
    unpricedRequests: allRequests.filter((r) => r.cost === null).length, proxyRequests,
  };

  // Where the money went: sessions.
  for (const a of [...audits].sort((x, y) => y.totals.cost - x.totals.cost).slice(0, TOP_N)) {
    if (a.totals.cost <= 0) continue;
    const main = a.threads.find((t) => t.thread === 'main') ?? a.threads[0];
    const hours = a.firstTs !== null && a.lastTs !== null ? (a.lastTs - a.firstTs) / 3_600_000 : 0;
    findings.push({
      kind: 'top-session', meaning: 'spent', dollars: a.totals.cost,
      title: `Session ${short(a.sessionId)}${a.project ? ` (${tail(a.project, 40)})` : ''} cost ${usd(a.totals.cost)}`,
      explanation: `${int(a.totals.requests)} requests over ${hours.toFixed(1)} h, ${totalCost > 0 ? pct(a.totals.cost / totalCost) : '0%'} of all spend; `
        + `main context grew from ${int(main?.firstContext ?? 0)} to a peak of ${int(main?.peakContext ?? 0)} tokens; cache hit ${pct(a.totals.cacheHitRate)}.`,
      numbers: {
        requests: a.totals.requests, cost: a.totals.cost, cacheHitRate: a.totals.cacheHitRate,
        peakContext: main?.peakContext ?? 0, subagentThreads: a.threads.filter((t) => t.thread !== 'main').length,
      },
      sessions: [a.sessionId],
    });
  }

  // Tools whose results cost most (first send + carried; subagents include their own requests).
  for (const g of tools.byGroup.slice(0, TOP_N)) {
    if (g.totalCost <= 0) continue;
    const sessions = [...new Set(tools.results.filter((x) => x.group === g.group).map((x) => x.sessionId))];
    const sub = g.subagentRequestCost > 0 ? `; subagents' own requests ${usd(g.subagentRequestCost)}` : '';
    findings.push({
      kind: 'tool-cost', meaning: 'spent', dollars: g.totalCost,
      title: `${g.group === 'subagents' ? 'Subagents (Task/Agent)' : g.group} cost ${usd(g.totalCost)}`,
      explanation: `${int(g.calls)} calls returned ${int(g.tokens)} tokens (${g.tokens > 0 ? pct(g.exactTokens / g.tokens) : '0%'} measured exactly): `
        + `${usd(g.firstSendCost)} to send them once, ${usd(g.carriedCost)} to re-send them on later requests${sub}.`,
      numbers: {
        calls: g.calls, results: g.results, tokens: g.tokens, exactTokens: g.exactTokens, firstSendCost: g.firstSendCost,
        carriedCost: g.carriedCost, subagentRequestCost: g.subagentRequestCost,
      },
      sessions,
    });
  }

  // Results carried longest (by carried cost).
  for (const x of [...tools.results].sort((a, b) => b.carriedCost - a.carriedCost).slice(0, TOP_N)) {
    if (x.carriedCost <= 0 || x.firstSentN === null) continue;
    const lastN = lastCarrierRow(threaded, x.sessionId, x.thread, x.firstSentN, x.sentIn);
    findings.push({
      kind: 'carried-result', meaning: 'spent', dollars: x.carriedCost,
      title: `${x.tool}${x.target ? ` ${tail(x.target, 48)}` : ''}: ${int(x.tokens)} tokens re-sent ${x.sentIn - 1} times`,
      explanation: `Returned before request #${x.firstSentN} of session ${short(x.sessionId)} and still paid for in request #${lastN} `
        + `(${x.endReason === 'thread-end' ? 'until the session ended' : `until the ${x.endReason}`}): ${usd(x.carriedCost)} of re-sending `
        + `after ${usd(x.firstSendCost)} to send it once (${x.method} size).`,
      numbers: {
        tool: x.tool, target: x.target ?? '', tokens: x.tokens, method: x.method, firstSentN: x.firstSentN, lastN, sentIn: x.sentIn,
        firstSendCost: x.firstSendCost, carriedCost: x.carriedCost,
      },
      sessions: [x.sessionId],
    });
  }

  // Cache expiries and prefix changes.
  const expiries = audits.flatMap((a) => a.cacheExpiries.map((e) => ({ ...e, sessionId: a.sessionId })));
  const expiryCost = expiries.reduce((s, e) => s + (e.extraCost ?? 0), 0);
  if (expiries.length && expiryCost > 0) {
    findings.push({
      kind: 'cache-expiry', meaning: 'avoidable', dollars: expiryCost,
      title: `${int(expiries.length)} paid cache expiries cost ${usd(expiryCost)} extra`,
      explanation: `After ${int(expiries.length)} idle gaps longer than the cache lifetime (5 min, or 1 h for 1h writes) `
        + `${int(expiries.reduce((s, e) => s + e.rewrittenTokens, 0))} context tokens were written to the cache again instead of read.`,
      numbers: { events: expiries.length, rewrittenTokens: expiries.reduce((s, e) => s + e.rewrittenTokens, 0), extraCost: expiryCost },
      sessions: [...new Set(expiries.map((e) => e.sessionId))],
    });
  }
  const prefix = audits.flatMap((a) => a.prefixChanges.map((e) => ({ ...e, sessionId: a.sessionId })));
  const prefixCost = prefix.reduce((s, e) => s + (e.extraCost ?? 0), 0);
  if (prefix.length && prefixCost > 0) {
    const switches = prefix.filter((e) => e.reason.startsWith('model switched')).length;
    findings.push({
      kind: 'prefix-change', meaning: 'avoidable', dollars: prefixCost,
      title: `${int(prefix.length)} cache writes that should have been reads cost ${usd(prefixCost)} extra`,
      explanation: `Within the cache lifetime the prompt prefix changed (${int(switches)} by a model switch, ${int(prefix.length - switches)} by tools, `
        + 'system prompt or history edits), so a context the previous request had cached was written again.',
      numbers: { events: prefix.length, modelSwitches: switches, rewrittenTokens: prefix.reduce((s, e) => s + e.rewrittenTokens, 0), extraCost: prefixCost },
      sessions: [...new Set(prefix.map((e) => e.sessionId))],
    });
  }

  // Low cache hit rate: the most caching could still have saved (every written or uncached token read instead).
  const low: { sessionId: string; rate: number; excess: number }[] = [];
  for (const [i, a] of audits.entries()) {
    if (a.totals.cost < LOW_HIT_MIN_COST || a.totals.cacheHitRate >= LOW_HIT_RATE) continue;
    let excess = 0;
    for (const r of threaded[i].requests) {
      if (r.promptCost === null) continue;
      const asReads = prices.price(r.req.model, r.req.ts, { ...emptyUsage(), cacheRead: r.prompt, speed: r.req.usage.speed,
        inferenceGeo: r.req.usage.inferenceGeo, serviceTier: r.req.usage.serviceTier }).cost ?? r.promptCost;
      excess += Math.max(0, r.promptCost - asReads);
    }
    low.push({ sessionId: a.sessionId, rate: a.totals.cacheHitRate, excess });
  }
  const lowCost = low.reduce((s, x) => s + x.excess, 0);
  if (low.length && lowCost > 0) {
    low.sort((a, b) => b.excess - a.excess);
    findings.push({
      kind: 'low-cache-hit', meaning: 'avoidable', dollars: lowCost,
      title: `${int(low.length)} session${low.length > 1 ? 's' : ''} with a cache hit rate under ${pct(LOW_HIT_RATE)}: up to ${usd(lowCost)}`,
      explanation: `${low.slice(0, TOP_N).map((x) => `${short(x.sessionId)} ${pct(x.rate)}`).join(', ')}; the amount is what their uncached and `
        + 'written prompt tokens cost above the cache-read price: an upper bound (first writes are unavoidable).',
      numbers: { sessions: low.length, upperBound: lowCost },
      sessions: low.map((x) => x.sessionId),
    });
  }

  // Files read more than once in a session.
  const repeats = tools.repeatedReads;
  const repeatCost = repeats.reduce((s, x) => s + x.repeatCost, 0);
  if (repeats.length && repeatCost > 0) {
    findings.push({
      kind: 'repeated-reads', meaning: 'avoidable', dollars: repeatCost,
      title: `${int(repeats.length)} file${repeats.length > 1 ? 's' : ''} read more than once in a session: ${usd(repeatCost)} for the re-reads`,
      explanation: `${repeats.slice(0, TOP_N).map((x) => `${tail(x.file.split('/').pop() ?? x.file, 40)} ×${x.reads}`).join(', ')}; `
        + 'each re-read is sent and carried again while the first copy is still in the context.',
      numbers: { files: repeats.length, reads: repeats.reduce((s, x) => s + x.reads, 0), repeatCost },
      sessions: [...new Set(repeats.map((x) => x.sessionId))],
    });
  }

  // Expensive model for small turns.
  let smallN = 0;
  let smallBefore = 0;
  let smallAfter = 0;
  const expensiveN = { n: 0 };
  const targets = new Set<string>();
  const smallSessions = new Set<string>();
  for (const m of models) {
    for (const r of m.requests) {
      if (r.cost === null || !isExpensiveModel(r.req.model, prices)) continue;
      expensiveN.n++;
      if (r.req.usage.output > SMALL_TURN_OUTPUT || r.prompt > SMALL_TURN_PROMPT) continue;
      const sibling = cheaperSibling(r.req.model!, prices);
      const after = sibling ? prices.price(sibling, r.req.ts, r.req.usage).cost : null;
      if (!sibling || after === null) continue;
      smallN++;
      smallBefore += r.cost;
      smallAfter += after;
      targets.add(sibling);
      smallSessions.add(m.sessionId);
    }
  }
  if (smallN > 0 && smallBefore - smallAfter > 0) {
    findings.push({
      kind: 'expensive-model', meaning: 'saving', dollars: smallBefore - smallAfter,
      title: `${int(smallN)} small turns on an Opus-class model: ${usd(smallBefore - smallAfter)} on ${[...targets].join(', ')}`,
      explanation: `${int(smallN)} of ${int(expensiveN.n)} Opus/Fable/Mythos requests had at most ${SMALL_TURN_OUTPUT} output and ${int(SMALL_TURN_PROMPT)} context tokens; `
        + `they cost ${usd(smallBefore)}, the same tokens on the same generation's Sonnet ${usd(smallAfter)}.`,
      numbers: { requests: smallN, expensiveRequests: expensiveN.n, before: smallBefore, after: smallAfter, targets: [...targets].join(',') },
      sessions: [...smallSessions],
    });
  }

  // Long sessions that should have been cleared.
  const clearEvery = opts.clearEvery ?? CLEAR_EVERY;
  const long = threaded.filter((m) => m.threads.some((t) => t.requests.length > clearEvery));
  if (long.length) {
    const w = whatIf(long, { clearEvery }, prices);
    const gains = w.sessions.filter((s) => s.saving > 0);
    if (w.saving > 0) {
      findings.push({
        kind: 'long-sessions', meaning: 'saving', dollars: w.saving,
        title: `${int(gains.length)} long session${gains.length > 1 ? 's' : ''}: clearing every ${clearEvery} requests would save ${usd(w.saving)}`,
        explanation: `${gains.slice(0, TOP_N).map((s) => `${short(s.sessionId)} ${usd(s.before)} -> ${usd(s.after)}`).join(', ')} `
          + `(whatif --clear-every ${clearEvery}: context restarted at the first-request size; redone work not counted, an upper bound).`,
        numbers: { sessions: gains.length, before: w.before, after: w.after, saving: w.saving, clearEvery },
        sessions: gains.map((s) => s.sessionId),
      });
    }
  }

  // Retries (proxy records only).
  const retries = findRetries(models);
  if (proxyRequests === 0) {
    notes.push('No proxy records in this range: retries (a request re-sent after an error) are only visible for requests that went '
      + 'through the tokentally proxy; transcripts do not record them.');
  } else if (retries.length) {
    const cost = retries.reduce((s, x) => s + (x.failed.cost ?? 0), 0);
    const bytes = retries.reduce((s, x) => s + (x.failed.proxy?.requestBytes ?? 0), 0);
    const statuses = [...new Set(retries.map((x) => x.failed.proxy!.status))].join(', ');
    findings.push({
      kind: 'retries', meaning: 'spent', dollars: cost,
      title: `${int(retries.length)} retries after errors (${statuses})`,
      explanation: `${int(retries.length)} failed attempts were re-sent with the same request size within ${RETRY_WINDOW_MS / 1000} s; `
        + `billed on the failed attempts: ${usd(cost)} (errors before generation are not billed); ${int(bytes)} request bytes re-sent; `
        + `${(retries.reduce((s, x) => s + (x.failed.proxy?.latencyMs ?? 0), 0) / 1000).toFixed(0)} s lost.`,
      numbers: { retries: retries.length, cost, requestBytes: bytes },
      sessions: [...new Set(retries.map((x) => x.sessionId))],
    });
  }
  const synthetic = models.reduce((s, m) => s + m.syntheticCount, 0);
  if (synthetic > 0) notes.push(`${synthetic} API error line${synthetic > 1 ? 's' : ''} (<synthetic>, e.g. rate limits) in the transcripts; they carry no usage.`);
  if (scope.unpricedRequests > 0) {
    notes.push(`${scope.unpricedRequests} requests use models without a price: their cost is unknown and left out of every amount.`);
  }
  findings.sort((a, b) => b.dollars - a.dollars);
  return { scope, findings, notes };
}

export interface Retry {
  sessionId: string;
  failed: StoredRequest;
  success: StoredRequest;
}

/** A failed proxy attempt followed within RETRY_WINDOW_MS by a success of the same session and request size. */
export function findRetries(models: SessionModel[]): Retry[] {
  const out: Retry[] = [];
  for (const m of models) {
    if (m.failed.length === 0) continue;
    const successes = m.requests.map((r) => r.req).filter((r) => r.proxy && !isFailedAttempt(r));
    const all = [...m.failed, ...successes].sort((a, b) => a.ts - b.ts);
    for (const f of m.failed) {
      const bytes = f.proxy?.requestBytes ?? 0;
      const next = all.find((r) => r.ts > f.ts && r.ts - f.ts <= RETRY_WINDOW_MS && r !== f && r.proxy
        && bytes > 0 && r.proxy.requestBytes === bytes);
      if (next && !isFailedAttempt(next)) out.push({ sessionId: m.sessionId, failed: f, success: next });
      else if (next) {
        // A chain of failures: the last one of the chain is followed by the success.
        const success = all.find((r) => r.ts > next.ts && r.ts - f.ts <= RETRY_WINDOW_MS && !isFailedAttempt(r)
          && r.proxy?.requestBytes === bytes);
        if (success) out.push({ sessionId: m.sessionId, failed: f, success });
      }
    }
  }
  return out;
}

function lastCarrierRow(models: SessionModel[], sessionId: string, thread: string, firstN: number, sentIn: number): number {
  const m = models.find((x) => x.sessionId === sessionId);
  const t = m?.threads.find((x) => x.id === thread);
  const first = t?.requests.findIndex((r) => r.order + 1 === firstN) ?? -1;
  const last = t && first >= 0 ? t.requests[first + sentIn - 1] : undefined;
  return last ? last.order + 1 : firstN;
}

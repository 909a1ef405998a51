/**
 * What-if: re-price the recorded token flow under another policy. Pure; formulas in docs/insights.md.
 *
 * - model M:         every request's exact tokens at M's price (same date, speed, region, tier).
 * - route RULES:     per request, the model the first matching rule names (route-rules.ts), same tokens.
 * - compact-after N: tool results first sent N or more requests earlier in the same thread leave every later
 *                    prompt (until the real reset); each request's smaller prompt keeps its own input /
 *                    cache-write / cache-read mix.
 * - clear-every N:   every N requests of a thread the context restarts at the thread's first-request size and
 *                    grows again by the recorded growth; same mix rule.
 * - no-cache:        cache reads and writes priced as plain input.
 * Policies combine: prompt sizes first (clear, then compaction), then the model, then the cache rule.
 */
import type { PriceBook } from '../core/pricing/pricebook.js';
import type { Usage } from '../core/types.js';
import { routeModel, type RouteRule } from './route-rules.js';
import { scalePrompt, type ModelRequest, type ModelThread, type SessionModel } from './session-model.js';

export interface WhatIfPolicy {
  model?: string;
  route?: RouteRule[];
  compactAfter?: number;
  clearEvery?: number;
  noCache?: boolean;
}

export interface WhatIfSession {
  sessionId: string;
  project: string | null;
  requests: number;
  before: number;
  after: number;
  saving: number;
}

export interface WhatIfResult {
  policy: string[];
  assumptions: string[];
  /** Requests considered, and those left out because either price is unknown. */
  requests: number;
  unpricedRequests: number;
  unpricedModels: string[];
  before: number;
  after: number;
  saving: number;
  /** saving / before; null when before is 0. */
  savingPct: number | null;
  tokens: { promptBefore: number; promptAfter: number; output: number };
  /** For model and route policies: how many requests moved from which model to which. */
  moves: { from: string; to: string; requests: number; before: number; after: number }[];
  sessions: WhatIfSession[];
}

export function describePolicy(p: WhatIfPolicy): { policy: string[]; assumptions: string[] } {
  const policy: string[] = [];
  const assumptions: string[] = [
    'The recorded token counts are re-priced; outputs, tool calls and the number of requests stay as they were '
      + '(a different policy would have changed the conversation itself).',
  ];
  if (p.clearEvery !== undefined) {
    policy.push(`clear the context every ${p.clearEvery} requests of each thread`);
    assumptions.push(`Clear every ${p.clearEvery}: from request ${p.clearEvery + 1} of a thread on, each prompt is the thread's `
      + 'first-request size plus the growth recorded since the last clear; it keeps its own input/cache-write/cache-read mix. '
      + 'Work redone after a clear (re-reading files, re-explaining the task) is not counted, so the saving is an upper bound.');
  }
  if (p.compactAfter !== undefined) {
    policy.push(`drop tool results older than ${p.compactAfter} requests from the re-sent context`);
    assumptions.push(`Compact after ${p.compactAfter}: a tool result first sent ${p.compactAfter} or more requests earlier in the same thread `
      + 'is removed from every later prompt until the recorded compaction or thread end; result sizes are exact where the usage '
      + 'showed them, else characters / 4. Each smaller prompt keeps its own cache mix; the cache re-writes that removing '
      + 'content would cause are not counted, so the saving is an upper bound.');
  }
  if (p.model !== undefined) {
    policy.push(`every request on ${p.model}`);
    assumptions.push(`Model ${p.model}: the same tokens at its price on the same date, speed, region and tier.`);
  }
  if (p.route !== undefined) {
    policy.push(`route: ${p.route.map((r) => r.text).join(', ')}`);
    assumptions.push('Route: the first rule whose conditions hold for the recorded tokens picks the model; unmatched requests keep theirs. '
      + 'The cache mix is kept as observed, although switching model mid-session starts a new cache in reality.');
  }
  if (p.noCache) {
    policy.push('no prompt caching');
    assumptions.push('No cache: cache reads and cache writes are priced as plain input tokens; the cache as observed is the "before".');
  }
  return { policy, assumptions };
}

function noCache(u: Usage): Usage {
  return { ...u, input: u.input + u.cacheWrite5m + u.cacheWrite1h + u.cacheRead, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0 };
}

/** The prompt size request `j` of thread `t` would have had under the clear/compact policies. */
export function policyPrompt(model: SessionModel, t: ModelThread, j: number, p: WhatIfPolicy,
  resultsByThread?: Map<string, SessionModel['results']>): number {
  const r = t.requests[j];
  let prompt = r.prompt;
  let blockStart = 0;
  if (p.clearEvery !== undefined && p.clearEvery > 0) {
    blockStart = Math.floor(j / p.clearEvery) * p.clearEvery;
    if (blockStart > 0) {
      const base = t.requests[0].prompt;
      prompt = Math.min(prompt, base + Math.max(0, r.prompt - t.requests[blockStart].prompt));
    }
  }
  if (p.compactAfter !== undefined && p.compactAfter >= 0) {
    const results = resultsByThread?.get(t.id) ?? model.results.filter((x) => x.thread === t.id);
    let dropped = 0;
    for (const x of results) {
      if (x.firstSent === null || x.firstSent < blockStart) continue;
      if (x.firstSent + p.compactAfter <= j && j < x.end) dropped += x.tokens;
    }
    prompt = Math.max(0, prompt - dropped);
  }
  return prompt;
}

export function whatIf(models: SessionModel[], policy: WhatIfPolicy, prices: PriceBook): WhatIfResult {
  const { policy: text, assumptions } = describePolicy(policy);
  const out: WhatIfResult = {
    policy: text, assumptions, requests: 0, unpricedRequests: 0, unpricedModels: [], before: 0, after: 0, saving: 0,
    savingPct: null, tokens: { promptBefore: 0, promptAfter: 0, output: 0 }, moves: [], sessions: [],
  };
  const unpriced = new Set<string>();
  const moves = new Map<string, WhatIfResult['moves'][number]>();
  const reshapes = policy.clearEvery !== undefined || policy.compactAfter !== undefined;

  for (const model of models) {
    const s: WhatIfSession = { sessionId: model.sessionId, project: model.project, requests: 0, before: 0, after: 0, saving: 0 };
    const byThread = new Map<string, SessionModel['results']>();
    for (const x of model.results) {
      let list = byThread.get(x.thread);
      if (!list) byThread.set(x.thread, (list = []));
      list.push(x);
    }
    const prompts = new Map<ModelRequest, number>();
    if (reshapes && !model.unthreaded) {
      for (const t of model.threads) t.requests.forEach((r, j) => prompts.set(r, policyPrompt(model, t, j, policy, byThread)));
    }
    for (const r of model.requests) {
      out.requests++;
      s.requests++;
      const newPrompt = prompts.get(r) ?? r.prompt;
      let usage = newPrompt < r.prompt ? scalePrompt(r.req.usage, newPrompt) : { ...r.req.usage };
      const newModel = policy.model ?? (policy.route ? routeModel(policy.route, r.req.model, r.req.usage) : null) ?? r.req.model;
      if (policy.noCache) usage = noCache(usage);
      const after = prices.price(newModel, r.req.ts, usage).cost;
      if (r.cost === null || after === null) {
        out.unpricedRequests++;
        unpriced.add(r.cost === null ? r.req.model ?? '(unknown model)' : newModel ?? '(unknown model)');
        continue;
      }
      s.before += r.cost;
      s.after += after;
      out.tokens.promptBefore += r.prompt;
      out.tokens.promptAfter += newPrompt;
      out.tokens.output += r.req.usage.output;
      if (policy.model !== undefined || policy.route !== undefined) {
        const from = r.req.model ?? '(unknown model)';
        const to = newModel ?? '(unknown model)';
        const k = `${from}\u0000${to}`;
        let m = moves.get(k);
        if (!m) moves.set(k, (m = { from, to, requests: 0, before: 0, after: 0 }));
        m.requests++;
        m.before += r.cost;
        m.after += after;
      }
    }
    s.saving = s.before - s.after;
    out.before += s.before;
    out.after += s.after;
    if (s.requests > 0) out.sessions.push(s);
  }
  out.saving = out.before - out.after;
  out.savingPct = out.before > 0 ? out.saving / out.before : null;
  out.unpricedModels = [...unpriced].sort();
  out.moves = [...moves.values()].sort((a, b) => b.before - a.before);
  out.sessions.sort((a, b) => b.saving - a.saving || b.before - a.before);
  return out;
}

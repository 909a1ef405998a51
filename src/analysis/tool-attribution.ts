/**
 * Tool attribution: what each tool result cost when it was first sent, and what re-sending it cost on every
 * later request of its thread until a compaction (or the end of the thread): its carried cost.
 * "A log file read in turn 5 is still being paid for in turn 80."
 *
 *   firstSendCost(x) = tokens(x) × promptRate(first request that sent x)
 *   carriedCost(x)   = Σ over the later requests j of the same thread, until the next reset, of tokens(x) × promptRate(j)
 *   promptRate(j)    = (cost of j's input + cache writes + cache reads) / prompt tokens of j
 *
 * promptRate averages the request's own input / cache-write / cache-read mix: we do not know which part of the
 * prompt a result sat in (usually the cached prefix once it is a turn old), so each context token is charged
 * the request's average context price. Pure; see docs/insights.md.
 */
import { mcpServerOf } from '../core/session-facts.js';
import { MAIN_THREAD, type CarryEnd, type ModelThread, type SessionModel, type TokenMethod } from './session-model.js';

export const SUBAGENT_TOOLS = new Set(['Task', 'Agent']);
export const READ_TOOLS = new Set(['Read', 'NotebookRead']);

export interface ResultCost {
  sessionId: string;
  toolUseId: string;
  tool: string;
  group: string;
  target: string | null;
  thread: string;
  ts: number;
  chars: number;
  tokens: number;
  method: TokenMethod;
  isError: boolean;
  /** Session row number (1-based) of the request that first sent it; null when never sent. */
  firstSentN: number | null;
  /** Requests whose context held the result (the first send included). */
  sentIn: number;
  endReason: CarryEnd;
  firstSendCost: number;
  carriedCost: number;
  totalCost: number;
  /** False when some request carrying it has no price (its share is left out, never counted as $0). */
  costComplete: boolean;
}

export interface CostSums {
  calls: number;
  results: number;
  chars: number;
  tokens: number;
  exactTokens: number;
  estimatedTokens: number;
  firstSendCost: number;
  carriedCost: number;
  /** firstSendCost + carriedCost. */
  resultCost: number;
  costComplete: boolean;
}

export interface ToolCost extends CostSums {
  tool: string;
  group: string;
}

export interface GroupCost extends CostSums {
  group: string;
  tools: string[];
  /** For the `subagents` group: what the subagents' own requests cost. */
  subagentRequestCost: number;
  /** resultCost + subagentRequestCost. */
  totalCost: number;
}

export interface RepeatedRead {
  sessionId: string;
  file: string;
  reads: number;
  tokens: number;
  /** Sent + carried cost of every read of the file. */
  totalCost: number;
  /** The same for the reads after the first. */
  repeatCost: number;
}

export interface ToolAttribution {
  sessions: number;
  results: ResultCost[];
  byTool: ToolCost[];
  byGroup: GroupCost[];
  largest: ResultCost[];
  repeatedReads: RepeatedRead[];
  totals: CostSums & { subagentRequestCost: number; totalCost: number };
}

/** `mcp:<server>` for MCP tools, `subagents` for Task/Agent, else the tool name. */
export function toolGroup(name: string): string {
  const server = mcpServerOf(name);
  if (server) return `mcp:${server}`;
  if (SUBAGENT_TOOLS.has(name)) return 'subagents';
  return name;
}

function emptySums(): CostSums {
  return {
    calls: 0, results: 0, chars: 0, tokens: 0, exactTokens: 0, estimatedTokens: 0,
    firstSendCost: 0, carriedCost: 0, resultCost: 0, costComplete: true,
  };
}

function addResult(s: CostSums, x: ResultCost): void {
  s.results++;
  s.chars += x.chars;
  s.tokens += x.tokens;
  if (x.method === 'exact') s.exactTokens += x.tokens;
  else s.estimatedTokens += x.tokens;
  s.firstSendCost += x.firstSendCost;
  s.carriedCost += x.carriedCost;
  s.resultCost += x.totalCost;
  s.costComplete &&= x.costComplete;
}

/** Per-result costs of one session, in the order of its results. */
export function resultCosts(model: SessionModel): ResultCost[] {
  const prefix = new Map<string, { rate: number[]; unknown: number[] }>();
  const sums = (t: ModelThread) => {
    let p = prefix.get(t.id);
    if (!p) {
      // prefix sums of the per-request context price, and of the count of unpriced requests
      const rate = [0];
      const unknown = [0];
      for (const r of t.requests) {
        rate.push(rate[rate.length - 1] + (r.promptRate ?? 0));
        unknown.push(unknown[unknown.length - 1] + (r.promptRate === null ? 1 : 0));
      }
      prefix.set(t.id, (p = { rate, unknown }));
    }
    return p;
  };
  const threads = new Map(model.threads.map((t) => [t.id, t]));
  return model.results.map((x) => {
    const t = threads.get(x.thread);
    let firstSendCost = 0;
    let carriedCost = 0;
    let costComplete = true;
    let firstSentN: number | null = null;
    let sentIn = 0;
    if (t && x.firstSent !== null) {
      const s = x.firstSent;
      const p = sums(t);
      firstSendCost = x.tokens * (t.requests[s].promptRate ?? 0);
      carriedCost = x.tokens * (p.rate[x.end] - p.rate[s + 1]);
      costComplete = p.unknown[x.end] - p.unknown[s] === 0;
      firstSentN = t.requests[s].order + 1;
      sentIn = x.end - s;
    }
    return {
      sessionId: model.sessionId, toolUseId: x.result.toolUseId, tool: x.name, group: toolGroup(x.name), target: x.target,
      thread: x.thread, ts: x.result.ts, chars: x.chars, tokens: x.tokens, method: x.method, isError: x.result.isError,
      firstSentN, sentIn, endReason: x.endReason, firstSendCost, carriedCost, totalCost: firstSendCost + carriedCost, costComplete,
    };
  });
}

export function attributeTools(models: SessionModel[], opts: { largest?: number } = {}): ToolAttribution {
  const results: ResultCost[] = [];
  const byTool = new Map<string, ToolCost>();
  const byGroup = new Map<string, GroupCost>();
  const tool = (name: string) => {
    let x = byTool.get(name);
    if (!x) byTool.set(name, (x = { tool: name, group: toolGroup(name), ...emptySums() }));
    return x;
  };
  const group = (name: string) => {
    let x = byGroup.get(name);
    if (!x) byGroup.set(name, (x = { group: name, tools: [], ...emptySums(), subagentRequestCost: 0, totalCost: 0 }));
    return x;
  };
  const repeated: RepeatedRead[] = [];
  let subagentRequestCost = 0;
  let subagentComplete = true;

  for (const model of models) {
    const costs = resultCosts(model);
    results.push(...costs);
    for (const c of model.calls) {
      tool(c.name).calls++;
      group(toolGroup(c.name)).calls++;
    }
    for (const x of costs) {
      addResult(tool(x.tool), x);
      addResult(group(x.group), x);
    }
    for (const t of model.threads) {
      if (t.id === MAIN_THREAD) continue;
      for (const r of t.requests) {
        subagentRequestCost += r.cost ?? 0;
        if (r.cost === null) subagentComplete = false;
      }
    }
    // Files read more than once in the session.
    const reads = new Map<string, ResultCost[]>();
    for (const x of costs) {
      if (!READ_TOOLS.has(x.tool) || !x.target || x.isError) continue;
      let list = reads.get(x.target);
      if (!list) reads.set(x.target, (list = []));
      list.push(x);
    }
    for (const [file, list] of reads) {
      if (list.length < 2) continue;
      list.sort((a, b) => a.ts - b.ts);
      repeated.push({
        sessionId: model.sessionId, file, reads: list.length, tokens: list.reduce((s, x) => s + x.tokens, 0),
        totalCost: list.reduce((s, x) => s + x.totalCost, 0),
        repeatCost: list.slice(1).reduce((s, x) => s + x.totalCost, 0),
      });
    }
  }
  if (subagentRequestCost > 0 || !subagentComplete) {
    const g = group('subagents');
    g.subagentRequestCost = subagentRequestCost;
    g.costComplete &&= subagentComplete;
  }
  for (const t of byTool.values()) {
    const g = group(t.group);
    if (!g.tools.includes(t.tool)) g.tools.push(t.tool);
  }
  for (const g of byGroup.values()) {
    g.tools.sort();
    g.totalCost = g.resultCost + g.subagentRequestCost;
  }
  const totals = { ...emptySums(), subagentRequestCost, totalCost: 0 };
  for (const x of results) addResult(totals, x);
  for (const t of byTool.values()) totals.calls += t.calls;
  totals.costComplete &&= subagentComplete;
  totals.totalCost = totals.resultCost + subagentRequestCost;

  const largest = [...results].sort((a, b) => b.tokens - a.tokens || b.totalCost - a.totalCost).slice(0, opts.largest ?? 10);
  return {
    sessions: models.length,
    results,
    byTool: [...byTool.values()].sort((a, b) => b.resultCost - a.resultCost || b.tokens - a.tokens || a.tool.localeCompare(b.tool)),
    byGroup: [...byGroup.values()].sort((a, b) => b.totalCost - a.totalCost || b.tokens - a.tokens || a.group.localeCompare(b.group)),
    largest,
    repeatedReads: repeated.sort((a, b) => b.repeatCost - a.repeatCost || b.reads - a.reads),
    totals,
  };
}

import type { ProxyDetails, RequestRecord } from './types.js';
import { totalTokens } from './types.js';

/**
 * Merge two copies of one request (same key). Claude Code writes a response as one line per content
 * block, and streamed copies only grow, so the larger usage is the final one; tool names are unioned
 * because each line carries one block; attribution fills gaps, and a main-thread copy beats a replay.
 */
export function mergeRecords(a: RequestRecord, b: RequestRecord): RequestRecord {
  const bBigger = totalTokens(b.usage) > totalTokens(a.usage);
  const usageFrom = bBigger ? b : a;
  const tools = [...a.tools];
  const toolIds = [...(a.toolIds ?? [])];
  b.tools.forEach((name, i) => {
    const id = b.toolIds?.[i];
    const seen = id !== undefined ? toolIds.includes(id) : countOf(tools, name) >= countOf(b.tools, name);
    if (seen) return;
    tools.push(name);
    if (id !== undefined) toolIds.push(id);
  });
  const proxy = mergeProxy(bBigger ? b.proxy : a.proxy, bBigger ? a.proxy : b.proxy);
  return {
    key: a.key,
    requestId: a.requestId ?? b.requestId,
    messageId: a.messageId ?? b.messageId,
    ts: a.ts,
    sessionId: a.sessionId ?? b.sessionId,
    project: a.project ?? b.project,
    // A main-thread copy makes the request the main thread's: it has no agent.
    agentId: a.isSubagent && b.isSubagent ? a.agentId ?? b.agentId : null,
    isSubagent: a.isSubagent && b.isSubagent,
    model: a.model ?? b.model,
    usage: usageFrom.usage,
    stopReason: (bBigger ? b.stopReason ?? a.stopReason : a.stopReason ?? b.stopReason),
    tools,
    toolIds,
    clientVersion: a.clientVersion ?? b.clientVersion,
    sources: a.sources | b.sources,
    ...(proxy ? { proxy } : {}),
  };
}

/** The proxy view of the copy whose usage won, gaps filled from the other (as the store's COALESCE does). */
function mergeProxy(first: ProxyDetails | undefined, second: ProxyDetails | undefined): ProxyDetails | undefined {
  if (!first || !second) return first ?? second;
  const out = { ...first } as Record<string, unknown>;
  for (const [k, v] of Object.entries(second)) if (out[k] === null || out[k] === undefined) out[k] = v;
  return out as unknown as ProxyDetails;
}

function countOf(list: string[], t: string): number {
  let n = 0;
  for (const x of list) if (x === t) n++;
  return n;
}

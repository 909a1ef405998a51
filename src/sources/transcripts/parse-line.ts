import type { RequestRecord, Usage } from '../../core/types.js';
import { SOURCE_TRANSCRIPT, requestKey } from '../../core/types.js';
import { IMAGE_CHARS, type SessionFacts } from '../../core/session-facts.js';

/** What the importer knows about a file before reading it. */
export interface FileContext {
  /** Path relative to its projects root, with `/` separators. */
  relPath: string;
  /** First folder under `projects/`: Claude Code's encoded cwd, used when a line has no `cwd`. */
  projectFolder: string;
  /** Session id implied by the path (`<session>.jsonl` or `<session>/subagents/...`). */
  pathSession: string | null;
  /** Agent id implied by an `agent-<id>.jsonl` name. */
  pathAgent: string | null;
}

export type SkipReason = 'invalid_json' | 'not_an_object' | 'bad_timestamp' | 'invalid_usage' | 'line_too_long';

export type LineResult = { record: RequestRecord } | { skip: SkipReason } | null;

/** Derive the session and agent implied by a transcript path like `proj/<sid>/subagents/agent-x.jsonl`. */
export function fileContext(relPath: string): FileContext {
  const parts = relPath.split('/');
  const projectFolder = parts.length > 1 ? parts[0] : '';
  const base = parts[parts.length - 1].replace(/\.jsonl$/, '');
  const agentMatch = /^agent-(.+)$/.exec(base);
  const subIdx = parts.indexOf('subagents');
  let pathSession: string | null = null;
  if (subIdx >= 1 && subIdx - 1 >= 1) pathSession = parts[subIdx - 1];
  else if (!agentMatch) pathSession = base;
  return { relPath, projectFolder, pathSession, pathAgent: agentMatch ? agentMatch[1] : null };
}

/**
 * Turn one parsed transcript line into a request record, or null when the line is not an API response
 * (user turns, snapshots, titles...). Lines are untrusted: every field is type-checked.
 * `lineNo` identifies a line that has neither message id nor request id.
 */
export function parseTranscriptLine(value: unknown, ctx: FileContext, lineNo: number): LineResult {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { skip: 'not_an_object' };
  let line = value as Record<string, unknown>;
  // Agent progress lines (Claude Code 2.1.17-2.1.81) nest a subagent's assistant line under data.message.
  if (line.type === 'progress' && isObj(line.data) && isObj(line.data.message) && isObj(line.data.message.message)) {
    line = { ...line.data.message, sessionId: line.sessionId, cwd: line.cwd, isSidechain: true, agentId: line.data.agentId ?? line.agentId };
  }
  const message = line.message;
  if (!isObj(message) || !isObj(message.usage)) return null;
  if (line.type !== undefined && line.type !== 'assistant') return null;

  const ts = typeof line.timestamp === 'string' ? Date.parse(line.timestamp) : NaN;
  if (!Number.isFinite(ts)) return { skip: 'bad_timestamp' };

  const usage = readUsage(message.usage);
  if (!usage) return { skip: 'invalid_usage' };

  const messageId = str(message.id);
  const requestId = str(line.requestId);
  const tools: string[] = [];
  const toolIds: string[] = [];
  if (Array.isArray(message.content)) {
    for (const block of message.content) {
      if (isObj(block) && block.type === 'tool_use' && typeof block.name === 'string') {
        tools.push(block.name.slice(0, 200));
        toolIds.push(typeof block.id === 'string' ? block.id : `${lineNo}:${tools.length}`);
      }
    }
  }
  const agentId = str(line.agentId) ?? ctx.pathAgent;
  const isSubagent = line.isSidechain === true || str(line.agentId) !== null || ctx.pathAgent !== null;
  return {
    record: {
      key: requestKey(messageId, requestId, `${str(line.uuid) ?? `${ctx.relPath}:${lineNo}`}`),
      requestId,
      messageId,
      ts,
      sessionId: str(line.sessionId) ?? ctx.pathSession,
      project: str(line.cwd) ?? (ctx.projectFolder || null),
      agentId: isSubagent ? agentId : null,
      isSubagent,
      model: str(message.model),
      usage,
      stopReason: str(message.stop_reason),
      tools,
      toolIds,
      clientVersion: str(line.version),
      sources: SOURCE_TRANSCRIPT,
    },
  };
}

function readUsage(u: Record<string, unknown>): Usage | null {
  const input = count(u.input_tokens);
  const output = count(u.output_tokens);
  const cacheCreation = count(u.cache_creation_input_tokens);
  const cacheRead = count(u.cache_read_input_tokens);
  if (input === undefined && output === undefined) return null;
  if (input === null || output === null || cacheCreation === null || cacheRead === null) return null;
  let cacheWrite5m = cacheCreation ?? 0;
  let cacheWrite1h = 0;
  // The 5m/1h split (Claude Code >= 1.0.98) is what is billed; older lines have only the total, priced as 5m.
  if (isObj(u.cache_creation)) {
    const e5 = count(u.cache_creation.ephemeral_5m_input_tokens);
    const e1 = count(u.cache_creation.ephemeral_1h_input_tokens);
    if (e5 === null || e1 === null) return null;
    if (e5 !== undefined || e1 !== undefined) {
      cacheWrite5m = e5 ?? 0;
      cacheWrite1h = e1 ?? 0;
    }
  }
  const stu = isObj(u.server_tool_use) ? u.server_tool_use : {};
  return {
    input: input ?? 0,
    output: output ?? 0,
    cacheWrite5m,
    cacheWrite1h,
    cacheRead: cacheRead ?? 0,
    webSearches: count(stu.web_search_requests) ?? 0,
    webFetches: count(stu.web_fetch_requests) ?? 0,
    speed: str(u.speed),
    inferenceGeo: str(u.inference_geo),
    serviceTier: str(u.service_tier),
  };
}

/** undefined when absent, null when present but not a non-negative integer (the line is then invalid). */
function count(v: unknown): number | undefined | null {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > Number.MAX_SAFE_INTEGER) return null;
  return Math.round(v);
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v.length > 0 ? v.slice(0, 500) : null;
}

function isObj(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const FILE_TOOLS = new Set(['Read', 'Edit', 'Write', 'MultiEdit', 'NotebookEdit', 'NotebookRead']);

/**
 * Tool calls (from assistant lines), tool results (from user lines) and compaction points (system lines)
 * in one parsed transcript line. `requestKey` is the key of the record parsed from the same line, if any.
 */
export function extractFacts(value: unknown, ctx: FileContext, requestKey: string | null, into: SessionFacts): void {
  if (!isObj(value)) return;
  const ts = typeof value.timestamp === 'string' ? Date.parse(value.timestamp) : NaN;
  if (!Number.isFinite(ts)) return;
  const sessionId = str(value.sessionId) ?? ctx.pathSession;
  const isSub = value.isSidechain === true || str(value.agentId) !== null || ctx.pathAgent !== null;
  const agentId = isSub ? str(value.agentId) ?? ctx.pathAgent : null;
  const message = value.message;

  if (value.type === 'assistant' && requestKey && isObj(message) && Array.isArray(message.content)) {
    for (const block of message.content) {
      if (!isObj(block) || block.type !== 'tool_use' || typeof block.id !== 'string' || typeof block.name !== 'string') continue;
      const input = isObj(block.input) ? block.input : {};
      let target: string | null = null;
      if (FILE_TOOLS.has(block.name)) target = str(input.file_path) ?? str(input.notebook_path) ?? str(input.path);
      else if (block.name === 'Task' || block.name === 'Agent') target = str(input.subagent_type);
      else if (block.name === 'Grep' || block.name === 'Glob') target = str(input.path);
      into.toolCalls.push({
        toolUseId: block.id.slice(0, 200), requestKey, sessionId, agentId, ts, name: block.name.slice(0, 200),
        inputChars: jsonLength(block.input), target,
      });
    }
  } else if (value.type === 'user' && isObj(message) && Array.isArray(message.content)) {
    for (const block of message.content) {
      if (!isObj(block) || block.type !== 'tool_result' || typeof block.tool_use_id !== 'string') continue;
      into.toolResults.push({
        toolUseId: block.tool_use_id.slice(0, 200), sessionId, agentId, ts,
        resultChars: contentChars(block.content), isError: block.is_error === true,
      });
    }
  } else if (value.type === 'system' && value.subtype === 'compact_boundary' && sessionId) {
    const meta = isObj(value.compactMetadata) ? value.compactMetadata : {};
    into.compactions.push({
      sessionId, agentId, ts, trigger: str(meta.trigger),
      preTokens: typeof meta.preTokens === 'number' && Number.isFinite(meta.preTokens) ? Math.round(meta.preTokens) : null,
    });
  }
}

function contentChars(content: unknown): number {
  if (typeof content === 'string') return content.length;
  if (!Array.isArray(content)) return 0;
  let n = 0;
  for (const b of content) {
    if (!isObj(b)) continue;
    if (typeof b.text === 'string') n += b.text.length;
    else if (b.type === 'image') n += IMAGE_CHARS;
  }
  return n;
}

function jsonLength(v: unknown): number {
  try {
    return JSON.stringify(v ?? {}).length;
  } catch {
    return 0;
  }
}

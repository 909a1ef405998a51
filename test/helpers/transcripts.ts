import { mkdirSync, writeFileSync, appendFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface AssistantLineSpec {
  sessionId?: string;
  cwd?: string;
  model?: string;
  messageId?: string;
  requestId?: string | null;
  timestamp?: string;
  input?: number;
  output?: number;
  cacheWrite5m?: number;
  cacheWrite1h?: number;
  cacheRead?: number;
  isSidechain?: boolean;
  agentId?: string;
  tools?: { id: string; name: string }[];
  speed?: string;
  inferenceGeo?: string;
  webSearches?: number;
  uuid?: string;
}

let counter = 0;

/** One assistant line in Claude Code 2.1.x shape. */
export function assistantLine(s: AssistantLineSpec = {}): string {
  counter++;
  const content = s.tools?.length
    ? s.tools.map((t) => ({ type: 'tool_use', id: t.id, name: t.name, input: {} }))
    : [{ type: 'text', text: 'ok' }];
  const line: Record<string, unknown> = {
    parentUuid: null,
    isSidechain: s.isSidechain ?? false,
    userType: 'external',
    cwd: s.cwd ?? '/home/dev/app',
    sessionId: s.sessionId ?? 'sess-1',
    version: '2.1.197',
    gitBranch: 'main',
    message: {
      id: s.messageId ?? `msg_test_${counter}`,
      type: 'message',
      role: 'assistant',
      model: s.model ?? 'claude-sonnet-4-6',
      content,
      stop_reason: s.tools?.length ? 'tool_use' : 'end_turn',
      stop_sequence: null,
      usage: {
        input_tokens: s.input ?? 10,
        cache_creation_input_tokens: (s.cacheWrite5m ?? 0) + (s.cacheWrite1h ?? 0),
        cache_read_input_tokens: s.cacheRead ?? 0,
        output_tokens: s.output ?? 20,
        server_tool_use: { web_search_requests: s.webSearches ?? 0, web_fetch_requests: 0 },
        service_tier: 'standard',
        cache_creation: { ephemeral_5m_input_tokens: s.cacheWrite5m ?? 0, ephemeral_1h_input_tokens: s.cacheWrite1h ?? 0 },
        inference_geo: s.inferenceGeo ?? '',
        speed: s.speed ?? 'standard',
      },
    },
    requestId: s.requestId === undefined ? `req_test_${counter}` : s.requestId,
    type: 'assistant',
    uuid: s.uuid ?? `uuid-${counter}`,
    timestamp: s.timestamp ?? '2026-11-20T10:00:00.000Z',
  };
  if (s.agentId) line.agentId = s.agentId;
  return JSON.stringify(line);
}

export function userLine(sessionId = 'sess-1', timestamp = '2026-11-20T09:59:00.000Z'): string {
  counter++;
  return JSON.stringify({
    parentUuid: null, isSidechain: false, userType: 'external', cwd: '/home/dev/app', sessionId, version: '2.1.197',
    type: 'user', message: { role: 'user', content: 'hello' }, uuid: `u-${counter}`, timestamp,
  });
}

/** Write `lines` as a JSONL transcript at `<root>/projects/<rel>` (newline-terminated). */
export function writeTranscript(root: string, rel: string, lines: string[]): string {
  const path = join(root, 'projects', rel);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, lines.map((l) => l + '\n').join(''));
  return path;
}

export function appendTranscript(path: string, lines: string[]): void {
  appendFileSync(path, lines.map((l) => l + '\n').join(''));
}

/** A user line returning a tool result, as Claude Code writes it (content also duplicated in toolUseResult). */
export function toolResultLine(toolUseId: string, content: string | unknown[], opts: { sessionId?: string; timestamp?: string; isError?: boolean } = {}): string {
  counter++;
  return JSON.stringify({
    parentUuid: null, isSidechain: false, userType: 'external', cwd: '/home/dev/app', sessionId: opts.sessionId ?? 'sess-1',
    version: '2.1.197', type: 'user',
    message: { role: 'user', content: [{ tool_use_id: toolUseId, type: 'tool_result', content, is_error: opts.isError ?? false }] },
    uuid: `tr-${counter}`, timestamp: opts.timestamp ?? '2026-11-20T10:00:01.000Z',
    toolUseResult: { stdout: typeof content === 'string' ? content : '', stderr: '', interrupted: false },
  });
}

export function compactBoundaryLine(sessionId: string, timestamp: string, preTokens: number, trigger = 'auto'): string {
  counter++;
  return JSON.stringify({
    parentUuid: null, logicalParentUuid: 'x', isSidechain: false, userType: 'external', cwd: '/home/dev/app', sessionId,
    version: '2.1.197', type: 'system', subtype: 'compact_boundary', content: 'Conversation compacted',
    compactMetadata: { trigger, preTokens }, uuid: `cb-${counter}`, timestamp, level: 'info',
  });
}

/** What transcripts say about a session besides request usage: tool calls, their results, compactions. */

export interface ToolCall {
  toolUseId: string;
  /** Key of the request (API response) that called the tool. */
  requestKey: string;
  sessionId: string | null;
  agentId: string | null;
  ts: number;
  name: string;
  /** Size of the JSON input, in characters. */
  inputChars: number;
  /** The file a file tool acted on, or a subagent type; never a shell command (it may hold secrets). */
  target: string | null;
}

export interface ToolResult {
  toolUseId: string;
  sessionId: string | null;
  agentId: string | null;
  ts: number;
  /** Characters of text returned to the model (images counted as IMAGE_CHARS each). */
  resultChars: number;
  isError: boolean;
}

export interface Compaction {
  sessionId: string;
  agentId: string | null;
  ts: number;
  trigger: string | null;
  preTokens: number | null;
}

export interface SessionFacts {
  toolCalls: ToolCall[];
  toolResults: ToolResult[];
  compactions: Compaction[];
}

/** Tokens are estimated from characters at this ratio where no usage delta measures them (English/code average). */
export const CHARS_PER_TOKEN = 4;
/** An image in a tool result costs roughly 1,600 tokens (a ~1.2 MP image per Anthropic's vision guide). */
export const IMAGE_CHARS = 1600 * CHARS_PER_TOKEN;

export function emptyFacts(): SessionFacts {
  return { toolCalls: [], toolResults: [], compactions: [] };
}

/** `mcp__github__create_issue` -> `github`; other tools have no server. */
export function mcpServerOf(toolName: string): string | null {
  const m = /^mcp__(.+?)__/.exec(toolName);
  return m ? m[1] : null;
}

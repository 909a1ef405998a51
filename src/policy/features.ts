/**
 * What budget and routing decisions look at in a Messages API request. Pure: takes the parsed body and headers.
 * Nothing here keeps prompt text: the system prompt is reduced to a hash, the user text to a few counts.
 */
import { createHash } from 'node:crypto';
import { estimatePromptTokens } from './reservations.js';

export type ThinkingMode = 'adaptive' | 'enabled' | 'disabled' | null;

export interface RequestFeatures {
  model: string | null;
  bodyBytes: number;
  /** ceil(bodyBytes / 4): see reservations.ts. */
  estInputTokens: number;
  maxTokens: number | null;
  /** Tool definitions sent with the request. */
  toolCount: number;
  hasTools: boolean;
  /** `thinking.type` of the request. */
  thinking: ThinkingMode;
  /** The conversation already holds thinking blocks (a model without thinking cannot take them). */
  thinkingInHistory: boolean;
  /** `output_config.effort` is set. */
  effort: string | null;
  /** `speed: "fast"` requested. */
  fast: boolean;
  /** `x-claude-code-agent-id` is present: a subagent's request. */
  isSubagent: boolean;
  /** First 12 hex digits of sha256 over the system prompt text (Claude Code's per-request billing header block excluded). */
  systemFingerprint: string | null;
  messageCount: number;
  /** Text of the latest human turn (system reminders excluded): counts only, never the text. */
  lastUserChars: number;
  lastUserCodeBlocks: number;
  /** Latest user message holds only tool results (an agent-loop continuation). */
  toolResultTurn: boolean;
  /** Matches of the "hard task" and "easy task" word lists in the latest human turn. */
  hardWords: number;
  easyWords: number;
}

type Headers = Record<string, string | string[] | undefined>;

function header(h: Headers, name: string): string | null {
  const v = h[name] ?? h[name.toLowerCase()];
  if (Array.isArray(v)) return v[0] ?? null;
  return v ?? null;
}

const HARD_WORDS = /\b(architect\w*|design\w*|refactor\w*|debug\w*|investigat\w*|root cause|race condition|concurren\w*|deadlock|security|vulnerab\w*|optimi[sz]\w*|performance|migrat\w*|prove|proof|algorithm\w*|trade-?offs?|why|plan|multi-?file|across the codebase|complex)\b/gi;
const EASY_WORDS = /\b(typo|rename|format\w*|lint|comment|list|show|print|read|grep|find|what is|summari[sz]e|title|translate|hello|hi|thanks?)\b/gi;

export function requestFeatures(doc: unknown, bodyBytes: number, headers: Headers = {}): RequestFeatures {
  const d = (typeof doc === 'object' && doc !== null && !Array.isArray(doc) ? doc : {}) as Record<string, unknown>;
  const messages = Array.isArray(d.messages) ? d.messages as unknown[] : [];
  const tools = Array.isArray(d.tools) ? d.tools : [];
  const thinkingObj = d.thinking as { type?: unknown } | undefined;
  const thinkingType = typeof thinkingObj?.type === 'string' ? thinkingObj.type : null;
  const thinking: ThinkingMode = thinkingType === 'adaptive' || thinkingType === 'enabled' || thinkingType === 'disabled' ? thinkingType : null;
  const effortRaw = (d.output_config as { effort?: unknown } | undefined)?.effort;

  let thinkingInHistory = false;
  for (const m of messages) {
    const msg = m as { role?: unknown; content?: unknown };
    if (msg?.role !== 'assistant' || !Array.isArray(msg.content)) continue;
    if (msg.content.some((b) => (b as { type?: unknown })?.type === 'thinking' || (b as { type?: unknown })?.type === 'redacted_thinking')) {
      thinkingInHistory = true;
      break;
    }
  }

  const human = lastHumanText(messages);
  const lastMsg = messages.at(-1) as { role?: unknown; content?: unknown } | undefined;
  const toolResultTurn = lastMsg?.role === 'user' && Array.isArray(lastMsg.content) && lastMsg.content.length > 0
    && lastMsg.content.every((b) => (b as { type?: unknown })?.type === 'tool_result');

  return {
    model: typeof d.model === 'string' && d.model ? d.model : null,
    bodyBytes,
    estInputTokens: estimatePromptTokens(bodyBytes),
    maxTokens: typeof d.max_tokens === 'number' && Number.isFinite(d.max_tokens) ? d.max_tokens : null,
    toolCount: tools.length,
    hasTools: tools.length > 0,
    thinking,
    thinkingInHistory,
    effort: typeof effortRaw === 'string' ? effortRaw : null,
    fast: d.speed === 'fast',
    isSubagent: header(headers, 'x-claude-code-agent-id') !== null,
    systemFingerprint: systemFingerprint(d.system),
    messageCount: messages.length,
    lastUserChars: human.length,
    lastUserCodeBlocks: Math.floor((human.match(/```/g)?.length ?? 0) / 2),
    toolResultTurn,
    hardWords: human.match(HARD_WORDS)?.length ?? 0,
    easyWords: human.match(EASY_WORDS)?.length ?? 0,
  };
}

/** The user's latest own words: the last user message with text that is not a `<system-reminder>` block. */
function lastHumanText(messages: unknown[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as { role?: unknown; content?: unknown };
    if (m?.role !== 'user') continue;
    if (typeof m.content === 'string') {
      if (!isReminder(m.content)) return m.content;
      continue;
    }
    if (!Array.isArray(m.content)) continue;
    const texts = m.content
      .filter((b) => (b as { type?: unknown })?.type === 'text' && typeof (b as { text?: unknown }).text === 'string')
      .map((b) => (b as { text: string }).text)
      .filter((t) => !isReminder(t));
    if (texts.length) return texts.join('\n');
  }
  return '';
}

function isReminder(t: string): boolean {
  return t.trimStart().startsWith('<system-reminder>');
}

/**
 * sha256 of the system prompt's text blocks, joined by newlines, first 12 hex digits. Claude Code's first block
 * (`x-anthropic-billing-header: ...`) changes with the version and entry point, so it is left out: the
 * fingerprint then names the agent (main loop, a given subagent type, title generation...).
 */
export function systemFingerprint(system: unknown): string | null {
  let text: string;
  if (typeof system === 'string') text = system;
  else if (Array.isArray(system)) {
    text = system
      .map((b) => (typeof b === 'string' ? b : typeof (b as { text?: unknown })?.text === 'string' ? (b as { text: string }).text : ''))
      .filter((t) => t && !t.startsWith('x-anthropic-billing-header:'))
      .join('\n');
  } else return null;
  if (!text) return null;
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

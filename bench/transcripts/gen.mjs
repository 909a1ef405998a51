#!/usr/bin/env node
// Deterministic generator of realistic Claude Code 2.1.x transcript trees, for benchmarks.
//
//   node bench/transcripts/gen.mjs --out DIR [--size-mb 500] [--seed 500] [--projects 20]
//
// Writes DIR/projects/<encoded cwd>/<session>.jsonl (+ <session>/subagents/agent-<17hex>.jsonl) and
// DIR/manifest.json holding the ground truth the generator itself computed: de-duplicated token totals
// per class (one API response counted once, with its final usage), request count, per-model totals,
// list-price cost (1h cache writes at 2x input, no long-context premium: none of the models used has
// one for these dates) and the not-de-duplicated sums a naive per-line reader would report.
//
// What the data looks like (see ../shared/reference/ccusage-study.md §c and transcript-schema.md):
// - the 2.1.x envelope (parentUuid, isSidechain, userType, entrypoint, cwd, sessionId, version, gitBranch,
//   type, uuid, timestamp, requestId) and message{id, model, role, content, stop_reason, usage{...}};
// - one API response = 1-3 assistant lines (one per content block) sharing message.id + requestId; the
//   earlier lines carry a partial output_tokens and stop_reason null, the last the final usage;
// - tool_result user lines of 1-16 KB whose payload is repeated in `toolUseResult`;
// - ~10% of sessions are forks: a new file, new sessionId, replaying 5-40 lines of an earlier session
//   (same uuid, message.id, requestId);
// - ~20% of sessions spawn 1-3 subagents at <session>/subagents/agent-<17hex>.jsonl (isSidechain, agentId);
// - queue-operation, file-history-snapshot, ai-title, permission-mode, last-prompt, system/turn_duration
//   and compact_boundary lines; 60 days of timestamps; models ~60/30/10% sonnet-4-6/opus-4-6/haiku-4-5
//   (a few percent opus-4-8 and sonnet-5); ~70% of sessions write their cache with the 1h TTL;
// - a few responses with web searches (server_tool_use.web_search_requests).
//
// Also exported: appendIncrement(), which appends a deterministic ~1 MB of new turns to several existing
// sessions plus one new session file, and returns the ground truth of what it appended.

import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, readSync, rmSync,
  statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const GENERATOR_VERSION = 5;

/** USD per million tokens, list prices (../shared/reference/pricing.json). 1h cache writes = 2x input. */
export const PRICES = {
  'claude-sonnet-4-6': { input: 3, output: 15, cacheWrite5m: 3.75, cacheWrite1h: 6, cacheRead: 0.3 },
  'claude-opus-4-6': { input: 5, output: 25, cacheWrite5m: 6.25, cacheWrite1h: 10, cacheRead: 0.5 },
  'claude-haiku-4-5-20251001': { input: 1, output: 5, cacheWrite5m: 1.25, cacheWrite1h: 2, cacheRead: 0.1 },
  'claude-opus-4-8': { input: 5, output: 25, cacheWrite5m: 6.25, cacheWrite1h: 10, cacheRead: 0.5 },
  'claude-sonnet-5': { input: 2, output: 10, cacheWrite5m: 2.5, cacheWrite1h: 4, cacheRead: 0.2 },
};
export const WEB_SEARCH_USD = 0.01;

const MODEL_WEIGHTS = [
  ['claude-sonnet-4-6', 58], ['claude-opus-4-6', 29], ['claude-haiku-4-5-20251001', 9],
  ['claude-opus-4-8', 2], ['claude-sonnet-5', 2],
];
/** 60 days of activity; appended lines come after WINDOW_END. */
export const WINDOW_START = Date.parse('2026-09-21T00:00:00.000Z');
export const WINDOW_END = Date.parse('2026-11-20T00:00:00.000Z');
const DAY = 86_400_000;
const VERSIONS = ['2.1.101', '2.1.121', '2.1.147', '2.1.185', '2.1.197'];
const PROJECT_NAMES = ['api-gateway', 'web-app', 'billing-service', 'infra', 'mobile-client', 'data-pipeline', 'docs-site',
  'auth-service', 'search', 'design-system', 'ml-experiments', 'cli-tools', 'notifications', 'analytics', 'admin-portal',
  'payments', 'scheduler', 'edge-proxy', 'ingest', 'reporting', 'sdk-js', 'sdk-python', 'terraform', 'chat-bot',
  'video-encoder', 'game-server', 'crm-sync', 'etl-jobs', 'feature-flags', 'kb-indexer'];
const TOOLS = [['Bash', 30], ['Read', 25], ['Edit', 15], ['Grep', 10], ['Write', 6], ['Glob', 5], ['TodoWrite', 5],
  ['WebFetch', 2], ['WebSearch', 2]];
const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const HEX = '0123456789abcdef';

// ---------------------------------------------------------------------------------------------- random

/** sfc32, seeded from a string: fast, 2^128 state, identical on every platform. */
export function makeRng(seedText) {
  let h = 1779033703 ^ String(seedText).length;
  const seedInts = [];
  const s = String(seedText);
  for (let k = 0; k < 4; k++) {
    for (let i = 0; i < s.length; i++) {
      h = Math.imul(h ^ s.charCodeAt(i), 3432918353);
      h = (h << 13) | (h >>> 19);
    }
    h = Math.imul(h ^ (h >>> 16), 2246822507);
    h = Math.imul(h ^ (h >>> 13), 3266489909 + k);
    seedInts.push((h ^= h >>> 16) >>> 0);
  }
  let [a, b, c, d] = seedInts;
  const next = () => {
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 15; i++) next();
  const r = {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    chance: (p) => next() < p,
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    weighted: (pairs) => {
      const total = pairs.reduce((s, p) => s + p[1], 0);
      let x = next() * total;
      for (const [v, w] of pairs) if ((x -= w) < 0) return v;
      return pairs[pairs.length - 1][0];
    },
    /** Log-uniform integer in [lo, hi]: many small values, a long tail. */
    logInt: (lo, hi) => Math.floor(Math.exp(Math.log(lo) + next() * (Math.log(hi + 1) - Math.log(lo)))),
    chars: (alphabet, n) => {
      let out = '';
      for (let i = 0; i < n; i++) out += alphabet[Math.floor(next() * alphabet.length)];
      return out;
    },
  };
  r.uuid = () => {
    const h = r.chars(HEX, 32);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${'89ab'[r.int(0, 3)]}${h.slice(17, 20)}-${h.slice(20, 32)}`;
  };
  r.msgId = () => `msg_01${r.chars(B62, 22)}`;
  r.reqId = () => `req_011C${r.chars(B62, 20)}`;
  r.toolId = () => `toolu_01${r.chars(B62, 22)}`;
  r.agentId = () => `a${r.chars(HEX, 16)}`;
  return r;
}

// ---------------------------------------------------------------------------------------------- text

const WORDS = ('the a to of and in for on with is that this it be as at by from or an are not if then else return '
  + 'const let function async await import export default class new this value result error config request response '
  + 'user session token cache model usage cost report daily build test file path line record store query index table '
  + 'migration schema handler route service client server retry timeout buffer stream parse format output input').split(' ');
const IDENTS = ['userId', 'orderTotal', 'fetchRecord', 'parseLine', 'retryCount', 'config', 'ctx', 'handler', 'payload',
  'rows', 'items', 'cursor', 'offset', 'limit', 'batch', 'queue', 'logger', 'client', 'res', 'req', 'err', 'opts'];

/** A fixed pseudo-source corpus (code, logs, listings) that tool results are sliced from. */
function buildCorpus(rng, size) {
  const parts = [];
  let n = 0;
  while (n < size) {
    let line;
    switch (rng.int(0, 5)) {
      case 0: line = `  const ${rng.pick(IDENTS)} = await ${rng.pick(IDENTS)}(${rng.pick(IDENTS)}, "${rng.pick(WORDS)}");`; break;
      case 1: line = `${rng.int(1, 400)}\t  if (${rng.pick(IDENTS)}.${rng.pick(IDENTS)} > ${rng.int(0, 9999)}) return ${rng.pick(IDENTS)};`; break;
      case 2: line = `2026-10-${String(rng.int(1, 28)).padStart(2, '0')}T${String(rng.int(0, 23)).padStart(2, '0')}:${String(rng.int(0, 59)).padStart(2, '0')}:12.${rng.int(100, 999)}Z INFO  ${rng.pick(WORDS)} ${rng.pick(WORDS)} ${rng.pick(IDENTS)}=${rng.int(0, 99999)} took ${rng.int(1, 900)}ms`; break;
      case 3: line = `src/${rng.pick(WORDS)}/${rng.pick(IDENTS)}.ts:${rng.int(1, 900)}:${rng.int(1, 80)}: ${rng.pick(WORDS)} ${rng.pick(WORDS)} '${rng.pick(IDENTS)}'`; break;
      case 4: line = `    ${Array.from({ length: rng.int(4, 14) }, () => rng.pick(WORDS)).join(' ')}`; break;
      default: line = `  ✓ ${rng.pick(WORDS)} ${rng.pick(WORDS)} ${rng.pick(IDENTS)} (${rng.int(1, 300)} ms) — "${rng.pick(WORDS)}"\t{}`; break;
    }
    parts.push(line);
    n += line.length + 1;
  }
  return parts.join('\n');
}

class Text {
  constructor(rng) {
    this.rng = rng;
    this.corpus = buildCorpus(rng, 1 << 20);
  }
  /** About `len` characters of source-like text. */
  slice(len) {
    const max = this.corpus.length - len - 1;
    const start = this.rng.int(0, Math.max(0, max));
    return this.corpus.slice(start, start + len);
  }
  prose(words) {
    const out = [];
    for (let i = 0; i < words; i++) out.push(this.rng.pick(WORDS));
    out[0] = out[0][0].toUpperCase() + out[0].slice(1);
    return out.join(' ') + '.';
  }
}

// ---------------------------------------------------------------------------------------------- truth

function zeroTotals() {
  return { requests: 0, inputTokens: 0, outputTokens: 0, cacheCreation5mTokens: 0, cacheCreation1hTokens: 0,
    cacheReadTokens: 0, totalTokens: 0, webSearchRequests: 0, tokenCostUSD: 0, webSearchCostUSD: 0, costUSD: 0 };
}

export class Truth {
  constructor() {
    this.total = zeroTotals();
    this.byModel = {};
    /** What summing every assistant line (no de-duplication) would give. */
    this.noDedup = zeroTotals();
    /** What keeping the first line of each response (first-seen de-dup) would give. */
    this.firstLine = zeroTotals();
  }
  static add(t, model, u) {
    const p = PRICES[model];
    const tokenCost = (u.input * p.input + u.output * p.output + u.cw5m * p.cacheWrite5m + u.cw1h * p.cacheWrite1h
      + u.cacheRead * p.cacheRead) / 1e6;
    const ws = u.webSearches * WEB_SEARCH_USD;
    t.requests++;
    t.inputTokens += u.input;
    t.outputTokens += u.output;
    t.cacheCreation5mTokens += u.cw5m;
    t.cacheCreation1hTokens += u.cw1h;
    t.cacheReadTokens += u.cacheRead;
    t.totalTokens += u.input + u.output + u.cw5m + u.cw1h + u.cacheRead;
    t.webSearchRequests += u.webSearches;
    t.tokenCostUSD += tokenCost;
    t.webSearchCostUSD += ws;
    t.costUSD += tokenCost + ws;
  }
  response(model, finalUsage, lineUsages) {
    Truth.add(this.total, model, finalUsage);
    Truth.add((this.byModel[model] ??= zeroTotals()), model, finalUsage);
    for (const u of lineUsages) Truth.add(this.noDedup, model, u);
    Truth.add(this.firstLine, model, lineUsages[0]);
  }
  /** A replayed copy of an already counted line (fork). */
  replayedLine(model, u) {
    Truth.add(this.noDedup, model, u);
  }
}

export function roundTotals(t) {
  const out = { ...t };
  for (const k of ['tokenCostUSD', 'webSearchCostUSD', 'costUSD']) out[k] = Math.round(t[k] * 1e6) / 1e6;
  return out;
}

// ---------------------------------------------------------------------------------------------- sessions

const iso = (ms) => new Date(ms).toISOString();
export const encodeCwd = (cwd) => cwd.replace(/[^A-Za-z0-9]/g, '-');

/**
 * Writes one conversation (main session or subagent) line by line and accounts every response in `truth`.
 * Lines are kept as strings until flush(); `bytes` counts what has been produced.
 */
class Conversation {
  constructor(g, o) {
    this.g = g;
    this.rng = g.rng;
    this.text = g.text;
    this.sessionId = o.sessionId;
    this.cwd = o.cwd;
    this.version = o.version;
    this.gitBranch = o.gitBranch;
    this.model = o.model;
    this.cache1h = o.cache1h;
    this.agentId = o.agentId ?? null;
    this.isSidechain = Boolean(o.agentId);
    this.entrypoint = o.entrypoint ?? 'cli';
    this.t = o.startMs;
    this.parent = o.parentUuid ?? null;
    this.context = o.context ?? 0;
    this.lines = [];
    this.lineInfo = []; // {uuid, model, usage} per line, for fork replays
    this.bytes = 0;
    this.assistantLines = 0;
  }

  envelope() {
    return { userType: 'external', entrypoint: this.entrypoint, cwd: this.cwd, sessionId: this.sessionId, version: this.version,
      gitBranch: this.gitBranch };
  }

  push(obj, info = null) {
    const line = JSON.stringify(obj);
    this.lines.push(line);
    this.lineInfo.push(Object.assign({ uuid: obj.uuid ?? null, type: obj.type }, info));
    this.bytes += Buffer.byteLength(line) + 1;
    this.g.lineTypes[obj.type] = (this.g.lineTypes[obj.type] ?? 0) + 1;
  }

  tick(minMs, maxMs) {
    this.t += this.rng.int(minMs, maxMs);
    return iso(this.t);
  }

  head(extra = {}) {
    const h = { parentUuid: this.parent, isSidechain: this.isSidechain };
    if (this.agentId) h.agentId = this.agentId;
    return Object.assign(h, extra);
  }

  queueOps(prompt) {
    this.push({ type: 'queue-operation', operation: 'enqueue', timestamp: this.tick(100, 4000), sessionId: this.sessionId, content: prompt });
    this.push({ type: 'queue-operation', operation: 'dequeue', timestamp: this.tick(0, 5), sessionId: this.sessionId });
  }

  userPrompt(prompt, promptId) {
    const uuid = this.rng.uuid();
    const line = this.head({ promptId, type: 'user', message: { role: 'user', content: prompt }, uuid, timestamp: this.tick(5, 200) });
    if (!this.isSidechain) Object.assign(line, { permissionMode: this.g.rng.pick(['default', 'acceptEdits', 'bypassPermissions']), origin: { kind: 'human' }, promptSource: 'typed' });
    this.push(Object.assign(line, this.envelope()));
    this.parent = uuid;
    return uuid;
  }

  snapshot(messageId) {
    const files = {};
    for (let i = this.rng.int(0, 3); i > 0; i--) {
      files[`src/${this.rng.pick(WORDS)}/${this.rng.pick(IDENTS)}.ts`] = {
        backupFileName: `${this.rng.chars(HEX, 16)}@v${this.rng.int(1, 9)}`, version: this.rng.int(1, 9), backupTime: iso(this.t),
      };
    }
    this.push({ type: 'file-history-snapshot', messageId, snapshot: { messageId, trackedFileBackups: files, timestamp: iso(this.t) },
      isSnapshotUpdate: false });
  }

  /**
   * One API request: 1-3 assistant lines sharing message.id + requestId. Returns the tool_use block (if any)
   * and the uuid of the last line.
   */
  apiResponse({ toolName, first, promptTokens }) {
    const rng = this.rng;
    const model = this.model;
    const messageId = rng.msgId();
    const requestId = rng.reqId();
    // Prompt accounting: what was added since the last request is written to the cache, the rest read from it.
    let input = rng.int(1, 12);
    let write = promptTokens;
    if (first) {
      write += rng.int(12_000, 26_000); // system prompt + tools, first time in this conversation
      if (rng.chance(0.15)) input = rng.int(500, 6000);
    }
    let cacheRead = this.context;
    if (!first && rng.chance(0.04)) {
      // cache miss (tools changed, TTL expired): everything is written again
      write += cacheRead;
      cacheRead = 0;
    }
    let cw1h = 0;
    let cw5m = 0;
    if (this.cache1h) {
      cw1h = write;
      if (rng.chance(0.1)) { cw5m = Math.floor(write * 0.1); cw1h = write - cw5m; }
    } else {
      cw5m = write;
    }
    const output = Math.min(32_000, rng.logInt(20, 4000));
    const webSearches = toolName === 'WebSearch' ? rng.int(1, 3) : 0;
    this.context += write + output;

    const blocks = [];
    if (rng.chance(0.45)) {
      blocks.push({ type: 'thinking', thinking: this.text.prose(rng.int(20, 260)), signature: rng.chars(B62 + '+/', rng.int(200, 600)) });
    }
    if (!toolName || rng.chance(0.6)) blocks.push({ type: 'text', text: this.text.prose(rng.int(5, 120)) });
    let tool = null;
    if (toolName) {
      tool = { type: 'tool_use', id: rng.toolId(), name: toolName, input: this.toolInput(toolName) };
      blocks.push(tool);
    }
    const stopReason = toolName ? 'tool_use' : 'end_turn';
    const lineUsages = [];
    let lastUuid = null;
    const t0 = this.tick(1500, 40_000);
    blocks.forEach((block, i) => {
      const last = i === blocks.length - 1;
      const out = last ? output : Math.max(1, Math.floor(output * (i + 1) / (blocks.length + 1) * rng.next()));
      const u = { input, output: out, cw5m, cw1h, cacheRead, webSearches: last ? webSearches : 0 };
      lineUsages.push(u);
      const uuid = rng.uuid();
      const usage = {
        input_tokens: input,
        cache_creation_input_tokens: cw5m + cw1h,
        cache_read_input_tokens: cacheRead,
        output_tokens: out,
        server_tool_use: { web_search_requests: u.webSearches, web_fetch_requests: toolName === 'WebFetch' && last ? 1 : 0 },
        service_tier: 'standard',
        cache_creation: { ephemeral_1h_input_tokens: cw1h, ephemeral_5m_input_tokens: cw5m },
        inference_geo: rng.chance(0.5) ? '' : 'not_available',
        iterations: [],
        speed: 'standard',
      };
      const line = this.head({
        message: { id: messageId, type: 'message', role: 'assistant', model, content: [block],
          stop_reason: last ? stopReason : null, stop_sequence: null, usage, stop_details: null },
        requestId, type: 'assistant', uuid, timestamp: i === 0 ? t0 : this.tick(5, 900),
      });
      this.push(Object.assign(line, this.envelope()), { uuid, model, usage: u });
      this.assistantLines++;
      this.parent = uuid;
      lastUuid = uuid;
    });
    this.g.truth.response(model, lineUsages[lineUsages.length - 1], lineUsages);
    return { tool, lastUuid, output };
  }

  toolInput(name) {
    const rng = this.rng;
    const file = `${this.cwd}/src/${rng.pick(WORDS)}/${rng.pick(IDENTS)}.ts`;
    switch (name) {
      case 'Bash': return { command: `${rng.pick(['npm test', 'git status', 'ls -la', 'npx tsc -p .', 'grep -rn'])} ${rng.pick(IDENTS)}`, description: this.text.prose(rng.int(3, 10)) };
      case 'Read': return { file_path: file };
      case 'Edit': return { file_path: file, old_string: this.text.slice(rng.int(40, 1500)), new_string: this.text.slice(rng.int(40, 1500)) };
      case 'Write': return { file_path: file, content: this.text.slice(rng.int(200, 3000)) };
      case 'Grep': return { pattern: rng.pick(IDENTS), path: this.cwd, output_mode: 'content' };
      case 'Glob': return { pattern: `src/**/*.${rng.pick(['ts', 'tsx', 'json'])}` };
      case 'TodoWrite': return { todos: Array.from({ length: rng.int(2, 6) }, () => ({ content: this.text.prose(rng.int(4, 12)), status: rng.pick(['pending', 'in_progress', 'completed']) })) };
      case 'WebFetch': return { url: `https://docs.example.com/${rng.pick(WORDS)}`, prompt: this.text.prose(8) };
      case 'WebSearch': return { query: this.text.prose(rng.int(3, 8)) };
      case 'Agent': return { description: this.text.prose(4), prompt: this.text.prose(rng.int(20, 80)), subagent_type: rng.pick(['general-purpose', 'Explore', 'Plan']) };
      default: return {};
    }
  }

  /** The user line answering a tool_use: 1-16 KB of output, repeated in toolUseResult. */
  toolResult(tool, assistantUuid, promptId, agentResult = null) {
    const rng = this.rng;
    // 1-16 KB, skewed small (mean ~3.7 KB): most outputs are short, a few are whole files.
    const size = Math.floor(1024 * 16 ** (rng.next() ** 2));
    const content = agentResult ? agentResult.text : this.text.slice(size);
    let toolUseResult;
    switch (tool.name) {
      case 'Read': {
        const n = content.split('\n').length;
        toolUseResult = { type: 'text', file: { filePath: tool.input.file_path, content, numLines: n, startLine: 1, totalLines: n + rng.int(0, 300) } };
        break;
      }
      case 'Edit':
        toolUseResult = { filePath: tool.input.file_path, oldString: tool.input.old_string, newString: tool.input.new_string,
          originalFile: content, structuredPatch: [{ oldStart: rng.int(1, 300), oldLines: 3, newStart: 1, newLines: 4, lines: ['-a', '+b'] }],
          userModified: false, replaceAll: false };
        break;
      case 'Grep':
        toolUseResult = { mode: 'content', numFiles: rng.int(1, 40), filenames: [], content, numLines: content.split('\n').length };
        break;
      case 'Agent':
        toolUseResult = { status: 'completed', prompt: tool.input.prompt, agentId: agentResult.agentId, agentType: tool.input.subagent_type,
          content: [{ type: 'text', text: content }], totalDurationMs: agentResult.durationMs, totalTokens: agentResult.totalTokens,
          totalToolUseCount: agentResult.toolUses, usage: agentResult.usage };
        break;
      default:
        toolUseResult = { stdout: content, stderr: '', interrupted: false, isImage: false, noOutputExpected: false };
    }
    const uuid = rng.uuid();
    const line = this.head({ promptId, type: 'user',
      message: { role: 'user', content: [{ tool_use_id: tool.id, type: 'tool_result', content, is_error: rng.chance(0.03) }] },
      uuid, timestamp: this.tick(50, agentResult ? 5000 : 20_000), toolUseResult, sourceToolAssistantUUID: assistantUuid });
    this.push(Object.assign(line, this.envelope()));
    this.parent = uuid;
    return Math.ceil(Buffer.byteLength(content) / 3.6);
  }

  turnDuration(ms, count) {
    const uuid = this.rng.uuid();
    this.push(Object.assign(this.head({ type: 'system', subtype: 'turn_duration', durationMs: ms, messageCount: count,
      timestamp: this.tick(10, 400), uuid, isMeta: false }), this.envelope()));
    this.parent = uuid;
  }

  compact() {
    const uuid = this.rng.uuid();
    const pre = this.context;
    this.push(Object.assign({ parentUuid: null, logicalParentUuid: this.parent, isSidechain: false, type: 'system',
      subtype: 'compact_boundary', content: 'Conversation compacted', isMeta: false, timestamp: this.tick(1000, 60_000), uuid,
      level: 'info', compactMetadata: { trigger: 'auto', preTokens: pre } }, this.envelope()));
    this.parent = uuid;
    const su = this.rng.uuid();
    this.push(Object.assign(this.head({ type: 'user', message: { role: 'user', content: `This session is being continued from a previous conversation. Summary:\n${this.text.slice(this.rng.int(2000, 6000))}` },
      isVisibleInTranscriptOnly: true, isCompactSummary: true, uuid: su, timestamp: this.tick(5, 50) }), this.envelope()));
    this.parent = su;
    this.context = this.rng.int(8000, 20_000);
  }

  /**
   * One user turn: prompt, then 1-12 API requests, each but the last calling a tool.
   * `spawnAgent(conv, promptId)` may turn a tool call into a subagent run.
   */
  turn({ spawnAgent } = {}) {
    const rng = this.rng;
    const prompt = this.text.prose(rng.int(4, 60));
    const promptId = rng.uuid();
    const start = this.t;
    if (!this.isSidechain && rng.chance(0.5)) this.queueOps(prompt);
    const userUuid = this.userPrompt(prompt, promptId);
    if (!this.isSidechain && rng.chance(0.4)) this.snapshot(userUuid);
    const requests = rng.logInt(1, 12);
    let pending = Math.ceil(Buffer.byteLength(prompt) / 3.6);
    let first = this.context === 0;
    let messages = 1;
    for (let i = 0; i < requests; i++) {
      let toolName = i < requests - 1 ? rng.weighted(TOOLS) : null;
      const agent = toolName && spawnAgent && spawnAgent.want() ? true : false;
      if (agent) toolName = 'Agent';
      const res = this.apiResponse({ toolName, first, promptTokens: pending });
      first = false;
      messages++;
      pending = 0;
      if (res.tool) {
        const agentResult = agent ? spawnAgent.run(this, res.tool, promptId) : null;
        pending = this.toolResult(res.tool, res.lastUuid, promptId, agentResult);
        messages++;
      }
      if (this.context > 160_000) this.compact();
    }
    if (!this.isSidechain) this.turnDuration(this.t - start, messages);
  }
}

// ---------------------------------------------------------------------------------------------- tree

class Generator {
  constructor({ out, seed, projects }) {
    this.out = resolve(out);
    this.rng = makeRng(`tokentally-bench:${seed}`);
    this.text = new Text(this.rng);
    this.truth = new Truth();
    this.lineTypes = {};
    this.stats = { sessions: 0, forks: 0, subagentFiles: 0, files: 0, lines: 0, bytes: 0, assistantLines: 0 };
    this.projects = [];
    for (let i = 0; i < projects; i++) {
      const name = PROJECT_NAMES[i % PROJECT_NAMES.length] + (i >= PROJECT_NAMES.length ? `-${Math.floor(i / PROJECT_NAMES.length) + 1}` : '');
      const cwd = `/home/dev/work/${name}`;
      // Zipf-like activity: a few busy projects, a long tail.
      this.projects.push({ cwd, folder: encodeCwd(cwd), weight: 1 / (i + 1), recent: [] });
    }
  }

  writeFile(path, conv) {
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, conv.lines.join('\n') + '\n');
    this.stats.files++;
    this.stats.lines += conv.lines.length;
    this.stats.bytes += conv.bytes;
    this.stats.assistantLines += conv.assistantLines;
  }

  newSessionOptions(project, startMs) {
    const rng = this.rng;
    return {
      sessionId: rng.uuid(), cwd: project.cwd, version: rng.pick(VERSIONS),
      gitBranch: rng.chance(0.6) ? 'main' : `feature/${rng.pick(WORDS)}-${rng.pick(IDENTS)}`,
      model: rng.weighted(MODEL_WEIGHTS), cache1h: rng.chance(0.7), startMs,
    };
  }

  /** A main session of about `budget` bytes (subagent files included), possibly a fork. */
  session(budget) {
    const rng = this.rng;
    const project = rng.weighted(this.projects.map((p) => [p, p.weight]));
    const startMs = WINDOW_START + Math.floor(rng.next() * (WINDOW_END - WINDOW_START - DAY)) ;
    const opts = this.newSessionOptions(project, startMs);
    const source = project.recent.length && rng.chance(0.1) ? rng.pick(project.recent) : null;
    if (source) {
      opts.model = source.model;
      opts.cache1h = source.cache1h;
      opts.startMs = Math.max(source.endMs, opts.startMs);
      if (opts.startMs > WINDOW_END - 3_600_000) opts.startMs = source.endMs;
    }
    const conv = new Conversation(this, opts);
    if (source) {
      // Fork / resume into a new file: replay the start of another session verbatim, under the new sessionId.
      const k = Math.min(source.lines.length, rng.int(5, 40));
      for (let i = 0; i < k; i++) {
        const line = source.lines[i].split(source.sessionId).join(conv.sessionId);
        const info = source.info[i];
        conv.lines.push(line);
        conv.lineInfo.push(info);
        conv.bytes += Buffer.byteLength(line) + 1;
        this.lineTypes[info.type] = (this.lineTypes[info.type] ?? 0) + 1;
        if (info.usage) {
          this.truth.replayedLine(info.model, info.usage);
          conv.assistantLines++;
        }
        if (info.uuid) conv.parent = info.uuid;
      }
      conv.context = source.context;
      this.stats.forks++;
    }
    conv.push({ type: 'permission-mode', permissionMode: 'default', sessionId: conv.sessionId });

    const subagents = [];
    const wantAgents = rng.chance(0.2) ? rng.int(1, 3) : 0;
    const spawnAgent = {
      want: () => subagents.length < wantAgents && rng.chance(0.35),
      run: (parentConv, tool, promptId) => this.subagent(parentConv, tool, promptId, subagents),
    };
    const turns = rng.logInt(1, 40);
    for (let i = 0; i < turns && conv.bytes + subagents.reduce((s, a) => s + a.bytes, 0) < budget; i++) {
      conv.turn({ spawnAgent });
      if (i === 0) conv.push({ type: 'ai-title', aiTitle: this.text.prose(rng.int(2, 6)), sessionId: conv.sessionId });
      conv.t += rng.chance(0.3) ? rng.int(600_000, 7_200_000) : rng.int(5_000, 300_000);
      if (conv.t > WINDOW_END - 60_000) break;
    }
    // A session whose agent turns ended before spawning still spawns what it planned: keep ~20%.
    while (subagents.length < wantAgents) this.subagent(conv, { id: rng.toolId(), input: conv.toolInput('Agent') }, rng.uuid(), subagents);
    conv.push({ type: 'last-prompt', lastPrompt: this.text.prose(rng.int(3, 20)), sessionId: conv.sessionId });

    const dir = join(this.out, 'projects', project.folder);
    this.writeFile(join(dir, `${conv.sessionId}.jsonl`), conv);
    for (const a of subagents) {
      const p = join(dir, conv.sessionId, 'subagents', `agent-${a.conv.agentId}.jsonl`);
      this.writeFile(p, a.conv);
      writeFileSync(p.replace(/\.jsonl$/, '.meta.json'), JSON.stringify({ agentType: a.agentType }) + '\n');
      this.stats.subagentFiles++;
    }
    this.stats.sessions++;
    // Fork sources: the first lines of recent sessions of this project.
    project.recent.push({ sessionId: conv.sessionId, model: conv.model, cache1h: conv.cache1h, endMs: conv.t,
      lines: conv.lines.slice(0, 40), info: conv.lineInfo.slice(0, 40), context: 0 });
    if (project.recent.length > 8) project.recent.shift();
    return conv.bytes + subagents.reduce((s, a) => s + a.bytes, 0);
  }

  /** A subagent conversation in its own file; returns what the parent's Agent tool_result reports. */
  subagent(parent, tool, promptId, list) {
    const rng = this.rng;
    const conv = new Conversation(this, {
      sessionId: parent.sessionId, cwd: parent.cwd, version: parent.version, gitBranch: parent.gitBranch,
      model: rng.chance(0.5) ? 'claude-haiku-4-5-20251001' : parent.model, cache1h: parent.cache1h,
      agentId: rng.agentId(), startMs: parent.t + rng.int(50, 500),
    });
    const before = { ...this.truth.total };
    const startMs = conv.t;
    const turns = rng.int(1, 3);
    for (let i = 0; i < turns; i++) conv.turn();
    const t = this.truth.total;
    const usage = { input_tokens: t.inputTokens - before.inputTokens, cache_creation_input_tokens:
      t.cacheCreation5mTokens + t.cacheCreation1hTokens - before.cacheCreation5mTokens - before.cacheCreation1hTokens,
      cache_read_input_tokens: t.cacheReadTokens - before.cacheReadTokens, output_tokens: t.outputTokens - before.outputTokens,
      server_tool_use: { web_search_requests: 0, web_fetch_requests: 0 }, service_tier: 'standard' };
    list.push({ conv, bytes: conv.bytes, agentType: tool.input.subagent_type ?? 'general-purpose' });
    parent.t = Math.max(parent.t, conv.t);
    return {
      agentId: conv.agentId, text: this.text.slice(rng.int(1024, 4096)), durationMs: conv.t - startMs,
      totalTokens: t.totalTokens - before.totalTokens, toolUses: rng.int(1, 30), usage,
    };
  }
}

/** Generate a tree of about `sizeMb` MiB into `out` (which must not exist or be empty); returns the manifest. */
export function generate({ out, sizeMb, seed = sizeMb, projects = 20, log = () => {} }) {
  const started = Date.now();
  const g = new Generator({ out, seed, projects });
  const target = Math.round(sizeMb * 1024 * 1024);
  let nextLog = 0;
  while (g.stats.bytes < target) {
    const remaining = target - g.stats.bytes;
    // Session sizes: mostly tens to hundreds of KB, a few several MB.
    const budget = Math.min(remaining, g.rng.logInt(8 * 1024, 3 * 1024 * 1024));
    g.session(Math.max(budget, 4096));
    if (g.stats.bytes >= nextLog) {
      log(`gen: ${(g.stats.bytes / 1048576).toFixed(0)} / ${sizeMb} MiB`);
      nextLog += 50 * 1048576;
    }
  }
  const manifest = {
    generator: 'tokentally bench/transcripts/gen.mjs',
    generatorVersion: GENERATOR_VERSION,
    params: { sizeMb, seed, projects },
    window: { from: iso(WINDOW_START), to: iso(WINDOW_END) },
    files: { total: g.stats.files, sessions: g.stats.sessions, forks: g.stats.forks, subagentFiles: g.stats.subagentFiles },
    bytes: g.stats.bytes,
    mib: Math.round(g.stats.bytes / 1048576 * 10) / 10,
    lines: g.stats.lines,
    assistantLines: g.stats.assistantLines,
    lineTypes: g.lineTypes,
    truth: roundTotals(g.truth.total),
    byModel: Object.fromEntries(Object.entries(g.truth.byModel).sort().map(([m, t]) => [m, roundTotals(t)])),
    noDedup: roundTotals(g.truth.noDedup),
    firstLineWins: roundTotals(g.truth.firstLine),
    prices: PRICES,
    pricingNotes: 'list prices USD/MTok; 1h cache writes = 2x input; no long-context premium applies to these models/dates; web search $10/1000',
  };
  writeFileSync(join(g.out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  return { ...manifest, generatedInMs: Date.now() - started };
}

// ---------------------------------------------------------------------------------------------- increment

/** The last line of a file that carries a session envelope, and the model of its last response. */
function tailInfo(path) {
  const fd = openSync(path, 'r');
  try {
    const size = statSync(path).size;
    const len = Math.min(size, 512 * 1024);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    const lines = buf.toString('utf8').split('\n');
    let env = null;
    let model = null;
    for (let i = lines.length - 1; i >= 1 && (!env || !model); i--) {
      let v;
      try { v = JSON.parse(lines[i]); } catch { continue; }
      if (!env && v.uuid && v.cwd && v.sessionId && v.timestamp) env = v;
      if (!model && v.type === 'assistant' && v.message?.model) model = v.message.model;
    }
    return { env, model };
  } finally {
    closeSync(fd);
  }
}

/**
 * Append about `bytes` of new, realistic turns to `sessions` existing main-session files of the tree at `dir`
 * and write one new session file. Deterministic for a given tree and seed. Returns what was touched (sizes
 * and times before, so a caller can restore the tree) and the ground truth of the appended responses.
 */
export function appendIncrement({ dir, seed = 1, bytes = 1024 * 1024, sessions = 6 }) {
  const projectsDir = join(resolve(dir), 'projects');
  const g = new Generator({ out: dir, seed: `append:${seed}`, projects: 1 });
  const rng = g.rng;
  const candidates = [];
  for (const folder of readdirSync(projectsDir).sort()) {
    const pdir = join(projectsDir, folder);
    if (!statSync(pdir).isDirectory()) continue;
    for (const name of readdirSync(pdir).sort()) {
      if (name.endsWith('.jsonl')) candidates.push(join(pdir, name));
    }
  }
  const chosen = [];
  while (chosen.length < Math.min(sessions, candidates.length)) {
    const p = rng.pick(candidates);
    if (!chosen.includes(p)) chosen.push(p);
  }
  const touched = [];
  const created = [];
  let written = 0;
  let t = WINDOW_END + DAY + 9 * 3_600_000; // the day after the window, 09:00Z
  for (const [i, path] of chosen.entries()) {
    // What is left, shared among the sessions still to extend and the new file.
    const share = (bytes - written) / (chosen.length - i + 1);
    const st = statSync(path);
    const { env, model } = tailInfo(path);
    if (!env) continue;
    touched.push({ path, size: st.size, atimeMs: st.atimeMs, mtimeMs: st.mtimeMs });
    const conv = new Conversation(g, { sessionId: env.sessionId, cwd: env.cwd, version: env.version ?? '2.1.197',
      gitBranch: env.gitBranch ?? 'main', model: PRICES[model] ? model : 'claude-sonnet-4-6', cache1h: rng.chance(0.7),
      startMs: t, parentUuid: env.uuid, context: rng.int(20_000, 90_000) });
    while (conv.bytes < share - 16 * 1024) conv.turn();
    if (conv.lines.length === 0) conv.turn();
    appendFileSync(path, conv.lines.join('\n') + '\n');
    written += conv.bytes;
    t = conv.t + rng.int(60_000, 1_800_000);
  }
  // One brand-new session in the first touched project.
  const folder = join(chosen[0], '..');
  const env = tailInfo(chosen[0]).env;
  const conv = new Conversation(g, { sessionId: rng.uuid(), cwd: env.cwd, version: '2.1.197', gitBranch: 'main',
    model: 'claude-opus-4-6', cache1h: true, startMs: t });
  conv.push({ type: 'permission-mode', permissionMode: 'default', sessionId: conv.sessionId });
  while (conv.bytes < bytes - written - 16 * 1024) conv.turn();
  if (conv.lines.length < 2) conv.turn();
  const newPath = join(folder, `${conv.sessionId}.jsonl`);
  writeFileSync(newPath, conv.lines.join('\n') + '\n');
  created.push(newPath);
  written += conv.bytes;
  return {
    touched, created, bytes: written,
    files: touched.map((x) => relative(projectsDir, x.path)).concat(created.map((p) => relative(projectsDir, p))),
    truth: roundTotals(g.truth.total),
  };
}

/** Sum two truth records (base + increment). */
export function addTotals(a, b) {
  const out = {};
  for (const k of Object.keys(a)) out[k] = typeof a[k] === 'number' ? a[k] + (b[k] ?? 0) : a[k];
  return roundTotals(out);
}

// ---------------------------------------------------------------------------------------------- CLI

function parseArgs(argv) {
  const args = { out: null, sizeMb: 50, seed: null, projects: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--out') args.out = val();
    else if (a === '--size-mb') args.sizeMb = Number(val());
    else if (a === '--seed') args.seed = val();
    else if (a === '--projects') args.projects = Number(val());
    else if (a === '--help' || a === '-h') args.help = true;
    else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
    if (args.help) {
      process.stdout.write('usage: node bench/transcripts/gen.mjs --out DIR [--size-mb 50] [--seed N] [--projects N]\n');
      process.exit(0);
    }
    if (!args.out) throw new Error('--out is required');
    if (!(args.sizeMb > 0)) throw new Error('--size-mb must be a positive number');
    if (args.projects !== null && !(Number.isInteger(args.projects) && args.projects > 0)) throw new Error('--projects must be a positive integer');
  } catch (err) {
    process.stderr.write(`gen.mjs: ${err.message}\n`);
    process.exit(2);
  }
  const out = resolve(args.out);
  if (existsSync(join(out, 'projects'))) rmSync(join(out, 'projects'), { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const m = generate({
    out, sizeMb: args.sizeMb, seed: args.seed ?? String(args.sizeMb),
    projects: args.projects ?? (args.sizeMb >= 200 ? 20 : 8),
    log: (s) => process.stderr.write(s + '\n'),
  });
  process.stdout.write(`${out}: ${m.files.total} files (${m.files.sessions} sessions incl. ${m.files.forks} forks, `
    + `${m.files.subagentFiles} subagent files), ${m.lines} lines, ${m.assistantLines} assistant lines, `
    + `${m.truth.requests} unique responses, ${m.mib} MiB, ${m.truth.totalTokens} tokens, $${m.truth.costUSD.toFixed(2)} `
    + `in ${(m.generatedInMs / 1000).toFixed(1)} s\n`);
}

import type { Usage } from '../../core/types.js';
import { emptyUsage } from '../../core/types.js';

/**
 * What a Messages API response says about itself: ids, model, billed usage, stop reason, tools called.
 * Filled from the SSE events as they pass through the proxy, or from a JSON body at its end.
 */
export class ResponseFacts {
  messageId: string | null = null;
  model: string | null = null;
  stopReason: string | null = null;
  /** Anthropic error type from an `error` event or an error body. */
  errorType: string | null = null;
  tools: string[] = [];
  toolIds: string[] = [];
  /** True once any usage object was read (message_start, message_delta or a JSON body). */
  usageSeen = false;
  /** Events dispatched (SSE only). */
  events = 0;
  private input = 0;
  private output = 0;
  private cacheRead = 0;
  /** `cache_creation_input_tokens`: the total of both TTLs, as last reported. */
  private cacheCreationTotal: number | null = null;
  /** `cache_creation.ephemeral_*`: the TTL split, as last reported (Claude Code takes it from message_start). */
  private split5m: number | null = null;
  private split1h: number | null = null;
  private webSearches = 0;
  private webFetches = 0;
  private serviceTier: string | null = null;
  private speed: string | null = null;
  private inferenceGeo: string | null = null;

  /**
   * Apply a usage object. `message_delta` usage is cumulative: every field it carries overwrites the value
   * from `message_start` (never adds to it), and fields it omits keep their earlier value.
   */
  applyUsage(u: unknown): void {
    if (!isObj(u)) return;
    this.usageSeen = true;
    const n = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.round(v) : undefined);
    const s = (v: unknown): string | null | undefined => (typeof v === 'string' ? (v.length ? v.slice(0, 100) : null) : undefined);
    this.input = n(u.input_tokens) ?? this.input;
    this.output = n(u.output_tokens) ?? this.output;
    this.cacheRead = n(u.cache_read_input_tokens) ?? this.cacheRead;
    this.cacheCreationTotal = n(u.cache_creation_input_tokens) ?? this.cacheCreationTotal;
    if (isObj(u.cache_creation)) {
      this.split5m = n(u.cache_creation.ephemeral_5m_input_tokens) ?? this.split5m;
      this.split1h = n(u.cache_creation.ephemeral_1h_input_tokens) ?? this.split1h;
    }
    if (isObj(u.server_tool_use)) {
      this.webSearches = n(u.server_tool_use.web_search_requests) ?? this.webSearches;
      this.webFetches = n(u.server_tool_use.web_fetch_requests) ?? this.webFetches;
    }
    this.serviceTier = s(u.service_tier) !== undefined ? s(u.service_tier)! : this.serviceTier;
    this.speed = s(u.speed) !== undefined ? s(u.speed)! : this.speed;
    this.inferenceGeo = s(u.inference_geo) !== undefined ? s(u.inference_geo)! : this.inferenceGeo;
  }

  usage(): Usage {
    const u = emptyUsage();
    u.input = this.input;
    u.output = this.output;
    u.cacheRead = this.cacheRead;
    // The 1h part comes from the split; the 5m part is the rest of the latest total (or the split when no total).
    const oneHour = this.split1h ?? 0;
    if (this.cacheCreationTotal !== null) {
      u.cacheWrite1h = Math.min(oneHour, this.cacheCreationTotal);
      u.cacheWrite5m = this.cacheCreationTotal - u.cacheWrite1h;
    } else {
      u.cacheWrite1h = oneHour;
      u.cacheWrite5m = this.split5m ?? 0;
    }
    u.webSearches = this.webSearches;
    u.webFetches = this.webFetches;
    u.serviceTier = this.serviceTier;
    u.speed = this.speed;
    u.inferenceGeo = this.inferenceGeo;
    return u;
  }

  /** Read one event object (an SSE `data:` payload or a whole JSON body). */
  applyEvent(ev: unknown): void {
    if (!isObj(ev)) return;
    switch (ev.type) {
      case 'message_start':
        if (isObj(ev.message)) this.applyMessage(ev.message);
        break;
      case 'message_delta':
        if (isObj(ev.delta) && typeof ev.delta.stop_reason === 'string') this.stopReason = ev.delta.stop_reason;
        this.applyUsage(ev.usage);
        break;
      case 'content_block_start':
        if (isObj(ev.content_block)) this.applyBlock(ev.content_block);
        break;
      case 'error':
        if (isObj(ev.error) && typeof ev.error.type === 'string') this.errorType = ev.error.type.slice(0, 100);
        break;
      case 'message':
        this.applyMessage(ev);
        if (Array.isArray(ev.content)) for (const b of ev.content) if (isObj(b)) this.applyBlock(b);
        break;
      default:
        break;
    }
  }

  private applyMessage(m: Record<string, unknown>): void {
    if (typeof m.id === 'string' && m.id) this.messageId = m.id.slice(0, 200);
    if (typeof m.model === 'string' && m.model) this.model = m.model.slice(0, 200);
    if (typeof m.stop_reason === 'string') this.stopReason = m.stop_reason;
    this.applyUsage(m.usage);
  }

  private applyBlock(b: Record<string, unknown>): void {
    if (b.type === 'tool_use' && typeof b.name === 'string') {
      this.tools.push(b.name.slice(0, 200));
      this.toolIds.push(typeof b.id === 'string' ? b.id : `proxy:${this.tools.length}`);
    }
  }
}

const LF = 0x0a;
/** A line we keep (event / data of an interesting event) is capped; larger ones are dropped, never buffered. */
const MAX_LINE_BYTES = 8 * 1024 * 1024;
/** Events whose payload the proxy never needs: their data lines are skipped without being copied or parsed. */
const SKIP_EVENTS = new Set(['ping', 'content_block_delta', 'content_block_stop', 'message_stop']);
const EVENT = Buffer.from('event:');
const DATA = Buffer.from('data:');

/** `buf[start..end)` begins with `prefix` (compared as bytes, no string made). */
function startsWith(buf: Buffer, start: number, end: number, prefix: Buffer): boolean {
  if (end - start < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (buf[start + i] !== prefix[i]) return false;
  return true;
}

/**
 * Incremental SSE reader for the Messages API. It is fed the response bytes after they were forwarded,
 * never changes them, copes with events and lines split anywhere across chunks (and CRLF), and only
 * parses the few small events that carry ids and usage; content deltas are recognised by their
 * `event:` line and skipped.
 */
export class SseUsageScanner {
  readonly facts = new ResponseFacts();
  /** Bytes of an unfinished line that we keep. */
  private partial: Buffer | null = null;
  /** The current unfinished line is one we skip. */
  private skippingLine = false;
  /** `event:` field of the event being read ('' when the stream has no event lines). */
  private eventName = '';
  /** The current event is one whose data we never read. */
  private skipEvent = false;
  private data: string[] = [];
  private dataBytes = 0;
  private sawDelta = false;

  /** `onFirstDelta` fires once, when the first `content_block_delta` event starts (time to first token). */
  constructor(private readonly onFirstDelta?: () => void) {}

  push(chunk: Buffer): void {
    this.pushRange(chunk, 0, chunk.length);
  }

  /** `push` of `chunk[start..stop]` (the proxy hands payload ranges of the bytes it read, without views). */
  pushRange(chunk: Buffer, start: number, stop: number): void {
    let pos = start;
    const len = stop;
    while (pos < len) {
      let nl = chunk.indexOf(LF, pos);
      if (nl >= len) nl = -1;
      const end = nl === -1 ? len : nl;
      if (this.skippingLine) {
        // Inside a skipped line: jump to its end.
      } else if (this.partial !== null) {
        if (this.partial.length + (end - pos) > MAX_LINE_BYTES) {
          this.partial = null;
          this.skippingLine = true;
        } else {
          this.partial = Buffer.concat([this.partial, chunk.subarray(pos, end)]);
        }
      } else if (nl !== -1) {
        this.line(chunk, pos, end);
      } else {
        // The line continues in the next chunk: decide now if it can be skipped, else keep a copy.
        if (this.canSkip(chunk, pos, end)) this.skippingLine = true;
        else this.partial = Buffer.from(chunk.subarray(pos, end));
      }
      if (nl === -1) break;
      // End of line.
      if (this.partial !== null) {
        const p = this.partial;
        this.partial = null;
        this.line(p, 0, p.length);
      }
      this.skippingLine = false;
      pos = nl + 1;
    }
  }

  /** The stream ended: dispatch a last event that was not followed by a blank line. */
  end(): void {
    if (this.partial !== null) {
      const p = this.partial;
      this.partial = null;
      this.line(p, 0, p.length);
    }
    this.dispatch();
  }

  /** A data line of an event we never read, or a comment: no need to keep its bytes. */
  private canSkip(buf: Buffer, start: number, end: number): boolean {
    if (end > start && buf[start] === 0x3a /* ':' comment */) return true;
    return this.skipEvent && startsWith(buf, start, end, DATA);
  }

  private line(buf: Buffer, start: number, end: number): void {
    if (end > start && buf[end - 1] === 0x0d) end--;
    if (end === start) {
      this.dispatch();
      return;
    }
    const c = buf[start];
    if (c === 0x64 /* d */) {
      if (this.skipEvent || !startsWith(buf, start, end, DATA)) return;
      let from = start + 5;
      if (buf[from] === 0x20) from++;
      if (this.dataBytes + (end - from) > MAX_LINE_BYTES) return;
      this.dataBytes += end - from;
      this.data.push(buf.toString('utf8', from, end));
    } else if (c === 0x65 /* e */ && startsWith(buf, start, end, EVENT)) {
      let s = start + 6;
      let e = end;
      while (s < e && buf[s] === 0x20) s++;
      while (e > s && buf[e - 1] === 0x20) e--;
      const name = buf.toString('latin1', s, e);
      this.eventName = name;
      this.skipEvent = SKIP_EVENTS.has(name);
      if (name === 'content_block_delta') this.firstDelta();
    }
    // Comments, id:, retry: and unknown fields carry nothing we need.
  }

  private dispatch(): void {
    const name = this.eventName;
    this.eventName = '';
    this.skipEvent = false;
    if (this.data.length === 0) return;
    const payload = this.data.length === 1 ? this.data[0] : this.data.join('\n');
    this.data = [];
    this.dataBytes = 0;
    this.facts.events++;
    // Only tool_use blocks matter among block starts: text and thinking starts are not parsed.
    if (name === 'content_block_start' && !payload.includes('"tool_use"')) return;
    let ev: unknown;
    try {
      ev = JSON.parse(payload);
    } catch {
      return;
    }
    // Streams without `event:` lines: recognise content deltas by their type.
    if (name === '' && isObj(ev) && ev.type === 'content_block_delta') this.firstDelta();
    this.facts.applyEvent(ev);
  }

  private firstDelta(): void {
    if (this.sawDelta) return;
    this.sawDelta = true;
    this.onFirstDelta?.();
  }
}

/** Facts from a complete JSON response body (non-streamed message, or an error body). */
export function factsFromJson(body: Buffer | string): ResponseFacts {
  const facts = new ResponseFacts();
  let doc: unknown;
  try {
    doc = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch {
    return facts;
  }
  facts.applyEvent(doc);
  return facts;
}

function isObj(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

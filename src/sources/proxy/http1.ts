/**
 * The HTTP/1.1 wire format, as much of it as a pass-through proxy needs (RFC 9112): message heads and body
 * framing. The proxy forwards bytes as they arrive and only *reads* them to know where a message ends and to
 * copy out the payload it inspects, so it never re-frames a body. Parsing is strict where leniency would let
 * two parties disagree about message boundaries (request smuggling): bare LF, obsolete line folding, control
 * characters in values, a Content-Length beside Transfer-Encoding, and conflicting lengths are refused.
 */

export class HttpParseError extends Error {
  constructor(message: string, readonly status = 400) {
    super(message);
  }
}

export interface RequestHead {
  method: string;
  target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  minor: number;
  /** Header names and values as received, in order: [name, value, name, value, ...]. */
  raw: string[];
}

export interface ResponseHead {
  status: number;
  reason: string;
  minor: number;
  raw: string[];
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Not allowed in a field value: controls other than HTAB (CR and LF included), and DEL. */
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
/** Not allowed in a start line: any control character. */
const BAD_START = /[\x00-\x1f\x7f]/;

type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

/** Index just past the head's closing CRLFCRLF, or -1 while it is incomplete. */
export function headEnd(buf: Buffer, from = 0): number {
  const i = buf.indexOf(CRLFCRLF, Math.max(0, from - 3));
  return i === -1 ? -1 : i + 4;
}

/**
 * The head as one latin1 string (one call into C++; the fields are slices of it), its start line, and the
 * index where the field lines begin.
 */
function headText(buf: Buffer): { head: string; first: string; next: number } {
  const head = (buf as Latin1Buffer).latin1Slice(0, buf.length - 2); // keeps the last field line's CRLF
  const eol = head.indexOf('\r\n');
  const first = head.slice(0, eol);
  if (BAD_START.test(first)) throw new HttpParseError('control character in start line');
  return { head, first, next: eol + 2 };
}

/** The field lines of `head` from `pos`, each ending in CRLF: [name, value, ...], values without surrounding OWS. */
function parseFields(head: string, pos: number): string[] {
  const raw: string[] = [];
  const end = head.length;
  while (pos < end) {
    const eol = head.indexOf('\r\n', pos);
    const colon = head.indexOf(':', pos);
    const c = head.charCodeAt(pos);
    if (c === 0x20 || c === 0x09) throw new HttpParseError('obsolete header line folding');
    if (colon === -1 || colon > eol) throw new HttpParseError('malformed header line');
    // A token: no spaces before the colon, no CR or LF (a bare LF would hide a second line).
    const name = head.slice(pos, colon);
    if (!TOKEN.test(name)) throw new HttpParseError('invalid header name');
    let vs = colon + 1;
    let ve = eol;
    while (vs < ve && (head.charCodeAt(vs) === 0x20 || head.charCodeAt(vs) === 0x09)) vs++;
    while (ve > vs && (head.charCodeAt(ve - 1) === 0x20 || head.charCodeAt(ve - 1) === 0x09)) ve--;
    const value = head.slice(vs, ve);
    if (BAD_VALUE.test(value)) throw new HttpParseError('invalid character in header value');
    raw.push(name, value);
    pos = eol + 2;
  }
  return raw;
}

/** A request head (`buf` holds exactly the head, CRLFCRLF included). */
export function parseRequestHead(buf: Buffer): RequestHead {
  const { head, first, next } = headText(buf);
  const a = first.indexOf(' ');
  const b = first.lastIndexOf(' ');
  if (a <= 0 || b <= a) throw new HttpParseError('malformed request line');
  const method = first.slice(0, a);
  const target = first.slice(a + 1, b);
  const version = first.slice(b + 1);
  if (!TOKEN.test(method)) throw new HttpParseError('invalid method');
  if (target.length === 0 || target.includes(' ')) throw new HttpParseError('invalid request target');
  if (version !== 'HTTP/1.1' && version !== 'HTTP/1.0') throw new HttpParseError('unsupported HTTP version', 505);
  return { method, target, minor: version === 'HTTP/1.1' ? 1 : 0, raw: parseFields(head, next) };
}

/** A response head (`buf` holds exactly the head, CRLFCRLF included). */
export function parseResponseHead(buf: Buffer): ResponseHead {
  const { head, first, next } = headText(buf);
  const m = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/.exec(first);
  if (!m) throw new HttpParseError('malformed status line');
  return { status: Number(m[2]), reason: m[3] ?? '', minor: Number(m[1]), raw: parseFields(head, next) };
}

/** How a message body is delimited. */
export type Framing = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' };

interface FramingHeaders {
  contentLength: number | null;
  /** The Transfer-Encoding list, lower-cased, or null when absent. */
  transferEncoding: string[] | null;
}

function framingHeaders(raw: string[]): FramingHeaders {
  let contentLength: number | null = null;
  let te: string[] | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i];
    if (n.length === 14 && n.toLowerCase() === 'content-length') {
      const value = raw[i + 1];
      for (const part of value.includes(',') ? value.split(',') : [value]) {
        const v = part.trim();
        if (!/^\d{1,15}$/.test(v)) throw new HttpParseError('invalid Content-Length');
        const len = Number(v);
        if (contentLength !== null && contentLength !== len) throw new HttpParseError('conflicting Content-Length values');
        contentLength = len;
      }
    } else if (n.length === 17 && n.toLowerCase() === 'transfer-encoding') {
      const value = raw[i + 1];
      for (const part of value.includes(',') ? value.split(',') : [value]) {
        const v = part.trim().toLowerCase();
        if (v) (te ??= []).push(v);
      }
    }
  }
  return { contentLength, transferEncoding: te };
}

/** RFC 9112 §6.3 for a request: chunked, a length, or no body. */
export function requestFraming(raw: string[]): Framing {
  const f = framingHeaders(raw);
  if (f.transferEncoding) {
    if (f.contentLength !== null) throw new HttpParseError('both Content-Length and Transfer-Encoding');
    if (f.transferEncoding[f.transferEncoding.length - 1] !== 'chunked' || f.transferEncoding.indexOf('chunked') !== f.transferEncoding.length - 1) {
      throw new HttpParseError('unsupported Transfer-Encoding', 501);
    }
    return { kind: 'chunked' };
  }
  if (f.contentLength !== null && f.contentLength > 0) return { kind: 'length', length: f.contentLength };
  return { kind: 'none' };
}

/** RFC 9112 §6.3 for a response to `method`. */
export function responseFraming(raw: string[], status: number, method: string): Framing {
  if (method === 'HEAD' || status < 200 || status === 204 || status === 304) return { kind: 'none' };
  const f = framingHeaders(raw);
  if (f.transferEncoding) {
    if (f.contentLength !== null) throw new HttpParseError('both Content-Length and Transfer-Encoding', 502);
    return f.transferEncoding[f.transferEncoding.length - 1] === 'chunked' ? { kind: 'chunked' } : { kind: 'close' };
  }
  if (f.contentLength !== null) return f.contentLength > 0 ? { kind: 'length', length: f.contentLength } : { kind: 'none' };
  return { kind: 'close' };
}

/** True when a message's Connection header asks to close after it (or HTTP/1.0 does not ask to keep it). */
export function wantsClose(raw: string[], minor: number): boolean {
  let close = false;
  let keep = false;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 10 && raw[i].toLowerCase() === 'connection') {
      for (const t of raw[i + 1].split(',')) {
        const v = t.trim().toLowerCase();
        if (v === 'close') close = true;
        else if (v === 'keep-alive') keep = true;
      }
    }
  }
  return close || (minor === 0 && !keep);
}

const enum ChunkState { Size, SizeLF, Ext, Data, DataCR, DataLF, Trailer, TrailerLF, TrailerLine, Done }

/**
 * Reads a body's framing incrementally. `push(buf, from)` consumes bytes of this body from `buf[from..]` and
 * returns how many it took; the body's payload (chunk data without the chunked framing) is handed to `onData`
 * as ranges of `buf` (no copy, no view object). `done` is set once the body is complete; bytes after it belong
 * to the next message.
 */
export class BodyReader {
  done: boolean;
  /** Payload bytes seen so far. */
  payloadBytes = 0;
  private remaining: number;
  private chunkState = ChunkState.Size;
  private chunkSize = 0;
  private sizeDigits = 0;
  private lineBytes = 0;

  constructor(readonly framing: Framing, private readonly onData: ((buf: Buffer, start: number, end: number) => void) | null) {
    this.done = framing.kind === 'none';
    this.remaining = framing.kind === 'length' ? framing.length : 0;
  }

  /** The body ends with the connection (close-delimited): called when the peer closes. */
  endOfStream(): void {
    if (this.framing.kind === 'close') this.done = true;
  }

  push(buf: Buffer, from = 0): number {
    if (this.done) return 0;
    const kind = this.framing.kind;
    if (kind === 'close') {
      this.emit(buf, from, buf.length);
      return buf.length - from;
    }
    if (kind === 'length') {
      const n = Math.min(this.remaining, buf.length - from);
      this.emit(buf, from, from + n);
      this.remaining -= n;
      if (this.remaining === 0) this.done = true;
      return n;
    }
    return this.pushChunked(buf, from);
  }

  private emit(buf: Buffer, start: number, end: number): void {
    if (end <= start) return;
    this.payloadBytes += end - start;
    if (this.onData) this.onData(buf, start, end);
  }

  /** Skip a line's bytes up to its CR (counted against `limit`); past the CR, go to `next`. Returns the new index. */
  private skipLine(buf: Buffer, i: number, next: ChunkState, limit: number, what: string): number {
    const cr = buf.indexOf(0x0d, i);
    const end = cr === -1 ? buf.length : cr;
    this.lineBytes += end - i;
    if (this.lineBytes > limit) throw new HttpParseError(`${what} too long`);
    if (cr === -1) return buf.length;
    this.chunkState = next;
    return cr + 1;
  }

  private pushChunked(buf: Buffer, from: number): number {
    let i = from;
    const len = buf.length;
    while (i < len && this.chunkState !== ChunkState.Done) {
      const c = buf[i];
      switch (this.chunkState) {
        case ChunkState.Size: {
          const d = hexValue(c);
          if (d >= 0) {
            if (++this.sizeDigits > 12) throw new HttpParseError('chunk size too large');
            this.chunkSize = this.chunkSize * 16 + d;
            i++;
          } else if (this.sizeDigits === 0) {
            throw new HttpParseError('invalid chunk size');
          } else if (c === 0x0d) {
            this.chunkState = ChunkState.SizeLF;
            i++;
          } else if (c === 0x3b || c === 0x20 || c === 0x09) {
            this.chunkState = ChunkState.Ext;
            i++;
          } else {
            throw new HttpParseError('invalid chunk size');
          }
          break;
        }
        case ChunkState.Ext:
          // Chunk extensions are ignored (forwarded as they are).
          i = this.skipLine(buf, i, ChunkState.SizeLF, 4096, 'chunk extension');
          break;
        case ChunkState.SizeLF:
          if (c !== 0x0a) throw new HttpParseError('bare CR in chunk size line');
          i++;
          this.lineBytes = 0;
          this.sizeDigits = 0;
          if (this.chunkSize === 0) {
            this.chunkState = ChunkState.Trailer;
          } else {
            this.remaining = this.chunkSize;
            this.chunkState = ChunkState.Data;
          }
          break;
        case ChunkState.Data: {
          const n = Math.min(this.remaining, len - i);
          this.emit(buf, i, i + n);
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) this.chunkState = ChunkState.DataCR;
          break;
        }
        case ChunkState.DataCR:
          if (c !== 0x0d) throw new HttpParseError('chunk data longer than its size');
          i++;
          this.chunkState = ChunkState.DataLF;
          break;
        case ChunkState.DataLF:
          if (c !== 0x0a) throw new HttpParseError('bare CR after chunk data');
          i++;
          this.chunkSize = 0;
          this.chunkState = ChunkState.Size;
          break;
        case ChunkState.Trailer:
          // Start of a trailer line, or the empty line ending the body.
          if (c === 0x0d) {
            this.chunkState = ChunkState.TrailerLF;
            i++;
          } else {
            this.chunkState = ChunkState.TrailerLine;
          }
          break;
        case ChunkState.TrailerLine:
          // Entered on a byte that is not CR, so lineBytes > 0 at its CRLF: not the empty line that ends the body.
          i = this.skipLine(buf, i, ChunkState.TrailerLF, 65536, 'trailers');
          break;
        case ChunkState.TrailerLF:
          if (c !== 0x0a) throw new HttpParseError('bare CR in trailers');
          i++;
          if (this.lineBytes === 0) {
            this.chunkState = ChunkState.Done;
            this.done = true;
          } else {
            this.lineBytes = 0;
            this.chunkState = ChunkState.Trailer;
          }
          break;
        default:
          break;
      }
    }
    return i - from;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/** Build a head: the first line and the fields, CRLFCRLF-terminated, as latin1 bytes. */
export function serializeHead(firstLine: string, raw: string[]): Buffer {
  let s = firstLine + '\r\n';
  for (let i = 0; i + 1 < raw.length; i += 2) s += raw[i] + ': ' + raw[i + 1] + '\r\n';
  return Buffer.from(s + '\r\n', 'latin1');
}

/** The header values a record reads, lower-cased like node's `IncomingHttpHeaders` (duplicates joined by ", "). */
export function headerObject(raw: string[]): Record<string, string> {
  // A plain object keeps V8's fast properties (the same fields in the same order on every request); the one
  // name that would reach its prototype is skipped.
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i].toLowerCase();
    if (k === '__proto__') continue;
    const prev = out[k];
    out[k] = prev === undefined ? raw[i + 1] : `${prev}, ${raw[i + 1]}`;
  }
  return out;
}

/**
 * HTTP/1.1 wire reading for the proxy's upstream client (RFC 9112): a buffered reader over a
 * connection, the response head parser (bounded: {@link MAX_HEAD_BYTES}, {@link MAX_HEADERS}),
 * and the body framings (Content-Length, chunked, until close) as pull streams that read from
 * the socket only when the consumer asks, so a body is never held whole.
 *
 * @module
 */

import type { ByteConn } from "../tls/pinned_conn.ts";

/** Largest response head accepted from an upstream (status line and headers). */
export const MAX_HEAD_BYTES = 64 * 1024;
/** Most header fields in one response head. */
export const MAX_HEADERS = 200;
/** Longest chunk-size line (with extensions) or trailer line. */
const MAX_LINE_BYTES = 4096;
/** Size of one socket read of a body. */
const READ_BYTES = 64 * 1024;
const latin1 = new TextDecoder("latin1");

/** A malformed or oversized message from an upstream. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

/** A parsed response head. */
export interface ResponseHead {
  /** 0 or 1 (HTTP/1.0 or HTTP/1.1). */
  minor: number;
  status: number;
  reason: string;
  /** Header fields in order, names lower case. */
  headers: [string, string][];
}

/** Reads from a connection through one buffer; bodies take what the head left over first. */
export class BufReader {
  #conn: ByteConn;
  #buf = new Uint8Array(16 * 1024);
  #start = 0;
  #end = 0;
  /** Bytes received so far on this connection (all responses). */
  received = 0;

  constructor(conn: ByteConn) {
    this.#conn = conn;
  }

  /** Reads more into the buffer (growing it up to `cap`); false at end of stream. */
  async #fill(cap: number): Promise<boolean> {
    if (this.#start > 0 && this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buf.length) {
      const live = this.#end - this.#start;
      if (live >= cap) throw new ProtocolError(`upstream sent more than ${cap} bytes of head`);
      if (live * 2 > this.#buf.length) {
        const next = new Uint8Array(this.#buf.length * 2);
        next.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = next;
      } else this.#buf.copyWithin(0, this.#start, this.#end);
      this.#start = 0;
      this.#end = live;
    }
    const n = await this.#conn.read(this.#buf.subarray(this.#end));
    if (n === null) return false;
    this.#end += n;
    this.received += n;
    return true;
  }

  /** A line ending in LF (CR stripped), bounded by `cap`; null at end of stream. */
  async line(cap = MAX_LINE_BYTES): Promise<string | null> {
    let from = this.#start;
    for (;;) {
      const i = this.#buf.subarray(from, this.#end).indexOf(10);
      if (i >= 0) {
        const endAt = from + i;
        const text = latin1.decode(this.#buf.subarray(this.#start, endAt));
        this.#start = endAt + 1;
        return text.endsWith("\r") ? text.slice(0, -1) : text;
      }
      if (this.#end - this.#start > cap) {
        throw new ProtocolError(`upstream sent a line longer than ${cap} bytes`);
      }
      from = this.#end;
      const startBefore = this.#start;
      if (!await this.#fill(cap + 2)) return null;
      from -= startBefore - this.#start; // the buffer may have moved
    }
  }

  /**
   * The next response head, skipping interim (1xx) ones; null when the connection ended
   * before any byte of it.
   */
  async head(): Promise<ResponseHead | null> {
    for (;;) {
      const head = await this.#oneHead();
      if (head === null || head.status >= 200 || head.status === 101) return head;
    }
  }

  async #oneHead(): Promise<ResponseHead | null> {
    // The whole head is buffered first (one scan for the blank line), then parsed without
    // awaiting per line: one string for the head, its lines cut from it.
    let from = this.#start;
    let endAt: number;
    for (;;) {
      endAt = headEnd(this.#buf, from, this.#end);
      if (endAt >= 0) break;
      if (this.#end - this.#start > MAX_HEAD_BYTES) {
        throw new ProtocolError(`upstream response head over ${MAX_HEAD_BYTES} bytes`);
      }
      from = Math.max(this.#start, this.#end - 3);
      const startBefore = this.#start;
      if (!await this.#fill(MAX_HEAD_BYTES + 4)) {
        if (this.#end === this.#start) return null;
        throw new ProtocolError("upstream closed inside a response head");
      }
      from -= startBefore - this.#start; // the buffer may have moved
    }
    if (endAt - this.#start > MAX_HEAD_BYTES) {
      throw new ProtocolError(`upstream response head over ${MAX_HEAD_BYTES} bytes`);
    }
    const text = latin1Text(this.#buf, this.#start, endAt);
    this.#start = endAt;
    return parseHead(text);
  }

  /** Exactly `n` body bytes when all are buffered already (a copy), else null. */
  takeBuffered(n: number): Uint8Array<ArrayBuffer> | null {
    if (this.#end - this.#start < n) return null;
    const out = this.#buf.slice(this.#start, this.#start + n);
    this.#start += n;
    return out;
  }

  /** Exactly `n` body bytes, read straight into the result past what is buffered. */
  async exact(n: number): Promise<Uint8Array<ArrayBuffer>> {
    const out = new Uint8Array(n);
    const have = Math.min(n, this.#end - this.#start);
    out.set(this.#buf.subarray(this.#start, this.#start + have));
    this.#start += have;
    for (let off = have; off < n;) {
      const got = await this.#conn.read(out.subarray(off));
      if (got === null) throw new ProtocolError("upstream closed before the end of the body");
      this.received += got;
      off += got;
    }
    return out;
  }

  /** Up to `max` body bytes: what is buffered, else one socket read; null at end of stream. */
  async chunk(max: number): Promise<Uint8Array | null> {
    if (this.#end > this.#start) {
      const n = Math.min(max, this.#end - this.#start);
      const out = this.#buf.slice(this.#start, this.#start + n);
      this.#start += n;
      return out;
    }
    const buf = new Uint8Array(Math.min(max, READ_BYTES));
    const n = await this.#conn.read(buf);
    if (n === null) return null;
    this.received += n;
    return buf.subarray(0, n);
  }
}

/**
 * Index just past the blank line ending a head in `buf[from, end)` (LF LF or CRLF CRLF, bare
 * LFs accepted), or -1 when it is not there yet.
 */
function headEnd(buf: Uint8Array, from: number, end: number): number {
  for (let i = from; i < end; i++) {
    if (buf[i] !== 10) continue;
    if (i + 1 < end && buf[i + 1] === 10) return i + 2;
    if (i + 2 < end && buf[i + 1] === 13 && buf[i + 2] === 10) return i + 3;
  }
  return -1;
}

const ascii = new TextDecoder();

/**
 * `buf[start, end)` as a latin1 string (byte n is U+00nn). An all-ASCII head (the usual case)
 * is one decoder call that allocates only the string; other heads go through
 * `String.fromCharCode`, which copies the bytes into an argument list first. (The `latin1`
 * decoder cannot serve: it is windows-1252, which maps 0x80-0x9F elsewhere.)
 */
function latin1Text(buf: Uint8Array, start: number, end: number): string {
  let i = start;
  while (i < end && buf[i] < 0x80) i++;
  if (i === end) return ascii.decode(buf.subarray(start, end));
  let out = "";
  for (let i = start; i < end; i += 8192) {
    out += String.fromCharCode.apply(null, buf.subarray(i, Math.min(end, i + 8192)) as never);
  }
  return out;
}

/** Whether UTF-16 code unit `c` (of a latin1 string) is JavaScript whitespace (`\s`, `trim`). */
function isSpace(c: number): boolean {
  return (c >= 9 && c <= 13) || c === 32 || c === 160;
}

/**
 * A response head's text (through its blank line) parsed; throws ProtocolError. Each header
 * line is scanned in place: only its name and trimmed value are cut from the text.
 */
function parseHead(text: string): ResponseHead {
  let nl = text.indexOf("\n");
  const startLine = stripCr(text.slice(0, nl));
  const m = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/.exec(startLine);
  if (m === null) {
    throw new ProtocolError(`upstream sent a bad status line: ${JSON.stringify(startLine)}`);
  }
  const headers: [string, string][] = [];
  for (;;) {
    const from = nl + 1;
    nl = text.indexOf("\n", from);
    const end = nl > from && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl; // without its CR
    if (end === from) break;
    if (headers.length >= MAX_HEADERS) {
      throw new ProtocolError(
        `upstream response head over ${MAX_HEAD_BYTES} bytes or ${MAX_HEADERS} fields`,
      );
    }
    let colon = text.indexOf(":", from);
    if (colon >= end) colon = -1;
    let bad = colon <= from || text.charCodeAt(from) === 32 || text.charCodeAt(from) === 9;
    for (let i = from; !bad && i < colon; i++) bad = isSpace(text.charCodeAt(i));
    if (bad) {
      throw new ProtocolError(
        `upstream sent a bad header line: ${JSON.stringify(text.slice(from, end))}`,
      );
    }
    let vs = colon + 1;
    let ve = end;
    while (vs < ve && isSpace(text.charCodeAt(vs))) vs++;
    while (ve > vs && isSpace(text.charCodeAt(ve - 1))) ve--;
    headers.push([text.slice(from, colon).toLowerCase(), text.slice(vs, ve)]);
  }
  return { minor: m[1] === "1" ? 1 : 0, status: Number(m[2]), reason: m[3] ?? "", headers };
}

function stripCr(l: string): string {
  return l.endsWith("\r") ? l.slice(0, -1) : l;
}

/** How a response body is delimited (RFC 9112 §6.3). */
export type Framing =
  | { kind: "none" }
  | { kind: "length"; length: number }
  | { kind: "chunked" }
  | { kind: "close" };

/** The framing of a response to a request of `method`. */
export function responseFraming(method: string, head: ResponseHead): Framing {
  const s = head.status;
  if (method === "HEAD" || s === 204 || s === 304 || s < 200) return { kind: "none" };
  let te: string | null = null;
  let length: string | null = null;
  let conflict: string | null = null;
  for (const [n, v] of head.headers) {
    if (n === "transfer-encoding") te = te === null ? v : `${te},${v}`;
    else if (n === "content-length") {
      for (const part of v.split(",")) {
        const x = part.trim();
        if (length === null) length = x;
        else if (x !== length) conflict ??= `${length}, ${x}`;
      }
    }
  }
  // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3), however bad that is.
  if (te !== null && te !== "") {
    const last = te.split(",").map((x) => x.trim().toLowerCase()).filter((x) => x !== "").at(-1);
    return last === "chunked" ? { kind: "chunked" } : { kind: "close" };
  }
  if (length === null) return { kind: "close" };
  if (conflict !== null || !/^\d{1,15}$/.test(length)) {
    throw new ProtocolError(`upstream sent a bad Content-Length: ${conflict ?? length}`);
  }
  return { kind: "length", length: Number(length) };
}

/**
 * How a body stream ended: `reuse` where its framing says (the connection may carry another
 * response), `end` at the close of the connection (a close-delimited body), `error` (the
 * server broke the framing or the connection), `cancel` (the consumer stopped reading).
 */
export type BodyEnd = "reuse" | "end" | "error" | "cancel";

/** A pull stream of a body in `framing` read through `r`; `done` is called once (see {@link BodyEnd}). */
export function bodyStream(
  r: BufReader,
  framing: Framing,
  done: (how: BodyEnd) => void,
  onChunk: () => void = () => {},
): ReadableStream<Uint8Array> {
  let finished = false;
  const finish = (how: BodyEnd) => {
    if (!finished) {
      finished = true;
      done(how);
    }
  };
  let left = framing.kind === "length" ? framing.length : 0; // bytes left (chunk or body)
  let chunkEnd = false; // chunked: the body's last chunk was read
  const nextChunkSize = async (first: boolean): Promise<void> => {
    if (!first) {
      const crlf = await r.line();
      if (crlf !== "") throw new ProtocolError("upstream chunk not followed by CRLF");
    }
    const l = await r.line();
    if (l === null) throw new ProtocolError("upstream closed inside a chunked body");
    const m = /^([0-9a-fA-F]{1,13})[ \t]*(;.*)?$/.exec(l);
    if (m === null) throw new ProtocolError(`upstream sent a bad chunk size: ${JSON.stringify(l)}`);
    left = parseInt(m[1], 16);
    if (left === 0) {
      for (let n = 0;; n++) { // trailers: dropped (hop-by-hop for us)
        const t = await r.line();
        if (t === null) throw new ProtocolError("upstream closed inside chunked trailers");
        if (t === "") break;
        if (n >= MAX_HEADERS) throw new ProtocolError("upstream sent too many trailers");
      }
      chunkEnd = true;
    }
  };
  let firstChunk = true;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      try {
        if (framing.kind === "none" || (framing.kind === "length" && left === 0)) {
          finish("reuse");
          c.close();
          return;
        }
        if (framing.kind === "chunked") {
          if (left === 0) {
            await nextChunkSize(firstChunk);
            firstChunk = false;
          }
          if (chunkEnd) {
            finish("reuse");
            c.close();
            return;
          }
        }
        const max = framing.kind === "close" ? READ_BYTES : left;
        const b = await r.chunk(max);
        onChunk();
        if (b === null) {
          if (framing.kind === "close") {
            finish("end");
            c.close();
            return;
          }
          throw new ProtocolError("upstream closed before the end of the body");
        }
        if (framing.kind !== "close") left -= b.length;
        c.enqueue(b);
        if (framing.kind === "length" && left === 0) {
          finish("reuse");
          c.close();
        }
      } catch (e) {
        finish("error");
        c.error(e);
      }
    },
    cancel() {
      finish("cancel");
    },
  }, { highWaterMark: 0 });
}

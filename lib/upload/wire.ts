/**
 * The upload and replication wire format, in one module so another encoding (Protobuf) can
 * replace it: newline-delimited JSON, `application/x-ndjson`.
 *
 * - line 1, the header: `{"name", "contentType", "size", "sha256", "mtime", "meta", ...}` (an
 *   {@link ObjectHeader}; replication adds `version` and, for a delete, `deleted: true`);
 * - then one line per chunk: `{"offset": N, "data": "BASE64"}`, in order, covering
 *   `0..size` without gaps;
 * - then `{"end": true}`. A stream that stops before it is truncated: nothing is stored.
 *
 * Each chunk is encoded on its own, so neither side ever holds more than one chunk.
 *
 * @example
 * ```ts
 * import { decodeObjectStream, encodeObjectStream } from "./wire.ts";
 * const sha256 = "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4";
 * const header = { name: "a.txt", contentType: "text/plain", size: 2, sha256, mtime: 0, meta: {} };
 * const stream = encodeObjectStream(header, [new TextEncoder().encode("hi")], 1024);
 * const { header: h } = await decodeObjectStream(stream);
 * console.log(h.name); // "a.txt"
 * ```
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { PieceReader } from "../common/bytes.ts";
import {
  base64DecodedLength,
  base64EncodedLength,
  decodeBase64Into,
  encodeBase64Into,
} from "./base64.ts";

/** Media type of the stream. */
export const WIRE_CONTENT_TYPE = "application/x-ndjson";
/** Largest chunk a writer may send: 8 MiB keeps a line (and the memory per upload) small. */
export const MAX_CHUNK_BYTES = 8 * 1024 * 1024;
/**
 * Largest line accepted: a chunk of {@link MAX_CHUNK_BYTES} in base64 (4/3) plus its JSON
 * framing. Bounds what a reader buffers.
 */
export const MAX_LINE_BYTES = Math.ceil(MAX_CHUNK_BYTES * 4 / 3) + 1024;
/** Default chunk: 1 MiB. */
export const DEFAULT_CHUNK_BYTES = 1024 * 1024;
/** Largest header line: name, type and user metadata fit easily in 64 KiB. */
export const MAX_HEADER_LINE = 64 * 1024;

/** A version: hybrid logical time in ms and the id of the node that made it (tie-break). */
export interface Version {
  ts: number;
  node: string;
}

/** What the header line carries. */
export interface ObjectHeader {
  name: string;
  contentType: string;
  size: number;
  sha256: string;
  /** Modification time of the source file, ms since the epoch. */
  mtime: number;
  /** User metadata (`--meta key=value`). */
  meta: Record<string, string>;
  /** Set by the node that accepted the upload (replication only). */
  version?: Version;
  /** A delete (tombstone); no chunks follow. */
  deleted?: boolean;
}

/** A malformed stream: the receiver answers 400 and stores nothing. */
export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WireError";
  }
}

const enc = new TextEncoder();
const NL = 0x0a;
/** Decoded bytes a reusing decoder gathers before handing them on. */
const COALESCE_BYTES = 4 * 1024 * 1024;

/**
 * How an encoding frames an object stream: the header, each chunk (built in a buffer from
 * `lineBuffer`, which may be reused once written) and the end. {@link JSON_FRAMER} is the JSON
 * one; `lib/wire/object_stream_pb.ts` has the Protobuf one.
 */
export interface Framer {
  header(h: ObjectHeader): Uint8Array;
  chunk(
    offset: number,
    bytes: Uint8Array,
    lineBuffer: (n: number) => Uint8Array | Promise<Uint8Array>,
  ): Uint8Array | Promise<Uint8Array>;
  end(): Uint8Array;
}

/** The JSON framing: one line per header, chunk (base64) and end. */
export const JSON_FRAMER: Framer = {
  header: (h) => enc.encode(JSON.stringify(h) + "\n"),
  chunk: (offset, bytes, lineBuffer) => chunkLine(offset, bytes, lineBuffer),
  end: () => enc.encode('{"end":true}\n'),
};

/** Something to read bytes into, like a `Deno.FsFile`: `null` at the end. */
export interface ByteReader {
  read(p: Uint8Array): Promise<number | null>;
}

/**
 * A body to encode: byte pieces of any size, or a {@link ByteReader} (a file), which is read
 * straight into one reused chunk buffer.
 */
export type BodySource = AsyncIterable<Uint8Array> | Iterable<Uint8Array> | ByteReader;

function checkChunkSize(chunkSize: number): void {
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0 || chunkSize > MAX_CHUNK_BYTES) {
    throw new RangeError(
      `Cannot encode: chunkSize must be in 1..${MAX_CHUNK_BYTES}: received ${chunkSize}`,
    );
  }
}

/**
 * Encodes a header and a body (as chunks of at most `chunkSize` bytes) into the wire stream.
 * Every chunk line is a fresh byte array (a stream's reader may keep what it read); to encode
 * with two reused line buffers, see {@link writeObjectStream}.
 */
export function encodeObjectStream(
  header: ObjectHeader,
  body: BodySource,
  chunkSize: number,
  onChunk?: (bytesSoFar: number) => void,
  framer: Framer = JSON_FRAMER,
): ReadableStream<Uint8Array> {
  checkChunkSize(chunkSize);
  return ReadableStream.from(
    encodeLines(header, body, chunkSize, onChunk, (n) => new Uint8Array(n), framer),
  );
}

/**
 * Encodes like {@link encodeObjectStream} but hands each line to `write` and reuses the line
 * buffers: a buffer given to `write` is written again once the promise `write` returned for
 * it has resolved (two chunk lines at most are in flight). So an upload of any size allocates
 * two chunk lines and one chunk, with no garbage per chunk. Resolves when every write has;
 * rejects with the first failure of `write` or of reading `body`.
 */
export async function writeObjectStream(
  header: ObjectHeader,
  body: BodySource,
  chunkSize: number,
  write: (line: Uint8Array) => Promise<void>,
  onChunk?: (bytesSoFar: number) => void,
  framer: Framer = JSON_FRAMER,
): Promise<void> {
  checkChunkSize(chunkSize);
  const slots: { buf: Uint8Array | null; busy: Promise<void> }[] = [
    { buf: null, busy: Promise.resolve() },
    { buf: null, busy: Promise.resolve() },
  ];
  let next = 0;
  let lent: { buf: Uint8Array | null; busy: Promise<void> } | null = null;
  const lineBuffer = async (n: number): Promise<Uint8Array> => {
    const slot = slots[next];
    next ^= 1;
    await slot.busy;
    if (slot.buf === null || slot.buf.length < n) slot.buf = new Uint8Array(n);
    lent = slot;
    return slot.buf.subarray(0, n);
  };
  try {
    for await (const line of encodeLines(header, body, chunkSize, onChunk, lineBuffer, framer)) {
      const done = write(line);
      const slot = lent as { buf: Uint8Array | null; busy: Promise<void> } | null;
      if (slot !== null && slot.buf !== null && line.buffer === slot.buf.buffer) {
        // Reused once this write is over; a failure is seen when the slot is awaited.
        slot.busy = done;
        done.catch(() => {});
        lent = null;
      } else {
        await done; // the header and end lines: small and fresh
      }
    }
  } finally {
    // Never leave a write running on a buffer after returning, even on failure.
    await Promise.allSettled(slots.map((s) => s.busy));
  }
  for (const s of slots) await s.busy;
}

/** The lines of an object; chunk lines are built in buffers from `lineBuffer`. */
async function* encodeLines(
  header: ObjectHeader,
  body: BodySource,
  chunkSize: number,
  onChunk: ((bytesSoFar: number) => void) | undefined,
  lineBuffer: (n: number) => Uint8Array | Promise<Uint8Array>,
  framer: Framer,
): AsyncGenerator<Uint8Array> {
  yield framer.header(header);
  if (header.deleted) {
    yield framer.end();
    return;
  }
  const size = header.size;
  let offset = 0;
  // Pieces smaller than a chunk are gathered in one reused buffer (never more than a chunk);
  // a piece holding a whole chunk is encoded where it is. No strings per chunk.
  let stage: Uint8Array | null = null;
  let fill = 0;
  /** Makes room in `stage`: sized for the declared body, grown towards a chunk if longer. */
  const room = () => {
    if (stage !== null && (fill < stage.length || stage.length >= chunkSize)) return stage;
    const cap = stage === null
      ? (Number.isSafeInteger(size) && size > 0 ? Math.min(chunkSize, size) : chunkSize)
      : Math.min(chunkSize, Math.max(stage.length * 2, 64 * 1024));
    const grown: Uint8Array = new Uint8Array(cap);
    if (stage !== null) grown.set(stage.subarray(0, fill));
    return stage = grown;
  };
  const line = async (bytes: Uint8Array) => {
    const out = framer.chunk(offset, bytes, lineBuffer);
    const l = out instanceof Uint8Array ? out : await out;
    offset += bytes.length;
    onChunk?.(offset);
    return l;
  };
  if ("read" in body && typeof body.read === "function") {
    while (true) {
      const buf = room();
      const n = await body.read(buf.subarray(fill));
      if (n === null) break;
      fill += n;
      if (fill === chunkSize) {
        yield await line(buf);
        fill = 0;
      }
    }
  } else {
    for await (const piece of body as AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
      let pos = 0;
      while (pos < piece.length) {
        if (fill === 0 && piece.length - pos >= chunkSize) {
          yield await line(piece.subarray(pos, pos + chunkSize));
          pos += chunkSize;
          continue;
        }
        const buf = room();
        const n = Math.min(buf.length - fill, piece.length - pos);
        buf.set(piece.subarray(pos, pos + n), fill);
        fill += n;
        pos += n;
        if (fill === chunkSize) {
          yield await line(buf);
          fill = 0;
        }
      }
    }
  }
  if (fill > 0) yield await line(stage!.subarray(0, fill));
  yield framer.end();
}

const LINE_MIDDLE = enc.encode(',"data":"');
const LINE_END = enc.encode('"}\n');

/** `{"offset":N,"data":"BASE64"}\n` as bytes, the base64 written straight into the line. */
function chunkLine(
  offset: number,
  bytes: Uint8Array,
  lineBuffer: (n: number) => Uint8Array | Promise<Uint8Array>,
): Uint8Array | Promise<Uint8Array> {
  const head = enc.encode(`{"offset":${offset}`);
  const n = head.length + LINE_MIDDLE.length + base64EncodedLength(bytes.length) +
    LINE_END.length;
  const fillLine = (line: Uint8Array) => {
    line.set(head, 0);
    line.set(LINE_MIDDLE, head.length);
    let at = head.length + LINE_MIDDLE.length;
    at += encodeBase64Into(bytes, line, at);
    line.set(LINE_END, at);
    return line;
  };
  const out = lineBuffer(n);
  return out instanceof Uint8Array ? fillLine(out) : out.then(fillLine);
}

/**
 * Splits a byte stream into lines (without the newline), each at most `maxLine` bytes. A line
 * inside one piece of the stream is a view of that piece; a line across pieces is gathered
 * into a fresh array, or with `reuse` into one buffer reused for the next such line, and a
 * byte stream is read into one reused buffer (so a line is then valid only until the next is
 * requested).
 */
export async function* readLines(
  stream: ReadableStream<Uint8Array>,
  maxLine: number,
  reuse = false,
): AsyncGenerator<Uint8Array> {
  let acc = new Uint8Array(0);
  let accLen = 0;
  /** Length of the last gathered line: the next is likely as long (grow once, not by doubling). */
  let hint = 0;
  const append = (bytes: Uint8Array) => {
    if (accLen + bytes.length > maxLine) throw new WireError(`line longer than ${maxLine} bytes`);
    if (accLen + bytes.length > acc.length) {
      const grown = new Uint8Array(
        Math.min(maxLine, Math.max(accLen + bytes.length, acc.length * 2, 64 * 1024, hint)),
      );
      grown.set(acc.subarray(0, accLen));
      acc = grown;
    }
    acc.set(bytes, accLen);
    accLen += bytes.length;
  };
  /** The gathered line; the buffer is kept for the next line only when reusing. */
  const take = () => {
    const line = acc.subarray(0, accLen);
    hint = accLen;
    accLen = 0;
    if (!reuse) acc = new Uint8Array(0);
    return line;
  };
  // Reusing: a byte stream is read into one reused buffer (see PieceReader).
  const reader = new PieceReader(stream, reuse);
  try {
    while (true) {
      const value = await reader.next();
      if (value === null) break;
      let start = 0;
      while (true) {
        const nl = value.indexOf(NL, start);
        if (nl < 0) break;
        if (accLen + nl - start > maxLine) {
          throw new WireError(`line longer than ${maxLine} bytes`);
        }
        if (accLen === 0) {
          yield value.subarray(start, nl);
        } else {
          append(value.subarray(start, nl));
          yield take();
        }
        start = nl + 1;
      }
      if (start < value.length) append(value.subarray(start));
    }
    if (accLen > 0) yield take();
  } finally {
    reader.release();
  }
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const LINE_HEAD = enc.encode('{"offset":');
const QUOTE = 0x22;
const CLOSE = 0x7d;

/**
 * The fast path of a chunk line: exactly `{"offset":DIGITS,"data":"BASE64"}` with a valid
 * base64 field gives the offset and where the base64 is; anything else (other key order,
 * spaces, escapes, bad base64, an end line, garbage) gives null, and the line goes through
 * `JSON.parse` and the checks there, so what is accepted and every error message are the
 * same as with `JSON.parse` alone.
 */
function parseChunkLine(
  raw: Uint8Array,
): { offset: number; start: number; end: number; bytes: number } | null {
  const h = LINE_HEAD.length;
  if (raw.length < h + 1 + LINE_MIDDLE.length + 2) return null;
  for (let i = 0; i < h; i++) if (raw[i] !== LINE_HEAD[i]) return null;
  let i = h;
  let offset = 0;
  // A JSON number without sign, fraction or exponent, no leading zero, at most 15 digits
  // (exact as a double).
  while (i < raw.length && raw[i] >= 0x30 && raw[i] <= 0x39 && i - h < 16) {
    offset = offset * 10 + (raw[i] - 0x30);
    i++;
  }
  const digits = i - h;
  if (digits === 0 || digits > 15 || (digits > 1 && raw[h] === 0x30)) return null;
  for (let k = 0; k < LINE_MIDDLE.length; k++, i++) {
    if (raw[i] !== LINE_MIDDLE[k]) return null;
  }
  const start = i;
  const end = raw.length - 2;
  if (end < start || raw[end] !== QUOTE || raw[end + 1] !== CLOSE) return null;
  const bytes = base64DecodedLength(raw, start, end);
  if (bytes < 0) return null;
  return { offset, start, end, bytes };
}
const dec = new TextDecoder();

/**
 * An empty chunk: no encoder sends one, and refusing them bounds the number of chunks (and so
 * the bytes read) by the declared size.
 */
export function emptyChunk(offset: number): WireError {
  return new WireError(`empty chunk at ${offset}: every chunk carries at least one byte`);
}

/**
 * Decodes a wire stream: resolves with the header (parsed JSON, not yet validated: see
 * `validate.ts`) and the body as a stream that errors with a {@link WireError} when a chunk is
 * malformed, out of order, past `header.size`, or when the stream ends before `{"end":true}`.
 *
 * Chunk lines are decoded in place (the body's chunks are views of the input's bytes, which
 * are overwritten). With `reuseBuffers`, a line split across input pieces is gathered into
 * one reused buffer, a byte stream is read with a BYOB reader into one 64 KiB buffer, and
 * decoded chunks are gathered into one buffer of up to 4 MiB: so a body chunk is valid only
 * until the next read of the body. For a consumer that is done with a chunk before reading the
 * next (the store's `putStream`), decoding then allocates nothing per chunk.
 */
export async function decodeObjectStream(
  stream: ReadableStream<Uint8Array>,
  opts: { reuseBuffers?: boolean } = {},
): Promise<{ header: Record<string, unknown>; body: ReadableStream<Uint8Array> }> {
  const lines = readLines(stream, MAX_LINE_BYTES, opts.reuseBuffers ?? false);
  const first = await lines.next();
  if (first.done) throw new WireError("empty body: expected a JSON header line");
  if (first.value.length > MAX_HEADER_LINE) {
    await lines.return(undefined);
    throw new WireError(`header line longer than ${MAX_HEADER_LINE} bytes`);
  }
  let header: unknown;
  try {
    header = JSON.parse(dec.decode(first.value));
  } catch {
    await lines.return(undefined);
    throw new WireError("the first line is not JSON: expected the object header");
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    await lines.return(undefined);
    throw new WireError("the header line must be a JSON object");
  }
  const size = (header as { size?: unknown }).size;
  const reuse = opts.reuseBuffers ?? false;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    let offset = 0;
    let ended = false;
    // Reusing: decoded chunks are gathered into one buffer of up to COALESCE_BYTES and handed
    // on together, so the store makes one file write per few chunks (Deno's async file
    // writes cost time and native memory per call; measured, see docs/notes/upload.md).
    let out: Uint8Array | null = null;
    let outFill = 0;
    for await (const raw of lines) {
      if (ended) throw new WireError("data after the end line");
      const fast = parseChunkLine(raw);
      if (fast !== null) {
        if (fast.offset !== offset) {
          throw new WireError(`chunk out of order: expected offset ${offset}, got ${fast.offset}`);
        }
        if (fast.bytes === 0) throw emptyChunk(offset);
        offset += fast.bytes;
        if (typeof size === "number" && offset > size) {
          throw new WireError(`body longer than the declared size ${size}`);
        }
        if (reuse && out === null) {
          const declared = typeof size === "number" && size >= 0 ? size : COALESCE_BYTES;
          out = new Uint8Array(Math.min(COALESCE_BYTES, declared));
        }
        if (out !== null && fast.bytes <= out.length) {
          if (outFill + fast.bytes > out.length) {
            yield out.subarray(0, outFill);
            outFill = 0;
          }
          outFill += decodeBase64Into(raw, fast.start, fast.end, out, outFill);
          continue;
        }
        if (outFill > 0) {
          yield out!.subarray(0, outFill);
          outFill = 0;
        }
        // The canonical chunk line, decoded in place: no strings, no copy.
        const n = decodeBase64Into(raw, fast.start, fast.end, raw, 0);
        yield raw.subarray(0, n);
        continue;
      }
      if (outFill > 0) {
        yield out!.subarray(0, outFill);
        outFill = 0;
      }
      let line: { offset?: unknown; data?: unknown; end?: unknown };
      try {
        line = JSON.parse(dec.decode(raw));
      } catch {
        throw new WireError(`chunk at ${offset} is not JSON`);
      }
      if (typeof line !== "object" || line === null) {
        throw new WireError(`chunk at ${offset} is not a JSON object`);
      }
      if (line.end === true) {
        ended = true;
        continue;
      }
      if (line.offset !== offset) {
        throw new WireError(`chunk out of order: expected offset ${offset}, got ${line.offset}`);
      }
      if (typeof line.data !== "string" || line.data.length % 4 !== 0 || !BASE64.test(line.data)) {
        throw new WireError(`chunk at ${offset}: data must be a base64 string`);
      }
      const bytes = Buffer.from(line.data, "base64");
      if (bytes.length === 0) throw emptyChunk(offset);
      offset += bytes.length;
      if (typeof size === "number" && offset > size) {
        throw new WireError(`body longer than the declared size ${size}`);
      }
      yield new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    if (!ended) throw new WireError(`body truncated after ${offset} bytes (no end line)`);
  }
  return { header: header as Record<string, unknown>, body: ReadableStream.from(chunks()) };
}

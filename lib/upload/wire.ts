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

/** Encodes a header and a body (as chunks of at most `chunkSize` bytes) into the wire stream. */
export function encodeObjectStream(
  header: ObjectHeader,
  body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  chunkSize: number,
  onChunk?: (bytesSoFar: number) => void,
): ReadableStream<Uint8Array> {
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0 || chunkSize > MAX_CHUNK_BYTES) {
    throw new RangeError(
      `Cannot encode: chunkSize must be in 1..${MAX_CHUNK_BYTES}: received ${chunkSize}`,
    );
  }
  async function* lines(): AsyncGenerator<Uint8Array> {
    yield enc.encode(JSON.stringify(header) + "\n");
    if (header.deleted) {
      yield enc.encode('{"end":true}\n');
      return;
    }
    let offset = 0;
    let pending: Uint8Array[] = [];
    let pendingLen = 0;
    /** Splits what is pending into chunkSize lines, keeping a short tail pending. */
    const flush = function* (): Generator<Uint8Array> {
      let buf = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingLen);
      while (buf.length >= chunkSize) {
        const line = chunkLine(offset, buf.subarray(0, chunkSize));
        offset += chunkSize;
        buf = buf.subarray(chunkSize);
        yield line;
      }
      pending = buf.length > 0 ? [buf] : [];
      pendingLen = buf.length;
    };
    for await (const piece of body) {
      pending.push(piece);
      pendingLen += piece.length;
      if (pendingLen >= chunkSize) {
        for (const line of flush()) {
          onChunk?.(offset);
          yield line;
        }
      }
    }
    if (pendingLen > 0) {
      const buf = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingLen);
      const line = chunkLine(offset, buf);
      offset += buf.length;
      onChunk?.(offset);
      yield line;
    }
    yield enc.encode('{"end":true}\n');
  }
  return ReadableStream.from(lines());
}

function chunkLine(offset: number, bytes: Uint8Array): Uint8Array {
  const b64 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
  return enc.encode(`{"offset":${offset},"data":"${b64}"}\n`);
}

/**
 * Splits a byte stream into lines (without the newline), each at most `maxLine` bytes. Pieces
 * of a line are gathered in a list and joined once, so a long line costs one copy.
 */
export async function* readLines(
  stream: ReadableStream<Uint8Array>,
  maxLine: number,
): AsyncGenerator<Uint8Array> {
  let parts: Uint8Array[] = [];
  let partsLen = 0;
  const reader = stream.getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      let start = 0;
      while (true) {
        const nl = value.indexOf(NL, start);
        if (nl < 0) break;
        if (partsLen + nl - start > maxLine) {
          throw new WireError(`line longer than ${maxLine} bytes`);
        }
        const tail = value.subarray(start, nl);
        yield partsLen === 0 ? tail : Buffer.concat([...parts, tail], partsLen + tail.length);
        parts = [];
        partsLen = 0;
        start = nl + 1;
      }
      if (start < value.length) {
        parts.push(value.subarray(start));
        partsLen += value.length - start;
        if (partsLen > maxLine) throw new WireError(`line longer than ${maxLine} bytes`);
      }
    }
    if (partsLen > 0) yield Buffer.concat(parts, partsLen);
  } finally {
    reader.releaseLock();
  }
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const dec = new TextDecoder();

/**
 * Decodes a wire stream: resolves with the header (parsed JSON, not yet validated: see
 * `validate.ts`) and the body as a stream that errors with a {@link WireError} when a chunk is
 * malformed, out of order, past `header.size`, or when the stream ends before `{"end":true}`.
 */
export async function decodeObjectStream(
  stream: ReadableStream<Uint8Array>,
): Promise<{ header: Record<string, unknown>; body: ReadableStream<Uint8Array> }> {
  const lines = readLines(stream, MAX_LINE_BYTES);
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
  async function* chunks(): AsyncGenerator<Uint8Array> {
    let offset = 0;
    let ended = false;
    for await (const raw of lines) {
      if (ended) throw new WireError("data after the end line");
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

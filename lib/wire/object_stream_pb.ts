/**
 * The object stream (uploads, pushes, pulls) in Protobuf: `Frame` messages of
 * `proto/object.proto`, each preceded by its length as a varint; one header, then chunks in
 * order covering `0..size` (file bytes as raw `bytes`, no base64), then an end. A stream that
 * stops before the end is truncated: nothing is stored. The checks and error messages follow
 * the JSON stream (`lib/upload/wire.ts`): a malformed frame is a {@link WireError}, which a
 * node answers with 400.
 *
 * @example
 * ```ts
 * import { encodeObjectStream } from "../upload/wire.ts";
 * import { decodeObjectStreamPb, PROTOBUF_FRAMER } from "./object_stream_pb.ts";
 * const sha256 = "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4";
 * const header = { name: "a.txt", contentType: "text/plain", size: 2, sha256, mtime: 0, meta: {} };
 * const hi = [new TextEncoder().encode("hi")];
 * const stream = encodeObjectStream(header, hi, 1024, undefined, PROTOBUF_FRAMER);
 * const { header: h } = await decodeObjectStreamPb(stream);
 * console.log(h.name); // "a.txt"
 * ```
 *
 * @module
 */

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  emptyChunk,
  type Framer,
  MAX_CHUNK_BYTES,
  MAX_HEADER_LINE,
  WireError,
} from "../upload/wire.ts";
import { type Frame, FrameSchema } from "./gen/object_pb.ts";
import { headerFromPb, headerToPb } from "./_convert.ts";
import { PieceReader } from "../common/bytes.ts";

/** Largest frame accepted: a chunk of {@link MAX_CHUNK_BYTES} plus its few bytes of tags. */
export const MAX_FRAME_BYTES = MAX_CHUNK_BYTES + 64;
/** Largest header frame, as the JSON header line. */
export const MAX_HEADER_FRAME = MAX_HEADER_LINE;
/** A varint of a frame length takes at most this many bytes (lengths < 2^35). */
const MAX_VARINT_BYTES = 5;

/** Bytes of `n` as a varint. */
export function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

/** Writes `n` as a varint at `at`; returns the position after it. */
function putVarint(out: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[at++] = n;
  return at;
}

/** A message's bytes with its varint length in front. */
function delimited(msg: Uint8Array): Uint8Array {
  const out = new Uint8Array(varintLength(msg.length) + msg.length);
  out.set(msg, putVarint(out, 0, msg.length));
  return out;
}

/** Bytes of a length-prefixed chunk frame: what {@link chunkFrame} writes. */
export function chunkFrameLength(offset: number, size: number): number {
  const inner = (offset > 0 ? 1 + varintLength(offset) : 0) + 1 + varintLength(size) + size;
  const frame = 1 + varintLength(inner) + inner;
  return varintLength(frame) + frame;
}

/**
 * `Frame{chunk: Chunk{offset, data}}` with its length prefix, written straight into a buffer
 * from `lineBuffer` (the bytes copied once, no message object). The same bytes as
 * `toBinary` gives (field order, default offset 0 left out): `tests/wire_pb_test.ts`.
 */
function chunkFrame(
  offset: number,
  bytes: Uint8Array,
  lineBuffer: (n: number) => Uint8Array | Promise<Uint8Array>,
): Uint8Array | Promise<Uint8Array> {
  const inner = (offset > 0 ? 1 + varintLength(offset) : 0) + 1 + varintLength(bytes.length) +
    bytes.length;
  const frame = 1 + varintLength(inner) + inner;
  const n = varintLength(frame) + frame;
  const fill = (out: Uint8Array) => {
    let at = putVarint(out, 0, frame);
    out[at++] = 0x12; // Frame.chunk, length-delimited
    at = putVarint(out, at, inner);
    if (offset > 0) {
      out[at++] = 0x08; // Chunk.offset, varint
      at = putVarint(out, at, offset);
    }
    out[at++] = 0x12; // Chunk.data, length-delimited
    at = putVarint(out, at, bytes.length);
    out.set(bytes, at);
    return out;
  };
  const out = lineBuffer(n);
  return out instanceof Uint8Array ? fill(out) : out.then(fill);
}

const END_FRAME = delimited(toBinary(
  FrameSchema,
  create(FrameSchema, {
    kind: { case: "end", value: {} },
  }),
));

/** The Protobuf framing of an object stream. */
export const PROTOBUF_FRAMER: Framer = {
  header: (h) =>
    delimited(toBinary(
      FrameSchema,
      create(FrameSchema, {
        kind: { case: "header", value: headerToPb(h) },
      }),
    )),
  chunk: chunkFrame,
  end: () => END_FRAME.slice(),
};

/**
 * Splits a byte stream into length-prefixed frames: the first at most `maxFirst` bytes, the
 * others at most `maxRest`, each length checked before a byte of the frame is gathered. A
 * frame inside one piece of the stream is a view of it; one across pieces is gathered into a
 * fresh array, or with `reuse` into one buffer reused for the next such frame, and with `reuse`
 * a byte stream is read into one reused buffer: a frame is then valid only until the next one.
 */
export async function* readFrames(
  stream: ReadableStream<Uint8Array>,
  maxFirst: number,
  maxRest: number,
  reuse = false,
): AsyncGenerator<Uint8Array> {
  // Reusing: a byte stream is read into one reused buffer (see PieceReader; a 1 GiB upload in
  // Protobuf peaked about 12 MiB higher on the receiving node with a fresh array per read).
  const reader = new PieceReader(stream, reuse);
  let piece: Uint8Array = new Uint8Array(0);
  let pos = 0;
  let index = 0;
  let len = 0;
  let lenBytes = 0;
  let need = -1; // bytes of the frame being gathered, -1 while reading a length
  let frame: Uint8Array | null = null;
  let fill = 0;
  let spare: Uint8Array | null = null;
  try {
    while (true) {
      if (pos >= piece.length) {
        const next = await reader.next();
        if (next === null) break;
        piece = next;
        pos = 0;
        continue;
      }
      if (need < 0) {
        const b = piece[pos++];
        len += (b & 0x7f) * 2 ** (7 * lenBytes);
        lenBytes++;
        const max = index === 0 ? maxFirst : maxRest;
        if (len > max || (lenBytes === MAX_VARINT_BYTES && b & 0x80)) {
          throw new WireError(`frame ${index} longer than ${max} bytes`);
        }
        if (b & 0x80) continue;
        need = len;
        len = 0;
        lenBytes = 0;
        if (piece.length - pos >= need) {
          yield piece.subarray(pos, pos + need);
          pos += need;
          need = -1;
          index++;
          continue;
        }
        frame = reuse && spare !== null && spare.length >= need
          ? spare.subarray(0, need)
          : new Uint8Array(need);
        if (reuse && (spare === null || spare.length < need)) spare = frame;
        fill = 0;
        continue;
      }
      const n = Math.min(need - fill, piece.length - pos);
      frame!.set(piece.subarray(pos, pos + n), fill);
      fill += n;
      pos += n;
      if (fill === need) {
        yield frame!;
        need = -1;
        frame = null;
        index++;
      }
    }
    if (need >= 0 || lenBytes > 0) {
      throw new WireError(`body truncated inside frame ${index}`);
    }
  } finally {
    reader.release();
  }
}

/** Parses one frame; a {@link WireError} naming it when it is not a valid `Frame`. */
function parseFrame(raw: Uint8Array, what: string): Frame {
  try {
    return fromBinary(FrameSchema, raw, { readUnknownFields: false });
  } catch (e) {
    throw new WireError(`${what} is not a valid Protobuf Frame: ${(e as Error).message}`);
  }
}

/**
 * `decodeObjectStream` (`lib/upload/wire.ts`) for the Protobuf stream: resolves with the header (as the record
 * a JSON header parses to, not yet validated) and the body, which errors with a
 * {@link WireError} on a malformed or out-of-order frame, a body past `size`, or a stream
 * that ends before the end frame. Chunks are views of the frames; with `reuseBuffers` a frame
 * gathered across reads reuses one buffer, so a chunk is valid only until the next read.
 */
export async function decodeObjectStreamPb(
  stream: ReadableStream<Uint8Array>,
  opts: { reuseBuffers?: boolean } = {},
): Promise<{ header: Record<string, unknown>; body: ReadableStream<Uint8Array> }> {
  const frames = readFrames(stream, MAX_HEADER_FRAME, MAX_FRAME_BYTES, opts.reuseBuffers);
  let header: Record<string, unknown>;
  try {
    const first = await frames.next();
    if (first.done) throw new WireError("empty body: expected a Protobuf header frame");
    const f = parseFrame(first.value, "the first frame");
    if (f.kind.case !== "header") {
      throw new WireError("the first frame must be the object header");
    }
    header = headerFromPb(f.kind.value);
  } catch (e) {
    await frames.return(undefined);
    throw e;
  }
  const size = header.size as number;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    let offset = 0;
    let ended = false;
    for await (const raw of frames) {
      if (ended) throw new WireError("data after the end frame");
      const f = parseFrame(raw, `the frame at ${offset}`);
      switch (f.kind.case) {
        case "chunk": {
          const at = f.kind.value.offset;
          if (at !== BigInt(offset)) {
            throw new WireError(`chunk out of order: expected offset ${offset}, got ${at}`);
          }
          const data = f.kind.value.data;
          if (data.length === 0) throw emptyChunk(offset);
          offset += data.length;
          if (offset > size) throw new WireError(`body longer than the declared size ${size}`);
          yield data;
          break;
        }
        case "end":
          ended = true;
          break;
        case "header":
          throw new WireError(`a second header frame at ${offset}`);
        default:
          throw new WireError(`the frame at ${offset} is neither a chunk nor the end`);
      }
    }
    if (!ended) throw new WireError(`body truncated after ${offset} bytes (no end frame)`);
  }
  return { header, body: ReadableStream.from(chunks()) };
}

/**
 * The object stream in either encoding: JSON (`lib/upload/wire.ts`) or Protobuf
 * (`object_stream_pb.ts`), chosen by the caller (`--wire`) or by a body's `Content-Type`.
 *
 * @module
 */

import {
  type BodySource,
  decodeObjectStream,
  encodeObjectStream,
  type ObjectHeader,
  writeObjectStream,
} from "../upload/wire.ts";
import { decodeObjectStreamPb, PROTOBUF_FRAMER } from "./object_stream_pb.ts";
import type { WireEncoding } from "./encoding.ts";

/** Decodes an object stream in `enc` (see `decodeObjectStream`). */
export function decodeObjectStreamAs(
  enc: WireEncoding,
  stream: ReadableStream<Uint8Array>,
  opts: { reuseBuffers?: boolean } = {},
): Promise<{ header: Record<string, unknown>; body: ReadableStream<Uint8Array> }> {
  return enc === "protobuf" ? decodeObjectStreamPb(stream, opts) : decodeObjectStream(stream, opts);
}

/** Encodes an object stream in `enc` (see `encodeObjectStream`). */
export function encodeObjectStreamAs(
  enc: WireEncoding,
  header: ObjectHeader,
  body: BodySource,
  chunkSize: number,
  onChunk?: (bytesSoFar: number) => void,
): ReadableStream<Uint8Array> {
  return encodeObjectStream(
    header,
    body,
    chunkSize,
    onChunk,
    enc === "protobuf" ? PROTOBUF_FRAMER : undefined,
  );
}

/** Writes an object stream in `enc` into reused buffers (see `writeObjectStream`). */
export function writeObjectStreamAs(
  enc: WireEncoding,
  header: ObjectHeader,
  body: BodySource,
  chunkSize: number,
  write: (frame: Uint8Array) => Promise<void>,
  onChunk?: (bytesSoFar: number) => void,
): Promise<void> {
  return writeObjectStream(
    header,
    body,
    chunkSize,
    write,
    onChunk,
    enc === "protobuf" ? PROTOBUF_FRAMER : undefined,
  );
}

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
import type { WireEncoding } from "./encoding.ts";

/** Decodes an object stream in `enc` (see `decodeObjectStream`). */
export function decodeObjectStreamAs(
  enc: WireEncoding,
  stream: ReadableStream<Uint8Array>,
  opts: { reuseBuffers?: boolean } = {},
): Promise<{ header: Record<string, unknown>; body: ReadableStream<Uint8Array> }> {
  if (enc !== "protobuf") return decodeObjectStream(stream, opts);
  return import("./object_stream_pb.ts").then((pb) => pb.decodeObjectStreamPb(stream, opts));
}

/** The Protobuf framer, loaded on first use (`@bufbuild/protobuf` costs about 12 MiB of RSS). */
async function framerOf(enc: WireEncoding) {
  return enc === "protobuf" ? (await import("./object_stream_pb.ts")).PROTOBUF_FRAMER : undefined;
}

/** Encodes an object stream in `enc` (see `encodeObjectStream`). */
export async function encodeObjectStreamAs(
  enc: WireEncoding,
  header: ObjectHeader,
  body: BodySource,
  chunkSize: number,
  onChunk?: (bytesSoFar: number) => void,
): Promise<ReadableStream<Uint8Array>> {
  return encodeObjectStream(header, body, chunkSize, onChunk, await framerOf(enc));
}

/** Writes an object stream in `enc` into reused buffers (see `writeObjectStream`). */
export async function writeObjectStreamAs(
  enc: WireEncoding,
  header: ObjectHeader,
  body: BodySource,
  chunkSize: number,
  write: (frame: Uint8Array) => Promise<void>,
  onChunk?: (bytesSoFar: number) => void,
): Promise<void> {
  return writeObjectStream(header, body, chunkSize, write, onChunk, await framerOf(enc));
}

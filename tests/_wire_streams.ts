/**
 * Helpers of the object-stream tests (JSON and Protobuf): re-chunking a stream as a network
 * would, collecting one, and a test header for a body.
 *
 * @module
 */

import type { ObjectHeader } from "../lib/upload/wire.ts";
import { sha256 } from "./_upload_cluster.ts";

/** Re-chunks a stream into pieces of the given sizes (cycling), as a network would. */
export function rechunk(bytes: Uint8Array, sizes: number[]): ReadableStream<Uint8Array> {
  const pieces: Uint8Array[] = [];
  for (let off = 0, i = 0; off < bytes.length; i++) {
    const n = sizes[i % sizes.length];
    pieces.push(bytes.slice(off, off + n));
    off += n;
  }
  return ReadableStream.from(pieces);
}

/** Every byte of a stream. */
export async function collect(s: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(s).arrayBuffer());
}

/** A header for `body` (name `dir/file.bin`), with `extra` fields over it. */
export async function header(
  body: Uint8Array,
  extra: Partial<ObjectHeader> = {},
): Promise<ObjectHeader> {
  return {
    name: "dir/file.bin",
    contentType: "application/octet-stream",
    size: body.length,
    sha256: await sha256(body),
    mtime: 1,
    meta: { k: "v" },
    ...extra,
  };
}

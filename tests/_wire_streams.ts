/**
 * Helpers of the object-stream tests (JSON and Protobuf): re-chunking a stream as a network
 * would, collecting one, a test header for a body, and seeded mutations for fuzzing.
 *
 * @module
 */

import type { ObjectHeader } from "../lib/upload/wire.ts";
import { bytesOf, sha256 } from "./_upload_cluster.ts";
import { concatBytes } from "../lib/common/bytes.ts";

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

/** A deterministic generator (LCG): `rand(n)` in 0..n-1; a failure reproduces from its seed. */
export function rng(seed: number): (n: number) => number {
  return (n: number) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
}

/** One random mutation of `src`: flip bits, drop, duplicate, truncate or insert bytes. */
export function mutate(rand: (n: number) => number, src: Uint8Array): Uint8Array {
  const b = src.slice();
  const at = rand(b.length);
  switch (rand(5)) {
    case 0:
      for (let i = 0; i < 1 + rand(4); i++) b[rand(b.length)] ^= 1 << rand(8);
      return b;
    case 1:
      return concatBytes([b.subarray(0, at), b.subarray(at + 1 + rand(16))]);
    case 2:
      return concatBytes([b.subarray(0, at), b.subarray(at, at + rand(32)), b.subarray(at)]);
    case 3:
      return b.subarray(0, at);
    default:
      return concatBytes([b.subarray(0, at), bytesOf(1 + rand(8), rand(1000)), b.subarray(at)]);
  }
}

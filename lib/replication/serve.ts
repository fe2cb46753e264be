/**
 * Serving what a node holds: an uploaded file the cache index had no room for (a cache miss
 * answered from the store with the shared serving code: ranges, conditionals), and one object or tombstone in the wire format for pulls.
 *
 * @module
 */

import type { ObjectStore } from "../store/types.ts";
import { representationOf, serveFromStore } from "../http/serve_body.ts";
import { encodeObjectStreamAs } from "../wire/object_stream.ts";
import type { WireEncoding } from "../wire/encoding.ts";
import { nameToPath } from "../upload/validate.ts";
import { type HeldState, responseHeaders, type VersionedHeader } from "./state.ts";
import { text } from "./_http.ts";

/** Serves an uploaded file the cache index had no room for (a miss), else null. */
export function serveMiss(
  state: HeldState,
  store: ObjectStore,
  req: Request,
  url: string,
): Promise<Response> | null {
  const q = url.indexOf("?");
  const name = state.nameAt(q < 0 ? url : url.slice(0, q));
  if (name === undefined) return null;
  const e = state.get(name)!;
  if (e.deleted) return null;
  const headers = responseHeaders(e);
  headers.push(["x-cache", "PINNED"]);
  const rep = representationOf(200, headers, e.size);
  return serveFromStore(req, store, nameToPath(name), rep, headers).then((res) =>
    res ?? text(503, `${name} is being replaced; try again`)
  );
}

/**
 * The held object or tombstone of `name` as an object stream in `wire`, with its header; null
 * when absent.
 */
export async function exportStream(
  state: HeldState,
  name: string,
  chunkBytes: number,
  wire: WireEncoding,
): Promise<{ header: VersionedHeader; stream: ReadableStream<Uint8Array> } | null> {
  const src = await state.exportSource(name);
  if (src === null) return null;
  const chunks = await encodeObjectStreamAs(wire, src.header, src.body, chunkBytes);
  const stream = ReadableStream.from((async function* () {
    try {
      yield* chunks;
    } finally {
      src.close();
    }
  })());
  return { header: src.header, stream };
}

/**
 * What a cache entry costs in the index: its body, key and headers plus the bookkeeping
 * objects around them, so the budget bounds memory, not only bodies.
 *
 * @module
 */

import { type CacheEntry, FILE_SERVE_THRESHOLD } from "./cache_entry.ts";

/*
 * Index accounting: what an entry costs in memory, so the budget bounds memory, not only
 * bodies (issue 8 item 10). Measured with a 16 MiB cache of 1 KiB objects after a full GC
 * (`Deno.memoryUsage()`): about 2.1 KB of JS objects per entry besides its body (the entry,
 * its header lists, Cache-Control, key and URL bookkeeping), and 1.3 KB plus a copy of the
 * body for the hit template of an entry that was hit (`Response` copies its body).
 */
/** Bytes counted per stored header on top of its name and value: two small pair arrays. */
const HEADER_OVERHEAD_BYTES = 96;
/** Bytes counted per entry for its bookkeeping objects. */
const ENTRY_OVERHEAD_BYTES = 1536;
/** Bytes counted for the hit template of a body held in memory, besides its body copy. */
const TEMPLATE_OVERHEAD_BYTES = 1280;

/** Bytes the index accounts for `entry`. */
export function accountedSize(entry: CacheEntry): number {
  let n = entry.size + 2 * entry.key.length + ENTRY_OVERHEAD_BYTES;
  // A body held in memory is held twice once hit: itself and its hit template's copy.
  if (entry.size < FILE_SERVE_THRESHOLD) n += entry.size + TEMPLATE_OVERHEAD_BYTES;
  for (const [k, v] of entry.headers) n += k.length + v.length + HEADER_OVERHEAD_BYTES;
  return n;
}

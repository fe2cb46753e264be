/**
 * Surrogate keys (tags) of cached responses: the origin's `Surrogate-Key` (space-separated,
 * as Fastly reads it) and `Cache-Tag` (comma-separated, as Cloudflare and Akamai read it)
 * response headers. They are stored with the entry's headers (so they survive a restart with
 * the store), name what a `{"key": K}` purge removes, and are never sent to clients (only to
 * the peers that fill from this replica, with the consumed fields: `CacheEntry.consumed`, so
 * their copies carry the same tags).
 *
 * @module
 */

import type { CacheEntry } from "./cache_entry.ts";
import { CONSUMED_FIELDS } from "./targeted_cc.ts";

/** The tagging response headers (lower case), stripped from client responses. */
export const TAG_HEADERS: ReadonlySet<string> = new Set(["surrogate-key", "cache-tag"]);

/**
 * Whether a stored response field is sent to peers only, never to clients: the targeted
 * field this CDN consumes (targeted_cc.ts) and the tagging headers.
 */
export function peerOnly(name: string): boolean {
  return CONSUMED_FIELDS.has(name) || TAG_HEADERS.has(name);
}

/** The tags of a header list, parsed once per list (entries share theirs until freshened). */
const parsed = new WeakMap<readonly [string, string][], ReadonlySet<string>>();

/** The tags of a stored response's header list. */
export function tagsOf(headers: readonly [string, string][]): ReadonlySet<string> {
  let tags = parsed.get(headers);
  if (tags !== undefined) return tags;
  const out = new Set<string>();
  for (const [n, v] of headers) {
    if (n === "surrogate-key") {
      for (const k of v.split(/\s+/)) if (k !== "") out.add(k);
    } else if (n === "cache-tag") {
      for (const k of v.split(",")) {
        const t = k.trim();
        if (t !== "") out.add(t);
      }
    }
  }
  tags = out;
  parsed.set(headers, tags);
  return tags;
}

/** Whether `entry` is tagged `key` (exact, case-sensitive match). */
export function hasTag(entry: CacheEntry, key: string): boolean {
  return tagsOf(entry.headers).has(key);
}

/**
 * `GET /_cdn/cache?prefix=&limit=&after=`: what a replica holds, by cache key in code-unit
 * order, paged: each entry's key, URL, status, size, age and freshness lifetime in seconds,
 * whether it is fresh now, and its hits (lookups that found it). Listing counts no access (it
 * reads the entries without the index). Admin only: it reveals every URL requested.
 *
 * @module
 */
import { EMPTY_CACHE_CONTROL } from "./cache_control.ts";
import type { HttpCache } from "./cache.ts";
import { evaluateFreshness } from "./freshness.ts";

/** Entries per page by default, and at most. */
export const DEFAULT_LIST_LIMIT = 100;
export const MAX_LIST_LIMIT = 1000;

/** One listed entry. */
export interface ListedEntry {
  key: string;
  url: string;
  status: number;
  size: number;
  ageSeconds: number;
  lifetimeSeconds: number;
  fresh: boolean;
  hits: number;
  pinned: boolean;
}

/** A page of the listing; `next` is the `after` of the next page, null on the last. */
export interface CachePage {
  prefix: string;
  count: number;
  entries: ListedEntry[];
  next: string | null;
}

/**
 * The page of entries whose key starts with `prefix` and sorts after `after`. Throws a
 * `RangeError` for a limit that is not an integer from 1 to {@link MAX_LIST_LIMIT}.
 */
export function listCache(cache: HttpCache, q: URLSearchParams, now: number): CachePage {
  const prefix = q.get("prefix") ?? "";
  const after = q.get("after") ?? "";
  const limitText = q.get("limit");
  const limit = limitText === null ? DEFAULT_LIST_LIMIT : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
    throw new RangeError(
      `limit must be an integer from 1 to ${MAX_LIST_LIMIT}: received ${limitText}`,
    );
  }
  const matching = [];
  for (const e of cache.entries()) {
    if (e.key.startsWith(prefix) && e.key > after) matching.push(e);
  }
  matching.sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
  const page = matching.slice(0, limit);
  return {
    prefix,
    count: matching.length,
    entries: page.map((e) => {
      const f = evaluateFreshness(e, EMPTY_CACHE_CONTROL, now);
      return {
        key: e.key,
        url: e.url,
        status: e.status,
        size: e.size,
        ageSeconds: f.age,
        lifetimeSeconds: e.lifetime,
        fresh: f.state === "fresh",
        hits: e.hits,
        pinned: e.pinned,
      };
    }),
    next: matching.length > limit ? page[page.length - 1].key : null,
  };
}

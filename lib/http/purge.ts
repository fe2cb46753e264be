/**
 * What a purge names and how a node applies it to its own cache: one URL (every variant),
 * every URL under a prefix, or every entry tagged with a surrogate key (the origin's
 * `Surrogate-Key` and `Cache-Tag` response headers, see cache_tags.ts); hard (the entries
 * go) or soft (they are marked stale: the next request revalidates, `stale-while-revalidate`
 * still applies). The admin route (`POST /_cdn/purge`, api.ts) and the signed node-to-node
 * route (`POST /_cdn/purge-peer`, lib/replication/purge.ts) share this.
 *
 * @module
 */

import type { CacheEntry, HttpCache } from "./cache.ts";
import { hasTag } from "./cache_tags.ts";
import type { Metrics } from "./metrics.ts";

/** A purge target: one URL path (with its query), a path prefix or a surrogate key. */
export type PurgeTarget = ({ url: string } | { prefix: string } | { key: string }) & {
  /** Mark stale instead of removing. */
  soft?: boolean;
};

/** Longest surrogate key accepted (Fastly's limit is 1 KiB). */
export const MAX_PURGE_KEY_LENGTH = 1024;

/** How the members of the membership answered a purge pushed to them. */
export interface PurgeFanOut {
  /** Members asked (listed, not this node). */
  asked: number;
  /** Ids of the members that applied it. */
  acknowledged: string[];
  /** Entries each acknowledging member purged, by id. */
  purgedBy: Record<string, number>;
  /**
   * Members that did not, after the retries, with the last error: the purge is queued for
   * them and delivered once they answer a heartbeat again.
   */
  failed: { id: string; url: string; error: string; queued: boolean }[];
}

/** A path (kept) or absolute URL (its path and query), or null when neither. */
function toPath(v: unknown): string | null {
  if (typeof v !== "string" || v === "") return null;
  if (v.startsWith("/")) return v;
  try {
    const u = new URL(v);
    return u.pathname + u.search;
  } catch {
    return null;
  }
}

/** Reads a soft flag: absent or a boolean (a query's "true"/"1" included). */
function softOf(v: unknown): boolean | string {
  if (v === undefined || v === null || v === false || v === "false" || v === "0") return false;
  if (v === true || v === "true" || v === "1" || v === "") return true;
  return `purge "soft" must be true or false: received ${JSON.stringify(v)}`;
}

/**
 * Reads a target from `{"url": ...}`, `{"prefix": ...}` or `{"key": ...}`, each with an
 * optional `"soft": true`; an error message otherwise.
 */
export function purgeTarget(
  v: { url?: unknown; prefix?: unknown; key?: unknown; soft?: unknown },
): PurgeTarget | string {
  const soft = softOf(v.soft);
  if (typeof soft === "string") return soft;
  const s = soft ? { soft: true } : {};
  if (v.url !== undefined) {
    const p = toPath(v.url);
    return p === null ? `purge url must be a path or URL: received ${v.url}` : { url: p, ...s };
  }
  if (v.prefix !== undefined) {
    const p = toPath(v.prefix);
    return p === null
      ? `purge prefix must be a path or URL: received ${v.prefix}`
      : { prefix: p, ...s };
  }
  if (v.key !== undefined) {
    const k = v.key;
    if (typeof k !== "string" || k === "" || /[\s,]/.test(k)) {
      return `purge key must be one surrogate key (no space or comma): received ${
        JSON.stringify(k)
      }`;
    }
    if (k.length > MAX_PURGE_KEY_LENGTH) {
      return `purge key is ${k.length} characters, longer than ${MAX_PURGE_KEY_LENGTH}`;
    }
    return { key: k, ...s };
  }
  return 'purge needs "url", "prefix" or "key"';
}

/** The entries `t` names (pinned ones included; the caller leaves them). */
function targeted(cache: HttpCache, t: PurgeTarget): CacheEntry[] {
  if ("url" in t) return cache.variants(t.url);
  const out: CacheEntry[] = [];
  for (const e of cache.entries()) {
    if ("prefix" in t ? e.url.startsWith(t.prefix) : hasTag(e, t.key)) out.push(e);
  }
  return out;
}

/**
 * Applies `t` to this node's cache at `now` (ms); returns how many entries it removed (hard)
 * or marked stale (soft). Uploaded (pinned) entries are never purged: they change only
 * through uploads and deletes.
 */
export function applyPurge(
  cache: HttpCache,
  metrics: Metrics,
  t: PurgeTarget,
  now: number = Date.now(),
): number {
  let purged = 0;
  if (!t.soft && "url" in t) purged = cache.invalidate(t.url);
  else if (!t.soft && "prefix" in t) purged = cache.purgePrefix(t.prefix);
  else {
    for (const e of targeted(cache, t)) {
      if (e.pinned) continue;
      if (!t.soft) {
        cache.remove(e);
        purged++;
      } else if (cache.expire(e, now)) purged++;
    }
  }
  metrics.purged += purged;
  return purged;
}

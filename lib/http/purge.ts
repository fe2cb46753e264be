/**
 * What a purge names and how a node applies it to its own cache: one URL (every variant) or
 * every URL under a prefix. The admin route (`POST /_cdn/purge`, api.ts) and the signed
 * node-to-node route (`POST /_cdn/purge-peer`, lib/replication/purge.ts) share this.
 *
 * @module
 */

import type { HttpCache } from "./cache.ts";
import type { Metrics } from "./metrics.ts";

/** A purge target: one URL path (with its query) or a path prefix. */
export type PurgeTarget = { url: string } | { prefix: string };

/** How the members of the membership answered a purge pushed to them. */
export interface PurgeFanOut {
  /** Members asked (live, not this node). */
  asked: number;
  /** Ids of the members that applied it. */
  acknowledged: string[];
  /** Members that did not, after the retries, with the last error. */
  failed: { id: string; url: string; error: string }[];
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

/** Reads a target from `{"url": ...}` or `{"prefix": ...}`; an error message otherwise. */
export function purgeTarget(v: { url?: unknown; prefix?: unknown }): PurgeTarget | string {
  if (v.url !== undefined) {
    const p = toPath(v.url);
    return p === null ? `purge url must be a path or URL: received ${v.url}` : { url: p };
  }
  if (v.prefix !== undefined) {
    const p = toPath(v.prefix);
    return p === null ? `purge prefix must be a path or URL: received ${v.prefix}` : { prefix: p };
  }
  return 'purge needs "url" or "prefix"';
}

/** Applies `t` to this node's cache; returns how many entries it removed. */
export function applyPurge(cache: HttpCache, metrics: Metrics, t: PurgeTarget): number {
  const purged = "url" in t ? cache.invalidate(t.url) : cache.purgePrefix(t.prefix);
  metrics.purged += purged;
  return purged;
}

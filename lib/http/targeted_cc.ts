/**
 * Targeted cache-control fields (RFC 9213): the replica's target list is
 * `Nearcast-Cache-Control` (this CDN only), then `CDN-Cache-Control` (every CDN). The first of
 * them with a valid, non-empty Dictionary value sets the caching policy, and `Cache-Control` and
 * `Expires` are then ignored (§2.2). `Nearcast-Cache-Control` is consumed: it is never sent to
 * clients; `CDN-Cache-Control` is passed on for downstream CDNs, as §3 expects by default.
 *
 * @module
 */

import { type CacheControl, EMPTY_CACHE_CONTROL, MAX_DELTA_SECONDS } from "./cache_control.ts";
import { type MemberValue, parseDictionary } from "./structured_fields.ts";

/** This CDN's own targeted field: highest precedence, never forwarded to clients. */
export const NEARCAST_CC = "nearcast-cache-control";
/** RFC 9213 §3's field for every CDN. */
export const CDN_CC = "cdn-cache-control";
/** The replica's target list, most specific first (RFC 9213 §2.2). */
export const TARGET_LIST: readonly string[] = [NEARCAST_CC, CDN_CC];

/** Response headers the replica consumes: dropped from what clients receive. */
export const CONSUMED_FIELDS: ReadonlySet<string> = new Set([NEARCAST_CC]);

const FLAGS: Record<string, keyof CacheControl> = {
  "no-store": "noStore",
  "no-cache": "noCache",
  private: "private",
  public: "public",
  "must-revalidate": "mustRevalidate",
  "proxy-revalidate": "proxyRevalidate",
  "no-transform": "noTransform",
  immutable: "immutable",
  "must-understand": "mustUnderstand",
};

const DELTAS: Record<string, keyof CacheControl> = {
  "max-age": "maxAge",
  "s-maxage": "sMaxAge",
  "stale-while-revalidate": "staleWhileRevalidate",
  "stale-if-error": "staleIfError",
};

/**
 * The directives of a targeted field value, or null when it is empty or not a valid
 * Dictionary (the field is then ignored, §2.1). Directives have Cache-Control's meaning; a
 * flag set to `?0`, or a delta that is not an Integer, counts as absent; a negative delta
 * as 0, one past 2^31 as 2^31; unknown directives are ignored.
 */
export function parseTargeted(value: string): CacheControl | null {
  if (value.trim() === "") return null;
  const dict = parseDictionary(value);
  if (dict === null || dict.size === 0) return null;
  const cc: CacheControl = { ...EMPTY_CACHE_CONTROL };
  const rec = cc as unknown as Record<string, boolean | number | undefined>;
  for (const [name, v] of dict) {
    const flag = FLAGS[name];
    if (flag !== undefined && !isFalse(v)) rec[flag] = true;
    const delta = DELTAS[name];
    if (delta !== undefined && v.type === "integer") {
      rec[delta] = Math.min(Math.max(0, v.value), MAX_DELTA_SECONDS);
    }
  }
  return cc;
}

function isFalse(v: MemberValue): boolean {
  return v.type === "boolean" && !v.value;
}

/**
 * The directives of the first field of {@link TARGET_LIST} in `headers` (lower-case names;
 * repeated lines joined) with a valid, non-empty value, or null when none has one.
 */
export function targetedCacheControl(headers: readonly [string, string][]): CacheControl | null {
  for (const name of TARGET_LIST) {
    let value: string | null = null;
    for (const [n, v] of headers) if (n === name) value = value === null ? v : `${value}, ${v}`;
    if (value === null) continue;
    const cc = parseTargeted(value);
    if (cc !== null) return cc;
  }
  return null;
}

/** `headers` without the fields the replica consumes ({@link CONSUMED_FIELDS}). */
export function withoutConsumed(headers: [string, string][]): [string, string][] {
  return headers.some(([n]) => CONSUMED_FIELDS.has(n))
    ? headers.filter(([n]) => !CONSUMED_FIELDS.has(n))
    : headers;
}

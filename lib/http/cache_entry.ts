/**
 * What the replica's cache stores: the entry record, the response facts and cache key of a
 * response (URL plus the `Vary`-selected request headers), and the store metadata of
 * uploaded (pinned) entries.
 *
 * @module
 */

import type { CacheControl } from "./cache_control.ts";
import { parseCacheControl } from "./cache_control.ts";
import type { ResponseFacts } from "./freshness.ts";
import { NEVER_FORWARDED } from "./forwarding.ts";
import { headerValue } from "./headers.ts";
import { targetedCacheControl } from "./targeted_cc.ts";
import { normaliseVaryValue } from "./vary_key.ts";

/** Version of the metadata JSON written to the store; other versions are skipped at load. */
export const META_VERSION = 1;
/**
 * Bodies of at least this size that the store keeps in a file are not kept in memory after
 * they are stored; hits stream them from the file.
 */
export const FILE_SERVE_THRESHOLD = 1024 * 1024;

/**
 * Request and response time recorded for pinned (uploaded) entries: the largest valid Date.
 * Their resident time is then always 0, so their `Age` stays 0 and they never go stale: the
 * node holding an upload is its origin.
 */
export const PINNED_TIME = 8.64e15;
/** Freshness lifetime of pinned entries, seconds (they are replaced, never revalidated). */
export const PINNED_LIFETIME = 2 ** 31;

/** Bytes backed by a plain ArrayBuffer (what `Response` accepts). */
export type Bytes = Uint8Array<ArrayBuffer>;

/** A function writing a 64-bit hash of `key` into `out[0]` (hi) and `out[1]` (lo). */
export type KeyHasher = (key: string, out: Uint32Array) => void;

/** One cached response. */
export interface CacheEntry {
  /** Full cache key: URL plus the Vary part. */
  readonly key: string;
  /** Path and query. */
  readonly url: string;
  slot: number;
  status: number;
  /** End-to-end headers as received (lower-case names, the origin's Age included). */
  headers: [string, string][];
  /** The body, or null when it is in the store (loaded or streamed on use). */
  body: Bytes | null;
  /** Body length. */
  size: number;
  requestTime: number;
  responseTime: number;
  /** corrected_initial_age, seconds. */
  initialAge: number;
  /** Freshness lifetime, seconds. */
  lifetime: number;
  cc: CacheControl;
  etag: string | null;
  lastModified: string | null;
  date: string | null;
  contentType: string | null;
  /** Lower-case header names of the response's `Vary`. */
  varyNames: string[];
  pinned: boolean;
  /**
   * Whether the body is known good: true when stored by this process or once read back
   * through the store (which checks its hash the first time after open). Entries rebuilt from
   * the store at start-up are not streamed straight from their file until then.
   */
  verified: boolean;
  /**
   * `headers` with our `Via` appended, without the fields the replica consumes: the base of
   * every response built from this entry.
   */
  outHeaders: [string, string][];
  /** The consumed fields of `headers` (`Nearcast-Cache-Control`): sent to peers only. */
  consumed: [string, string][];
  /**
   * The full 200 HIT response for one `Age` value, never sent itself: the hot path sends
   * `hitTemplate.clone()`, which shares the body and copies the header list without
   * re-validating it (several times cheaper than building a Response with headers).
   */
  hitAge: number;
  /** Lookups that found this entry (`HttpCache.get`) since it was stored. */
  hits: number;
  hitTemplate: Response | null;
}

/** The parts of a complete origin response the cache stores. */
export interface ResponseParts {
  status: number;
  headers: [string, string][];
  body: Bytes;
  requestTime: number;
  responseTime: number;
}

/** The metadata JSON of an entry in the store. */
export interface StoredMeta {
  v: number;
  url: string;
  status: number;
  headers: [string, string][];
  requestTime: number;
  responseTime: number;
  initialAge: number;
  lifetime: number;
}

/**
 * Facts of a header list for the freshness functions. A targeted field of the replica's
 * target list (targeted_cc.ts) replaces `Cache-Control` and `Expires` (RFC 9213 §2.2).
 */
export function responseFacts(status: number, headers: readonly [string, string][]): ResponseFacts {
  const targeted = targetedCacheControl(headers);
  return {
    status,
    cc: targeted ?? parseCacheControl(joined(headers, "cache-control")),
    expires: targeted !== null ? null : headerValue(headers, "expires"),
    date: headerValue(headers, "date"),
    lastModified: headerValue(headers, "last-modified"),
    vary: joined(headers, "vary"),
  };
}

/** All values of `name` joined with ", ", or null. */
export function joined(headers: readonly [string, string][], name: string): string | null {
  let out: string | null = null;
  for (const [n, v] of headers) if (n === name) out = out === null ? v : `${out}, ${v}`;
  return out;
}

/** Lower-case names of a `Vary` value. */
export function varyNames(vary: string | null): string[] {
  if (vary === null) return [];
  const names = vary.split(",").map((s) => s.trim().toLowerCase()).filter((s) => s !== "");
  return [...new Set(names)].sort();
}

/**
 * The cache key of a request for `url` under `names` (Vary): the URL alone, or the URL and
 * each named request header's value, normalised ({@link normaliseVaryValue}: list whitespace,
 * and case, order and `q` weights of the content-negotiation headers).
 * Headers a fill never forwards ({@link NEVER_FORWARDED}) count as absent: the origin never
 * sees the client's value.
 */
export function cacheKey(url: string, names: readonly string[], req: Headers): string {
  if (names.length === 0) return url;
  let key = url;
  for (const name of names) {
    const v = NEVER_FORWARDED.has(name) ? null : req.get(name);
    key += `\n${name}:${v === null ? "" : normaliseVaryValue(name, v)}`;
  }
  return key;
}

/**
 * The store metadata of a pinned (uploaded) entry at `url`: the cache's own format, so
 * {@link HttpCache.load} rebuilds it at start-up, plus the caller's `extra` fields.
 */
export function pinnedMeta(
  url: string,
  headers: [string, string][],
  extra: Record<string, unknown>,
): string {
  const meta: StoredMeta = {
    v: META_VERSION,
    url,
    status: 200,
    headers,
    requestTime: PINNED_TIME,
    responseTime: PINNED_TIME,
    initialAge: 0,
    lifetime: PINNED_LIFETIME,
  };
  return JSON.stringify({ ...extra, ...meta });
}

/** What `HttpCache` tells its observer (the image layer); called synchronously. */
export interface CacheEvents {
  stored(entry: CacheEntry): void;
  dropped(entry: CacheEntry): void;
}

/** All `size` bytes of an open file (closed after), or null when it is shorter. */
export async function readWhole(file: Deno.FsFile, size: number): Promise<Bytes | null> {
  try {
    const out = new Uint8Array(size);
    for (let at = 0; at < size;) {
      const n = await file.read(out.subarray(at));
      if (n === null || n === 0) return null;
      at += n;
    }
    return out;
  } finally {
    file.close();
  }
}

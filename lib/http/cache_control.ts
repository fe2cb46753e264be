/**
 * `Cache-Control` directive parsing (RFC 9111 §5.2, RFC 5861). One parser for request and
 * response directives; unknown directives are ignored (§5.2.3).
 *
 * @module
 */

/**
 * Largest delta-seconds value kept (RFC 9111 §1.2.2: a cache receiving a larger value uses
 * 2^31).
 */
export const MAX_DELTA_SECONDS = 2 ** 31;

/** Parsed directives. Absent numeric directives are `undefined`. */
export interface CacheControl {
  noStore: boolean;
  /** `no-cache`, qualified or not (a qualified one is treated as unqualified, §5.2.2.4). */
  noCache: boolean;
  /** `private`, qualified or not (a shared cache does not store either form). */
  private: boolean;
  public: boolean;
  mustRevalidate: boolean;
  proxyRevalidate: boolean;
  noTransform: boolean;
  immutable: boolean;
  onlyIfCached: boolean;
  /** `must-understand` (RFC 9111 §5.2.2.3). */
  mustUnderstand: boolean;
  maxAge?: number;
  sMaxAge?: number;
  /** Request `max-stale`; a bare `max-stale` is `Infinity`. */
  maxStale?: number;
  minFresh?: number;
  staleWhileRevalidate?: number;
  staleIfError?: number;
}

/** The value used for a header with no directives. Frozen; never mutate. */
export const EMPTY_CACHE_CONTROL: Readonly<CacheControl> = Object.freeze({
  noStore: false,
  noCache: false,
  private: false,
  public: false,
  mustRevalidate: false,
  proxyRevalidate: false,
  noTransform: false,
  immutable: false,
  onlyIfCached: false,
  mustUnderstand: false,
});

/**
 * Parses delta-seconds (RFC 9111 §1.2.2): digits only, capped at {@link MAX_DELTA_SECONDS}.
 * An invalid value gives 0, so a broken `max-age` makes the response stale rather than fresh
 * (§4.2.1).
 */
export function parseDeltaSeconds(value: string | undefined): number {
  if (value === undefined || !/^[0-9]+$/.test(value)) return 0;
  const n = Number(value);
  return n > MAX_DELTA_SECONDS ? MAX_DELTA_SECONDS : n;
}

/** Splits a header on commas that are not inside a quoted string. */
function splitDirectives(value: string): string[] {
  const out: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x22 /* " */) quoted = !quoted;
    else if (c === 0x5c /* \ */ && quoted) i++;
    else if (c === 0x2c /* , */ && !quoted) {
      out.push(value.slice(start, i));
      start = i + 1;
    }
  }
  out.push(value.slice(start));
  return out;
}

/**
 * Parses a `Cache-Control` header value (or null). When a directive appears twice, the first
 * occurrence wins (RFC 9111 §4.2.1).
 *
 * @example
 * ```ts
 * import { parseCacheControl } from "./cache_control.ts";
 * const cc = parseCacheControl('public, max-age=60, no-cache="set-cookie"');
 * if (cc.maxAge !== 60 || !cc.noCache) throw new Error("unexpected");
 * ```
 */
export function parseCacheControl(value: string | null): CacheControl {
  if (value === null || value === "") return { ...EMPTY_CACHE_CONTROL };
  const cc: CacheControl = { ...EMPTY_CACHE_CONTROL };
  for (const part of splitDirectives(value)) {
    const eq = part.indexOf("=");
    const name = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (name === "") continue;
    let arg: string | undefined;
    if (eq >= 0) {
      arg = part.slice(eq + 1).trim();
      if (arg.length >= 2 && arg.startsWith('"') && arg.endsWith('"')) arg = arg.slice(1, -1);
    }
    switch (name) {
      case "no-store":
        cc.noStore = true;
        break;
      case "no-cache":
        cc.noCache = true;
        break;
      case "private":
        cc.private = true;
        break;
      case "public":
        cc.public = true;
        break;
      case "must-revalidate":
        cc.mustRevalidate = true;
        break;
      case "proxy-revalidate":
        cc.proxyRevalidate = true;
        break;
      case "no-transform":
        cc.noTransform = true;
        break;
      case "immutable":
        cc.immutable = true;
        break;
      case "only-if-cached":
        cc.onlyIfCached = true;
        break;
      case "must-understand":
        cc.mustUnderstand = true;
        break;
      case "max-age":
        if (cc.maxAge === undefined) cc.maxAge = parseDeltaSeconds(arg);
        break;
      case "s-maxage":
        if (cc.sMaxAge === undefined) cc.sMaxAge = parseDeltaSeconds(arg);
        break;
      case "max-stale":
        if (cc.maxStale === undefined) {
          cc.maxStale = arg === undefined ? Infinity : parseDeltaSeconds(arg);
        }
        break;
      case "min-fresh":
        if (cc.minFresh === undefined) cc.minFresh = parseDeltaSeconds(arg);
        break;
      case "stale-while-revalidate":
        if (cc.staleWhileRevalidate === undefined) {
          cc.staleWhileRevalidate = parseDeltaSeconds(arg);
        }
        break;
      case "stale-if-error":
        if (cc.staleIfError === undefined) cc.staleIfError = parseDeltaSeconds(arg);
        break;
    }
  }
  return cc;
}

/**
 * RFC 9111 storage, freshness and age rules as pure functions. Every time is passed in
 * (milliseconds since the epoch), so tests need no clock and no sleeps.
 *
 * @module
 */

import type { CacheControl } from "./cache_control.ts";
import { parseHttpDate } from "./http_date.ts";

export { parseHttpDate } from "./http_date.ts";

/**
 * Status codes a cache may store and give a heuristic freshness to without explicit
 * freshness information (RFC 9110 §15.1, RFC 9111 §4.2.2). 206 is left out: this cache only
 * stores complete responses and serves ranges from them itself.
 */
export const HEURISTICALLY_CACHEABLE: ReadonlySet<number> = new Set([
  200,
  203,
  204,
  300,
  301,
  308,
  404,
  405,
  410,
  414,
  501,
]);

/**
 * Statuses whose caching requirements this cache implements: a `must-understand` response
 * with one of them is stored even with `no-store`; with any other status it is not stored
 * (RFC 9111 §3, §5.2.2.3).
 */
export const UNDERSTOOD_STATUSES: ReadonlySet<number> = new Set([
  ...HEURISTICALLY_CACHEABLE,
  302,
  303,
  307,
]);

/** Fraction of a response's age since `Last-Modified` used as heuristic lifetime (§4.2.2). */
export const HEURISTIC_FRACTION = 0.1;
/** Cap on a heuristic lifetime: one day, the point past which RFC 7234 required a warning. */
export const HEURISTIC_MAX_SECONDS = 86_400;

/**
 * The `Age` value in seconds (RFC 9111 §5.1): a list value (`7200, 0`, or two `Age` lines,
 * which arrive joined) counts by its first member; a first member that is not a non-negative
 * integer makes the field ignored (0); values past 2^31 are 2^31 (§1.2.2).
 */
export function parseAge(value: string | null): number {
  if (value === null) return 0;
  const comma = value.indexOf(",");
  const first = (comma < 0 ? value : value.slice(0, comma)).trim();
  if (!/^[0-9]+$/.test(first)) return 0;
  return Math.min(Number(first), 2 ** 31);
}

/** The header values storage and freshness depend on. */
export interface ResponseFacts {
  status: number;
  cc: CacheControl;
  /** `Expires` header, raw. */
  expires: string | null;
  /** `Date` header, raw. */
  date: string | null;
  /** `Last-Modified` header, raw. */
  lastModified: string | null;
  /** `Vary` header, raw. */
  vary: string | null;
}

/** Why a response is not stored, or null when it may be stored. */
export function unstorableReason(
  method: string,
  requestCc: CacheControl,
  hasAuthorization: boolean,
  res: ResponseFacts,
): string | null {
  if (method !== "GET") return "method";
  if (res.status < 200 || res.status === 206 || res.status === 304) return "status";
  if (requestCc.noStore) return "request no-store";
  if (res.cc.mustUnderstand) {
    if (!UNDERSTOOD_STATUSES.has(res.status)) return "must-understand";
  } else if (res.cc.noStore) return "no-store";
  if (res.cc.private) return "private";
  if (res.vary !== null && res.vary.split(",").some((v) => v.trim() === "*")) return "vary *";
  // §3.5: a shared cache reuses a response to an authenticated request only when allowed.
  if (
    hasAuthorization && !res.cc.public && !res.cc.mustRevalidate && res.cc.sMaxAge === undefined
  ) {
    return "authorization";
  }
  const explicit = res.cc.public || res.cc.maxAge !== undefined || res.cc.sMaxAge !== undefined ||
    res.expires !== null;
  if (!explicit && !HEURISTICALLY_CACHEABLE.has(res.status)) return "status not cacheable";
  return null;
}

/**
 * Freshness lifetime in seconds (RFC 9111 §4.2.1): `s-maxage`, then `max-age`, then
 * `Expires` minus `Date`, then the `Last-Modified` heuristic (§4.2.2), else 0.
 * `responseTime` stands in for a missing `Date`.
 */
export function freshnessLifetime(res: ResponseFacts, responseTime: number): number {
  if (res.cc.sMaxAge !== undefined) return res.cc.sMaxAge;
  if (res.cc.maxAge !== undefined) return res.cc.maxAge;
  const date = parseHttpDate(res.date) ?? responseTime;
  if (res.expires !== null) {
    const expires = parseHttpDate(res.expires);
    // An invalid Expires (such as "0") means already expired (§5.3).
    return expires === null ? 0 : Math.max(0, Math.floor((expires - date) / 1000));
  }
  if (HEURISTICALLY_CACHEABLE.has(res.status) || res.cc.public) {
    const lm = parseHttpDate(res.lastModified);
    if (lm !== null && lm < date) {
      return Math.min(HEURISTIC_MAX_SECONDS, Math.floor(((date - lm) / 1000) * HEURISTIC_FRACTION));
    }
  }
  return 0;
}

/**
 * `corrected_initial_age` in seconds (RFC 9111 §4.2.3), from the origin's `Age` and `Date`
 * and the times the request was sent and the response received.
 */
export function correctedInitialAge(
  ageHeader: string | null,
  dateHeader: string | null,
  requestTime: number,
  responseTime: number,
): number {
  const ageValue = parseAge(ageHeader);
  const date = parseHttpDate(dateHeader) ?? responseTime;
  const apparentAge = Math.max(0, (responseTime - date) / 1000);
  const responseDelay = Math.max(0, (responseTime - requestTime) / 1000);
  const correctedAgeValue = ageValue + responseDelay;
  return Math.max(apparentAge, correctedAgeValue);
}

/** `current_age` in whole seconds (RFC 9111 §4.2.3). */
export function currentAge(initialAge: number, responseTime: number, now: number): number {
  const residentTime = Math.max(0, (now - responseTime) / 1000);
  return Math.floor(initialAge + residentTime);
}

/** What a cache may do with a stored response for one request. */
export type FreshnessState =
  /** Serve it. */
  | "fresh"
  /** Stale, but the request's `max-stale` accepts it: serve it without contacting the origin. */
  | "stale-ok"
  /** Stale within `stale-while-revalidate`: serve it and revalidate in the background. */
  | "stale-while-revalidate"
  /** Validate with the origin before use. */
  | "revalidate";

/** The verdict of {@link evaluateFreshness}. */
export interface FreshnessVerdict {
  state: FreshnessState;
  /** Current age in seconds. */
  age: number;
  /** Whether a stale copy may stand in if the origin fails (RFC 5861 §4). */
  staleIfError: boolean;
}

/** What {@link evaluateFreshness} needs of a stored response. */
export interface StoredFreshness {
  cc: CacheControl;
  /** Freshness lifetime in seconds. */
  lifetime: number;
  /** corrected_initial_age in seconds. */
  initialAge: number;
  /** When the response was received (ms). */
  responseTime: number;
}

/**
 * Decides whether a stored response can serve a request at `now` (RFC 9111 §4.2, §5.2.1,
 * RFC 5861). A request `max-age=0` always revalidates (as browsers mean it), `no-cache` (or
 * `Pragma: no-cache`, passed as `requestCc.noCache`) too. `must-revalidate`,
 * `proxy-revalidate` and `s-maxage` forbid serving stale (§4.2.4, §5.2.2.2, §5.2.2.10).
 */
export function evaluateFreshness(
  stored: StoredFreshness,
  requestCc: CacheControl,
  now: number,
): FreshnessVerdict {
  const age = currentAge(stored.initialAge, stored.responseTime, now);
  const res = stored.cc;
  const noStale = res.mustRevalidate || res.proxyRevalidate || res.sMaxAge !== undefined ||
    res.noCache;
  const staleness = age - stored.lifetime;
  const sieWindow = Math.max(res.staleIfError ?? -1, requestCc.staleIfError ?? -1);
  const staleIfError = !noStale && sieWindow >= 0 && Math.max(0, staleness) <= sieWindow;
  const verdict = (state: FreshnessState): FreshnessVerdict => ({ state, age, staleIfError });

  if (res.noCache || requestCc.noCache) return verdict("revalidate");
  if (requestCc.maxAge !== undefined && (requestCc.maxAge === 0 || age > requestCc.maxAge)) {
    return verdict("revalidate");
  }
  let fresh = staleness < 0;
  if (fresh && requestCc.minFresh !== undefined && -staleness < requestCc.minFresh) fresh = false;
  if (fresh) return verdict("fresh");
  if (noStale) return verdict("revalidate");
  if (requestCc.maxStale !== undefined && staleness <= requestCc.maxStale) {
    return verdict("stale-ok");
  }
  if (res.staleWhileRevalidate !== undefined && staleness <= res.staleWhileRevalidate) {
    return verdict("stale-while-revalidate");
  }
  return verdict("revalidate");
}

/**
 * Whether a stale stored response may stand in for a failed origin fetch at `now` (RFC 9111
 * §4.2.4, RFC 5861 §4). Never past `no-cache`, `must-revalidate`, `proxy-revalidate` or
 * `s-maxage`. With `stale-if-error` (response or request) its window decides, for any failure
 * including an origin's 5xx (`originAnswered`); without it, only an origin that could not be
 * reached, timed out or dropped the connection, within `defaultWindowSeconds` past expiry
 * (`--stale-on-error`; 0 turns it off).
 */
export function mayServeStaleOnError(
  stored: StoredFreshness,
  requestCc: CacheControl,
  now: number,
  defaultWindowSeconds: number,
  originAnswered: boolean,
): boolean {
  const res = stored.cc;
  if (res.noCache || res.mustRevalidate || res.proxyRevalidate || res.sMaxAge !== undefined) {
    return false;
  }
  const staleness = Math.max(
    0,
    currentAge(stored.initialAge, stored.responseTime, now) - stored.lifetime,
  );
  const sie = Math.max(res.staleIfError ?? -1, requestCc.staleIfError ?? -1);
  if (sie >= 0) return staleness <= sie;
  return !originAnswered && defaultWindowSeconds > 0 && staleness <= defaultWindowSeconds;
}

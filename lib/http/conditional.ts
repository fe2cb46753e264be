/**
 * Conditional requests (RFC 9110 §13) evaluated against a stored response's validators:
 * `If-Match` and `If-Unmodified-Since` (412), `If-None-Match` (weak comparison),
 * `If-Modified-Since`, and `If-Range` (strong comparison).
 *
 * @module
 */

import { parseHttpDate } from "./http_date.ts";

/** Most entity-tags compared from one `If-None-Match`; the rest are ignored. */
export const MAX_ETAGS = 64;

/** A parsed entity-tag. */
export interface ETag {
  weak: boolean;
  /** The opaque tag including its quotes. */
  opaque: string;
}

/** Parses one entity-tag (`"x"` or `W/"x"`); null when malformed. */
export function parseETag(value: string): ETag | null {
  const v = value.trim();
  const weak = v.startsWith("W/");
  const opaque = weak ? v.slice(2) : v;
  if (opaque.length < 2 || !opaque.startsWith('"') || !opaque.endsWith('"')) return null;
  if (opaque.slice(1, -1).includes('"')) return null;
  return { weak, opaque };
}

/** Parses an `If-None-Match`/`If-Match` list: `"*"` or the valid entity-tags. */
export function parseETagList(value: string): "*" | ETag[] {
  if (value.trim() === "*") return "*";
  const out: ETag[] = [];
  for (const part of value.split(",")) {
    if (out.length >= MAX_ETAGS) break;
    const t = parseETag(part);
    if (t !== null) out.push(t);
  }
  return out;
}

/** Weak comparison (RFC 9110 §8.8.3.2): opaque tags equal, weakness ignored. */
export function weakMatch(a: ETag, b: ETag): boolean {
  return a.opaque === b.opaque;
}

/** Strong comparison: both strong and equal. */
export function strongMatch(a: ETag, b: ETag): boolean {
  return !a.weak && !b.weak && a.opaque === b.opaque;
}

/** Validators of a stored response. */
export interface Validators {
  etag: string | null;
  lastModified: string | null;
  /** `Date`, raw: stands in for a missing `Last-Modified` in `If-Modified-Since`. */
  date?: string | null;
  /** When the response was received (ms): stands in for a missing `Date` too. */
  responseTime?: number;
}

/**
 * Whether a request's preconditions fail, so it is answered 412 Precondition Failed (RFC 9110
 * §13.2.2, steps 1 and 2): `If-Match` holds when it is `*` or lists an entity-tag that matches
 * the representation's strongly (§13.1.1; a weak or missing `ETag` never does); without
 * `If-Match`, `If-Unmodified-Since` fails when `Last-Modified` is later than its date, and is
 * ignored when it is not a valid HTTP-date or there is no `Last-Modified` (§13.1.4).
 */
export function preconditionFails(
  ifMatch: string | null,
  ifUnmodifiedSince: string | null,
  v: Validators,
): boolean {
  if (ifMatch !== null) {
    const list = parseETagList(ifMatch);
    if (list === "*") return false;
    const tag = v.etag === null ? null : parseETag(v.etag);
    return tag === null || !list.some((t) => strongMatch(t, tag));
  }
  if (ifUnmodifiedSince === null) return false;
  const since = parseHttpDate(ifUnmodifiedSince);
  const modified = parseHttpDate(v.lastModified);
  return since !== null && modified !== null && modified > since;
}

/**
 * Whether a GET/HEAD with these conditional headers is answered 304 Not Modified from the
 * stored response (RFC 9110 §13.2.2: `If-None-Match` first; `If-Modified-Since` only when
 * there is no `If-None-Match`, compared with `Last-Modified`, else `Date`, else the time the
 * response was received, as RFC 9111 §4.3.2 asks of a cache).
 */
export function isNotModified(
  ifNoneMatch: string | null,
  ifModifiedSince: string | null,
  v: Validators,
): boolean {
  if (ifNoneMatch !== null) {
    const list = parseETagList(ifNoneMatch);
    if (list === "*") return true;
    const tag = v.etag === null ? null : parseETag(v.etag);
    if (tag === null) return false;
    return list.some((t) => weakMatch(t, tag));
  }
  if (ifModifiedSince === null) return false;
  const since = parseHttpDate(ifModifiedSince);
  if (since === null) return false;
  // RFC 9111 §4.3.2: without Last-Modified, the stored Date, else the time it was received.
  const modified = v.lastModified !== null
    ? parseHttpDate(v.lastModified)
    : parseHttpDate(v.date ?? null) ?? v.responseTime ?? null;
  return modified !== null && modified <= since;
}

/**
 * Whether an `If-Range` condition holds, so the `Range` is honoured (RFC 9110 §13.1.5): an
 * entity-tag must match strongly; a date must equal `Last-Modified` exactly, and that
 * `Last-Modified` must be strong (at least one second before `Date`, §8.8.2.2).
 */
export function ifRangeHolds(ifRange: string | null, v: Validators, date: string | null): boolean {
  if (ifRange === null) return true;
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith("W/")) {
    const want = parseETag(value);
    const have = v.etag === null ? null : parseETag(v.etag);
    return want !== null && have !== null && strongMatch(want, have);
  }
  const when = parseHttpDate(value);
  const lm = parseHttpDate(v.lastModified);
  const dateMs = parseHttpDate(date);
  if (when === null || lm === null || when !== lm) return false;
  return dateMs !== null && dateMs - lm >= 1000;
}

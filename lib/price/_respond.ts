/**
 * Response helpers of the pricing service: JSON bodies, quoted ETags, the global version
 * header on every answer, and ETag matching for `If-Match` / `If-None-Match` (RFC 9110 §13.1).
 *
 * @module
 */
import { ownError } from "../common/error_body.ts";

/** Header carrying the global version on every response of the service. */
export const VERSION_HEADER = "nearcast-price-version";

/** A strong entity tag for a version. */
export function etag(version: number | string): string {
  return `"${version}"`;
}

/** A JSON response (no body for 304), never cached without revalidation. */
export function json(
  status: number,
  body: unknown,
  version: number,
  headers: Record<string, string> = {},
): Response {
  const h = new Headers(headers);
  h.set(VERSION_HEADER, String(version));
  h.set("cache-control", "no-cache");
  if (status === 304 || status === 204) return new Response(null, { status, headers: h });
  h.set("content-type", "application/json");
  return new Response(JSON.stringify(body) + "\n", { status, headers: h });
}

/** A JSON error `{"error", "field"?}`. */
export function error(status: number, message: string, version: number, field?: string): Response {
  const body = field === undefined ? { error: message } : { error: message, field };
  return ownError(json(status, body, version), message);
}

/**
 * Whether an `If-Match` (strong comparison) or `If-None-Match` (`weak`: `W/"..."` compares by
 * its opaque part) value matches `tag` (null: the resource is absent). `*` matches any present
 * resource.
 */
export function tagMatches(header: string, tag: string | null, weak = false): boolean {
  if (tag === null) return false;
  if (header.trim() === "*") return true;
  return header.split(",").some((t) => (weak ? t.trim().replace(/^W\//, "") : t.trim()) === tag);
}

/**
 * Header handling for a proxy: hop-by-hop removal (RFC 9110 §7.6.1), `Via` (§7.6.3), and the
 * headers a 304 may not replace when freshening a stored response (RFC 9111 §3.2).
 *
 * @module
 */

/** Hop-by-hop headers, never forwarded nor stored (RFC 9110 §7.6.1, plus `Proxy-*`). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
]);

/** Headers a cache adds or computes itself, so stored copies never carry them. */
export const CACHE_OWNED: ReadonlySet<string> = new Set(["age", "x-cache"]);

/** Headers a 304 does not update in a stored response (RFC 9111 §3.2). */
export const NOT_UPDATED_BY_304: ReadonlySet<string> = new Set([
  "content-length",
  "content-encoding",
  "content-type",
  "content-range",
  "transfer-encoding",
]);

/** Whether `name` (lower case) is hop-by-hop, by the list or by `Connection`. */
function isHopByHop(name: string, connectionNamed: ReadonlySet<string>): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith("proxy-") || connectionNamed.has(name);
}

/** The header names listed in a `Connection` header, lower case. */
export function connectionNamed(headers: Headers): Set<string> {
  const v = headers.get("connection");
  const out = new Set<string>();
  if (v === null) return out;
  for (const part of v.split(",")) {
    const n = part.trim().toLowerCase();
    if (n !== "") out.add(n);
  }
  return out;
}

/**
 * Copies `headers` without hop-by-hop ones and without the names in `drop` (lower case).
 * The result is a list of `[name, value]` with lower-case names, in the input order.
 */
export function endToEnd(
  headers: Headers,
  drop: ReadonlySet<string> = CACHE_OWNED,
): [string, string][] {
  const named = connectionNamed(headers);
  const out: [string, string][] = [];
  for (const [name, value] of headers) {
    if (isHopByHop(name, named) || drop.has(name)) continue;
    out.push([name, value]);
  }
  return out;
}

/** `Via` after adding our hop to an existing value (or null). */
export function appendVia(existing: string | null, ours: string): string {
  return existing === null || existing.trim() === "" ? ours : `${existing}, ${ours}`;
}

/**
 * Merges the headers of a 304 into stored ones (RFC 9111 §3.2): each header in the 304
 * replaces all stored values of that name, except the ones in {@link NOT_UPDATED_BY_304}.
 */
export function freshenHeaders(
  stored: readonly [string, string][],
  update: readonly [string, string][],
): [string, string][] {
  const replaced = new Set<string>();
  for (const [name] of update) if (!NOT_UPDATED_BY_304.has(name)) replaced.add(name);
  const out: [string, string][] = stored.filter(([name]) => !replaced.has(name));
  for (const [name, value] of update) if (replaced.has(name)) out.push([name, value]);
  return out;
}

/** The first value of `name` (lower case) in a header list, or null. */
export function headerValue(list: readonly [string, string][], name: string): string | null {
  for (const [n, v] of list) if (n === name) return v;
  return null;
}

/**
 * What the replica sends upstream, by method: the request headers a cache fill forwards (a
 * small allow-list plus the headers the URL's `Vary` names, so that every header the origin
 * sees is either in the cache key or declared by the origin not to matter), and the methods
 * the replica answers itself.
 *
 * @module
 */

import { appendVia, connectionNamed, HOP_BY_HOP } from "./headers.ts";

/** Header marking a request from another replica: answered from the cache only. */
export const PEER_HEADER = "x-nearcast-peer";
/**
 * Header of a peer request to a member of the membership: the asking replica's origin. A
 * replica caching another origin answers 504 (members may front different origins).
 */
export const PEER_ORIGIN_HEADER = "x-nearcast-peer-origin";

/**
 * Request headers a fill (GET to fill the cache, from a peer or the origin) forwards from the
 * client whatever the response's `Vary`: content negotiation headers an origin that uses them
 * names in `Vary`, and `Authorization` (responses to it are stored only as RFC 9111 §3.5
 * allows, and concurrent fills are shared only between equal credentials).
 */
export const FILL_FORWARDED: ReadonlySet<string> = new Set([
  "accept",
  "accept-language",
  "authorization",
]);

/**
 * Request headers a fill never takes from the client, even when `Vary` names them: the
 * replica sets its own (`Accept-Encoding: identity`, its conditionals for revalidation) or
 * they concern this hop only. A `Vary` on one of them keys every request alike.
 */
export const NEVER_FORWARDED: ReadonlySet<string> = new Set([
  "host",
  "via",
  "accept-encoding",
  "content-length",
  "cache-control",
  "pragma",
  "if-none-match",
  "if-modified-since",
  "if-match",
  "if-unmodified-since",
  "if-range",
  "range",
  "x-nearcast-peer",
  "x-nearcast-peer-origin",
  "x-nearcast-coop-fill",
]);

/** `User-Agent` of fills: the client's own is not forwarded (origins vary on it unannounced). */
export const FILL_USER_AGENT = "nearcast";

/**
 * The client headers a fill of a URL whose stored responses vary on `vary` forwards: those in
 * {@link FILL_FORWARDED} or named by `vary`, never hop-by-hop ones nor {@link NEVER_FORWARDED}.
 * The cache keys the response by these (a header `Vary` names but the origin did not see is
 * keyed as absent).
 */
export function fillForwarded(req: Headers, vary: readonly string[]): Headers {
  const out = new Headers();
  const named = connectionNamed(req);
  for (const [name, value] of req) {
    if (!FILL_FORWARDED.has(name) && !vary.includes(name)) continue;
    if (NEVER_FORWARDED.has(name) || HOP_BY_HOP.has(name) || named.has(name)) continue;
    if (name.startsWith("proxy-")) continue;
    out.append(name, value);
  }
  return out;
}

/** The request headers of a fill: `forwarded` plus our `Via`, identity encoding and agent. */
export function fillRequestHeaders(req: Headers, forwarded: Headers, via: string): Headers {
  const out = new Headers(forwarded);
  out.set("via", appendVia(req.get("via"), via));
  out.set("accept-encoding", "identity");
  out.set("user-agent", FILL_USER_AGENT);
  return out;
}

/**
 * Methods the replica refuses with 501: `fetch` cannot send them (CONNECT tunnels, TRACE
 * and TRACK echo requests back), so they are never forwarded.
 */
export const UNSUPPORTED_METHODS: ReadonlySet<string> = new Set(["CONNECT", "TRACE", "TRACK"]);

/** `Allow` of the replica's own answer to `OPTIONS *`. */
export const SERVER_ALLOW = "GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE";

/**
 * Whether a request is a server-wide `OPTIONS *`. Deno.serve presents `OPTIONS *` with the
 * path `/*`, exactly as it presents `OPTIONS /*`, so both are answered as server-wide.
 */
export function isServerWideOptions(method: string, url: string): boolean {
  return method === "OPTIONS" && url === "/*";
}

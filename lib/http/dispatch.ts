/**
 * The replica's request dispatch: what each method and target goes to ({@link routeOf}),
 * request limits, and for GET and HEAD the cache lookup (fresh hit, upload, stale with
 * `stale-while-revalidate`, revalidation, `only-if-cached`) before a fill.
 *
 * @module
 */

import { cacheOnlyAnswer } from "./access_log.ts";
import type { HttpCache } from "./cache.ts";
import { type CacheControl, EMPTY_CACHE_CONTROL, parseCacheControl } from "./cache_control.ts";
import type { Filler } from "./fill.ts";
import type { CoopHooks } from "./coop_hooks.ts";
import {
  isServerWideOptions,
  PEER_HEADER,
  PEER_ORIGIN_HEADER,
  SERVER_ALLOW,
  UNSUPPORTED_METHODS,
} from "./forwarding.ts";
import { evaluateFreshness } from "./freshness.ts";
import { API_PREFIX } from "./api.ts";
import { headerSectionError, MAX_URL_LENGTH, requestTarget } from "./limits.ts";
import type { Metrics } from "./metrics.ts";
import type { Responder } from "./respond.ts";

const NO_CACHE_REQUEST: CacheControl = Object.freeze({ ...EMPTY_CACHE_CONTROL, noCache: true });

/**
 * Where a request goes, by method and target, in this order: `unsupported` (CONNECT, TRACE,
 * TRACK: 501), `options` (`OPTIONS *`: 200 with `Allow`), `api` (any other method under
 * {@link API_PREFIX}), `cache` (GET and HEAD), else `forward` (to the origin, invalidating
 * what a success changes).
 */
export type RouteKind = "cache" | "api" | "unsupported" | "options" | "forward";

/** The {@link RouteKind} of a request with `method` for `url` (path and query). */
export function routeOf(method: string, url: string): RouteKind {
  if (UNSUPPORTED_METHODS.has(method)) return "unsupported";
  if (isServerWideOptions(method, url)) return "options";
  if (url.startsWith(API_PREFIX)) return "api";
  if (method === "GET" || method === "HEAD") return "cache";
  return "forward";
}

/** Options of {@link createDispatcher}. */
export interface DispatchOptions {
  cache: HttpCache;
  metrics: Metrics;
  respond: Responder;
  filler: Filler;
  api: (req: Request, url: string) => Response | Promise<Response>;
  forward: (req: Request, url: string) => Promise<Response>;
  /** Asked on a cache miss before peers and origin: a response, or null. */
  onMiss?: (req: Request, url: string) => Response | Promise<Response> | null;
  /** With `--coop`: a member's request it fills (coop_hooks.ts) is served as a miss. */
  coop?: CoopHooks;
  /** This replica's origin base URL: a peer request naming another one gets a 504. */
  originBase?: string;
  now: () => number;
}

/** The replica's request handler. */
export function createDispatcher(
  o: DispatchOptions,
): (req: Request) => Response | Promise<Response> {
  const { cache, metrics, respond, filler, now } = o;

  function handle(req: Request): Response | Promise<Response> {
    metrics.requests++;
    const url = requestTarget(req.url);
    if (url.length > MAX_URL_LENGTH) {
      return respond.text(414, `request target longer than ${MAX_URL_LENGTH} bytes`);
    }
    const method = req.method;
    if ((method !== "GET" && method !== "HEAD") || url.startsWith(API_PREFIX)) {
      // Every path but a fresh hit checks the header section (a hit skips it for speed;
      // Deno.serve's own limits still apply there).
      const tooLarge = headerSectionError(req.headers);
      if (tooLarge !== null) return respond.text(431, tooLarge);
      switch (routeOf(method, url)) {
        case "unsupported":
          return respond.text(501, `${method} is not supported by this replica`);
        case "options":
          return new Response("", {
            headers: { allow: SERVER_ALLOW, "cache-control": "no-store", via: respond.via },
          });
        case "api":
          return o.api(req, url);
        default:
          return o.forward(req, url);
      }
    }

    const h = req.headers;
    const isPeer = h.get(PEER_HEADER) !== null;
    const peerOrigin = isPeer ? h.get(PEER_ORIGIN_HEADER) : null;
    if (peerOrigin !== null && o.originBase !== undefined && peerOrigin !== o.originBase) {
      return respond.text(504, `this replica caches ${o.originBase}, not ${peerOrigin}`);
    }
    const ccHeader = h.get("cache-control");
    let reqCc: CacheControl = EMPTY_CACHE_CONTROL;
    if (ccHeader !== null) reqCc = parseCacheControl(ccHeader);
    else if (h.get("pragma")?.toLowerCase().includes("no-cache")) reqCc = NO_CACHE_REQUEST;

    const key = cache.keyFor(url, h);
    const entry = cache.get(key);
    if (entry !== null) {
      const v = evaluateFreshness(entry, reqCc, now());
      if (v.state === "fresh") {
        metrics.hits++;
        return respond.entry(req, entry, "HIT", v.age);
      }
      if (entry.pinned) {
        // An upload: this node is its origin, so a revalidation succeeds at once.
        metrics.hits++;
        return respond.entry(req, entry, "HIT", v.age);
      }
      const tooLarge = headerSectionError(h);
      if (tooLarge !== null) return respond.text(431, tooLarge);
      if (!isPeer && v.state !== "revalidate") {
        metrics.stale++;
        if (v.state === "stale-while-revalidate") {
          filler.revalidateInBackground(req, url, key, entry);
        }
        return respond.entry(req, entry, "STALE", v.age);
      }
      if (isPeer || reqCc.onlyIfCached) {
        return cacheOnlyAnswer(
          respond.text(504, "stale in cache and the request allows only cached answers"),
        );
      }
      return filler.serve(req, url, key, reqCc, entry);
    }
    const tooLarge = headerSectionError(h);
    if (tooLarge !== null) return respond.text(431, tooLarge);
    if (o.onMiss !== undefined) {
      const r = o.onMiss(req, url);
      if (r !== null) return r;
    }
    if ((isPeer && !o.coop?.fillsFor(req)) || reqCc.onlyIfCached) {
      return cacheOnlyAnswer(
        respond.text(504, "not in cache and the request allows only cached answers"),
      );
    }
    return filler.serve(req, url, key, reqCc, null);
  }

  return handle;
}

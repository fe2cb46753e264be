/**
 * Forwarding a request the cache does not answer (any method but GET, HEAD, and the ones the
 * replica answers itself) to the origin as it is, and invalidating what a successful unsafe
 * request changes (RFC 9111 §4.4).
 *
 * @module
 */

import type { HttpCache } from "./cache.ts";
import type { Metrics } from "./metrics.ts";
import { FORWARD_DROPPED, originRequestHeaders, originResponseHeaders } from "./origin.ts";
import type { Responder } from "./respond.ts";
import { noteUpstream } from "./access_log.ts";
import { fetchFailure, originFetch } from "./origin_fetch.ts";

/** Options of {@link createForwarder}. */
export interface ForwarderOptions {
  cache: HttpCache;
  metrics: Metrics;
  respond: Responder;
  /** Origin base URL (scheme, host, port). */
  originBase: string;
  /** Time allowed for the origin's response headers, ms. */
  originTimeoutMs: number;
  now: () => number;
  /** The process log (a retry on a new connection is logged). */
  log?: (line: string) => void;
}

/**
 * Path and query of `value` (an absolute or relative URL, e.g. a `Location`) when it is on
 * the request's own origin or on `originBase`, else null.
 */
export function sameOriginPath(
  value: string | null,
  requestUrl: string,
  originBase: string,
): string | null {
  if (value === null) return null;
  try {
    const base = new URL(requestUrl);
    const u = new URL(value, base);
    if (u.origin !== base.origin && u.origin !== originBase) return null;
    return u.pathname + u.search;
  } catch {
    return null;
  }
}

/** Whether a request head announces a body (RFC 9112 §6.3). */
function hasBody(h: Headers): boolean {
  const cl = h.get("content-length");
  return h.has("transfer-encoding") || (cl !== null && cl.trim() !== "0");
}

/** A function forwarding `req` for `url` (path and query) to the origin, streamed back. */
export function createForwarder(
  o: ForwarderOptions,
): (req: Request, url: string) => Promise<Response> {
  const { cache, metrics, respond, originBase, now } = o;
  const originTimeout = o.originTimeoutMs;
  return async function forward(req: Request, url: string): Promise<Response> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new Error("origin timeout")), originTimeout);
    let res: Response;
    const t0 = now();
    try {
      metrics.originRequests++;
      res = await originFetch(
        originBase + url,
        {
          method: req.method,
          headers: originRequestHeaders(req.headers, FORWARD_DROPPED, respond.via),
          // Deno.serve gives a request without a body an empty stream: none is sent then, so
          // an idempotent request can be retried (origin_fetch.ts).
          body: hasBody(req.headers) ? req.body : null,
          redirect: "manual",
          signal: ac.signal,
        },
        (why) => o.log?.(`origin: ${req.method} ${url}: ${why}; retrying once on a new connection`),
      );
      metrics.observeOriginLatency((now() - t0) / 1000);
      noteUpstream(req, (now() - t0) / 1000);
    } catch (e) {
      metrics.originErrors++;
      noteUpstream(req, (now() - t0) / 1000);
      const timedOut = ac.signal.aborted;
      return respond.text(
        timedOut ? 504 : 502,
        timedOut
          ? `origin did not answer within ${originTimeout} ms`
          : `origin unreachable: ${fetchFailure(e)}`,
      );
    } finally {
      clearTimeout(timer);
    }
    // RFC 9111 §4.4: a non-error answer to an unsafe method invalidates the target URI and
    // the Location / Content-Location URIs of the same origin.
    if (res.status < 400) {
      let n = cache.invalidate(url);
      for (const name of ["location", "content-location"]) {
        const path = sameOriginPath(res.headers.get(name), req.url, originBase);
        if (path !== null) n += cache.invalidate(path);
      }
      metrics.purged += n;
    }
    return respond.passThrough(res.status, originResponseHeaders(res), res.body);
  };
}

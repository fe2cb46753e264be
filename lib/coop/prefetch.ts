/**
 * A prefetch: a GET for one URL sent through the replica's own handler, so it takes the path
 * of any miss and is stored the same way, except that it asks the members holding the URL
 * only, never the origin ({@link isPrefetch}: the fill answers it 504 when no member did).
 *
 * @module
 */

import type { HttpCache } from "../http/cache.ts";

/** Base of the prefetch requests' URLs (only their path and query are read). */
const PREFETCH_BASE = "http://prefetch.invalid";

/** The prefetch requests in flight (a client cannot make one: nothing on the wire marks it). */
const prefetches = new WeakSet<Request>();

/** Whether `req` is a prefetch (filled from members only). */
export function isPrefetch(req: Request): boolean {
  return prefetches.has(req);
}

/** Fills `url` through `handler`, reading the answer to its end; true when `cache` holds it. */
export async function prefetchThrough(
  handler: (req: Request) => Response | Promise<Response>,
  cache: HttpCache,
  url: string,
): Promise<boolean> {
  const req = new Request(PREFETCH_BASE + url);
  prefetches.add(req);
  const res = await handler(req);
  if (res.body !== null) { for await (const _ of res.body) { /* read to the end */ } }
  return res.status === 200 && cache.peek(url) !== null;
}

/**
 * A prefetch: a GET for one URL sent through the replica's own handler, so it takes the path
 * of any miss (the members holding the URL first, then the origin) and is stored the same way.
 *
 * @module
 */

import type { HttpCache } from "../http/cache.ts";

/** Base of the prefetch requests' URLs (only their path and query are read). */
const PREFETCH_BASE = "http://prefetch.invalid";

/** Fills `url` through `handler`, reading the answer to its end; true when `cache` holds it. */
export async function prefetchThrough(
  handler: (req: Request) => Response | Promise<Response>,
  cache: HttpCache,
  url: string,
): Promise<boolean> {
  const res = await handler(new Request(PREFETCH_BASE + url));
  if (res.body !== null) { for await (const _ of res.body) { /* read to the end */ } }
  return res.status === 200 && cache.peek(url) !== null;
}

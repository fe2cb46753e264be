/**
 * Variants kept in the replica's own cache and store ({@link CacheVariants}): each variant is a
 * cache entry at a derived URL (the original's, then ` #img:` and the rung: a space, which no request target holds), so it counts
 * against the cache's memory budget, is written through to the store, survives a restart, and a
 * purge by prefix of the original's URL takes it too. The variants of a cached original are
 * ordinary entries (evictable); those of an upload are pinned like the upload. When the original
 * leaves the cache (evicted, purged, replaced, deleted), the image layer calls
 * {@link CacheVariants.dropAll} and every variant of it goes.
 *
 * @module
 */
import type { HttpCache } from "../http/cache.ts";
import { pinnedMeta } from "../http/cache_entry.ts";
import { headerValue } from "../http/headers.ts";
import type { ObjectStore } from "../store/types.ts";
import type { Bytes, VariantStore } from "./variant_store.ts";

/** Response header of a variant entry naming the original's bytes (see `sourceTag`). */
export const SOURCE_HEADER = "x-nearcast-source";
/** What separates an original's URL from its variant's rung in a derived URL. */
export const DERIVED = " #img:";

/** The cache URL of the variant `rung` of the original at `url`. */
export function derivedUrl(url: string, rung: string): string {
  return `${url}${DERIVED}${rung}`;
}

/** Variants in an {@link HttpCache} (and its store, when it has one). */
export class CacheVariants implements VariantStore {
  readonly #cache: HttpCache;
  readonly #store: ObjectStore | null;
  readonly #rungs: readonly string[];

  /** `rungs`: every rung a variant can have (what {@link dropAll} removes). */
  constructor(cache: HttpCache, store: ObjectStore | null, rungs: readonly string[]) {
    this.#cache = cache;
    this.#store = store;
    this.#rungs = rungs;
  }

  async get(url: string, rung: string, tag: string): Promise<Bytes | undefined> {
    const e = this.#cache.get(derivedUrl(url, rung));
    if (e === null || headerValue(e.headers, SOURCE_HEADER) !== tag) return undefined;
    const body = await this.#cache.open(e);
    if (body === null || body instanceof Uint8Array) return body ?? undefined;
    try {
      return new Uint8Array(await new Response(body.readable).arrayBuffer());
    } catch {
      return undefined;
    }
  }

  has(url: string, rung: string, tag: string): boolean {
    const e = this.#cache.peek(derivedUrl(url, rung));
    return e !== null && headerValue(e.headers, SOURCE_HEADER) === tag;
  }

  async put(
    url: string,
    rung: string,
    tag: string,
    bytes: Bytes,
    contentType: string,
    pinned: boolean,
  ): Promise<void> {
    const d = derivedUrl(url, rung);
    const headers: [string, string][] = [
      ["content-type", contentType],
      [SOURCE_HEADER, tag],
      ["cache-control", "max-age=31536000"],
    ];
    if (pinned && this.#store !== null) {
      await this.#store.put(d, pinnedMeta(d, headers, { variantOf: url }), bytes, true);
      if (this.#cache.installPinned(d, headers, bytes.length) === null) this.#store.delete(d);
      return;
    }
    const now = Date.now();
    await this.#cache.put(d, new Headers(), {
      status: 200,
      headers,
      body: bytes,
      requestTime: now,
      responseTime: now,
    });
  }

  /** Removes every variant of the original at `url` (pinned ones and their store rows too). */
  dropAll(url: string): void {
    for (const rung of this.#rungs) {
      const d = derivedUrl(url, rung);
      if (this.#cache.isPinned(d)) {
        this.#cache.removePinned(d);
        this.#store?.delete(d);
      } else this.#cache.invalidate(d);
    }
  }
}

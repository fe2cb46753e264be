/**
 * The copies a cooperating replica holds of objects whose home is another member (kept
 * because they are hot here, or prefetched): at most a byte budget of them, so that most of
 * the cache holds the objects this replica is home for and the group's caches together hold
 * more distinct objects. Past the budget the oldest copy goes, unless it was hit since it
 * was last looked at (a second chance, as in CLOCK): then it moves to the back.
 *
 * @module
 */

import type { HttpCache } from "../http/cache.ts";

/** See the module doc. */
export class Guests {
  #cache: HttpCache;
  #budget: () => number;
  /** URL to the size and hits seen when last looked at (null: not stored yet), oldest first. */
  #held = new Map<string, { size: number; hits: number } | null>();
  #bytes = 0;
  /** Copies whose size is not read yet (stored since). */
  #pending: string[] = [];
  /** Copies removed for the budget. */
  removed = 0;

  constructor(cache: HttpCache, budget: () => number) {
    this.#cache = cache;
    this.#budget = budget;
  }

  /** Copies held (stored or about to be). */
  get count(): number {
    return this.#held.size;
  }

  /** Bytes of the copies held, as last looked at. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether `url` is held as a copy. */
  has(url: string): boolean {
    return this.#held.has(url);
  }

  /** Notes a copy of `url` about to be stored, then trims the older ones to the budget. */
  add(url: string): void {
    this.#forget(url);
    this.#settle(this.#pending);
    this.#pending = [url];
    this.#trim();
    this.#held.set(url, null);
  }

  /** Forgets the copies the cache no longer holds (every round: the cache evicts some). */
  sweep(): void {
    this.#settle([...this.#held.keys()]);
  }

  /** Reads the sizes of `urls` not read yet; forgets those the cache no longer holds. */
  #settle(urls: string[]): void {
    for (const url of urls) {
      const seen = this.#held.get(url);
      if (seen === undefined) continue;
      const e = this.#cache.peek(url);
      if (e === null) this.#forget(url);
      else if (seen === null) {
        const size = this.#cache.accountedBytes(e);
        this.#held.set(url, { size, hits: e.hits });
        this.#bytes += size;
      }
    }
  }

  #forget(url: string): void {
    const seen = this.#held.get(url);
    if (seen === undefined) return;
    this.#held.delete(url);
    if (seen !== null) this.#bytes -= seen.size;
  }

  #trim(): void {
    const budget = this.#budget();
    // Each copy gets at most one second chance per trim.
    let chances = this.#held.size;
    while (this.#bytes > budget && this.#held.size > 0) {
      const [url, seen] = this.#held.entries().next().value!;
      const e = this.#cache.peek(url);
      this.#forget(url);
      if (e === null || seen === null) continue;
      if (e.hits > seen.hits && chances-- > 0) {
        const size = this.#cache.accountedBytes(e);
        this.#held.set(url, { size, hits: e.hits });
        this.#bytes += size;
        continue;
      }
      this.#cache.remove(e);
      this.removed++;
    }
  }
}

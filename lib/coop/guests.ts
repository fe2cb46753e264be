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
  /**
   * URL to the size and hits seen when last looked at, oldest first; null while its fill runs
   * (until {@link done}: a large body takes a while to reach the store, and is not in the
   * cache before, so a sweep must not take it for evicted).
   */
  #held = new Map<string, { size: number; hits: number } | null>();
  #bytes = 0;
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

  /**
   * Notes a copy of `url` about to be stored (its fill runs until {@link done}), after trimming
   * the older ones to the budget.
   */
  add(url: string): void {
    this.#forget(url);
    this.#trim();
    this.#held.set(url, null);
  }

  /**
   * The fill of `url` has ended: its size is counted if the cache now holds it (the next
   * {@link add} trims to the budget), else it is forgotten.
   */
  done(url: string): void {
    if (this.#held.get(url) !== null) return; // not a copy, or counted already
    const e = this.#cache.peek(url);
    if (e === null) {
      this.#held.delete(url);
      return;
    }
    const size = this.#cache.accountedBytes(e);
    this.#held.set(url, { size, hits: e.hits });
    this.#bytes += size;
  }

  /** Forgets the copies the cache no longer holds (every round: the cache evicts some). */
  sweep(): void {
    // Deleting the entry being visited is safe while iterating a Map.
    for (const [url, seen] of this.#held) {
      if (seen !== null && this.#cache.peek(url) === null) this.#forget(url);
    }
  }

  #forget(url: string): void {
    const seen = this.#held.get(url);
    if (seen === undefined) return;
    this.#held.delete(url);
    if (seen !== null) this.#bytes -= seen.size;
  }

  /** Removes the oldest stored copies (not those being filled) until within the budget. */
  #trim(): void {
    const budget = this.#budget();
    // Each copy gets at most one second chance per trim.
    let chances = this.#held.size;
    while (this.#bytes > budget) {
      // The oldest copy stored (those still being filled count from their end).
      let oldest: [string, { size: number; hits: number }] | null = null;
      for (const [url, seen] of this.#held) {
        if (seen !== null) {
          oldest = [url, seen];
          break;
        }
      }
      if (oldest === null) break;
      const [url, seen] = oldest;
      const e = this.#cache.peek(url);
      this.#forget(url);
      if (e === null) continue;
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

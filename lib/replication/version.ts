/**
 * Versions of uploaded names and server-list entries: a hybrid logical clock time in ms and
 * the id of the node that made the change. The larger version wins on every node, so
 * concurrent writes and deletes of one name settle the same way everywhere.
 *
 * @example
 * ```ts
 * import { compareVersions, HybridClock } from "./version.ts";
 * const clock = new HybridClock("a", () => 1000);
 * const v1 = clock.next();
 * const v2 = clock.next(); // same wall time: the logical part moves on
 * console.log(compareVersions(v2, v1) > 0); // true
 * ```
 *
 * @module
 */

import type { Version } from "../upload/wire.ts";
export type { Version } from "../upload/wire.ts";

/** Orders versions by time, then node id; 0 when equal. */
export function compareVersions(a: Version, b: Version): number {
  if (a.ts !== b.ts) return a.ts < b.ts ? -1 : 1;
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0;
}

/**
 * Largest difference between a node's clock and a time it accepts from another node (request
 * signatures, versions): a version further ahead is refused, so one bad message cannot move
 * every clock forward for good.
 */
export const MAX_CLOCK_SKEW_MS = 60_000;

/**
 * A hybrid logical clock: never goes back, never repeats, follows the largest time seen, but
 * never more than {@link MAX_CLOCK_SKEW_MS} ahead of the wall clock.
 */
export class HybridClock {
  #last = 0;
  constructor(readonly node: string, private readonly now: () => number) {}
  /** A version newer than every one made or observed here. */
  next(): Version {
    this.#last = Math.max(Math.floor(this.now()), this.#last + 1);
    return { ts: this.#last, node: this.node };
  }
  /** Records a time seen in another node's version. */
  observe(ts: number): void {
    const bounded = Math.min(ts, Math.floor(this.now()) + MAX_CLOCK_SKEW_MS);
    if (bounded > this.#last) this.#last = bounded;
  }
}

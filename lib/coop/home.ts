/**
 * Who keeps what in a cooperating group: each URL has one home member, chosen by rendezvous
 * (highest random weight) hashing over the live members and this node, so the group's caches
 * hold mostly different objects (together, nearly one cache three times as large for three
 * members); a member keeps a copy of an object whose home is another only when it is hot
 * here ({@link RecentMisses}: asked here again while still remembered).
 *
 * @module
 */

import { fnv1a } from "../http/peer_select.ts";

/** The home of `url` among `ids` (node ids): the one ranked highest for it. */
export function homeOf(url: string, ids: readonly string[]): string {
  let best = "";
  let weight = -1;
  for (const id of ids) {
    const w = fnv1a(`${id}\n${url}`);
    if (w > weight || (w === weight && id < best)) {
      best = id;
      weight = w;
    }
  }
  return best;
}

/**
 * The URLs that missed here lately, the most recent `capacity` (a doorkeeper): a URL that
 * misses again while remembered is hot here.
 */
export class RecentMisses {
  #seen = new Map<string, number>();
  constructor(readonly capacity: () => number) {}

  /** Records a miss of `url`; how many times it missed while remembered, this one included. */
  note(url: string): number {
    const n = (this.#seen.get(url) ?? 0) + 1;
    this.#seen.delete(url);
    this.#seen.set(url, n);
    const cap = this.capacity();
    for (const k of this.#seen.keys()) {
      if (this.#seen.size <= cap) break;
      this.#seen.delete(k);
    }
    return n;
  }

  /** Misses of `url` while remembered (0 when not). */
  count(url: string): number {
    return this.#seen.get(url) ?? 0;
  }
}

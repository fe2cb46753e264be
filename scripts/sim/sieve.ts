/**
 * SIEVE (Zhang et al., NSDI 2024), counted in bytes: one FIFO queue with a visited bit per
 * object; a hit sets the bit; to evict, a hand walks from the tail toward the head, clearing
 * set bits, and evicts the first object whose bit is clear. The hand stays where it stopped.
 *
 * @module
 */
import { countMiss, emptyResult, Lists, type Result, type Trace } from "./_common.ts";

const NONE = -1;

/** Replays `t` through SIEVE with `capacity` bytes. */
export function simulateSieve(t: Trace, capacity: number): Result {
  const r = emptyResult(t);
  const q = new Lists(t.objects, 1);
  const visited = new Uint8Array(t.objects);
  let hand = NONE;
  for (let i = 0; i < t.obj.length; i++) {
    const o = t.obj[i];
    const s = t.size[i];
    if (q.list[o] === 0) {
      visited[o] = 1;
      continue;
    }
    countMiss(r, s);
    if (s > capacity) continue;
    while (q.bytes[0] + s > capacity) {
      let x = hand === NONE ? q.tail[0] : hand;
      while (visited[x]) {
        visited[x] = 0;
        x = q.prev[x] === NONE ? q.tail[0] : q.prev[x];
      }
      hand = q.prev[x];
      q.remove(x);
    }
    q.pushHead(0, o, s);
    visited[o] = 0;
  }
  return r;
}

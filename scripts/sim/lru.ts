/**
 * LRU counted in bytes, as libCacheSim's: a miss inserts at the head and evicts from the tail
 * until the object fits; an object larger than the cache is not inserted.
 *
 * @module
 */
import { countMiss, emptyResult, Lists, type Result, type Trace } from "./_common.ts";

/** Replays `t` through LRU with `capacity` bytes. */
export function simulateLru(t: Trace, capacity: number): Result {
  const r = emptyResult(t);
  const q = new Lists(t.objects, 1);
  for (let i = 0; i < t.obj.length; i++) {
    const o = t.obj[i];
    const s = t.size[i];
    if (q.list[o] === 0) {
      q.moveHead(0, o);
      continue;
    }
    countMiss(r, s);
    if (s > capacity) continue;
    while (q.bytes[0] + s > capacity) q.remove(q.tail[0]);
    q.pushHead(0, o, s);
  }
  return r;
}

/**
 * GDSF, Greedy-Dual-Size-Frequency (Cherkasova, 1998), with unit cost: each cached object has
 * the priority `L + frequency / size`; the least is evicted and `L` becomes its priority (the
 * inflation that ages every object still cached). The frequency counts hits since the object
 * entered and restarts at 1 when it enters again. With equal sizes it is LFU with dynamic
 * aging (GD-LFU).
 *
 * @module
 */
import { countMiss, emptyResult, type Result, type Trace } from "./_common.ts";
import { IndexedHeap } from "./_heap.ts";

/** Replays `t` through GDSF with `capacity` bytes. */
export function simulateGdsf(t: Trace, capacity: number): Result {
  const r = emptyResult(t);
  const heap = new IndexedHeap(t.objects);
  const freq = new Float64Array(t.objects);
  const held = new Float64Array(t.objects);
  let inflation = 0;
  let used = 0;
  for (let i = 0; i < t.obj.length; i++) {
    const o = t.obj[i];
    const s = t.size[i];
    if (heap.has(o)) {
      freq[o]++;
      heap.set(o, inflation + freq[o] / Math.max(held[o], 1), i);
      continue;
    }
    countMiss(r, s);
    if (s > capacity) continue;
    while (used + s > capacity) {
      const v = heap.top();
      inflation = heap.key[v];
      heap.remove(v);
      used -= held[v];
    }
    freq[o] = 1;
    held[o] = s;
    used += s;
    heap.set(o, inflation + 1 / Math.max(s, 1), i);
  }
  return r;
}

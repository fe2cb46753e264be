/**
 * Belady's MIN, counted in bytes: on a miss, evict the cached objects requested furthest in the future, and do
 * not admit the new object when it is itself requested later than all of them. Optimal for
 * equal sizes; with variable sizes it is the classic greedy bound, not the size-aware optimum
 * the reference table's "optimal" column uses.
 *
 * @module
 */
import { countMiss, emptyResult, type Result, type Trace } from "./_common.ts";

/** Replays `t` through Belady's MIN with `capacity` bytes. */
export function simulateBelady(t: Trace, capacity: number): Result {
  const r = emptyResult(t);
  const n = t.obj.length;
  const NEVER = n; // requested never again
  const nextUse = new Int32Array(n);
  const last = new Int32Array(t.objects).fill(NEVER);
  for (let i = n - 1; i >= 0; i--) {
    nextUse[i] = last[t.obj[i]];
    last[t.obj[i]] = i;
  }
  // Max-heap of (next use, object) with lazy deletion: an entry is live when the object is
  // cached and the key equals its current next use.
  const heapKey = new Int32Array(n + 1);
  const heapObj = new Int32Array(n + 1);
  let size = 0;
  const push = (k: number, o: number) => {
    let i = size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (heapKey[p] >= k) break;
      heapKey[i] = heapKey[p];
      heapObj[i] = heapObj[p];
      i = p;
    }
    heapKey[i] = k;
    heapObj[i] = o;
  };
  const pop = () => {
    const k = heapKey[--size];
    const o = heapObj[size];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= size) break;
      if (c + 1 < size && heapKey[c + 1] > heapKey[c]) c++;
      if (heapKey[c] <= k) break;
      heapKey[i] = heapKey[c];
      heapObj[i] = heapObj[c];
      i = c;
    }
    heapKey[i] = k;
    heapObj[i] = o;
  };
  const cachedNext = new Int32Array(t.objects).fill(-1); // -1: not cached
  const held = new Float64Array(t.objects);
  let used = 0;
  /** Drops stale entries so the top is live; returns false when the heap is empty. */
  const clean = () => {
    while (size > 0 && cachedNext[heapObj[0]] !== heapKey[0]) pop();
    return size > 0;
  };
  for (let i = 0; i < n; i++) {
    const o = t.obj[i];
    const s = t.size[i];
    const nu = nextUse[i];
    if (cachedNext[o] >= 0) {
      cachedNext[o] = nu;
      push(nu, o);
      continue;
    }
    countMiss(r, s);
    if (s > capacity || nu === NEVER) continue;
    if (used + s > capacity) {
      if (clean() && heapKey[0] <= nu) continue; // the newcomer is needed last: bypass
      while (used + s > capacity && clean()) {
        const v = heapObj[0];
        pop();
        cachedNext[v] = -1;
        used -= held[v];
      }
    }
    cachedNext[o] = nu;
    held[o] = s;
    used += s;
    push(nu, o);
  }
  return r;
}

/**
 * ARC (Megiddo and Modha, FAST 2003), counted in bytes: T1 (seen once recently) and T2 (seen
 * at least twice) hold objects, the ghosts B1 and B2 their recently evicted keys; the target
 * `p` for T1's bytes grows on a B1 hit and shrinks on a B2 hit, by the object's size times
 * the ghosts' byte ratio (at least once its size). T1 + B1 stay within the capacity, all four
 * within twice it.
 *
 * @module
 */
import { countMiss, emptyResult, Lists, type Result, type Trace } from "./_common.ts";

const T1 = 0;
const T2 = 1;
const B1 = 2;
const B2 = 3;

/** Replays `t` through ARC with `capacity` bytes. */
export function simulateArc(t: Trace, capacity: number): Result {
  const r = emptyResult(t);
  const q = new Lists(t.objects, 4);
  const b = q.bytes;
  let p = 0;
  /** Evicts from T1 or T2 into its ghost until `s` more bytes fit. */
  const replace = (s: number, inB2: boolean) => {
    while (b[T1] + b[T2] + s > capacity) {
      const fromT1 = q.count[T1] > 0 &&
        (b[T1] > p || (inB2 && b[T1] >= p) || q.count[T2] === 0);
      const x = q.tail[fromT1 ? T1 : T2];
      q.moveHead(fromT1 ? B1 : B2, x);
    }
  };
  /** Keeps the ghosts within their directory bounds. */
  const trim = () => {
    while (b[T1] + b[B1] > capacity && q.count[B1] > 0) q.remove(q.tail[B1]);
    while (b[T1] + b[T2] + b[B1] + b[B2] > 2 * capacity && q.count[B2] > 0) {
      q.remove(q.tail[B2]);
    }
  };
  for (let i = 0; i < t.obj.length; i++) {
    const o = t.obj[i];
    const s = t.size[i];
    const l = q.list[o];
    if (l === T1 || l === T2) {
      q.moveHead(T2, o);
      continue;
    }
    countMiss(r, s);
    if (s > capacity) {
      if (l >= 0) q.remove(o);
      continue;
    }
    if (l === B1) {
      p = Math.min(capacity, p + s * Math.max(1, b[B2] / b[B1]));
    } else if (l === B2) {
      p = Math.max(0, p - s * Math.max(1, b[B1] / b[B2]));
    }
    if (l >= 0) q.remove(o);
    replace(s, l === B2);
    q.pushHead(l >= 0 ? T2 : T1, o, s);
    trim();
  }
  return r;
}

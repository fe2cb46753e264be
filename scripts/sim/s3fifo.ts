/**
 * S3-FIFO (Yang et al., SOSP 2023), counted in bytes: a small FIFO (10 % of the bytes) that
 * new objects enter, a main FIFO (the rest) with lazy promotion, and a ghost FIFO of keys
 * evicted from the small queue (as many entries as the main queue holds). Each object has a
 * 2-bit hit counter. The small queue's tail moves to main when it was hit at least twice,
 * else to the ghost; a miss on a ghost key enters main directly; main's tail is reinserted
 * with its counter decremented while the counter is positive.
 *
 * @module
 */
import { countMiss, emptyResult, Lists, type Result, type Trace } from "./_common.ts";

const SMALL = 0;
const MAIN = 1;
const GHOST = 2;
/** Share of the bytes for the small queue (the paper's 10 %). */
const SMALL_SHARE = 0.1;
/** Hits while in the small queue needed to move to main (libCacheSim's default). */
const MOVE_TO_MAIN = 2;
const MAX_FREQ = 3;

/** Replays `t` through S3-FIFO with `capacity` bytes. */
export function simulateS3Fifo(t: Trace, capacity: number): Result {
  const r = emptyResult(t);
  const q = new Lists(t.objects, 3);
  const freq = new Uint8Array(t.objects);
  const smallMax = capacity * SMALL_SHARE;
  const cached = () => q.bytes[SMALL] + q.bytes[MAIN];
  const evictMain = () => {
    for (;;) {
      const x = q.tail[MAIN];
      if (freq[x] > 0) {
        freq[x]--;
        q.moveHead(MAIN, x);
      } else {
        q.remove(x);
        return;
      }
    }
  };
  const evictSmall = () => {
    const x = q.tail[SMALL];
    const size = q.held[x];
    q.remove(x);
    if (freq[x] >= MOVE_TO_MAIN) {
      freq[x] = 0;
      q.pushHead(MAIN, x, size);
      while (cached() > capacity) evictMain();
    } else {
      q.pushHead(GHOST, x, 0);
      while (q.count[GHOST] > Math.max(q.count[MAIN], 1)) q.remove(q.tail[GHOST]);
    }
  };
  for (let i = 0; i < t.obj.length; i++) {
    const o = t.obj[i];
    const s = t.size[i];
    const l = q.list[o];
    if (l === SMALL || l === MAIN) {
      if (freq[o] < MAX_FREQ) freq[o]++;
      continue;
    }
    countMiss(r, s);
    if (s > capacity) continue;
    const ghost = l === GHOST;
    if (ghost) q.remove(o);
    while (cached() + s > capacity) {
      if (q.bytes[SMALL] > smallMax || q.count[MAIN] === 0) evictSmall();
      else evictMain();
    }
    freq[o] = 0;
    q.pushHead(ghost ? MAIN : SMALL, o, s);
  }
  return r;
}

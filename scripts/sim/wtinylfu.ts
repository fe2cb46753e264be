/**
 * W-TinyLFU with hill climbing (Einziger et al. 2017; Caffeine's adaptive window), counted in
 * bytes: an LRU admission window (1 % at first) in front of an SLRU main area (probation, and
 * protected at 80 % of main), a frequency sketch of every access, and TinyLFU admission: the
 * window's oldest object enters main only if it is more frequent than main's victim
 * (probation's oldest), else it is evicted. Deterministic: Caffeine's random admission of
 * warm candidates (a guard against hash flooding) is left out.
 *
 * Hill climbing as Caffeine's: after every sample (10 × entries requests) the window moves by
 * the step (6.25 % of the cache at first) in the direction that raised the hit ratio; the
 * step decays by 0.98 per sample, and restarts when the hit ratio moves by 5 points.
 *
 * @module
 */
import { countMiss, emptyResult, Lists, type Result, type Trace } from "./_common.ts";
import { entriesFor, FrequencySketch } from "./_sketch.ts";

const WINDOW = 0;
const PROBATION = 1;
const PROTECTED = 2;
const INITIAL_WINDOW = 0.01;
const PROTECTED_SHARE = 0.8;
const STEP = 0.0625;
const STEP_DECAY = 0.98;
const RESTART = 0.05;

/** Replays `t` through W-TinyLFU with hill climbing with `capacity` bytes. */
export function simulateWTinyLfu(t: Trace, capacity: number): Result {
  const r = emptyResult(t);
  const q = new Lists(t.objects, 3);
  const b = q.bytes;
  const sketch = new FrequencySketch(entriesFor(t.firstSize, capacity));
  let windowMax = capacity * INITIAL_WINDOW;
  let step = -STEP * capacity;
  let previousHitRate = 0;
  let sampleHits = 0;
  let sampleRequests = 0;
  const protectedMax = () => (capacity - windowMax) * PROTECTED_SHARE;
  const demote = () => {
    while (b[PROTECTED] > protectedMax()) q.moveHead(PROBATION, q.tail[PROTECTED]);
  };
  /** Moves window overflow into main, each candidate against main's victims. */
  const evict = () => {
    while (b[WINDOW] > windowMax && q.count[WINDOW] > 1) {
      const c = q.tail[WINDOW];
      q.moveHead(PROBATION, c);
      while (b[WINDOW] + b[PROBATION] + b[PROTECTED] > capacity) {
        let v = q.tail[PROBATION];
        if (v === c) v = q.prev[c];
        if (v === -1) v = q.tail[PROTECTED];
        if (v === -1) {
          q.remove(c);
          break;
        }
        if (sketch.frequency(c) > sketch.frequency(v)) q.remove(v);
        else {
          q.remove(c);
          break;
        }
      }
    }
    while (b[WINDOW] + b[PROBATION] + b[PROTECTED] > capacity) {
      q.remove(q.count[PROBATION] > 0 ? q.tail[PROBATION] : q.tail[WINDOW]);
    }
  };
  const climb = (hit: boolean) => {
    if (hit) sampleHits++;
    if (++sampleRequests < sketch.sampleSize) return;
    const hitRate = sampleHits / sampleRequests;
    const change = hitRate - previousHitRate;
    const amount = change >= 0 ? step : -step;
    step = Math.abs(change) >= RESTART
      ? STEP * capacity * (amount >= 0 ? 1 : -1)
      : STEP_DECAY * amount;
    previousHitRate = hitRate;
    sampleHits = 0;
    sampleRequests = 0;
    windowMax = Math.min(capacity, Math.max(0, windowMax + amount));
    demote();
    evict();
  };
  for (let i = 0; i < t.obj.length; i++) {
    const o = t.obj[i];
    const s = t.size[i];
    sketch.increment(o);
    const l = q.list[o];
    if (l >= 0) {
      if (l === PROBATION) {
        q.moveHead(PROTECTED, o);
        demote();
      } else q.moveHead(l, o);
      climb(true);
      continue;
    }
    countMiss(r, s);
    climb(false);
    if (s > capacity) continue;
    q.pushHead(WINDOW, o, s);
    evict();
  }
  return r;
}

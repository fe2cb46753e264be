/**
 * What every simulated policy shares: the parsed trace, the miss counts of a run and
 * intrusive doubly linked lists over dense object numbers (no allocation per request).
 *
 * @module
 */

/** A parsed trace with objects renumbered densely (0..objects-1) in first-seen order. */
export interface Trace {
  /** Dense object number per request. */
  obj: Uint32Array;
  /** Size per request. */
  size: Uint32Array;
  /** The original 64-bit id of each dense object, as hi/lo u32 halves. */
  hi: Uint32Array;
  lo: Uint32Array;
  /** Size at first sight of each dense object. */
  firstSize: Float64Array;
  objects: number;
}

/** Miss counts of one run. */
export interface Result {
  requests: number;
  misses: number;
  bytes: number;
  missBytes: number;
}

/** A policy replays a whole trace under a byte capacity. */
export type Simulator = (t: Trace, capacity: number) => Result;

export const missRatio = (r: Result): number => r.misses / r.requests;
export const byteMissRatio = (r: Result): number => r.missBytes / r.bytes;

/** A result with every request counted and no miss yet. */
export function emptyResult(t: Trace): Result {
  let bytes = 0;
  for (let i = 0; i < t.size.length; i++) bytes += t.size[i];
  return { requests: t.size.length, misses: 0, bytes, missBytes: 0 };
}

/** Counts request `i` as a miss. */
export function countMiss(r: Result, size: number): void {
  r.misses++;
  r.missBytes += size;
}

const NONE = -1;

/**
 * Several doubly linked lists over the objects 0..n-1; an object is in at most one list at a
 * time, with the size it was added with. Head is the most recent end.
 */
export class Lists {
  readonly prev: Int32Array;
  readonly next: Int32Array;
  /** List of each object, -1 when in none. */
  readonly list: Int8Array;
  /** Size each object was added with. */
  readonly held: Float64Array;
  readonly head: Int32Array;
  readonly tail: Int32Array;
  readonly bytes: Float64Array;
  readonly count: Int32Array;

  constructor(objects: number, lists: number) {
    this.prev = new Int32Array(objects).fill(NONE);
    this.next = new Int32Array(objects).fill(NONE);
    this.list = new Int8Array(objects).fill(NONE);
    this.held = new Float64Array(objects);
    this.head = new Int32Array(lists).fill(NONE);
    this.tail = new Int32Array(lists).fill(NONE);
    this.bytes = new Float64Array(lists);
    this.count = new Int32Array(lists);
  }

  /** Adds `o` (in no list) at the head of list `l`. */
  pushHead(l: number, o: number, size: number): void {
    const h = this.head[l];
    this.list[o] = l;
    this.held[o] = size;
    this.prev[o] = NONE;
    this.next[o] = h;
    if (h === NONE) this.tail[l] = o;
    else this.prev[h] = o;
    this.head[l] = o;
    this.bytes[l] += size;
    this.count[l]++;
  }

  /** Takes `o` out of its list. */
  remove(o: number): void {
    const l = this.list[o];
    const p = this.prev[o];
    const n = this.next[o];
    if (p === NONE) this.head[l] = n;
    else this.next[p] = n;
    if (n === NONE) this.tail[l] = p;
    else this.prev[n] = p;
    this.list[o] = NONE;
    this.bytes[l] -= this.held[o];
    this.count[l]--;
  }

  /** Moves `o` to the head of list `l` (keeping its size). */
  moveHead(l: number, o: number): void {
    const size = this.held[o];
    this.remove(o);
    this.pushHead(l, o, size);
  }
}

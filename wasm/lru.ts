// LFRU cache index in AssemblyScript.
//
// Behaviour is defined by lib/cache/lfru.ts (the TypeScript reference, the oracle); this file
// must agree with it exactly: same slots, same evictions, same byte counts
// (tests/lfru_differential_test.ts). Read lib/cache/types.ts (LfruOptions) for the policy.
//
// ABI: numbers only. Keys are 64-bit hashes passed as two u32 halves, sizes as u32, byte
// counts as f64 (exact to 2^53). `set` and `del` write the slots they evicted as i32 at
// `evictedPtr()`, `evictedCount()` of them. One instance is one index (state in globals).
//
// Memory: the static area holds the per-segment list heads, tails and byte counts; everything
// else lives in one block at __heap_base, sized by the slot capacity C (a power of two):
//   records C × 32 B | hash table 2C × i32 | evicted C × i32 | sketch 4 rows × 2C × u8
// Growth builds the doubled block above the old one (memory.grow if needed), then moves it
// down to the base, so memory holds at most the old and the new block. No allocation per call.

const NONE: i32 = -1;
const OUT_OF_MEMORY: i32 = -2;

// Segments; also the index of their list.
const FREE: u8 = 0;
const WINDOW: i32 = 1;
const PROBATION: i32 = 2;
const PROTECTED: i32 = 3;
const PINNED: i32 = 4;

const DEPTH: i32 = 4; // count-min sketch rows
const SKETCH_SEED: u32 = 0x5bd1e995;
const MIN_SAMPLE_ENTRIES: i32 = 16; // keep equal to lib/cache/_options.ts
const MAX_CAPACITY: i32 = 1 << 24; // keep equal to lib/cache/_options.ts
// Hill climbing of the window share; keep equal to lib/cache/_options.ts.
const CLIMB_SAMPLE_FACTOR: f64 = 10;
const CLIMB_STEP: f64 = 0.0625;
const CLIMB_DECAY: f64 = 0.98;
const CLIMB_RESTART: f64 = 0.05;

// Record layout (32 bytes).
const R_HI: usize = 0;
const R_LO: usize = 4;
const R_HASH: usize = 8;
const R_SIZE: usize = 12;
const R_PREV: usize = 16;
const R_NEXT: usize = 20;
const R_SEG: usize = 24;
const RECORD_SHIFT: usize = 5;

// Per-segment state: heads (5 × i32), tails (5 × i32), bytes (5 × f64).
const HEADS: usize = memory.data(20, 4);
const TAILS: usize = memory.data(20, 4);
const BYTES: usize = memory.data(40, 8);

// Options.
let budget: f64 = 0;
let windowFraction: f64 = 0; // current share; moves by hill climbing when adaptive
let adaptive: bool = false;
let climbStep: f64 = 0;
let previousHitRatio: f64 = 0;
let sampleHits: i32 = 0;
let sampleMisses: i32 = 0;
let protectedFraction: f64 = 0;
let sampleFactor: f64 = 0;
let maxFrequency: i32 = 0;
let victimScan: i32 = 1;

// Block.
let base: usize = 0;
let cap: i32 = 0;
let recs: usize = 0;
let table: usize = 0;
let tableMask: u32 = 0;
let evicted: usize = 0;
let sketch: usize = 0;
let sketchWidth: i32 = 0;

// Counters.
let used: f64 = 0;
let entries: i32 = 0;
let freeHead: i32 = NONE;
let unused: i32 = 0;
let additions: i32 = 0;
let nEvicted: i32 = 0;

// ---- helpers ----------------------------------------------------------------------------------

@inline function rec(s: i32): usize {
  return recs + ((<usize>s) << RECORD_SHIFT);
}
@inline function head(seg: i32): i32 {
  return load<i32>(HEADS + ((<usize>seg) << 2));
}
@inline function setHead(seg: i32, v: i32): void {
  store<i32>(HEADS + ((<usize>seg) << 2), v);
}
@inline function tail(seg: i32): i32 {
  return load<i32>(TAILS + ((<usize>seg) << 2));
}
@inline function setTail(seg: i32, v: i32): void {
  store<i32>(TAILS + ((<usize>seg) << 2), v);
}
@inline function bytes(seg: i32): f64 {
  return load<f64>(BYTES + ((<usize>seg) << 3));
}
@inline function addBytes(seg: i32, d: f64): void {
  const p = BYTES + ((<usize>seg) << 3);
  store<f64>(p, load<f64>(p) + d);
}
@inline function segOf(s: i32): i32 {
  return <i32>load<u8>(rec(s), R_SEG);
}
@inline function hashOf(s: i32): u32 {
  return load<u32>(rec(s), R_HASH);
}
@inline function sizeOf(s: i32): f64 {
  return <f64>load<u32>(rec(s), R_SIZE);
}

@inline function fmix32(h: u32): u32 {
  h ^= h >> 16;
  h *= 0x85ebca6b;
  h ^= h >> 13;
  h *= 0xc2b2ae35;
  h ^= h >> 16;
  return h;
}

/** Same as mixKey in lib/cache/hash.ts. */
@inline function mixKey(hi: u32, lo: u32): u32 {
  return fmix32(lo ^ fmix32(hi ^ 0x9e3779b9));
}

@inline function sketchStep(h: u32): u32 {
  return (rotl<u32>(h, 16) * SKETCH_SEED) | 1;
}

// ---- frequency sketch -------------------------------------------------------------------------

function estimate(h: u32): i32 {
  const step = sketchStep(h);
  const mask = <u32>sketchWidth - 1;
  let min: i32 = 255;
  let idx = h;
  let row = sketch;
  for (let r = 0; r < DEPTH; r++) {
    const c = <i32>load<u8>(row + <usize>(idx & mask));
    if (c < min) min = c;
    idx += step;
    row += <usize>sketchWidth;
  }
  return min;
}

function increment(h: u32): void {
  const min = estimate(h);
  if (min < maxFrequency) {
    const step = sketchStep(h);
    const mask = <u32>sketchWidth - 1;
    let idx = h;
    let row = sketch;
    for (let r = 0; r < DEPTH; r++) {
      const p = row + <usize>(idx & mask);
      if (<i32>load<u8>(p) == min) store<u8>(p, <u8>(min + 1));
      idx += step;
      row += <usize>sketchWidth;
    }
  }
  additions++;
  const period = sampleFactor * <f64>max(entries, MIN_SAMPLE_ENTRIES);
  if (<f64>additions >= period) {
    // Halve every counter, 16 at a time (the sketch size is a multiple of 16).
    const end = sketch + <usize>(DEPTH * sketchWidth);
    for (let p = sketch; p < end; p += 16) {
      v128.store(p, i8x16.shr_u(v128.load(p), 1));
    }
    additions = additions >>> 1;
  }
}

// ---- lists ------------------------------------------------------------------------------------

function linkHead(seg: i32, s: i32): void {
  const p = rec(s);
  const h = head(seg);
  store<u8>(p, <u8>seg, R_SEG);
  store<i32>(p, NONE, R_PREV);
  store<i32>(p, h, R_NEXT);
  if (h == NONE) setTail(seg, s);
  else store<i32>(rec(h), s, R_PREV);
  setHead(seg, s);
  const size = sizeOf(s);
  addBytes(seg, size);
  used += size;
}

function unlink(s: i32): void {
  const r = rec(s);
  const seg = <i32>load<u8>(r, R_SEG);
  const p = load<i32>(r, R_PREV);
  const n = load<i32>(r, R_NEXT);
  if (p == NONE) setHead(seg, n);
  else store<i32>(rec(p), n, R_NEXT);
  if (n == NONE) setTail(seg, p);
  else store<i32>(rec(n), p, R_PREV);
  const size = sizeOf(s);
  addBytes(seg, -size);
  used -= size;
}

// ---- hash table -------------------------------------------------------------------------------

function find(h: u32, hi: u32, lo: u32): i32 {
  let i = h & tableMask;
  while (true) {
    const v = load<i32>(table + (<usize>i << 2));
    if (v == 0) return NONE;
    const s = v - 1;
    const r = rec(s);
    if (load<u32>(r, R_HI) == hi && load<u32>(r, R_LO) == lo) return s;
    i = (i + 1) & tableMask;
  }
  return NONE;
}

function tableInsert(s: i32): void {
  let i = hashOf(s) & tableMask;
  while (load<i32>(table + (<usize>i << 2)) != 0) i = (i + 1) & tableMask;
  store<i32>(table + (<usize>i << 2), s + 1);
}

function tableDelete(s: i32): void {
  let i = hashOf(s) & tableMask;
  while (load<i32>(table + (<usize>i << 2)) != s + 1) i = (i + 1) & tableMask;
  // Backward-shift deletion keeps every probe chain unbroken without tombstones.
  let j = i;
  while (true) {
    j = (j + 1) & tableMask;
    const v = load<i32>(table + (<usize>j << 2));
    if (v == 0) break;
    const k = hashOf(v - 1) & tableMask;
    if (j > i ? k <= i || k > j : k <= i && k > j) {
      store<i32>(table + (<usize>i << 2), v);
      i = j;
    }
  }
  store<i32>(table + (<usize>i << 2), 0);
}

// ---- block and growth -------------------------------------------------------------------------

@inline function blockBytes(c: i32): usize {
  return (<usize>c) * 52; // 32 record + 8 table + 4 evicted + 8 sketch
}

function place(at: usize, c: i32): void {
  recs = at;
  table = recs + ((<usize>c) << RECORD_SHIFT);
  evicted = table + ((<usize>c) << 3);
  sketch = evicted + ((<usize>c) << 2);
  tableMask = <u32>(2 * c - 1);
}

function ensureMemory(end: usize): bool {
  const have = (<usize>memory.size()) << 16;
  if (end <= have) return true;
  const pages = <i32>((end - have + 0xffff) >> 16);
  return memory.grow(pages) >= 0;
}

/** Resizes to `c` slots; false when memory cannot grow. */
function grow(c: i32): bool {
  const oldCap = cap;
  const oldRecs = recs;
  const oldSketch = sketch;
  const oldWidth = sketchWidth;
  const at = cap == 0 ? base : base + blockBytes(cap);
  const size = blockBytes(c);
  if (!ensureMemory(at + size)) return false;
  memory.fill(at, 0, size);
  place(at, c);
  if (oldCap > 0) memory.copy(recs, oldRecs, (<usize>oldCap) << RECORD_SHIFT);
  for (let s = 0; s < oldCap; s++) if (load<u8>(rec(s), R_SEG) != FREE) tableInsert(s);
  // Widening the sketch keeps every estimate: a counter at i of a row of width w is read at
  // i and i + w in the row of width 2w, so each row is copied twice.
  const width = 2 * c;
  if (oldWidth > 0) {
    for (let r = 0; r < DEPTH; r++) {
      const src = oldSketch + <usize>(r * oldWidth);
      for (let k = 0; k < width; k += oldWidth) {
        memory.copy(sketch + <usize>(r * width + k), src, <usize>oldWidth);
      }
    }
  }
  sketchWidth = width;
  cap = c;
  if (at != base) {
    memory.copy(base, at, size);
    place(base, c);
  }
  return true;
}

function allocSlot(): i32 {
  if (freeHead != NONE) {
    const s = freeHead;
    freeHead = load<i32>(rec(s), R_NEXT);
    return s;
  }
  if (unused == cap) {
    if (cap >= MAX_CAPACITY || !grow(cap * 2)) return OUT_OF_MEMORY;
  }
  return unused++;
}

function removeRecord(s: i32): void {
  tableDelete(s);
  const r = rec(s);
  store<u8>(r, FREE, R_SEG);
  store<i32>(r, freeHead, R_NEXT);
  freeHead = s;
  entries--;
}

// ---- policy -----------------------------------------------------------------------------------

@inline function windowMax(): f64 {
  return floor<f64>((budget - bytes(PINNED)) * windowFraction);
}

@inline function protectedMax(): f64 {
  const main = budget - bytes(PINNED) - windowMax();
  return floor<f64>(main * protectedFraction);
}

function climb(n: i32): void {
  const ratio = <f64>sampleHits / <f64>n;
  const change = ratio - previousHitRatio;
  const amount = change >= 0 ? climbStep : -climbStep;
  climbStep = abs<f64>(change) >= CLIMB_RESTART
    ? (amount >= 0 ? CLIMB_STEP : -CLIMB_STEP)
    : CLIMB_DECAY * amount;
  previousHitRatio = ratio;
  sampleHits = 0;
  sampleMisses = 0;
  windowFraction = min<f64>(1, max<f64>(0, windowFraction + amount));
}

function victim(): i32 {
  let best = tail(PROBATION);
  if (best == NONE) return tail(PROTECTED);
  if (victimScan == 1) return best;
  let bestFreq = estimate(hashOf(best));
  let x = load<i32>(rec(best), R_PREV);
  for (let i = 1; i < victimScan && x != NONE; i++) {
    const f = estimate(hashOf(x));
    if (f < bestFreq) {
      best = x;
      bestFreq = f;
    }
    x = load<i32>(rec(x), R_PREV);
  }
  return best;
}

function evictOverflow(self: i32, isNew: bool): bool {
  let selfEvicted = false;
  while (used > budget) {
    const c = bytes(WINDOW) > windowMax() ? tail(WINDOW) : NONE;
    const v = victim();
    let x: i32;
    if (c == NONE) x = v == NONE ? tail(WINDOW) : v;
    else if (v == NONE) x = c;
    else x = estimate(hashOf(c)) > estimate(hashOf(v)) ? v : c;
    unlink(x);
    removeRecord(x);
    if (x == self) {
      selfEvicted = true;
      if (isNew) continue;
    }
    store<i32>(evicted + ((<usize>nEvicted) << 2), x);
    nEvicted++;
  }
  return selfEvicted;
}

function demoteOverflow(): void {
  const pMax = protectedMax();
  while (bytes(PROTECTED) > pMax) {
    const t = tail(PROTECTED);
    unlink(t);
    linkHead(PROBATION, t);
  }
}

function rebalance(): void {
  const wMax = windowMax();
  while (bytes(WINDOW) > wMax) {
    const t = tail(WINDOW);
    unlink(t);
    linkHead(PROBATION, t);
  }
  demoteOverflow();
}

// ---- exports ----------------------------------------------------------------------------------

/** Sets up an empty index; returns 0, or -2 when memory cannot grow. Options are validated by the adapter. */
export function init(
  budgetBytes: f64,
  windowFrac: f64,
  adaptiveWindow: i32,
  protectedFrac: f64,
  sample: f64,
  maxFreq: i32,
  scan: i32,
  capacity: i32,
): i32 {
  budget = budgetBytes;
  windowFraction = windowFrac;
  adaptive = adaptiveWindow != 0;
  climbStep = -CLIMB_STEP;
  previousHitRatio = 0;
  sampleHits = 0;
  sampleMisses = 0;
  protectedFraction = protectedFrac;
  sampleFactor = sample;
  maxFrequency = maxFreq;
  victimScan = scan;
  base = (__heap_base + 15) & ~(<usize>15);
  cap = 0;
  sketchWidth = 0;
  for (let seg = 0; seg < 5; seg++) {
    setHead(seg, NONE);
    setTail(seg, NONE);
    store<f64>(BYTES + ((<usize>seg) << 3), 0);
  }
  used = 0;
  entries = 0;
  freeHead = NONE;
  unused = 0;
  additions = 0;
  nEvicted = 0;
  return grow(capacity) ? 0 : OUT_OF_MEMORY;
}

export function get(hi: u32, lo: u32): i32 {
  const h = mixKey(hi, lo);
  increment(h);
  const s = find(h, hi, lo);
  if (s != NONE) {
    const seg = segOf(s);
    if (seg == PROBATION) {
      unlink(s);
      linkHead(PROTECTED, s);
      demoteOverflow();
    } else if (seg != PINNED) {
      unlink(s);
      linkHead(seg, s);
    }
  }
  if (adaptive) {
    if (s == NONE) sampleMisses++;
    else sampleHits++;
    const n = sampleHits + sampleMisses;
    if (<f64>n >= CLIMB_SAMPLE_FACTOR * <f64>max(entries, MIN_SAMPLE_ENTRIES)) climb(n);
  }
  return s;
}

export function peek(hi: u32, lo: u32): i32 {
  return find(mixKey(hi, lo), hi, lo);
}

/** Returns the slot, -1 when not admitted, -2 when the index cannot grow (nothing changed). */
export function set(hi: u32, lo: u32, size: u32, pinned: i32): i32 {
  nEvicted = 0;
  const h = mixKey(hi, lo);
  let s = find(h, hi, lo);
  const isNew = s == NONE;
  const fsize = <f64>size;
  const pinnedBytes = isNew || segOf(s) != PINNED ? bytes(PINNED) : bytes(PINNED) - sizeOf(s);
  const fits = pinned != 0 ? pinnedBytes + fsize <= budget : fsize <= budget - pinnedBytes;
  if (isNew) {
    if (!fits) return NONE;
    s = allocSlot();
    if (s < 0) return s;
    const r = rec(s);
    store<u32>(r, hi, R_HI);
    store<u32>(r, lo, R_LO);
    store<u32>(r, h, R_HASH);
    store<u32>(r, size, R_SIZE);
    tableInsert(s);
    entries++;
    linkHead(pinned != 0 ? PINNED : WINDOW, s);
  } else {
    const old = segOf(s);
    unlink(s);
    if (!fits) {
      removeRecord(s);
      store<i32>(evicted, s);
      nEvicted = 1;
      return NONE;
    }
    store<u32>(rec(s), size, R_SIZE);
    linkHead(pinned != 0 ? PINNED : old == PINNED ? PROBATION : old, s);
  }
  if (evictOverflow(s, isNew)) return NONE;
  rebalance();
  return s;
}

export function del(hi: u32, lo: u32): i32 {
  nEvicted = 0;
  const s = find(mixKey(hi, lo), hi, lo);
  if (s == NONE) return NONE;
  unlink(s);
  removeRecord(s);
  rebalance();
  return s;
}

export function usedBytes(): f64 {
  return used;
}

export function count(): i32 {
  return entries;
}

export function evictedCount(): i32 {
  return nEvicted;
}

export function evictedPtr(): usize {
  return evicted;
}

export function frequency(hi: u32, lo: u32): i32 {
  return estimate(mixKey(hi, lo));
}

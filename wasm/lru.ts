// LFRU cache index in AssemblyScript.
//
// Behaviour is defined by lib/cache/lfru.ts (the TypeScript reference, the oracle); this file
// must agree with it exactly: same slots, same evictions, same byte counts
// (tests/lfru_differential_test.ts). Read lib/cache/types.ts (LfruOptions) for the policy.
//
// ABI: numbers only. Keys are 64-bit hashes as two u32 halves, sizes u32, byte counts f64
// (exact to 2^53). `set` and `del` write the slots they evicted as i32 at `evictedPtr()`,
// `evictedCount()` of them. One instance is one index (state in globals). Three ways in:
//   get/peek/set/del(hi, lo, ...)  arguments (a u32 over 2^30 is boxed by V8 at the call);
//   getKey/peekKey/setKey/delKey   the key (hi, lo, size) stored at keyPtr() first: what the
//                                  adapter uses, no conversion at the boundary;
//   requests(n)                    up to BATCH_MAX get-then-set-on-miss requests at once.
//
// Memory: the static area holds the per-segment list heads, tails and byte counts; everything
// else lives in one block at __heap_base, sized by the slot capacity C (a power of two):
//   records C × 32 B | hash table 4C × u64 | evicted C × i32 | main ghost C × u32 |
//   window ghost C/4 × u32 | main ghost stamps C × u32 | window ghost stamps C/4 × u32 |
//   sketch 4 rows × 2C × u8
// Growth builds the doubled block above the old one (memory.grow if needed), then moves it
// down to the base, so memory holds at most the old and the new block. No allocation per call.
//
// Speed (docs/notes/lfru.md, "Speed"): a table entry is one u64, (hash << 32) | (slot + 1), so a
// probe compares the 32-bit hash before it touches a record and backward-shift deletion never
// reads records; the table has 4C entries (load ≤ 1/4); a record's key is one u64 compare. A
// `getKey` miss remembers the key, its hash and the empty table position where its probe ended,
// so the `setKey` that follows (the replica's pattern) neither hashes nor probes again. The aging
// period is recomputed when the entry count changes, not on every use. The sketch's conservative
// update is branchless.

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
// The window ghost holds cap/4 keys, the main ghost cap (keep equal to lib/cache/lfru.ts).
const WINDOW_GHOST_SHIFT: i32 = 2;
// Main-ghost hits move the privileged share by +32 entries (key had been privileged) or -1.
const PRIVILEGED_GHOST_WEIGHT: f64 = 32;
const WAS_PRIVILEGED: u32 = 2; // ghost tag bit
// The adaptive window share stays at MIN_WINDOW or more; a larger candidate's duel sums at
// most DUEL_SCAN probation entries (keep equal to lib/cache/_options.ts).
const MIN_WINDOW: f64 = 0.01;
const DUEL_SCAN: i32 = 64;
// A new key above the mean waits one more request per factor SIGHT_STEP (as in _options.ts).
const SIGHT_STEP: f64 = 4;

// Record layout (32 bytes). The key is one u64 at 0: hi in its low half, lo in its high half.
const R_KEY: usize = 0;
const R_HASH: usize = 8;
const R_SIZE: usize = 12;
const R_PREV: usize = 16;
const R_NEXT: usize = 20;
const R_SEG: usize = 24;
const R_PRIV: usize = 25; // WAS_PRIVILEGED once promoted, else 0
const RECORD_SHIFT: usize = 5;

// Per-segment state: heads (5 × i32), tails (5 × i32), bytes (5 × f64).
const HEADS: usize = memory.data(20, 4);
const TAILS: usize = memory.data(20, 4);
const BYTES: usize = memory.data(40, 8);

// Options.
let budget: f64 = 0;
let windowFraction: f64 = 0; // current share; moves with the ghost hits when adaptive
let adaptive: bool = false;
let protectedFraction: f64 = 0; // current share; adapts with the ghosts when adaptive
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
let ghostMain: usize = 0;
let ghostWindow: usize = 0;
// Each ghost position's eviction count when it was written, and the counts so far (mod 2^32).
let ghostMainAt: usize = 0;
let ghostWindowAt: usize = 0;
let mainEvictions: u32 = 0;
let windowEvictions: u32 = 0;
let sketch: usize = 0;
let sketchWidth: i32 = 0;
let batchEvicted: usize = 0;
let batchTotal: i32 = 0;

// Batched requests: at most BATCH_MAX (hi, lo, size) triples in, one result and one
// cumulative eviction end per request out (keep equal to lib/cache/_options.ts).
const BATCH_MAX: i32 = 1024;
const BATCH_IN: usize = memory.data(BATCH_MAX * 12, 16);
const BATCH_RESULTS: usize = memory.data(BATCH_MAX * 4, 16);
const BATCH_ENDS: usize = memory.data(BATCH_MAX * 4, 16);
const STORED: i32 = 0x40000000;

// Counters.
let used: f64 = 0;
let entries: i32 = 0;
let freeHead: i32 = NONE;
let unused: i32 = 0;
let additions: i32 = 0;
// additions >= period triggers the halving: sampleFactor × max(entries, 16), kept current by
// setEntries.
let period: f64 = 0;
// The last getKey/get miss, for the set that usually follows (see setKey): valid until the
// next set, del or requests.
let missValid: bool = false;
let missKey: u64 = 0;
let missHash: u32 = 0;
let missProbe: u32 = 0;
// The empty table position where the last unsuccessful find stopped.
let probeEnd: u32 = 0;
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

@inline function key64(hi: u32, lo: u32): u64 {
  return (<u64>lo << 32) | <u64>hi;
}

@inline function setEntries(n: i32): void {
  entries = n;
  period = sampleFactor * <f64>max(n, MIN_SAMPLE_ENTRIES);
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
  const w = <usize>sketchWidth;
  // The four rows unrolled, minimum by select: no branch on the counters.
  const c0 = <i32>load<u8>(sketch + <usize>(h & mask));
  const c1 = <i32>load<u8>(sketch + w + <usize>((h + step) & mask));
  const c2 = <i32>load<u8>(sketch + 2 * w + <usize>((h + 2 * step) & mask));
  const c3 = <i32>load<u8>(sketch + 3 * w + <usize>((h + 3 * step) & mask));
  return min<i32>(min<i32>(c0, c1), min<i32>(c2, c3));
}

// Counts a use: conservative update of the four counters (only those at the minimum grow),
// then the periodic halving. Same result as estimate-then-update in lib/cache/lfru.ts, with
// the four addresses computed once.
function increment(h: u32): void {
  const step = sketchStep(h);
  const mask = <u32>sketchWidth - 1;
  const w = <usize>sketchWidth;
  const p0 = sketch + <usize>(h & mask);
  const p1 = sketch + w + <usize>((h + step) & mask);
  const p2 = sketch + 2 * w + <usize>((h + 2 * step) & mask);
  const p3 = sketch + 3 * w + <usize>((h + 3 * step) & mask);
  const c0 = <i32>load<u8>(p0);
  const c1 = <i32>load<u8>(p1);
  const c2 = <i32>load<u8>(p2);
  const c3 = <i32>load<u8>(p3);
  const least = min<i32>(min<i32>(c0, c1), min<i32>(c2, c3));
  // Branchless conservative update: the counters at the minimum grow by one unless capped
  // (which counters are at the minimum is random, so branches here mispredict).
  const up = <i32>(least < maxFrequency);
  store<u8>(p0, <u8>(c0 + (up & <i32>(c0 == least))));
  store<u8>(p1, <u8>(c1 + (up & <i32>(c1 == least))));
  store<u8>(p2, <u8>(c2 + (up & <i32>(c2 == least))));
  store<u8>(p3, <u8>(c3 + (up & <i32>(c3 == least))));
  additions++;
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

/** Moves `s` to the head of its own list (no byte accounting needed). */
function moveToHead(s: i32): void {
  const r = rec(s);
  const seg = <i32>load<u8>(r, R_SEG);
  const h = head(seg);
  if (h == s) return;
  const p = load<i32>(r, R_PREV);
  const n = load<i32>(r, R_NEXT);
  store<i32>(rec(p), n, R_NEXT); // p exists: s is not the head
  if (n == NONE) setTail(seg, p);
  else store<i32>(rec(n), p, R_PREV);
  store<i32>(r, NONE, R_PREV);
  store<i32>(r, h, R_NEXT);
  store<i32>(rec(h), s, R_PREV);
  setHead(seg, s);
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

// A table entry: (hash << 32) | (slot + 1); 0 is empty.
@inline function tableAt(i: u32): usize {
  return table + (<usize>i << 3);
}

/** The key's slot or NONE; on NONE, probeEnd is the empty position that ended the probe. */
function find(h: u32, key: u64): i32 {
  let i = h & tableMask;
  while (true) {
    const v = load<u64>(tableAt(i));
    if (v == 0) {
      probeEnd = i;
      return NONE;
    }
    const s = <i32>(<u32>v) - 1;
    // The stored hash first: a mismatch never touches the record.
    if (<u32>(v >> 32) == h && load<u64>(rec(s), R_KEY) == key) return s;
    i = (i + 1) & tableMask;
  }
  return NONE;
}

function tableInsert(s: i32, h: u32): void {
  let i = h & tableMask;
  while (load<u64>(tableAt(i)) != 0) i = (i + 1) & tableMask;
  store<u64>(tableAt(i), (<u64>h << 32) | <u64>(s + 1));
}

function tableDelete(s: i32): void {
  const h = hashOf(s);
  const entry = (<u64>h << 32) | <u64>(s + 1);
  let i = h & tableMask;
  while (load<u64>(tableAt(i)) != entry) i = (i + 1) & tableMask;
  // Backward-shift deletion keeps every probe chain unbroken without tombstones; the home of
  // each entry comes from its stored hash, not from its record.
  let j = i;
  while (true) {
    j = (j + 1) & tableMask;
    const v = load<u64>(tableAt(j));
    if (v == 0) break;
    const k = <u32>(v >> 32) & tableMask;
    if (j > i ? k <= i || k > j : k <= i && k > j) {
      store<u64>(tableAt(i), v);
      i = j;
    }
  }
  store<u64>(tableAt(i), 0);
}

// ---- block and growth -------------------------------------------------------------------------

@inline function blockBytes(c: i32): usize {
  // 32 record + 32 table + 4 evicted + 4 + 1 ghosts + 4 + 1 stamps + 8 sketch + 8 batch
  return (<usize>c) * 102;
}

function place(at: usize, c: i32): void {
  recs = at;
  table = recs + ((<usize>c) << RECORD_SHIFT);
  evicted = table + ((<usize>c) << 5);
  ghostMain = evicted + ((<usize>c) << 2);
  ghostWindow = ghostMain + ((<usize>c) << 2);
  ghostMainAt = ghostWindow + (<usize>c); // c/4 u32
  ghostWindowAt = ghostMainAt + ((<usize>c) << 2);
  sketch = ghostWindowAt + (<usize>c); // c/4 u32
  batchEvicted = sketch + ((<usize>c) << 3); // 2c i32
  // 4C entries: load ≤ 1/4, so a missing key's probe ends after ~1.4 entries instead of ~2.5
  // (the data-dependent probe loop is a mispredicted branch). Where a key sits in the table is
  // invisible to the results; the TypeScript twin keeps 2C, which is faster for its two arrays.
  tableMask = <u32>(4 * c - 1);
}

function ensureMemory(end: usize): bool {
  const have = (<usize>memory.size()) << 16;
  if (end <= have) return true;
  const pages = <i32>((end - have + 0xffff) >> 16);
  return memory.grow(pages) >= 0;
}

/**
 * Re-indexes a direct-mapped ghost of `n` entries into one of `m`, in order (later wins); each
 * entry's stamp (at `oldAt`) moves with it (to `toAt`).
 */
function regrowGhost(old: usize, oldAt: usize, n: i32, to: usize, toAt: usize, m: i32): void {
  const mask = <u32>m - 1;
  for (let i = 0; i < n; i++) {
    const v = load<u32>(old + ((<usize>i) << 2));
    if (v == 0) continue;
    const j = (<usize>(v & mask)) << 2;
    store<u32>(to + j, v);
    store<u32>(toAt + j, load<u32>(oldAt + ((<usize>i) << 2)));
  }
}

/** Resizes to `c` slots; false when memory cannot grow. */
function grow(c: i32): bool {
  const oldCap = cap;
  const oldRecs = recs;
  const oldSketch = sketch;
  const oldWidth = sketchWidth;
  const oldGhostMain = ghostMain;
  const oldGhostWindow = ghostWindow;
  const oldGhostMainAt = ghostMainAt;
  const oldGhostWindowAt = ghostWindowAt;
  const oldBatchEvicted = batchEvicted;
  const at = cap == 0 ? base : base + blockBytes(cap);
  const size = blockBytes(c);
  if (!ensureMemory(at + size)) return false;
  memory.fill(at, 0, size);
  place(at, c);
  if (oldCap > 0) memory.copy(recs, oldRecs, (<usize>oldCap) << RECORD_SHIFT);
  for (let s = 0; s < oldCap; s++) if (load<u8>(rec(s), R_SEG) != FREE) tableInsert(s, hashOf(s));
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
  regrowGhost(oldGhostMain, oldGhostMainAt, oldCap, ghostMain, ghostMainAt, c);
  regrowGhost(
    oldGhostWindow,
    oldGhostWindowAt,
    oldCap >> WINDOW_GHOST_SHIFT,
    ghostWindow,
    ghostWindowAt,
    c >> WINDOW_GHOST_SHIFT,
  );
  if (batchTotal > 0) memory.copy(batchEvicted, oldBatchEvicted, (<usize>batchTotal) << 2);
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
  setEntries(entries - 1);
}

// ---- policy -----------------------------------------------------------------------------------

@inline function windowMax(): f64 {
  return floor<f64>((budget - bytes(PINNED)) * windowFraction);
}

@inline function protectedMax(): f64 {
  const main = budget - bytes(PINNED) - windowMax();
  return floor<f64>(main * protectedFraction);
}

// ARC's rule on the window share: a miss on a key the window recently pushed out means the
// window is too small, a miss on a key the main segments recently evicted means it is too big;
// each moves the share by one average entry. A ghost hit counts only within ARC's history: a
// window ghost if the window evicted fewer keys since than the entries outside it, a main ghost
// if main evicted at most `entries` since (see adapt in lib/cache/lfru.ts).
function adapt(h: u32): void {
  const tag = h | 1;
  const iw = (<usize>(h & ((<u32>cap >> WINDOW_GHOST_SHIFT) - 1))) << 2;
  const im = (<usize>(h & (<u32>cap - 1))) << 2;
  const pw = ghostWindow + iw;
  const pm = ghostMain + im;
  const held: f64 = used > 0 ? bytes(WINDOW) / used : 0;
  let delta: f64 = 0;
  if (
    load<u32>(pw) == tag &&
    <f64>(windowEvictions - load<u32>(ghostWindowAt + iw)) <= <f64>entries * (1 - held)
  ) {
    store<u32>(pw, 0);
    delta = 1;
  } else {
    const v = load<u32>(pm);
    if ((v | WAS_PRIVILEGED) != (h | 3)) return;
    if (<f64>(mainEvictions - load<u32>(ghostMainAt + im)) > <f64>entries) return;
    store<u32>(pm, 0);
    delta = -1;
    const p: f64 = (v & WAS_PRIVILEGED) != 0 ? PRIVILEGED_GHOST_WEIGHT : -1;
    const share = protectedFraction + p / <f64>max(entries, MIN_SAMPLE_ENTRIES);
    protectedFraction = min<f64>(1, max<f64>(0, share));
  }
  const step = delta / <f64>max(entries, MIN_SAMPLE_ENTRIES);
  windowFraction = min<f64>(1, max<f64>(MIN_WINDOW, windowFraction + step));
}

// The duel between the window's candidate c and probation's victim v (see admits in
// lib/cache/lfru.ts): a larger candidate must be more frequent than all the entries it would
// push out together.
function admits(c: i32, v: i32): bool {
  const fc = estimate(hashOf(c));
  const sc = load<u32>(rec(c), R_SIZE);
  if (sc <= load<u32>(rec(v), R_SIZE)) return fc > estimate(hashOf(v));
  const need = min<f64>(used - budget, <f64>sc);
  let freed: f64 = 0;
  let sum: i32 = 0;
  let x = v;
  for (let i = 0; i < DUEL_SCAN && x != NONE; i++) {
    sum += estimate(hashOf(x));
    if (fc <= sum) return false;
    freed += sizeOf(x);
    if (freed >= need) return true;
    x = load<i32>(rec(x), R_PREV);
  }
  return false;
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
    else x = admits(c, v) ? v : c;
    const hx = hashOf(x);
    if (segOf(x) == WINDOW) {
      const i = (<usize>(hx & ((<u32>cap >> WINDOW_GHOST_SHIFT) - 1))) << 2;
      store<u32>(ghostWindow + i, hx | 1);
      store<u32>(ghostWindowAt + i, windowEvictions);
      // A refused newcomer is remembered but does not advance the window's eviction count.
      if (x != self || !isNew) windowEvictions++;
    } else {
      const wp = <u32>load<u8>(rec(x), R_PRIV);
      const i = (<usize>(hx & (<u32>cap - 1))) << 2;
      store<u32>(ghostMain + i, (hx | 3) ^ (WAS_PRIVILEGED ^ wp));
      store<u32>(ghostMainAt + i, mainEvictions++);
    }
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
  adapting: i32,
  protectedFrac: f64,
  sample: f64,
  maxFreq: i32,
  scan: i32,
  capacity: i32,
): i32 {
  budget = budgetBytes;
  windowFraction = windowFrac;
  adaptive = adapting != 0;
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
  setEntries(0);
  missValid = false;
  freeHead = NONE;
  unused = 0;
  additions = 0;
  nEvicted = 0;
  mainEvictions = 0;
  windowEvictions = 0;
  return grow(capacity) ? 0 : OUT_OF_MEMORY;
}

export function get(hi: u32, lo: u32): i32 {
  return getHashed(mixKey(hi, lo), key64(hi, lo));
}

@inline function getHashed(h: u32, key: u64): i32 {
  increment(h);
  const s = find(h, key);
  if (s != NONE) {
    const seg = segOf(s);
    if (seg == PROBATION) {
      unlink(s);
      linkHead(PROTECTED, s);
      store<u8>(rec(s), <u8>WAS_PRIVILEGED, R_PRIV);
      demoteOverflow();
    } else if (seg != PINNED) {
      moveToHead(s);
    }
  }
  else {
    missValid = true;
    missKey = key;
    missHash = h;
    missProbe = probeEnd;
    if (adaptive) adapt(h);
  }
  return s;
}

export function peek(hi: u32, lo: u32): i32 {
  return find(mixKey(hi, lo), key64(hi, lo));
}

/** Returns the slot, -1 when not admitted, -2 when the index cannot grow (nothing changed). */
export function set(hi: u32, lo: u32, size: u32, pinned: i32): i32 {
  const key = key64(hi, lo);
  if (missValid && missKey == key) {
    // The get just before missed this key and nothing changed since: no hash, no probe.
    return setHashed(missHash, key, size, pinned, NONE, missProbe);
  }
  const h = mixKey(hi, lo);
  const s = find(h, key);
  return setHashed(h, key, size, pinned, s, probeEnd);
}

/**
 * Size-aware admission (issue 15), graded: a new key larger than the mean entry waits while
 * size > SIGHT_STEP^(e−1) × mean, e its estimate (≥ 1: the `get` that missed counts), below
 * the counter cap. Only when admitting it would evict: a cache with room keeps everything.
 */
function waitsForSecondSight(h: u32, size: f64): bool {
  if (used + size <= budget || entries == 0) return false;
  let bar = used; // entries × mean, scaled by SIGHT_STEP per request beyond the first
  const scaled = size * <f64>entries;
  if (scaled <= bar) return false;
  const e = estimate(h);
  if (e == 0 || e >= maxFrequency) return false;
  for (let i = 1; i < e; i++) bar *= SIGHT_STEP;
  return scaled > bar;
}

/**
 * `set` with the key's hash and its slot (or NONE) already known; for a new key, `probe` is
 * the empty table position where its probe ended.
 */
function setHashed(h: u32, key: u64, size: u32, pinned: i32, found: i32, probe: u32): i32 {
  nEvicted = 0;
  missValid = false;
  let s = found;
  const isNew = s == NONE;
  const fsize = <f64>size;
  const pinnedBytes = isNew || segOf(s) != PINNED ? bytes(PINNED) : bytes(PINNED) - sizeOf(s);
  const fits = pinned != 0 ? pinnedBytes + fsize <= budget : fsize <= budget - pinnedBytes;
  if (isNew) {
    if (!fits || (pinned == 0 && waitsForSecondSight(h, fsize))) return NONE;
    const before = cap;
    s = allocSlot();
    if (s < 0) return s;
    const r = rec(s);
    store<u64>(r, key, R_KEY);
    store<u32>(r, h, R_HASH);
    store<u32>(r, size, R_SIZE);
    store<u8>(r, 0, R_PRIV);
    // The probe's end is still the key's place unless the table was rebuilt by growth.
    if (cap == before) store<u64>(tableAt(probe), (<u64>h << 32) | <u64>(s + 1));
    else tableInsert(s, h);
    setEntries(entries + 1);
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
  missValid = false;
  const s = find(mixKey(hi, lo), key64(hi, lo));
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

export function windowShare(): f64 {
  return windowFraction;
}

export function batchInput(): usize {
  return BATCH_IN;
}

export function batchResults(): usize {
  return BATCH_RESULTS;
}

export function batchEnds(): usize {
  return BATCH_ENDS;
}

/** Where the last batch's evicted slots are (moves when the block grows). */
export function batchEvictedPtr(): usize {
  return batchEvicted;
}

/**
 * Replays `n` requests from the batch input as the replica makes them: get, and on a miss
 * set. Result per request: the slot on a hit, slot | STORED when a miss was stored, -1 when
 * refused. Evicted slots go to the batch list, request i's ending at ends[i]. Stops early
 * (returns the count done) when the list might not hold the next request's evictions, or
 * with -2 - done when the index cannot grow.
 */
export function requests(n: i32): i32 {
  batchTotal = 0;
  missValid = false;
  for (let i = 0; i < n; i++) {
    if (batchTotal + entries + 1 > 2 * cap) return i;
    const p = BATCH_IN + (<usize>i) * 12;
    const hi = load<u32>(p);
    const lo = load<u32>(p, 4);
    const h = mixKey(hi, lo);
    let r = getHashed(h, key64(hi, lo));
    if (r < 0) {
      // The get just missed: the key is absent, no need to hash and probe again.
      r = setHashed(h, missKey, load<u32>(p, 8), 0, NONE, missProbe);
      if (r == OUT_OF_MEMORY) return OUT_OF_MEMORY - i;
      if (nEvicted > 0) {
        memory.copy(batchEvicted + ((<usize>batchTotal) << 2), evicted, (<usize>nEvicted) << 2);
        batchTotal += nEvicted;
      }
      if (r >= 0) r |= STORED;
    }
    store<i32>(BATCH_RESULTS + ((<usize>i) << 2), r);
    store<i32>(BATCH_ENDS + ((<usize>i) << 2), batchTotal);
  }
  return n;
}

// ---- key-in-memory entry points ---------------------------------------------------------------
// The adapter writes hi, lo (and size) into KEY and calls these without arguments: a u32
// above 2^30 passed as an argument is a boxed number in V8, converted on every call, while a
// store into a Uint32Array view is not (see docs/notes/lfru.md, "The boundary").
const KEY: usize = memory.data(12, 16);

export function keyPtr(): usize {
  return KEY;
}

export function getKey(): i32 {
  return get(load<u32>(KEY), load<u32>(KEY, 4));
}

export function peekKey(): i32 {
  return peek(load<u32>(KEY), load<u32>(KEY, 4));
}

export function setKey(pinned: i32): i32 {
  return set(load<u32>(KEY), load<u32>(KEY, 4), load<u32>(KEY, 8), pinned);
}

export function delKey(): i32 {
  return del(load<u32>(KEY), load<u32>(KEY, 4));
}

/**
 * The pure TypeScript LFRU cache index: the reference implementation (test oracle of the WASM
 * index, benchmark baseline). See `types.ts` for the contract and `LfruOptions` for the policy.
 *
 * Layout: per-slot records in typed arrays (struct of arrays), an open-addressing hash table
 * with linear probing and backward-shift deletion, four doubly linked lists (window,
 * probation, privileged, pinned), a 4-row count-min sketch of 8-bit counters and two
 * direct-mapped ghosts of evicted key hashes that steer the segment shares. Capacity doubles
 * when every slot is in use; no method allocates otherwise. Design and measurements:
 * docs/notes/lfru.md.
 *
 * The WASM index runs the same algorithm: the table keeps each entry's hash beside its slot
 * (probes and deletion compare hashes without touching records), a `get` miss remembers where
 * its probe ended for the `set` that follows, and the aging period is recomputed when the
 * entry count changes.
 *
 * @module
 */
import type { BatchedCacheIndex, LfruOptions } from "./types.ts";
import { mixKey } from "./hash.ts";
import { Ghost } from "./_ghost.ts";
import {
  BATCH_MAX,
  BATCH_STORED,
  checkBatch,
  checkBudget,
  checkSize,
  DUEL_SCAN,
  MAX_CAPACITY,
  MIN_SAMPLE_ENTRIES,
  MIN_WINDOW,
  pow2AtLeast,
  resolveOptions,
  SIGHT_STEP,
} from "./_options.ts";

const NONE = -1;
/** Segment of a slot; also the index of its list. */
const FREE = 0;
const WINDOW = 1;
const PROBATION = 2;
const PROTECTED = 3;
const PINNED = 4;
const SEGMENTS = 5;
/** Count-min sketch rows. */
const DEPTH = 4;
/** Multiplier of the second sketch hash. */
const SKETCH_SEED = 0x5bd1e995;
/**
 * The window ghost holds cap/4 keys, the main ghost cap: a key pushed out of the window
 * argues for a bigger window only if it comes back soon (tuned with `deno task sim` on the
 * Zipf traces; cap/2 wins 0.001–0.005 on the cache2k traces but loses 0.02–0.05 on drifting
 * popularity, cap loses 0.03–0.07 on Zipf).
 */
const WINDOW_GHOST_SHIFT = 2;
/**
 * A main-ghost hit on a key that had been privileged grows the privileged share by this many
 * average entries; one on a key that never was shrinks it by one. Such keys are far fewer, so
 * without the weight probation would win on any workload (tuned with `deno task sim`).
 */
const PRIVILEGED_GHOST_WEIGHT = 32;
/** Ghost tag bit (bit 1) of a key evicted from main that had been privileged. */
const WAS_PRIVILEGED = 2;

/** The odd step between the sketch rows' indices (double hashing): the rotated hash × seed. */
function sketchStep(h: number): number {
  return Math.imul((h >>> 16) | (h << 16), SKETCH_SEED) | 1;
}

/**
 * The TypeScript LFRU index.
 *
 * @example
 * ```ts
 * import { TsLfru } from "./lfru.ts";
 * const index = new TsLfru(1000);
 * const slot = index.set(0, 42, 600);
 * if (index.get(0, 42) !== slot) throw new Error("lost");
 * index.set(0, 43, 600); // evicts to stay under 1000 bytes
 * if (index.usedBytes > 1000) throw new Error("over budget");
 * ```
 */
export class TsLfru implements BatchedCacheIndex {
  readonly budget: number;
  private readonly adaptive: boolean;
  /** Current window share; moves with the ghost hits when `adaptive`. */
  private windowFraction: number;
  /** Hashes (| 1) of keys recently evicted from the window and from the main segments. */
  private ghostWindow = new Ghost(0);
  private ghostMain = new Ghost(0);
  private protectedFraction: number;
  private wasPrivileged = new Uint8Array(0);
  private readonly sampleFactor: number;
  private readonly maxFrequency: number;
  private readonly victimScan: number;

  private cap = 0;
  private keyHi = new Uint32Array(0);
  private keyLo = new Uint32Array(0);
  private hash = new Uint32Array(0);
  private size = new Uint32Array(0);
  private prev = new Int32Array(0);
  private next = new Int32Array(0);
  private seg = new Uint8Array(0);
  private table = new Int32Array(0);
  /** The hash of each table entry, beside `table`. */
  private tableHash = new Uint32Array(0);
  private tableMask = 0;
  /** Where the last unsuccessful `find` stopped (an empty table position). */
  private probeEnd = 0;
  /** The last `get` miss, for the `set` that usually follows: valid until a mutation. */
  private missValid = false;
  private missHi = 0;
  private missLo = 0;
  private missHash = 0;
  private missProbe = 0;
  /** Uses before the counters are halved: sampleFactor × max(entries, 16). */
  private period = 0;
  private sketch = new Uint8Array(0);
  private sketchWidth = 0;
  private evicted = new Int32Array(0);
  private nEvicted = 0;
  private readonly batchIn = new Uint32Array(3 * BATCH_MAX);
  private readonly batchOut = new Int32Array(BATCH_MAX);
  private readonly batchEnds = new Int32Array(BATCH_MAX);
  private batchEvicted = new Int32Array(0);
  private batchTotal = 0;

  private readonly head = new Int32Array(SEGMENTS).fill(NONE);
  private readonly tail = new Int32Array(SEGMENTS).fill(NONE);
  private readonly bytes = new Float64Array(SEGMENTS);
  private used = 0;
  private entries = 0;
  private freeHead = NONE;
  private unused = 0;
  private additions = 0;

  /** Creates an index for `budgetBytes` bytes; RangeError on a bad budget or option. */
  constructor(budgetBytes: number, options?: LfruOptions) {
    this.budget = checkBudget(budgetBytes);
    const o = resolveOptions(options);
    this.windowFraction = o.windowFraction;
    this.adaptive = o.adaptive;
    this.protectedFraction = o.protectedFraction;
    this.sampleFactor = o.sampleFactor;
    this.maxFrequency = o.maxFrequency;
    this.victimScan = o.victimScan;
    this.setEntries(0);
    this.grow(pow2AtLeast(o.initialCapacity));
  }

  get usedBytes(): number {
    return this.used;
  }

  get count(): number {
    return this.entries;
  }

  get(hi: number, lo: number): number {
    hi >>>= 0;
    lo >>>= 0;
    const h = mixKey(hi, lo);
    this.increment(h);
    const s = this.find(h, hi, lo);
    if (s !== NONE) {
      const seg = this.seg[s];
      if (seg === PROBATION) {
        this.unlink(s);
        this.linkHead(PROTECTED, s);
        this.wasPrivileged[s] = WAS_PRIVILEGED;
        this.demoteOverflow();
      } else if (seg !== PINNED) {
        this.unlink(s);
        this.linkHead(seg, s);
      }
    } else {
      this.missValid = true;
      this.missHi = hi;
      this.missLo = lo;
      this.missHash = h;
      this.missProbe = this.probeEnd;
      if (this.adaptive) this.adapt(h);
    }
    return s;
  }

  peek(hi: number, lo: number): number {
    hi >>>= 0;
    lo >>>= 0;
    return this.find(mixKey(hi, lo), hi, lo);
  }

  set(hi: number, lo: number, size: number, pinned = false): number {
    if ((size >>> 0) !== size) checkSize(size);
    hi >>>= 0;
    lo >>>= 0;
    this.nEvicted = 0;
    let h: number, s: number, probe: number;
    if (this.missValid && hi === this.missHi && lo === this.missLo) {
      // The get just before missed this key and nothing changed since: no hash, no probe.
      h = this.missHash;
      s = NONE;
      probe = this.missProbe;
    } else {
      h = mixKey(hi, lo);
      s = this.find(h, hi, lo);
      probe = this.probeEnd;
    }
    this.missValid = false;
    const isNew = s === NONE;
    const pinnedBytes = isNew || this.seg[s] !== PINNED
      ? this.bytes[PINNED]
      : this.bytes[PINNED] - this.size[s];
    const fits = pinned ? pinnedBytes + size <= this.budget : size <= this.budget - pinnedBytes;
    if (isNew) {
      if (!fits || (!pinned && this.waitsForSecondSight(h, size))) return NONE;
      const before = this.cap;
      s = this.allocSlot();
      this.keyHi[s] = hi;
      this.wasPrivileged[s] = 0;
      this.keyLo[s] = lo;
      this.hash[s] = h;
      this.size[s] = size;
      // The probe's end is still the key's place unless the table was rebuilt by growth.
      if (this.cap === before) {
        this.table[probe] = s + 1;
        this.tableHash[probe] = h;
      } else this.tableInsert(s);
      this.setEntries(this.entries + 1);
      this.linkHead(pinned ? PINNED : WINDOW, s);
    } else {
      const old = this.seg[s];
      this.unlink(s);
      if (!fits) {
        this.removeRecord(s);
        this.evicted[this.nEvicted++] = s;
        return NONE;
      }
      this.size[s] = size;
      this.linkHead(pinned ? PINNED : old === PINNED ? PROBATION : old, s);
    }
    if (this.evictOverflow(s, isNew)) return NONE;
    this.rebalance();
    return s;
  }

  delete(hi: number, lo: number): number {
    hi >>>= 0;
    lo >>>= 0;
    this.nEvicted = 0;
    this.missValid = false;
    const s = this.find(mixKey(hi, lo), hi, lo);
    if (s === NONE) return NONE;
    this.unlink(s);
    this.removeRecord(s);
    this.rebalance();
    return s;
  }

  evictedCount(): number {
    return this.nEvicted;
  }

  evictedSlot(i: number): number {
    return i >= 0 && i < this.nEvicted ? this.evicted[i] : NONE;
  }

  batchInput(): Uint32Array {
    return this.batchIn;
  }

  batchResults(): Int32Array {
    return this.batchOut;
  }

  requests(n: number): number {
    checkBatch(n);
    const input = this.batchIn;
    this.batchTotal = 0;
    this.missValid = false;
    for (let i = 0; i < n; i++) {
      // The list holds 2·cap slots and one set evicts at most every entry.
      if (this.batchTotal + this.entries + 1 > 2 * this.cap) return i;
      const hi = input[3 * i];
      const lo = input[3 * i + 1];
      let r = this.get(hi, lo);
      if (r < 0) {
        r = this.set(hi, lo, input[3 * i + 2]);
        for (let e = 0; e < this.nEvicted; e++) {
          this.batchEvicted[this.batchTotal++] = this.evicted[e];
        }
        if (r >= 0) r |= BATCH_STORED;
      }
      this.batchOut[i] = r;
      this.batchEnds[i] = this.batchTotal;
    }
    return n;
  }

  batchEvictedEnd(i: number): number {
    return this.batchEnds[i];
  }

  batchEvictedSlot(j: number): number {
    return j >= 0 && j < this.batchTotal ? this.batchEvicted[j] : NONE;
  }

  /** The sketch's frequency estimate of a key (for tests and the simulator's diagnostics). */
  frequency(hi: number, lo: number): number {
    return this.estimate(mixKey(hi >>> 0, lo >>> 0));
  }

  /** The window's current share of the budget (for tests and the simulator's diagnostics). */
  windowShare(): number {
    return this.windowFraction;
  }

  // --- policy --------------------------------------------------------------------------------

  /**
   * ARC's rule on the window share: a miss on a key the window recently pushed out means the
   * window is too small, a miss on a key the main segments recently evicted means it is too
   * big; each moves the share by one average entry. A ghost hit counts only within ARC's
   * history: a window ghost if the window evicted fewer keys since than the entries outside
   * it (ARC keeps |T1| + |B1| ≤ c), a main ghost if main evicted at most `entries` since.
   */
  private adapt(h: number): void {
    const gm = this.ghostMain;
    const gwin = this.ghostWindow;
    const g = h & (this.cap - 1);
    const gw = h & (gwin.tags.length - 1);
    const tag = (h | 1) >>> 0;
    const held = this.used > 0 ? this.bytes[WINDOW] / this.used : 0;
    let delta = 0;
    if (gwin.tags[gw] === tag && gwin.age(gw) <= this.entries * (1 - held)) {
      gwin.tags[gw] = 0;
      delta = 1;
    } else if (
      ((gm.tags[g] | WAS_PRIVILEGED) >>> 0) === ((h | 3) >>> 0) && gm.age(g) <= this.entries
    ) {
      const privileged = (gm.tags[g] & WAS_PRIVILEGED) !== 0;
      gm.tags[g] = 0;
      delta = -1;
      const p = privileged ? PRIVILEGED_GHOST_WEIGHT : -1;
      const share = this.protectedFraction + p / Math.max(this.entries, MIN_SAMPLE_ENTRIES);
      this.protectedFraction = Math.min(1, Math.max(0, share));
    } else return;
    const step = delta / Math.max(this.entries, MIN_SAMPLE_ENTRIES);
    this.windowFraction = Math.min(1, Math.max(MIN_WINDOW, this.windowFraction + step));
  }

  /** Window quota in bytes. */
  private windowMax(): number {
    return Math.floor((this.budget - this.bytes[PINNED]) * this.windowFraction);
  }

  /** Privileged segment quota in bytes. */
  private protectedMax(): number {
    const main = this.budget - this.bytes[PINNED] - this.windowMax();
    return Math.floor(main * this.protectedFraction);
  }

  /**
   * Evicts until the budget holds. Returns true when `self` (the key being set) was evicted;
   * a new key that loses is refused, not reported.
   */
  private evictOverflow(self: number, isNew: boolean): boolean {
    let selfEvicted = false;
    while (this.used > this.budget) {
      const c = this.bytes[WINDOW] > this.windowMax() ? this.tail[WINDOW] : NONE;
      const v = this.victim();
      let x: number;
      if (c === NONE) x = v === NONE ? this.tail[WINDOW] : v;
      else if (v === NONE) x = c;
      else x = this.admits(c, v) ? v : c;
      const hx = this.hash[x];
      // A refused newcomer is remembered but does not advance the window's eviction count.
      if (this.seg[x] === WINDOW) this.ghostWindow.add(hx, hx | 1, x !== self || !isNew);
      else this.ghostMain.add(hx, (hx | 3) ^ (WAS_PRIVILEGED ^ this.wasPrivileged[x]));
      this.unlink(x);
      this.removeRecord(x);
      if (x === self) {
        selfEvicted = true;
        if (isNew) continue;
      }
      this.evicted[this.nEvicted++] = x;
    }
    return selfEvicted;
  }

  /**
   * The duel between the window's candidate `c` and probation's victim `v`. When `c` is no
   * larger than `v`, the more frequent wins (ties keep `v`). When it is larger, admitting it
   * costs every probation entry from `v` up until the overflow is freed (or as many bytes as
   * `c` holds): `c` must then be more frequent than all of them together — their hits are
   * what the cache would lose — so a large object does not push out several small ones it
   * merely outranks one by one. At most DUEL_SCAN entries are summed; needing more refuses it.
   */
  private admits(c: number, v: number): boolean {
    const fc = this.estimate(this.hash[c]);
    if (this.size[c] <= this.size[v]) return fc > this.estimate(this.hash[v]);
    const need = Math.min(this.used - this.budget, this.size[c]);
    let freed = 0;
    let sum = 0;
    let x = v;
    for (let i = 0; i < DUEL_SCAN && x !== NONE; i++) {
      sum += this.estimate(this.hash[x]);
      if (fc <= sum) return false;
      freed += this.size[x];
      if (freed >= need) return true;
      x = this.prev[x];
    }
    return false;
  }

  /**
   * Size-aware admission (issue 15), graded: a new key larger than the mean entry is refused
   * while it has been requested fewer times than one plus the number of factors SIGHT_STEP
   * between its size and the mean: with estimate e ≥ 1 (the `get` that missed counts), it
   * waits while size > SIGHT_STEP^(e−1) × mean. A key at 4 × the mean is cached on its second
   * request, at 16 × on its third, and so on up to the counter cap. With equal sizes no key is
   * above the mean and nothing changes; a `set` without a `get` (estimate 0) is admitted. Only
   * when admitting it would evict: a cache with room keeps all.
   */
  private waitsForSecondSight(h: number, size: number): boolean {
    if (this.used + size <= this.budget || this.entries === 0) return false;
    let bar = this.used; // entries × mean, scaled by SIGHT_STEP per request beyond the first
    if (size * this.entries <= bar) return false;
    const e = this.estimate(h);
    if (e === 0 || e >= this.maxFrequency) return false;
    for (let i = 1; i < e; i++) bar *= SIGHT_STEP;
    return size * this.entries > bar;
  }

  /** The least frequent of the oldest `victimScan` probation entries, else the LRU privileged. */
  private victim(): number {
    let best = this.tail[PROBATION];
    if (best === NONE) return this.tail[PROTECTED];
    if (this.victimScan === 1) return best;
    let bestFreq = this.estimate(this.hash[best]);
    let x = this.prev[best];
    for (let i = 1; i < this.victimScan && x !== NONE; i++) {
      const f = this.estimate(this.hash[x]);
      if (f < bestFreq) {
        best = x;
        bestFreq = f;
      }
      x = this.prev[x];
    }
    return best;
  }

  /** Moves window overflow to probation and demotes privileged overflow. */
  private rebalance(): void {
    const wMax = this.windowMax();
    while (this.bytes[WINDOW] > wMax) {
      const t = this.tail[WINDOW];
      this.unlink(t);
      this.linkHead(PROBATION, t);
    }
    this.demoteOverflow();
  }

  private demoteOverflow(): void {
    const pMax = this.protectedMax();
    while (this.bytes[PROTECTED] > pMax) {
      const t = this.tail[PROTECTED];
      this.unlink(t);
      this.linkHead(PROBATION, t);
    }
  }

  // --- frequency sketch ----------------------------------------------------------------------

  private estimate(h: number): number {
    const step = sketchStep(h);
    const mask = this.sketchWidth - 1;
    const w = this.sketchWidth;
    const sk = this.sketch;
    // The rows' indices as in `increment`: h + r·step, wrapped to 32 bits by the mask.
    const c0 = sk[h & mask];
    const c1 = sk[w + ((h + step) & mask)];
    const c2 = sk[2 * w + ((h + 2 * step) & mask)];
    const c3 = sk[3 * w + ((h + 3 * step) & mask)];
    return Math.min(Math.min(c0, c1), Math.min(c2, c3));
  }

  /**
   * Conservative update: only the counters at the minimum grow (unless capped); halves all
   * after a period. Branch-free like the WASM twin's: which counters sit at the minimum is
   * random, so branches on it mispredict. For c, m in [0, 255], ((c ^ m) - 1) >>> 31 is 1 when
   * c === m, else 0; (m - max) >>> 31 is 1 when m < max.
   */
  private increment(h: number): void {
    const step = sketchStep(h);
    const mask = this.sketchWidth - 1;
    const w = this.sketchWidth;
    const sk = this.sketch;
    const i0 = h & mask;
    const i1 = w + ((h + step) & mask);
    const i2 = 2 * w + ((h + 2 * step) & mask);
    const i3 = 3 * w + ((h + 3 * step) & mask);
    const c0 = sk[i0];
    const c1 = sk[i1];
    const c2 = sk[i2];
    const c3 = sk[i3];
    const min = Math.min(Math.min(c0, c1), Math.min(c2, c3));
    const up = (min - this.maxFrequency) >>> 31;
    sk[i0] = c0 + (up & (((c0 ^ min) - 1) >>> 31));
    sk[i1] = c1 + (up & (((c1 ^ min) - 1) >>> 31));
    sk[i2] = c2 + (up & (((c2 ^ min) - 1) >>> 31));
    sk[i3] = c3 + (up & (((c3 ^ min) - 1) >>> 31));
    this.additions++;
    if (this.additions >= this.period) {
      const sk = this.sketch;
      for (let i = 0; i < sk.length; i++) sk[i] >>>= 1;
      this.additions = this.additions >>> 1;
    }
  }

  // --- lists ---------------------------------------------------------------------------------

  private linkHead(seg: number, s: number): void {
    const h = this.head[seg];
    this.seg[s] = seg;
    this.prev[s] = NONE;
    this.next[s] = h;
    if (h === NONE) this.tail[seg] = s;
    else this.prev[h] = s;
    this.head[seg] = s;
    this.bytes[seg] += this.size[s];
    this.used += this.size[s];
  }

  private unlink(s: number): void {
    const seg = this.seg[s];
    const p = this.prev[s];
    const n = this.next[s];
    if (p === NONE) this.head[seg] = n;
    else this.next[p] = n;
    if (n === NONE) this.tail[seg] = p;
    else this.prev[n] = p;
    this.bytes[seg] -= this.size[s];
    this.used -= this.size[s];
  }

  // --- slots and hash table ------------------------------------------------------------------

  private setEntries(n: number): void {
    this.entries = n;
    this.period = this.sampleFactor * Math.max(n, MIN_SAMPLE_ENTRIES);
  }

  private allocSlot(): number {
    if (this.freeHead !== NONE) {
      const s = this.freeHead;
      this.freeHead = this.next[s];
      return s;
    }
    if (this.unused === this.cap) {
      if (this.cap >= MAX_CAPACITY) {
        throw new RangeError(
          `Cannot set cache entry: the index is full: ${MAX_CAPACITY} entries`,
        );
      }
      this.grow(this.cap * 2);
    }
    return this.unused++;
  }

  /** Takes `s` (already unlinked) out of the table and onto the free list. */
  private removeRecord(s: number): void {
    this.tableDelete(s);
    this.seg[s] = FREE;
    this.next[s] = this.freeHead;
    this.freeHead = s;
    this.setEntries(this.entries - 1);
  }

  /** The key's slot or NONE; on NONE, `probeEnd` is the empty position that ended the probe. */
  private find(h: number, hi: number, lo: number): number {
    const t = this.table;
    const th = this.tableHash;
    const mask = this.tableMask;
    for (let i = h & mask;; i = (i + 1) & mask) {
      const v = t[i];
      if (v === 0) {
        this.probeEnd = i;
        return NONE;
      }
      const s = v - 1;
      // The stored hash first: a mismatch never touches the record.
      if (th[i] === h && this.keyHi[s] === hi && this.keyLo[s] === lo) return s;
    }
  }

  private tableInsert(s: number): void {
    const t = this.table;
    const mask = this.tableMask;
    const h = this.hash[s];
    let i = h & mask;
    while (t[i] !== 0) i = (i + 1) & mask;
    t[i] = s + 1;
    this.tableHash[i] = h;
  }

  private tableDelete(s: number): void {
    const t = this.table;
    const th = this.tableHash;
    const mask = this.tableMask;
    let i = this.hash[s] & mask;
    while (t[i] !== s + 1) i = (i + 1) & mask;
    // Backward-shift deletion keeps every probe chain unbroken without tombstones; the home of
    // each entry comes from its stored hash, not from its record.
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const v = t[j];
      if (v === 0) break;
      const k = th[j] & mask;
      if (j > i ? k <= i || k > j : k <= i && k > j) {
        t[i] = v;
        th[i] = th[j];
        i = j;
      }
    }
    t[i] = 0;
  }

  /** Resizes to `cap` slots: a table of 2·cap, a sketch of 4 rows × 2·cap counters. */
  private grow(cap: number): void {
    const old = this.cap;
    const copyU32 = (a: Uint32Array) => {
      const b = new Uint32Array(cap);
      b.set(a);
      return b;
    };
    const copyI32 = (a: Int32Array) => {
      const b = new Int32Array(cap);
      b.set(a);
      return b;
    };
    this.keyHi = copyU32(this.keyHi);
    this.keyLo = copyU32(this.keyLo);
    this.hash = copyU32(this.hash);
    this.size = copyU32(this.size);
    this.prev = copyI32(this.prev);
    this.next = copyI32(this.next);
    this.evicted = copyI32(this.evicted);
    const batchEvicted = new Int32Array(2 * cap);
    batchEvicted.set(this.batchEvicted);
    this.batchEvicted = batchEvicted;
    const wp = new Uint8Array(cap);
    wp.set(this.wasPrivileged);
    this.wasPrivileged = wp;
    const seg = new Uint8Array(cap);
    seg.set(this.seg);
    this.seg = seg;
    this.cap = cap;
    this.table = new Int32Array(2 * cap);
    this.tableHash = new Uint32Array(2 * cap);
    this.tableMask = 2 * cap - 1;
    for (let s = 0; s < old; s++) if (this.seg[s] !== FREE) this.tableInsert(s);
    // Widening the sketch keeps every estimate: a counter at i of a row of width w is read at
    // i and i + w in the row of width 2w, so each row is copied twice.
    const width = 2 * cap;
    const sketch = new Uint8Array(DEPTH * width);
    const ow = this.sketchWidth;
    if (ow > 0) {
      for (let r = 0; r < DEPTH; r++) {
        const row = this.sketch.subarray(r * ow, (r + 1) * ow);
        for (let k = 0; k < width; k += ow) sketch.set(row, r * width + k);
      }
    }
    this.sketch = sketch;
    this.sketchWidth = width;
    this.ghostWindow = this.ghostWindow.regrow(cap >>> WINDOW_GHOST_SHIFT);
    this.ghostMain = this.ghostMain.regrow(cap);
  }
}

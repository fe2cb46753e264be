/**
 * The LFRU cache index contract. The index tracks keys (64-bit hashes, passed as two u32
 * halves so no BigInt crosses the boundary), sizes and slot numbers under a byte budget; the
 * bodies live with the caller, in an array indexed by slot. Two implementations: the pure
 * TypeScript reference (`lfru.ts`, the test oracle) and the AssemblyScript one behind
 * `wasm_lfru.ts`; one conformance suite and a seeded differential test run both.
 *
 * LFRU: a privileged LRU segment and an unprivileged segment evicted by least (aged)
 * frequency; a key used again in the unprivileged segment is promoted.
 *
 * @module
 */

/** A byte-budgeted cache index. No method allocates on the hot path. */
export interface CacheIndex {
  /** Byte budget. */
  readonly budget: number;
  /** Bytes held by the entries now (pinned ones included). */
  readonly usedBytes: number;
  /** Number of entries. */
  readonly count: number;
  /** Looks a key up and counts a use; returns its slot or -1. */
  get(hi: number, lo: number): number;
  /** Looks a key up without counting a use; returns its slot or -1. */
  peek(hi: number, lo: number): number;
  /**
   * Inserts a key of `size` bytes (or updates the size of a present key) and returns its slot,
   * evicting as needed; -1 when it is not admitted (larger than the budget, or the admission
   * policy refused it). Pinned entries are never evicted and never refused for policy, only
   * for space. The slots evicted by this call are readable with `evictedCount`/`evictedSlot`
   * until the next mutating call.
   */
  set(hi: number, lo: number, size: number, pinned?: boolean): number;
  /** Removes a key; returns the slot it freed or -1. */
  delete(hi: number, lo: number): number;
  /** Number of slots the last `set` evicted. */
  evictedCount(): number;
  /** The `i`th slot the last `set` evicted. */
  evictedSlot(i: number): number;
}

/**
 * Tuning of the LFRU policy, shared by both implementations (they must agree bit for bit).
 *
 * The cache is split into an unprivileged part (a small admission window plus a probation
 * segment) and a privileged LRU segment. New keys enter the window; a key the window pushes out
 * competes with the probation victim (the least frequent of the probation's oldest
 * `victimScan` entries) and the less frequent of the two is evicted. Size-aware: a candidate
 * larger than the victim must be more frequent than all the probation entries it would push
 * out together (up to 64 of them), so a large object never displaces several small ones by
 * outranking each in turn. A key used again while
 * unprivileged is promoted to the privileged segment, whose overflow is demoted to probation.
 * Frequencies come from a count-min sketch of recent uses (every `get`, hit or miss) whose
 * counters are halved every `sampleFactor` × entries uses, so old popularity fades.
 */
export interface LfruOptions {
  /** Share of the (unpinned) budget given to the admission window at first, in [0, 1]. */
  windowFraction?: number;
  /**
   * Adapt the shares with ARC's rule, from ghosts (hashes) of recently evicted keys: a `get`
   * miss on a key the window pushed out grows the window by one average entry, a miss on a
   * key evicted from the main segments shrinks it, and also moves the privileged share: up
   * (by 32 entries) when that key had been privileged, down (by one) when it never was.
   * Recency-heavy traffic moves the index toward LRU, frequency-heavy traffic toward TinyLFU.
   * The window share stays within [1 %, 80 %] of the budget, so it cannot collapse.
   */
  adaptive?: boolean;
  /** Share of the rest given to the privileged LRU segment at first, in [0, 1]. */
  protectedFraction?: number;
  /** Counters are halved after `sampleFactor` × max(count, 16) uses, in [1, 1e6]. */
  sampleFactor?: number;
  /** Frequency counter cap, in [1, 255]. */
  maxFrequency?: number;
  /** Probation entries examined (from the oldest) to pick the least frequent victim, [1, 64]. */
  victimScan?: number;
  /** Entries the index is sized for before it first grows, [16, 2^24]. */
  initialCapacity?: number;
}

/**
 * Batched requests, for bulk work where the per-call cost of crossing into WASM matters
 * (simulation, warming an index): one call replays up to `BATCH_MAX` requests the way the
 * replica makes them — `get`, and on a miss `set` — through shared buffers. Both LFRU
 * implementations have it. Views may be replaced when memory grows: fetch them again after
 * every `requests` call.
 */
export interface BatchedCacheIndex extends CacheIndex {
  /** The input: `hi, lo, size` u32 triples, one per request. */
  batchInput(): Uint32Array;
  /**
   * Per request: the slot on a hit, `slot | BATCH_STORED` when a miss was stored, -1 when
   * the miss was refused.
   */
  batchResults(): Int32Array;
  /**
   * Replays the first `n` requests of the input; returns how many were done, fewer than `n`
   * when the batch's eviction list might not hold the next request's evictions (call again
   * with the rest).
   */
  requests(n: number): number;
  /** End (exclusive) of request `i`'s evictions in the batch's eviction list. */
  batchEvictedEnd(i: number): number;
  /** The `j`th slot evicted by the last batch. */
  batchEvictedSlot(j: number): number;
}

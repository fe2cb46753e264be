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

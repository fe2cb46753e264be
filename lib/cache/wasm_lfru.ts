/**
 * The WASM LFRU cache index: a thin adapter over `wasm/build/lru.wasm` (built from
 * `wasm/lru.ts` by `deno task build:wasm`). It runs exactly the policy of the TypeScript
 * reference `TsLfru` (a differential test holds them equal); only numbers cross the boundary
 * and no call allocates.
 *
 * @module
 */
import type { BatchedCacheIndex, LfruOptions } from "./types.ts";
import {
  BATCH_MAX,
  checkBatch,
  checkBudget,
  checkSize,
  MAX_CAPACITY,
  pow2AtLeast,
  resolveOptions,
} from "./_options.ts";
import { wasmModuleLoader } from "../common/wasm_module.ts";

const WASM_URL = new URL("../../wasm/build/lru.wasm", import.meta.url);
/** Status of a WASM call that could not grow its memory. */
const OUT_OF_MEMORY = -2;

/** The raw exports of `lru.wasm` (see the ABI notes at the top of `wasm/lru.ts`). */
export interface LruExports {
  memory: WebAssembly.Memory;
  init(
    budget: number,
    windowFraction: number,
    adaptive: number,
    protectedFraction: number,
    sampleFactor: number,
    maxFrequency: number,
    victimScan: number,
    capacity: number,
  ): number;
  get(hi: number, lo: number): number;
  peek(hi: number, lo: number): number;
  set(hi: number, lo: number, size: number, pinned: number): number;
  del(hi: number, lo: number): number;
  usedBytes(): number;
  count(): number;
  evictedCount(): number;
  evictedPtr(): number;
  frequency(hi: number, lo: number): number;
  windowShare(): number;
  batchInput(): number;
  batchResults(): number;
  batchEnds(): number;
  batchEvictedPtr(): number;
  requests(n: number): number;
  keyPtr(): number;
  getKey(): number;
  peekKey(): number;
  setKey(pinned: number): number;
  delKey(): number;
}

/** Compiles the module once per process (synchronously). */
const wasmModule = wasmModuleLoader(WASM_URL, "the WASM cache index");

function fullError(): RangeError {
  return new RangeError(
    `Cannot set cache entry: the index is full: ${MAX_CAPACITY} entries or no more WASM memory`,
  );
}

/** The WASM index behind the `CacheIndex` contract. */
class WasmLfru implements BatchedCacheIndex {
  readonly budget: number;
  readonly #w: LruExports;
  #buffer: ArrayBuffer | undefined;
  #evicted = new Int32Array(0);
  #input = new Uint32Array(0);
  #results = new Int32Array(0);
  /** hi, lo, size of the key being passed: keys cross through memory, not as arguments. */
  #key = new Uint32Array(0);
  readonly #getKey: () => number;
  readonly #peekKey: () => number;
  readonly #setKey: (pinned: number) => number;
  readonly #delKey: () => number;
  // The exported function itself, so a call goes straight into WASM.
  readonly evictedCount: () => number;
  /** The sketch's frequency estimate of a key (for tests and diagnostics). */
  readonly frequency: (hi: number, lo: number) => number;
  /** The window's current share of the budget (for tests and diagnostics). */
  readonly windowShare: () => number;

  constructor(budgetBytes: number, options?: LfruOptions) {
    this.budget = checkBudget(budgetBytes);
    const o = resolveOptions(options);
    this.#w = new WebAssembly.Instance(wasmModule()).exports as unknown as LruExports;
    const status = this.#w.init(
      this.budget,
      o.windowFraction,
      o.adaptive ? 1 : 0,
      o.protectedFraction,
      o.sampleFactor,
      o.maxFrequency,
      o.victimScan,
      pow2AtLeast(o.initialCapacity),
    );
    if (status === OUT_OF_MEMORY) throw fullError();
    this.#views();
    this.#getKey = this.#w.getKey;
    this.#peekKey = this.#w.peekKey;
    this.#setKey = this.#w.setKey;
    this.#delKey = this.#w.delKey;
    this.evictedCount = this.#w.evictedCount;
    this.frequency = this.#w.frequency;
    this.windowShare = this.#w.windowShare;
  }

  get usedBytes(): number {
    return this.#w.usedBytes();
  }

  get count(): number {
    return this.#w.count();
  }

  get(hi: number, lo: number): number {
    const k = this.#key;
    k[0] = hi;
    k[1] = lo;
    return this.#getKey();
  }

  peek(hi: number, lo: number): number {
    const k = this.#key;
    k[0] = hi;
    k[1] = lo;
    return this.#peekKey();
  }

  delete(hi: number, lo: number): number {
    const k = this.#key;
    k[0] = hi;
    k[1] = lo;
    return this.#delKey();
  }

  set(hi: number, lo: number, size: number, pinned = false): number {
    // An integer in [0, 2^32 - 1] passes the first test; checkSize throws the error otherwise.
    if ((size >>> 0) !== size) checkSize(size);
    const k = this.#key;
    k[0] = hi;
    k[1] = lo;
    k[2] = size;
    const s = this.#setKey(pinned ? 1 : 0);
    if (s === OUT_OF_MEMORY) throw fullError();
    // Only set and requests can grow memory, which detaches the views (length 0).
    if (k.length === 0) this.#views();
    return s;
  }

  /** Re-creates the views when memory.grow replaced the buffer. */
  #views(): void {
    // A non-shared memory: its buffer is a plain ArrayBuffer.
    const buf = this.#w.memory.buffer as ArrayBuffer;
    if (this.#buffer === buf) return;
    this.#buffer = buf;
    this.#evicted = new Int32Array(buf);
    this.#input = new Uint32Array(buf, this.#w.batchInput(), 3 * BATCH_MAX);
    this.#results = new Int32Array(buf, this.#w.batchResults(), BATCH_MAX);
    this.#key = new Uint32Array(buf, this.#w.keyPtr(), 3);
  }

  batchInput(): Uint32Array {
    this.#views();
    return this.#input;
  }

  batchResults(): Int32Array {
    this.#views();
    return this.#results;
  }

  requests(n: number): number {
    checkBatch(n);
    const done = this.#w.requests(n);
    if (done < 0) throw fullError();
    this.#views();
    return done;
  }

  batchEvictedEnd(i: number): number {
    this.#views();
    return this.#evicted[(this.#w.batchEnds() >>> 2) + i];
  }

  batchEvictedSlot(j: number): number {
    this.#views();
    return this.#evicted[(this.#w.batchEvictedPtr() >>> 2) + j];
  }

  evictedSlot(i: number): number {
    if (!(i >= 0 && i < this.#w.evictedCount())) return -1;
    this.#views();
    return this.#evicted[(this.#w.evictedPtr() >>> 2) + i];
  }
}

/**
 * Creates a WASM LFRU index of `budgetBytes` bytes. Throws RangeError on a bad budget or
 * option, and Error when `wasm/build/lru.wasm` has not been built.
 *
 * @example
 * ```ts
 * import { createWasmLfru } from "./wasm_lfru.ts";
 * const index = createWasmLfru(64 * 1024 * 1024);
 * const slot = index.set(0x1234, 0x5678, 4096);
 * if (index.get(0x1234, 0x5678) !== slot) throw new Error("lost");
 * ```
 */
export function createWasmLfru(
  budgetBytes: number,
  options?: LfruOptions,
): BatchedCacheIndex & { frequency(hi: number, lo: number): number; windowShare(): number } {
  return new WasmLfru(budgetBytes, options);
}

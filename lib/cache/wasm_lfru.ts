/**
 * The WASM LFRU cache index: a thin adapter over `wasm/build/lru.wasm` (built from
 * `wasm/lru.ts` by `deno task build:wasm`). It runs exactly the policy of the TypeScript
 * reference `TsLfru` (a differential test holds them equal); only numbers cross the boundary
 * and no call allocates.
 *
 * @module
 */
import type { CacheIndex, LfruOptions } from "./types.ts";
import { checkBudget, checkSize, MAX_CAPACITY, pow2AtLeast, resolveOptions } from "./_options.ts";

const WASM_URL = new URL("../../wasm/build/lru.wasm", import.meta.url);
/** Status of a WASM call that could not grow its memory. */
const OUT_OF_MEMORY = -2;

/** The raw exports of `lru.wasm` (see the ABI notes at the top of `wasm/lru.ts`). */
export interface LruExports {
  memory: WebAssembly.Memory;
  init(
    budget: number,
    windowFraction: number,
    adaptiveWindow: number,
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
}

let compiled: WebAssembly.Module | undefined;

/** Compiles `lru.wasm` once per process (synchronously). */
function wasmModule(): WebAssembly.Module {
  if (compiled) return compiled;
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(WASM_URL);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        `Cannot load the WASM cache index: ${WASM_URL.pathname} is missing; run \`deno task build:wasm\``,
      );
    }
    throw e;
  }
  compiled = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
  return compiled;
}

function fullError(): RangeError {
  return new RangeError(
    `Cannot set cache entry: the index is full: ${MAX_CAPACITY} entries or no more WASM memory`,
  );
}

/** The WASM index behind the `CacheIndex` contract. */
class WasmLfru implements CacheIndex {
  readonly budget: number;
  readonly #w: LruExports;
  #evicted: Int32Array;

  constructor(budgetBytes: number, options?: LfruOptions) {
    this.budget = checkBudget(budgetBytes);
    const o = resolveOptions(options);
    this.#w = new WebAssembly.Instance(wasmModule()).exports as unknown as LruExports;
    const status = this.#w.init(
      this.budget,
      o.windowFraction,
      o.adaptiveWindow ? 1 : 0,
      o.protectedFraction,
      o.sampleFactor,
      o.maxFrequency,
      o.victimScan,
      pow2AtLeast(o.initialCapacity),
    );
    if (status === OUT_OF_MEMORY) throw fullError();
    this.#evicted = new Int32Array(this.#w.memory.buffer);
  }

  get usedBytes(): number {
    return this.#w.usedBytes();
  }

  get count(): number {
    return this.#w.count();
  }

  get(hi: number, lo: number): number {
    return this.#w.get(hi, lo);
  }

  peek(hi: number, lo: number): number {
    return this.#w.peek(hi, lo);
  }

  set(hi: number, lo: number, size: number, pinned = false): number {
    checkSize(size);
    const s = this.#w.set(hi, lo, size, pinned ? 1 : 0);
    if (s === OUT_OF_MEMORY) throw fullError();
    return s;
  }

  delete(hi: number, lo: number): number {
    return this.#w.del(hi, lo);
  }

  evictedCount(): number {
    return this.#w.evictedCount();
  }

  evictedSlot(i: number): number {
    if (!(i >= 0 && i < this.#w.evictedCount())) return -1;
    // The view is re-created whenever memory.grow replaced the buffer.
    if (this.#evicted.buffer !== this.#w.memory.buffer) {
      this.#evicted = new Int32Array(this.#w.memory.buffer);
    }
    return this.#evicted[(this.#w.evictedPtr() >>> 2) + i];
  }

  /** The sketch's frequency estimate of a key (for tests and diagnostics). */
  frequency(hi: number, lo: number): number {
    return this.#w.frequency(hi, lo);
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
): CacheIndex & { frequency(hi: number, lo: number): number } {
  return new WasmLfru(budgetBytes, options);
}

/**
 * The LFRU cache index: the contract, the TypeScript reference, the WASM index and key hashing.
 *
 * @module
 */
export type { BatchedCacheIndex, CacheIndex, LfruOptions } from "./types.ts";
export { TsLfru } from "./lfru.ts";
export { fmix32, hashKey, mixKey } from "./hash.ts";
export {
  BATCH_MAX,
  BATCH_STORED,
  DEFAULT_LFRU_OPTIONS,
  MAX_BUDGET_BYTES,
  MAX_ENTRY_BYTES,
} from "./_options.ts";
export { createWasmLfru } from "./wasm_lfru.ts";

/**
 * The DNS wire codec: parse a query and answer it in place, in WebAssembly
 * ({@link createWasmCodec}) or in TypeScript ({@link ReferenceCodec}), behind one contract
 * ({@link DnsCodec}).
 *
 * @module
 */
export * from "./types.ts";
export { ReferenceCodec } from "./reference.ts";
export { createWasmCodec } from "./wasm.ts";

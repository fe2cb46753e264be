/**
 * Images: the Lanczos-3 rescaler (WASM, with its TypeScript reference) and quality measures.
 *
 * @module
 */
export type { Pixels, Resizer } from "./types.ts";
export { TsResizer } from "./reference.ts";
export { createWasmResizer, WasmResizer } from "./wasm_resize.ts";
export { MAX_PIXELS, MAX_SIDE } from "./_common.ts";
export { psnr } from "./quality.ts";
export { type ImageFormat, type ImageInfo, probeImage } from "./probe.ts";
export { scaledHeight, transcode, type Transcoded, type TranscodeOptions } from "./pipeline.ts";

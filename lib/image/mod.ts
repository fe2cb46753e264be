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
export { createJpegDecoder, type DecodedJpeg, JpegDecoder, jpegShiftFor } from "./jpeg.ts";
export {
  checkLadder,
  DEFAULT_LADDER,
  type ImageParams,
  type Ladder,
  parseImageParams,
  rungFor,
} from "./ladder.ts";
export { ACCEPT_CH, type ClientHints, parseClientHints } from "./client_hints.ts";
export {
  allRungs,
  chooseVariant,
  rungHeader,
  type Variant,
  variantKey,
  type VariantRequest,
} from "./variant.ts";
export { type Bytes, LruVariants, sourceTag, type VariantStore } from "./variant_store.ts";
export { CacheVariants, derivedUrl } from "./cache_variants.ts";
export { prefixOf, ThroughputEstimator } from "./throughput.ts";
export { ImageLayer, type ImageLayerOptions, type ImageMode, type ImageStats } from "./serve.ts";

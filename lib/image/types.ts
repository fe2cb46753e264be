/**
 * The rescaler contract, implemented by the TypeScript reference (`reference.ts`) and the WASM
 * module's adapter (`wasm_resize.ts`).
 *
 * @module
 */

/** RGBA bytes, 4 per pixel, row-major (imagescript's `bitmap` is a `Uint8ClampedArray`). */
export type Pixels = Uint8Array | Uint8ClampedArray;

/**
 * Resizes 8-bit RGBA images (straight, not premultiplied, alpha) with a separable Lanczos-3
 * filter in gamma space (the sRGB-encoded values are filtered as they are, as ImageMagick's
 * `-resize` and sharp do), alpha-premultiplied while filtering.
 */
export interface Resizer {
  /**
   * Resizes `src` (`sw`×`sh`, 4 bytes per pixel, row-major) to `dw`×`dh`. Writes into `out`
   * when given (it must hold `dw*dh*4` bytes) and returns it; otherwise returns a new array.
   */
  resize(
    src: Pixels,
    sw: number,
    sh: number,
    dw: number,
    dh: number,
    out?: Uint8Array,
  ): Uint8Array;
}

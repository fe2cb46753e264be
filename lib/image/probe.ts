/**
 * Reads an image's format and dimensions from its header without decoding it, so a limit on
 * source pixels is enforced before any decode buffer is allocated.
 *
 * @example
 * ```ts
 * import { probeImage } from "./probe.ts";
 *
 * const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82,
 *   0, 0, 7, 128, 0, 0, 4, 56]);
 * const info = probeImage(png);
 * if (info?.width !== 1920 || info.height !== 1080) throw new Error("PNG IHDR read");
 * ```
 *
 * @module
 */

/** The formats the image pipeline decodes (and encodes). */
export type ImageFormat = "jpeg" | "png";

/** The formats the image pipeline encodes: the decoded ones and WebP. */
export type OutputFormat = ImageFormat | "webp";

/** What the header says. */
export interface ImageInfo {
  format: ImageFormat;
  width: number;
  height: number;
  /** JPEG only: progressive (SOF2) rather than baseline/extended sequential. */
  progressive: boolean;
  /**
   * JPEG only: each component's sampling factors `[h, v]` from the frame header, e.g.
   * `[[2, 2], [1, 1], [1, 1]]` for 4:2:0 (what decode buffers are sized by); absent for PNG.
   */
  sampling?: readonly (readonly [number, number])[];
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Format and size of a JPEG or PNG, or `undefined` if the bytes are neither (or truncated). */
export function probeImage(b: Uint8Array): ImageInfo | undefined {
  if (b.length >= 24 && PNG_SIGNATURE.every((v, i) => b[i] === v)) {
    // IHDR is the first chunk: length (4), "IHDR" (4), width (4), height (4).
    if (b[12] !== 0x49 || b[13] !== 0x48 || b[14] !== 0x44 || b[15] !== 0x52) return undefined;
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    return { format: "png", width: v.getUint32(16), height: v.getUint32(20), progressive: false };
  }
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return undefined;
  let p = 2;
  while (p + 4 <= b.length) {
    if (b[p] !== 0xff) return undefined;
    const marker = b[p + 1];
    if (marker === 0xff) {
      p++; // fill byte
      continue;
    }
    const len = (b[p + 2] << 8) | b[p + 3];
    // SOF0..SOF15 carry the frame size, except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (p + 10 > b.length) return undefined;
      const height = (b[p + 5] << 8) | b[p + 6];
      const width = (b[p + 7] << 8) | b[p + 8];
      const n = b[p + 9];
      if (p + 10 + 3 * n > b.length) return undefined;
      const sampling: [number, number][] = [];
      for (let c = 0; c < n; c++) {
        const hv = b[p + 11 + 3 * c];
        sampling.push([hv >> 4, hv & 15]);
      }
      const progressive = marker === 0xc2 || marker === 0xc6;
      return { format: "jpeg", width, height, progressive, sampling };
    }
    if (marker === 0xd9 || marker === 0xda || len < 2) return undefined; // no frame header before data
    p += 2 + len;
  }
  return undefined;
}

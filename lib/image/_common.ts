/**
 * Argument checks shared by the TypeScript and WASM rescalers, so both refuse the same inputs
 * with the same messages.
 *
 * @module
 */
import type { Pixels } from "./types.ts";

/** Largest width or height accepted, on either side of a resize. */
export const MAX_SIDE = 32768;
/** Largest pixel count accepted, on either side of a resize (a 50-megapixel photo fits). */
export const MAX_PIXELS = 64_000_000;

function checkSide(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 1 || v > MAX_SIDE) {
    throw new RangeError(
      `Cannot resize image: ${what} must be an integer from 1 to ${MAX_SIDE}: received ${v}`,
    );
  }
}

/** Checks the dimensions and buffer sizes of a resize; throws `RangeError` / `TypeError`. */
export function checkResize(
  src: Pixels,
  sw: number,
  sh: number,
  dw: number,
  dh: number,
  out?: Uint8Array,
): void {
  checkSide("source width", sw);
  checkSide("source height", sh);
  checkSide("target width", dw);
  checkSide("target height", dh);
  if (sw * sh > MAX_PIXELS || dw * dh > MAX_PIXELS) {
    throw new RangeError(
      `Cannot resize image: more than ${MAX_PIXELS} pixels: ${sw}x${sh} to ${dw}x${dh}`,
    );
  }
  if (!(src instanceof Uint8Array) && !(src instanceof Uint8ClampedArray)) {
    throw new TypeError("Cannot resize image: pixels must be a Uint8Array of RGBA bytes");
  }
  if (src.length !== sw * sh * 4) {
    throw new RangeError(
      `Cannot resize image: a ${sw}x${sh} RGBA image has ${
        sw * sh * 4
      } bytes: received ${src.length}`,
    );
  }
  if (out !== undefined && out.length !== dw * dh * 4) {
    throw new RangeError(
      `Cannot resize image: the output for ${dw}x${dh} needs ${
        dw * dh * 4
      } bytes: received ${out.length}`,
    );
  }
}

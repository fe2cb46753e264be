/**
 * The image layer's memory allowance: every transcode reserves the bytes it is estimated to
 * hold ({@link transcodeBytes}) before it starts and releases them when its worker answers
 * (result, error, or the worker's end), so decode buffers and variant work stay within a fixed
 * budget (`--image-memory`, default {@link DEFAULT_IMAGE_MEMORY}) on top of the cache's.
 * {@link MemoryAllowance.tryReserve} refuses at once (a request is then served the original);
 * {@link MemoryAllowance.reserve} waits its turn (background work is deferred).
 *
 * @example
 * ```ts
 * import { MemoryAllowance, transcodeBytes } from "./memory.ts";
 *
 * const m = new MemoryAllowance(64 * 1024 * 1024);
 * const need = transcodeBytes({ format: "jpeg", width: 1920, height: 1080 }, 500_000, 640);
 * if (!m.tryReserve(need)) throw new Error("a 1080p photo to 640 px fits in 64 MiB");
 * m.release(need);
 * if (m.reserved !== 0) throw new Error("released");
 * ```
 *
 * @module
 */
import { jpegShiftFor } from "./jpeg.ts";
import type { ImageInfo } from "./probe.ts";

/** Default allowance: two 1920×1080 4:2:0 JPEG transcodes to 1280 px take about 58 MiB. */
export const DEFAULT_IMAGE_MEMORY = 128 * 1024 * 1024;

/** Sampling factors assumed when a JPEG's are not known: 4:4:4, the largest buffers. */
const FULL_SAMPLING: readonly (readonly [number, number])[] = [[1, 1], [1, 1], [1, 1]];

/**
 * Bytes our JPEG decoder (`wasm/jpeg.ts`, `layout`) lays out past its input to decode a
 * `width`×`height` JPEG with components sampled `sampling` at 1/2^`shift`: per component, a
 * plane of coefficients (64 × 2 bytes per 8×8 block, blocks padded to whole MCUs; all of them,
 * whatever the scale) and a plane of pixels at its IDCT size; then the RGBA output and two
 * upsampling rows. So 3 bytes of coefficients per source pixel for 4:2:0, 4 for 4:2:2, 6 for
 * 4:4:4 and 2 for grey.
 */
export function jpegDecodeBytes(
  width: number,
  height: number,
  sampling: readonly (readonly [number, number])[],
  shift: number,
): number {
  const comps = sampling.length === 1 ? [[1, 1] as const] : sampling; // a lone one: 1×1
  const hmax = Math.max(1, ...comps.map((c) => c[0]));
  const vmax = Math.max(1, ...comps.map((c) => c[1]));
  const mcusX = Math.ceil(width / (8 * hmax));
  const mcusY = Math.ceil(height / (8 * vmax));
  const minN = 8 >> shift;
  let bytes = 0;
  for (const [h, v] of comps) {
    const bw = mcusX * h;
    const bh = mcusY * v;
    let n = minN; // libjpeg's rule, as the decoder: grow the IDCT while it divides the ratio
    while (n < 8 && (hmax * minN) % (h * n * 2) === 0 && (vmax * minN) % (v * n * 2) === 0) {
      n *= 2;
    }
    bytes += bw * bh * 128 + 16 + bw * n * bh * n + 16;
  }
  const outW = Math.ceil((width * minN) / 8);
  const outH = Math.ceil((height * minN) / 8);
  return bytes + outW * outH * 4 + 32 + 2 * (outW + 64);
}

/**
 * Estimated peak bytes of one `transcode` of a `info` image of `inputBytes` bytes to `width`
 * (undefined or ≥ the source's: full size), in the worker: the input twice (the copy posted to
 * the worker and the decoder's), the decode buffers (a JPEG at the 1/2^n scale `pipeline.ts`
 * decodes it at: {@link jpegDecodeBytes} from its sampling factors, 4:4:4 when unknown; a PNG
 * twice, inflated rows and bitmap), and the output three times (the resizer's result, the image
 * encoded from, the encoder's buffers).
 */
export function transcodeBytes(
  info: Pick<ImageInfo, "format" | "width" | "height" | "sampling">,
  inputBytes: number,
  width?: number,
): number {
  const { width: sw, height: sh } = info;
  const resize = width !== undefined && width < sw ? width : undefined;
  const dw = resize ?? sw;
  const dh = resize === undefined ? sh : Math.max(1, Math.round((sh * dw) / sw));
  let decode: number;
  if (info.format === "jpeg") {
    const s = resize === undefined ? 0 : jpegShiftFor(sw, 2 * resize);
    decode = jpegDecodeBytes(sw, sh, info.sampling ?? FULL_SAMPLING, s);
  } else decode = sw * sh * 8;
  return 2 * inputBytes + decode + 3 * dw * dh * 4;
}

/** A byte budget shared by the transcodes (see the module doc). */
export class MemoryAllowance {
  /** The allowance, bytes. */
  readonly limit: number;
  /** Most bytes reserved at once so far. */
  peak = 0;
  /** Reservations refused at once ({@link tryReserve}) or never possible (over the limit). */
  refused = 0;
  /** Reservations that had to wait ({@link reserve}). */
  deferred = 0;
  #reserved = 0;
  readonly #waiting: { bytes: number; go: () => void }[] = [];

  constructor(limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new RangeError(`Cannot limit image memory: a positive byte count: received ${limit}`);
    }
    this.limit = limit;
  }

  /** Bytes reserved now. */
  get reserved(): number {
    return this.#reserved;
  }

  /**
   * Reserves `bytes` if they fit now; false (counted) otherwise. It does not queue behind
   * {@link reserve}'s waiters: a request comes before background work.
   */
  tryReserve(bytes: number): boolean {
    if (this.#reserved + bytes > this.limit) {
      this.refused++;
      return false;
    }
    this.#take(bytes);
    return true;
  }

  /**
   * Reserves `bytes`, waiting (first come, first served) until they fit. Throws `RangeError`
   * when they never can (more than the whole allowance).
   */
  async reserve(bytes: number): Promise<void> {
    if (bytes > this.limit) {
      this.refused++;
      throw new RangeError(
        `image memory: a transcode needs ${bytes} bytes, more than the allowance of ${this.limit}`,
      );
    }
    if (this.#waiting.length === 0 && this.#reserved + bytes <= this.limit) {
      return this.#take(bytes);
    }
    this.deferred++;
    await new Promise<void>((go) => this.#waiting.push({ bytes, go }));
  }

  /** Returns `bytes` taken by {@link tryReserve} or {@link reserve}. */
  release(bytes: number): void {
    this.#reserved -= bytes;
    if (this.#reserved < 0) {
      this.#reserved = 0;
      throw new RangeError(`image memory: released ${bytes} bytes more than were reserved`);
    }
    while (this.#waiting.length > 0 && this.#reserved + this.#waiting[0].bytes <= this.limit) {
      const w = this.#waiting.shift()!;
      this.#take(w.bytes);
      w.go();
    }
  }

  #take(bytes: number): void {
    this.#reserved += bytes;
    this.peak = Math.max(this.peak, this.#reserved);
  }
}

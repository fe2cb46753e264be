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
import type { ImageInfo } from "./probe.ts";

/** Default allowance: two 1920×1080 JPEG transcodes to 1280 px take about 54 MB. */
export const DEFAULT_IMAGE_MEMORY = 128 * 1024 * 1024;

/** Largest shift (scale 1/2^shift) whose output is at least `minWidth` wide (as `jpeg.ts`). */
function shiftFor(width: number, minWidth: number): number {
  let s = 0;
  while (s < 3 && Math.ceil(width / 2 ** (s + 1)) >= minWidth) s++;
  return s;
}

/**
 * Estimated peak bytes of one `transcode` of a `info` image of `inputBytes` bytes to `width`
 * (undefined or ≥ the source's: full size), in the worker: the input twice (the copy posted to
 * the worker and the decoder's), the decoded RGBA at the decode scale (a JPEG at the 1/2^n scale
 * `pipeline.ts` decodes it at, plus our decoder's coefficient planes, 3 bytes per source pixel
 * for 4:2:0; a PNG twice, inflated rows and bitmap), and the output three times (the resizer's
 * result, the image encoded from, the encoder's buffers).
 */
export function transcodeBytes(
  info: Pick<ImageInfo, "format" | "width" | "height">,
  inputBytes: number,
  width?: number,
): number {
  const { width: sw, height: sh } = info;
  const resize = width !== undefined && width < sw ? width : undefined;
  const dw = resize ?? sw;
  const dh = resize === undefined ? sh : Math.max(1, Math.round((sh * dw) / sw));
  let decode: number;
  if (info.format === "jpeg") {
    const s = resize === undefined ? 0 : shiftFor(sw, 2 * resize);
    decode = Math.ceil(sw / 2 ** s) * Math.ceil(sh / 2 ** s) * 4 + sw * sh * 3;
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

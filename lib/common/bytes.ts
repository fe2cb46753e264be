/**
 * Byte-buffer helpers shared across lib/.
 *
 * @module
 */

/**
 * The chunks copied, in order, into one new buffer. `size` is their total length (computed
 * when not given).
 *
 * @example
 * ```ts
 * import { concatBytes } from "./bytes.ts";
 * console.log(concatBytes([new Uint8Array([1]), new Uint8Array([2, 3])])); // Uint8Array(3) [ 1, 2, 3 ]
 * ```
 */
export function concatBytes(
  chunks: readonly Uint8Array[],
  size: number = chunks.reduce((n, c) => n + c.length, 0),
): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** Size of a reusing {@link PieceReader}'s buffer unless given. */
export const PIECE_BYTES = 64 * 1024;

/**
 * Reads a stream piece by piece. With `reuse`, a byte stream (a request or response body) is
 * read with a BYOB reader into one buffer of `size` bytes, reused for every read, so a long body
 * does not leave a fresh array per read for V8 to collect late; a piece is then valid only until
 * the next read. Otherwise (or for a stream that is not a byte stream) each read is a new piece.
 *
 * @example
 * ```ts
 * import { PieceReader } from "./bytes.ts";
 * const r = new PieceReader(new Blob(["abc"]).stream(), true);
 * console.log(await r.next()); // Uint8Array(3) [ 97, 98, 99 ]
 * console.log(await r.next()); // null
 * r.release();
 * ```
 */
export class PieceReader {
  readonly #byob: ReadableStreamBYOBReader | null = null;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  #buf: Uint8Array<ArrayBuffer> | null = null;

  constructor(stream: ReadableStream<Uint8Array>, reuse: boolean, size = PIECE_BYTES) {
    if (reuse) {
      try {
        this.#byob = stream.getReader({ mode: "byob" });
        this.#buf = new Uint8Array(size);
      } catch { /* not a byte stream */ }
    }
    if (this.#byob === null) this.#reader = stream.getReader();
  }

  /** The next piece, or null at the end of the stream. */
  async next(): Promise<Uint8Array | null> {
    if (this.#byob !== null) {
      const r = await this.#byob.read(this.#buf!);
      if (r.done || r.value === undefined) return null;
      this.#buf = new Uint8Array(r.value.buffer as ArrayBuffer); // handed back by the read
      return r.value;
    }
    const r = await this.#reader!.read();
    return r.done ? null : r.value;
  }

  /** Releases the stream's lock. */
  release(): void {
    (this.#byob ?? this.#reader)!.releaseLock();
  }
}

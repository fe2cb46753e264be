/**
 * Write-through of a large miss: the body streams from the origin into the store (a
 * temporary file, fsynced and published atomically when complete, see
 * {@linkcode ObjectStore.putStream}) while every client that asked for it reads that file as
 * it grows, each at its own pace. Nothing holds the body in memory, whatever its size and
 * however slow a client is, and a crash mid-body leaves only a temporary file that the store
 * removes at its next open.
 *
 * @module
 */

import type { ObjectStore, StoreEntry } from "../store/types.ts";
import { BodyError, withIdleTimeout } from "./origin.ts";
import { FILE_READ_PIECE } from "./serve_body.ts";

/** Options of {@link StreamFill}. */
export interface StreamFillOptions {
  /** The body length the origin announced, or null (then `maxSize` bounds what is stored). */
  expectedSize: number | null;
  /**
   * Largest body stored. A body growing past it is not stored; the first reader that reaches
   * the end of what was written continues straight from the origin, the others fail.
   */
  maxSize: number;
  /** The body fails when the origin sends nothing for this long, ms. */
  idleMs: number;
}

/** Bytes read from the origin per call when the body allows reading into one reused buffer. */
const PULL_BUFFER = 256 * 1024;

/**
 * Reads a body chunk by chunk, into one reused buffer when the stream is a byte stream (as a
 * `fetch` body is), so a large body leaves no garbage chunk per read; a chunk returned is valid
 * until the next read. Fails with a timed-out {@link BodyError} after `idleMs` without data.
 */
class Puller {
  #stream: ReadableStream<Uint8Array>;
  #idleMs: number;
  #byob: ReadableStreamBYOBReader | null = null;
  #reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  #buf: Uint8Array<ArrayBuffer> | null = null;

  constructor(stream: ReadableStream<Uint8Array>, idleMs: number) {
    this.#stream = stream;
    this.#idleMs = idleMs;
    try {
      this.#byob = stream.getReader({ mode: "byob" });
    } catch {
      this.#reader = stream.getReader(); // not a byte stream
    }
  }

  /** The next chunk, or null at the end. */
  async read(): Promise<Uint8Array | null> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const idle = new Promise<"idle">((resolve) => {
      timer = setTimeout(() => resolve("idle"), this.#idleMs);
    });
    try {
      let pending: Promise<ReadableStreamReadResult<Uint8Array>>;
      if (this.#byob !== null) {
        pending = this.#byob.read(this.#buf ?? new Uint8Array(PULL_BUFFER));
      } else pending = this.#reader!.read();
      const r = await Promise.race([pending, idle]);
      if (r === "idle") {
        this.cancel(new Error("origin idle"));
        throw new BodyError(`origin sent nothing for ${this.#idleMs} ms`, true);
      }
      if (r.done) return null;
      if (this.#byob !== null) {
        this.#buf = new Uint8Array(r.value.buffer as ArrayBuffer);
      }
      return r.value;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops reading and hands the rest of the body over, with the same idle timeout. */
  release(): ReadableStreamDefaultReader<Uint8Array> {
    (this.#byob ?? this.#reader)!.releaseLock();
    this.#byob = this.#reader = null;
    return withIdleTimeout(this.#stream, this.#idleMs).getReader();
  }

  cancel(reason: unknown): Promise<void> {
    return (this.#byob ?? this.#reader)?.cancel(reason).catch(() => {}) ?? Promise.resolve();
  }
}

/** A body being written to the store and read back from its temporary file. */
export class StreamFill {
  /** Resolves when the body is stored whole; rejects when it failed or was too large. */
  readonly done: Promise<StoreEntry>;
  #tmpPath: string | null = null;
  #written = 0;
  #expected: number | null;
  #state: "writing" | "done" | "failed" = "writing";
  #error: unknown = null;
  #wake: (() => void)[] = [];
  /** Past `maxSize`: the chunk not written and the origin's rest, for one reader to take. */
  #handoff: { chunk: Uint8Array; rest: ReadableStreamDefaultReader<Uint8Array> } | null = null;
  #tooLarge = false;
  /**
   * Readers that asked for the body ({@link tail}), counted from the moment they ask: when
   * none is left after the body failed, an unclaimed handoff is cancelled.
   */
  #readers = 0;
  /**
   * The temporary file, opened at its first write and held until a reader takes it or none is
   * left: a store that fails a body removes its file, and a reader still opening it then would
   * find nothing (and the handoff would have no reader that had the bytes before it).
   */
  #keeper: Deno.FsFile | null = null;

  /**
   * Starts writing `head` then the rest of `body` (unlocked) to `store` under `key` with
   * `meta`. The body fails when the origin sends nothing for `opts.idleMs`.
   */
  constructor(
    store: ObjectStore,
    key: string,
    meta: string,
    head: Uint8Array[],
    body: ReadableStream<Uint8Array>,
    opts: StreamFillOptions,
  ) {
    this.#expected = opts.expectedSize;
    const puller = new Puller(body, opts.idleMs);
    let i = 0;
    let total = 0;
    const source = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        let chunk: Uint8Array;
        if (i < head.length) chunk = head[i++];
        else {
          const got = await puller.read();
          if (got === null) return controller.close();
          chunk = got;
        }
        total += chunk.byteLength;
        if (total > opts.maxSize) {
          this.#tooLarge = true;
          this.#handoff = { chunk: chunk.slice(), rest: puller.release() };
          controller.error(new Error(`body is larger than ${opts.maxSize} bytes; not stored`));
          return;
        }
        // The store is done with a chunk before it asks for the next one: a view on the
        // puller's reused buffer is safe to hand over.
        controller.enqueue(chunk);
      },
      cancel: (reason) => {
        if (this.#handoff === null) return puller.cancel(reason);
      },
    }, { highWaterMark: 0 });
    this.done = store.putStream(key, meta, source, {
      expectedSize: opts.expectedSize ?? undefined,
      inFile: true,
      onWrite: (path, bytes) => {
        if (this.#tmpPath === null) {
          try {
            this.#keeper = Deno.openSync(path, { read: true });
          } catch { /* readers open it themselves */ }
        }
        this.#tmpPath = path;
        this.#written = bytes;
        this.#notify();
      },
    });
    this.done.then(() => {
      this.#state = "done";
      this.#notify();
      if (this.#readers === 0) this.#release();
    }, (e) => {
      this.#state = "failed";
      this.#error = e;
      this.#notify();
      if (this.#readers === 0) this.#release();
    });
  }

  /** Whether the body grew past `maxSize` (then it is not stored). */
  get tooLarge(): boolean {
    return this.#tooLarge;
  }

  /** Bytes written to the store so far. */
  get written(): number {
    return this.#written;
  }

  /**
   * Resolves once the first byte is written (or an empty body is stored); rejects with the
   * body's error when it failed before any byte. Until then nothing of it can have reached a
   * client, so a stale copy may still stand in.
   */
  async firstByte(): Promise<void> {
    while (this.#written === 0 && this.#state === "writing") await this.#progress();
    if (this.#written === 0 && this.#state === "failed") throw this.#error;
  }

  /** The body ended and no reader is left: the handoff is cancelled, the file let go. */
  #release(): void {
    this.#handoff?.rest.cancel(new Error("no reader left")).catch(() => {});
    this.#handoff = null;
    try {
      this.#keeper?.close();
    } catch { /* closed */ }
    this.#keeper = null;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = [];
    for (const w of wake) w();
  }

  #progress(): Promise<void> {
    return new Promise((resolve) => this.#wake.push(resolve));
  }

  /**
   * A stream of the whole body, or of its bytes `from` to `to` (inclusive), read from the
   * temporary file as they are written; it errors if the body fails. Null when the file can
   * no longer be opened (already published or removed): then wait for
   * {@link StreamFill.done} and read the stored body instead.
   */
  async tail(from = 0, to: number | null = null): Promise<ReadableStream<Uint8Array> | null> {
    // Counted now, before any wait: the body may fail while this reader opens the file, and
    // the handoff must still be there for it. (A reader that comes after it failed gets null,
    // as before: it has missed the bytes the others read.)
    const early = this.#state === "writing";
    this.#readers++;
    let file: Deno.FsFile | null = null;
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      try {
        file?.close();
      } catch { /* closed */ }
      if (--this.#readers === 0 && this.#state !== "writing") this.#release();
    };
    try {
      while (this.#tmpPath === null && this.#state === "writing") await this.#progress();
      // Stored (read it from the store), or failed with nothing to hand over.
      const handover = early && this.#state === "failed" && this.#handoff !== null;
      if (this.#tmpPath === null || (this.#state !== "writing" && !handover)) {
        close();
        return null;
      }
      file = this.#keeper ?? await Deno.open(this.#tmpPath, { read: true });
      this.#keeper = null;
      if (from > 0) await file.seek(from, Deno.SeekMode.Start);
    } catch (e) {
      close();
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
    const f = file;
    let pos = from;
    let rest: ReadableStreamDefaultReader<Uint8Array> | null = null;
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          if (rest !== null) {
            const r = await rest.read();
            if (r.done) controller.close();
            else controller.enqueue(r.value);
            return;
          }
          if (to !== null && pos > to) {
            close();
            return controller.close();
          }
          // The last bytes of the whole body wait until it is stored: a client that has it
          // then finds it in the cache on its next request.
          while (
            (pos >= this.#written || (to === null && this.#written === this.#expected)) &&
            this.#state === "writing"
          ) await this.#progress();
          if (pos >= this.#written) {
            const handoff = this.#handoff;
            if (this.#state === "failed" && handoff !== null && pos === this.#written) {
              this.#handoff = null;
              rest = handoff.rest;
              close();
              controller.enqueue(handoff.chunk);
              return;
            }
            close();
            if (this.#state === "done") return controller.close();
            return controller.error(this.#error);
          }
          const end = to === null ? this.#written : Math.min(this.#written, to + 1);
          const buf = new Uint8Array(Math.min(FILE_READ_PIECE, end - pos));
          const got = await f.read(buf);
          if (got === null || got === 0) {
            throw new Error(`temporary body file ended at byte ${pos} of ${this.#written}`);
          }
          pos += got;
          controller.enqueue(got === buf.byteLength ? buf : buf.subarray(0, got));
        } catch (e) {
          close();
          rest?.cancel(e).catch(() => {});
          controller.error(e);
        }
      },
      cancel: (reason) => {
        close();
        return rest?.cancel(reason);
      },
    }, { highWaterMark: 0 });
  }
}

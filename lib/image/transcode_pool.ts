/**
 * Image transcodes off the event loop: a pool of Web Workers, each running `pipeline.ts`'s
 * `transcode`. A 1920 px photo takes up to about 170 ms of CPU to decode, resize and encode; in
 * the replica's own thread that held every other request (cache hits included) for as long. A
 * worker is started with the first job it gets and kept (the codecs load in it then); jobs go to
 * the least busy one, and the image layer's own slots bound how many run at once. Errors come
 * back with their name (`SyntaxError`, `RangeError`, `TypeError`) and message.
 *
 * A worker keeps its V8 heap, its codecs and the WASM memory its largest image grew (up to
 * 128 MiB, `pipeline.ts`) while it lives, so one that has had no job for `idleMs` (default 30 s)
 * is ended and freed native memory is returned to the system (`malloc_trim`); the next job starts
 * a new one. A job without an answer within `deadlineMs` (default 60 s) ends its worker, failing
 * every job in it, so that nothing waits (or holds memory reserved for it) forever. An idle
 * worker keeps a `deno run` process alive until then: {@link TranscodePool.close} ends them (the
 * replica exits through `Deno.exit`).
 *
 * @example
 * ```ts
 * import { TranscodePool } from "./transcode_pool.ts";
 * const pool = new TranscodePool(2);
 * // const out = await pool.transcode(jpegBytes, { width: 640, quality: 50 });
 * pool.close();
 * ```
 *
 * @module
 */
import { trimNativeHeap } from "../http/native_memory.ts";
import type { Transcoded, TranscodeOptions } from "./pipeline.ts";

interface Pending {
  resolve: (t: Transcoded) => void;
  reject: (e: Error) => void;
  deadline: ReturnType<typeof setTimeout>;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
  idle?: ReturnType<typeof setTimeout>;
}

/** Options of {@link TranscodePool}. */
export interface PoolOptions {
  /** A worker without a job for this long is ended, ms. Default 30 000. */
  idleMs?: number;
  /** A job without an answer for this long ends its worker, ms. Default 60 000. */
  deadlineMs?: number;
}

const ERRORS: Record<string, new (message: string) => Error> = {
  SyntaxError,
  RangeError,
  TypeError,
};

/** A fixed number of transcoding workers, each started when first needed. */
export class TranscodePool {
  #slots: (Slot | undefined)[];
  #next = 1;
  #closed = false;
  readonly #idleMs: number;
  readonly #deadlineMs: number;
  /** Workers started, ended when idle, and ended at a job's deadline (for tests and metrics). */
  readonly counts = { started: 0, idleEnded: 0, deadlineEnded: 0 };

  constructor(size = 2, o: PoolOptions = {}) {
    if (!Number.isInteger(size) || size < 1) {
      throw new RangeError(`TranscodePool: size must be a positive integer: received ${size}`);
    }
    this.#slots = new Array(size).fill(undefined);
    this.#idleMs = o.idleMs ?? 30_000;
    this.#deadlineMs = o.deadlineMs ?? 60_000;
  }

  /** Workers alive now. */
  get workers(): number {
    return this.#slots.filter((s) => s !== undefined).length;
  }

  /** Transcodes `input` in the least busy worker (the input is copied, never detached). */
  transcode(input: Uint8Array, options: TranscodeOptions = {}): Promise<Transcoded> {
    if (this.#closed) return Promise.reject(new Error("TranscodePool: closed"));
    let best = 0;
    for (let i = 0; i < this.#slots.length; i++) {
      const s = this.#slots[i];
      if (s === undefined) {
        best = i;
        break;
      }
      if (s.pending.size < this.#slots[best]!.pending.size) best = i;
    }
    const slot = this.#slots[best] ??= this.#start(best);
    clearTimeout(slot.idle);
    const id = this.#next++;
    return new Promise<Transcoded>((resolve, reject) => {
      const deadline = setTimeout(() => {
        this.counts.deadlineEnded++;
        this.#fail(
          best,
          new Error(`image transcode worker: no answer within ${this.#deadlineMs} ms: ended`),
        );
      }, this.#deadlineMs);
      slot.pending.set(id, { resolve, reject, deadline });
      slot.worker.postMessage({ id, input, options });
    });
  }

  /** Ends every worker; jobs in flight are rejected. */
  close(): void {
    this.#closed = true;
    for (let i = 0; i < this.#slots.length; i++) this.#fail(i, new Error("TranscodePool: closed"));
  }

  #start(index: number): Slot {
    const worker = new Worker(new URL("./_transcode_worker.ts", import.meta.url).href, {
      type: "module",
    });
    this.counts.started++;
    const slot: Slot = { worker, pending: new Map() };
    worker.onmessage = (e: MessageEvent) => {
      const { id, result, error } = e.data as {
        id: number;
        result?: Transcoded;
        error?: { name: string; message: string };
      };
      const p = slot.pending.get(id);
      if (p === undefined) return;
      slot.pending.delete(id);
      clearTimeout(p.deadline);
      if (slot.pending.size === 0) {
        const idle = slot.idle = setTimeout(() => {
          this.counts.idleEnded++;
          this.#fail(index, new Error("TranscodePool: idle"));
          trimNativeHeap();
        }, this.#idleMs);
        Deno.unrefTimer(idle);
      }
      if (result !== undefined) p.resolve(result);
      else p.reject(new (ERRORS[error!.name] ?? Error)(error!.message));
    };
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      // A worker that died (out of memory, a bug) fails its jobs and is replaced on next use.
      this.#fail(index, new Error(`image transcode worker failed: ${e.message}`));
    };
    return slot;
  }

  #fail(index: number, err: Error): void {
    const slot = this.#slots[index];
    if (slot === undefined) return;
    this.#slots[index] = undefined;
    clearTimeout(slot.idle);
    slot.worker.terminate();
    for (const p of slot.pending.values()) {
      clearTimeout(p.deadline);
      p.reject(err);
    }
  }
}

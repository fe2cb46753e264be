/**
 * Image transcodes off the event loop: a pool of Web Workers, each running `pipeline.ts`'s
 * `transcode`. A 1920 px photo takes up to about 170 ms of CPU to decode, resize and encode; in
 * the replica's own thread that held every other request (cache hits included) for as long. A
 * worker is started with the first job it gets and kept (the codecs load in it then); jobs go to
 * the least busy one, and the image layer's own slots bound how many run at once. Errors come
 * back with their name (`SyntaxError`, `RangeError`, `TypeError`) and message. An idle worker
 * keeps a `deno run` process alive: {@link TranscodePool.close} ends them (the replica exits
 * through `Deno.exit`).
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
import type { Transcoded, TranscodeOptions } from "./pipeline.ts";

interface Pending {
  resolve: (t: Transcoded) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
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

  constructor(size = 2) {
    if (!Number.isInteger(size) || size < 1) {
      throw new RangeError(`TranscodePool: size must be a positive integer: received ${size}`);
    }
    this.#slots = new Array(size).fill(undefined);
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
    const id = this.#next++;
    return new Promise<Transcoded>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
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
    slot.worker.terminate();
    for (const p of slot.pending.values()) p.reject(err);
  }
}

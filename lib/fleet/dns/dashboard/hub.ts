/**
 * The dashboard's Server-Sent Events: every open stream gets the same frames. Bounded: at most
 * {@link MAX_SSE_CLIENTS} streams (more are refused with 503), each holding at most
 * {@link MAX_CLIENT_BUFFER_BYTES} not yet taken by its connection; a stream whose buffer
 * would pass that (a client that stopped reading) is dropped, its buffer freed.
 *
 * @module
 */

/** Most dashboard event streams open at once. */
export const MAX_SSE_CLIENTS = 32;
/** Most bytes queued for one stream before its client counts as too slow and is dropped. */
export const MAX_CLIENT_BUFFER_BYTES = 1024 * 1024;

const encoder = new TextEncoder();

/** Counters shown by the dashboard itself. */
export interface HubStats {
  open: number;
  max: number;
  opened: number;
  refused: number;
  dropped: number;
}

/** See the module doc. */
export class EventHub {
  readonly #clients = new Set<ReadableStreamDefaultController<Uint8Array>>();
  readonly #max: number;
  readonly #buffer: number;
  #opened = 0;
  #refused = 0;
  #dropped = 0;

  constructor(max = MAX_SSE_CLIENTS, bufferBytes = MAX_CLIENT_BUFFER_BYTES) {
    this.#max = max;
    this.#buffer = bufferBytes;
  }

  get stats(): HubStats {
    return {
      open: this.#clients.size,
      max: this.#max,
      opened: this.#opened,
      refused: this.#refused,
      dropped: this.#dropped,
    };
  }

  /** True while a stream is open (the dashboard works only then). */
  get active(): boolean {
    return this.#clients.size > 0;
  }

  /** A new event stream that starts with `first` (a frame), or null when the cap is reached. */
  open(first: string): ReadableStream<Uint8Array> | null {
    if (this.#clients.size >= this.#max) {
      this.#refused++;
      return null;
    }
    this.#opened++;
    let mine: ReadableStreamDefaultController<Uint8Array> | null = null;
    return new ReadableStream<Uint8Array>({
      start: (c) => {
        mine = c;
        this.#clients.add(c);
        c.enqueue(encoder.encode("retry: 1000\n\n" + first));
      },
      cancel: () => {
        if (mine !== null) this.#clients.delete(mine);
      },
    }, new ByteLengthQueuingStrategy({ highWaterMark: this.#buffer }));
  }

  /** Sends one frame to every stream; drops those that cannot buffer it. */
  send(frame: string): void {
    if (this.#clients.size === 0) return;
    const bytes = encoder.encode(frame);
    for (const c of this.#clients) {
      if ((c.desiredSize ?? 0) < bytes.length) {
        this.#clients.delete(c);
        this.#dropped++;
        c.error(new Error("dashboard client too slow: dropped"));
        continue;
      }
      c.enqueue(bytes);
    }
  }

  /** Ends every stream (at shutdown, so the listener's drain does not wait for them). */
  close(): void {
    for (const c of this.#clients) {
      try {
        c.close();
      } catch { /* already errored */ }
    }
    this.#clients.clear();
  }
}

/** One SSE frame: `event` with `data` (JSON text, one line). */
export function frame(event: string, data: string, id?: number): string {
  return `${id === undefined ? "" : `id: ${id}\n`}event: ${event}\ndata: ${data}\n\n`;
}

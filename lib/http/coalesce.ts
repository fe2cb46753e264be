/**
 * Request coalescing: concurrent misses for one key share a single origin fetch. A waiter
 * gives up after a timeout (and fetches on its own, as nginx's `proxy_cache_lock_timeout`
 * does), and a lock older than the timeout is replaced, so a stuck fetch cannot hold a key
 * forever.
 *
 * @module
 */

interface Flight<T> {
  promise: Promise<T>;
  startedAt: number;
}

/** The outcome of {@link Coalescer.run}. */
export type Coalesced<T> =
  | { role: "leader"; value: T }
  | { role: "follower"; value: T }
  | { role: "timeout" };

/** Per-key single flight with a timeout. */
export class Coalescer<T> {
  #flights = new Map<string, Flight<T>>();
  #timeoutMs: number;
  #now: () => number;

  /** `timeoutMs`: how long a waiter waits, and how old a lock may get before it is replaced. */
  constructor(timeoutMs: number, now: () => number = Date.now) {
    if (!(timeoutMs > 0)) {
      throw new RangeError(
        `Cannot create coalescer: timeout must be positive: received ${timeoutMs}`,
      );
    }
    this.#timeoutMs = timeoutMs;
    this.#now = now;
  }

  /** Number of keys with a fetch in flight. */
  get size(): number {
    return this.#flights.size;
  }

  /**
   * Runs `fn` for `key` unless a fetch for it is in flight, in which case waits for that one
   * (up to the timeout). A rejection of the leader's `fn` rejects its followers too.
   */
  async run(key: string, fn: () => Promise<T>): Promise<Coalesced<T>> {
    const flight = this.#flights.get(key);
    if (flight !== undefined && this.#now() - flight.startedAt < this.#timeoutMs) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), this.#timeoutMs);
      });
      try {
        const winner = await Promise.race([flight.promise.then((value) => ({ value })), timeout]);
        return winner === null ? { role: "timeout" } : { role: "follower", value: winner.value };
      } finally {
        clearTimeout(timer);
      }
    }
    const promise = fn();
    const mine: Flight<T> = { promise, startedAt: this.#now() };
    this.#flights.set(key, mine);
    try {
      return { role: "leader", value: await promise };
    } finally {
      if (this.#flights.get(key) === mine) this.#flights.delete(key);
    }
  }
}

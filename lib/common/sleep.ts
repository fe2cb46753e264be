/**
 * An abortable pause, shared by every retry loop (replication pushes and purges, the price
 * feed).
 *
 * @example
 * ```ts
 * import { sleep } from "./sleep.ts";
 * const ac = new AbortController();
 * setTimeout(() => ac.abort(), 10);
 * await sleep(60_000, ac.signal); // returns after about 10 ms
 * ```
 *
 * @module
 */

/** Waits `ms`, or less when `signal` aborts; leaves no timer or listener behind. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

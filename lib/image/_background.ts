/**
 * The image layer's background worker: a bounded queue of jobs (one image's ladder each), run
 * one at a time, pausing after each piece of work so that it takes at most `share` of one core.
 *
 * @module
 */

/** Keys remembered as scheduled (the oldest are forgotten first). */
const SCHEDULED_MAX = 10_000;

/** See the module doc. */
export class Background {
  readonly #queue: (() => Promise<void>)[] = [];
  readonly #scheduled = new Set<string>();
  readonly #share: number;
  #working = false;

  /** `share`: the fraction of one core the jobs may take, in (0, 1]. */
  constructor(share: number) {
    if (!(share > 0 && share <= 1)) {
      throw new RangeError(`Cannot run image background work: share must be in (0, 1]: ${share}`);
    }
    this.#share = share;
  }

  /** Queues `job` under `key` unless that key was scheduled already or `limit` jobs wait. */
  add(key: string, job: () => Promise<void>, limit: number): boolean {
    if (this.#scheduled.has(key) || this.#queue.length >= limit) return false;
    this.#scheduled.add(key);
    if (this.#scheduled.size > SCHEDULED_MAX) {
      this.#scheduled.delete(this.#scheduled.values().next().value!);
    }
    this.#queue.push(job);
    if (!this.#working) this.#work();
    return true;
  }

  /** Lets `key` be scheduled again (its variants were dropped). */
  forget(key: string): void {
    this.#scheduled.delete(key);
  }

  /** Waits after `ms` of work so that the work stays within the share (and requests run). */
  pace(ms: number): Promise<void> {
    const wait = Math.max(0, ms) * (1 - this.#share) / this.#share;
    return new Promise((r) => setTimeout(r, wait));
  }

  /** True while jobs run or wait. */
  get busy(): boolean {
    return this.#working;
  }

  /** Jobs waiting. */
  get queued(): number {
    return this.#queue.length;
  }

  async #work(): Promise<void> {
    this.#working = true;
    try {
      for (let job = this.#queue.shift(); job; job = this.#queue.shift()) {
        try {
          await job();
        } catch { /* a job's failure leaves its image without precomputed variants */ }
      }
    } finally {
      this.#working = false;
    }
  }
}

/**
 * Peak-EWMA latency estimate, as in Finagle's `PeakEwma` and tower's `PeakEwma` (Linkerd): a
 * time-weighted moving average that jumps to a sample above it at once (the peak) and decays
 * towards lower samples with time constant `tauMs`, so a server that turns slow is avoided on
 * its first slow answer and is trusted again only gradually. The load-aware cost of a server
 * is `estimate × (outstanding + 1)`.
 *
 * One difference: Finagle and tower also decay the estimate towards zero while no sample
 * arrives; here it only moves with samples, because every server is probed actively every
 * probe interval, and a figure that drifted between probes would make the explained scores
 * (and the balanced mode's latency window) move with sample age rather than with the network.
 *
 * @module
 */

/** Default decay time constant (Finagle's and Linkerd's default). */
export const DEFAULT_DECAY_MS = 10_000;

/** See the module doc. The clock is passed in (ms), so tests need no sleeps. */
export class PeakEwma {
  #value: number | null = null;
  #stamp = 0;
  /** Samples taken. */
  samples = 0;

  constructor(readonly tauMs: number = DEFAULT_DECAY_MS) {
    if (!(tauMs > 0)) throw new RangeError(`tauMs must be positive: received ${tauMs}`);
  }

  /** The estimate in ms, or null before the first sample. */
  get value(): number | null {
    return this.#value;
  }

  /** When the last sample was taken (the clock of {@link observe}). */
  get stamp(): number {
    return this.#stamp;
  }

  /** Takes one latency sample `ms` at time `now`. */
  observe(ms: number, now: number): void {
    if (!Number.isFinite(ms) || ms < 0) {
      throw new RangeError(`a latency sample must be a non-negative number: received ${ms}`);
    }
    this.samples++;
    const prev = this.#value;
    if (prev === null || ms > prev) this.#value = ms;
    else {
      const w = Math.exp(-Math.max(0, now - this.#stamp) / this.tauMs);
      this.#value = prev * w + ms * (1 - w);
    }
    this.#stamp = now;
  }
}

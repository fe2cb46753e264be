/**
 * Measured round-trip times from replicas to client subnets: EWMA-smoothed per (subnet,
 * replica), keyed by the client's /24 (IPv4) or /56 (IPv6) as `subnetKey` in
 * `lib/dns/policy.ts` writes it, with an expiry. The clock is
 * injected, so expiry is tested without sleeping.
 *
 * @module
 */
import type { RttSource } from "../../dns/policy.ts";

/** Weight of a new sample in the moving average: half, so a changed path shows in 1-2 samples. */
export const DEFAULT_EWMA_ALPHA = 0.5;
/** A measurement older than this is forgotten: paths change, and a stale RTT misleads. */
export const DEFAULT_RTT_TTL_MS = 10 * 60_000;
/** Subnets remembered at most; the least recently measured are dropped (bounds memory). */
export const MAX_SUBNETS = 100_000;

/** One (subnet, replica) measurement. */
export interface RttEntry {
  /** Smoothed round trip, ms. */
  ms: number;
  /** The latest raw sample, ms. */
  last: number;
  samples: number;
  /** When the latest sample arrived (clock ms). */
  at: number;
}

/** Options of {@link RttCache}. */
export interface RttCacheOptions {
  alpha?: number;
  ttlMs?: number;
  maxSubnets?: number;
  now?: () => number;
}

/** See the module doc; the steering engine reads it as its {@link RttSource}. */
export class RttCache implements RttSource {
  readonly alpha: number;
  readonly ttlMs: number;
  readonly #max: number;
  readonly #now: () => number;
  /** Subnet → replica id → entry; Map order is least recently updated first. */
  readonly #bySubnet = new Map<string, Map<string, RttEntry>>();

  constructor(opts: RttCacheOptions = {}) {
    this.alpha = opts.alpha ?? DEFAULT_EWMA_ALPHA;
    this.ttlMs = opts.ttlMs ?? DEFAULT_RTT_TTL_MS;
    this.#max = opts.maxSubnets ?? MAX_SUBNETS;
    this.#now = opts.now ?? Date.now;
    if (!(this.alpha > 0 && this.alpha <= 1)) {
      throw new RangeError(
        `Cannot create RTT cache: alpha must be in (0, 1]: received ${this.alpha}`,
      );
    }
    if (!(this.ttlMs > 0)) {
      throw new RangeError(
        `Cannot create RTT cache: ttlMs must be positive: received ${this.ttlMs}`,
      );
    }
    if (!(this.#max >= 1)) {
      throw new RangeError(
        `Cannot create RTT cache: maxSubnets must be >= 1: received ${this.#max}`,
      );
    }
  }

  /** Subnets held. */
  get size(): number {
    return this.#bySubnet.size;
  }

  /** Adds a sample (ms) for a replica and subnet; the average moves by `alpha` towards it. */
  record(subnet: string, replica: string, ms: number): RttEntry {
    if (!(ms >= 0 && Number.isFinite(ms))) {
      throw new RangeError(`Cannot record RTT: ms must be a finite number >= 0: received ${ms}`);
    }
    const now = this.#now();
    let row = this.#bySubnet.get(subnet);
    if (row === undefined) {
      if (this.#bySubnet.size >= this.#max) {
        this.#bySubnet.delete(this.#bySubnet.keys().next().value!);
      }
      row = new Map();
    } else {
      this.#bySubnet.delete(subnet); // re-inserted below: most recently updated last
    }
    this.#bySubnet.set(subnet, row);
    const old = row.get(replica);
    const fresh = old !== undefined && now - old.at <= this.ttlMs;
    const e: RttEntry = fresh
      ? { ms: old.ms + this.alpha * (ms - old.ms), last: ms, samples: old.samples + 1, at: now }
      : { ms, last: ms, samples: 1, at: now };
    row.set(replica, e);
    return e;
  }

  /** A subnet's entries by replica id, expired ones included (the engine checks `ttlMs`). */
  row(subnet: string): ReadonlyMap<string, RttEntry> | undefined {
    return this.#bySubnet.get(subnet);
  }

  /** The unexpired entry for a replica and subnet, or undefined. */
  get(subnet: string, replica: string): RttEntry | undefined {
    const e = this.#bySubnet.get(subnet)?.get(replica);
    if (e === undefined) return undefined;
    return this.#now() - e.at <= this.ttlMs ? e : undefined;
  }

  /** The `n` subnets measured most recently, newest first (for the dashboard). */
  latest(n: number): string[] {
    const out: string[] = [];
    for (const k of this.#bySubnet.keys()) {
      out.push(k);
      if (out.length > n) out.shift();
    }
    return out.reverse();
  }

  /** Forgets a replica everywhere (it was removed from the fleet). */
  forget(replica: string): void {
    for (const row of this.#bySubnet.values()) row.delete(replica);
  }
}

/**
 * The replica's own estimate of a client's throughput, for clients that send no `Downlink` hint:
 * how fast recent responses to the client's prefix (/24 for IPv4, /56 for IPv6) drained.
 * Per prefix, the first sample is taken as it is and later ones are averaged in with weight 1/2
 * on a logarithmic scale (an exponentially weighted moving average of log throughput, i.e. a
 * running geometric mean: a drop from 100 to 1 Mbit/s reads under 2 Mbit/s after three responses
 * and within 20 % after five, where a linear average would need seven to get under 2); a
 * prefix without a sample for `ttlMs` is forgotten; at most `maxPrefixes` are kept (the least
 * recently updated goes first). Responses smaller than `minBytes` are ignored: their time is
 * mostly round trips, not bandwidth. The clock is injected.
 *
 * @example
 * ```ts
 * import { ThroughputEstimator } from "./throughput.ts";
 *
 * let now = 0;
 * const t = new ThroughputEstimator({ now: () => now });
 * t.record("192.0.2.7", 250_000, 1000); // 2 Mbit/s
 * if (Math.round(t.estimate("192.0.2.99")!) !== 2_000_000) throw new Error("same /24");
 * now += 11 * 60_000;
 * if (t.estimate("192.0.2.7") !== undefined) throw new Error("expired");
 * ```
 *
 * @module
 */
import { formatIp, maskIp, parseClientIp } from "../common/ip.ts";

/** Options of {@link ThroughputEstimator}. */
export interface ThroughputOptions {
  /** Forget a prefix after this long without a sample. Default 10 minutes. */
  ttlMs?: number;
  /** Most prefixes kept. Default 10,000. */
  maxPrefixes?: number;
  /** Smallest response that counts. Default 32 KiB. */
  minBytes?: number;
  /** Weight of a new sample. Default 0.5. */
  weight?: number;
  now?: () => number;
}

interface Entry {
  /** log2 of the smoothed bit/s. */
  log: number;
  at: number;
}

/** Per-prefix smoothed throughput. */
export class ThroughputEstimator {
  readonly #ttl: number;
  readonly #max: number;
  readonly #min: number;
  readonly #w: number;
  readonly #now: () => number;
  readonly #m = new Map<string, Entry>();

  constructor(o: ThroughputOptions = {}) {
    this.#ttl = o.ttlMs ?? 600_000;
    this.#max = o.maxPrefixes ?? 10_000;
    this.#min = o.minBytes ?? 32_768;
    this.#w = o.weight ?? 0.5;
    this.#now = o.now ?? Date.now;
    if (!(this.#ttl > 0 && this.#max >= 1 && this.#w > 0 && this.#w <= 1)) {
      throw new RangeError(
        "Cannot create throughput estimator: ttlMs, maxPrefixes, weight out of range",
      );
    }
  }

  /** Number of prefixes held. */
  get size(): number {
    return this.#m.size;
  }

  /** Records that `bytes` drained to `ip` in `ms` milliseconds (ignored if too small or bad). */
  record(ip: string, bytes: number, ms: number): void {
    const key = prefixOf(ip);
    if (key === undefined || !(bytes >= this.#min) || !(ms > 0)) return;
    const sample = Math.log2((bytes * 8 * 1000) / ms);
    const now = this.#now();
    const old = this.#m.get(key);
    const fresh = old !== undefined && now - old.at < this.#ttl;
    const log = fresh ? old.log + this.#w * (sample - old.log) : sample;
    this.#m.delete(key); // re-insert: the Map's order is least recently updated first
    this.#m.set(key, { log, at: now });
    if (this.#m.size > this.#max) this.#m.delete(this.#m.keys().next().value!);
  }

  /** The estimate for `ip`'s prefix in bit/s, or `undefined` if none (or expired). */
  estimate(ip: string): number | undefined {
    const key = prefixOf(ip);
    if (key === undefined) return undefined;
    const e = this.#m.get(key);
    if (e === undefined) return undefined;
    if (this.#now() - e.at >= this.#ttl) {
      this.#m.delete(key);
      return undefined;
    }
    return 2 ** e.log;
  }
}

/** `a.b.c.0/24` or the /56 of an IPv6 address (IPv4-mapped counts as IPv4); undefined if bad. */
export function prefixOf(ip: string): string | undefined {
  const a = parseClientIp(ip);
  if (a === null) return undefined;
  const bits = a.family === 4 ? 24 : 56;
  return `${formatIp(maskIp(a, bits))}/${bits}`;
}

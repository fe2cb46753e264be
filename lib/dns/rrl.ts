/**
 * Response rate limiting (RRL) for DNS over UDP, as NSD, Knot and BIND do it: a spoofed-source
 * flood must not turn the server into an amplifier. Responses are counted per client prefix
 * (/24 for IPv4, /56 for IPv6) and per response kind (answer, no data, NXDOMAIN, error) in
 * token buckets of `rate` responses per second (a burst of one second's worth). Past the rate a
 * response is "limited": every `slip`-th one goes out truncated (TC set, no records but the
 * question and OPT) so a real client retries over TCP, the others are dropped. TCP is never
 * limited: a TCP client has proved its address.
 *
 * The bucket table is bounded: at {@link MAX_RRL_ENTRIES} entries, buckets idle for a second
 * (full again, so forgetting them changes nothing) are swept, and failing that the oldest entry
 * is evicted.
 *
 * @module
 */
import { bitAt, type Cidr } from "../common/ip.ts";
import type { ClientAddr } from "./handler.ts";

/** Responses per second per prefix and kind (NSD's default). */
export const DEFAULT_RRL_RATE = 200;
/** Every 2nd limited response slips out truncated (NSD's and BIND's default). */
export const DEFAULT_RRL_SLIP = 2;
/** Client prefix lengths a bucket covers (NSD's and BIND's defaults). */
export const RRL_IPV4_PREFIX = 24;
export const RRL_IPV6_PREFIX = 56;
/** Most buckets kept; each is a few dozen bytes. */
export const MAX_RRL_ENTRIES = 65_536;
/** A full sweep of idle buckets happens at most this often when the table is full. */
export const SWEEP_INTERVAL_MS = 1_000;

/** What a response was, for its bucket. */
export const ResponseKind = { ANSWER: 0, NODATA: 1, NXDOMAIN: 2, ERROR: 3 } as const;

/** What to do with a response. */
export const RrlAction = { SEND: 0, SLIP: 1, DROP: 2 } as const;

/** Options of {@link RateLimiter}. */
export interface RrlOptions {
  /** Responses per second per prefix and kind; 0 turns limiting off. */
  rate: number;
  /** Every `slip`-th limited response is sent truncated; 0 drops them all. */
  slip: number;
  /** Client prefixes never limited. */
  exempt?: readonly Cidr[];
  /** Bucket table cap (default {@link MAX_RRL_ENTRIES}). */
  maxEntries?: number;
  /** Clock in milliseconds (default `performance.now`). */
  now?: () => number;
}

/** Counts of limited responses; plain fields, read them. */
export interface RrlCounters {
  /** Responses over the rate (slipped + dropped). */
  limited: number;
  /** Limited responses sent truncated. */
  slipped: number;
  /** Limited responses not sent. */
  dropped: number;
  /** Buckets evicted because the table was full. */
  evicted: number;
}

interface Bucket {
  tokens: number;
  last: number;
  /** Limited responses so far, for the slip count. */
  limited: number;
}

/** The response kind from a finished response's RCODE and ANCOUNT. */
export function responseKind(rcode: number, answers: number): number {
  if (rcode === 0) return answers > 0 ? ResponseKind.ANSWER : ResponseKind.NODATA;
  return rcode === 3 ? ResponseKind.NXDOMAIN : ResponseKind.ERROR;
}

function inCidr(c: Cidr, a: ClientAddr): boolean {
  if (c.family !== a.family) return false;
  const whole = c.prefix >> 3;
  for (let i = 0; i < whole; i++) if (c.bytes[i] !== a.bytes[i]) return false;
  for (let i = whole << 3; i < c.prefix; i++) {
    if (bitAt(c.bytes, i) !== bitAt(a.bytes, i)) return false;
  }
  return true;
}

/** Token buckets per client prefix and response kind; see the module doc. */
export class RateLimiter {
  readonly rate: number;
  readonly slip: number;
  readonly counters: RrlCounters = { limited: 0, slipped: 0, dropped: 0, evicted: 0 };
  readonly #exempt: readonly Cidr[];
  readonly #max: number;
  readonly #now: () => number;
  readonly #buckets = new Map<number | string, Bucket>();
  #lastSweep = -Infinity;

  constructor(opts: RrlOptions) {
    if (!(opts.rate > 0) || !Number.isFinite(opts.rate)) {
      throw new RangeError(`RRL rate must be a positive number: received ${opts.rate}`);
    }
    if (!Number.isInteger(opts.slip) || opts.slip < 0) {
      throw new RangeError(`RRL slip must be an integer >= 0: received ${opts.slip}`);
    }
    this.rate = opts.rate;
    this.slip = opts.slip;
    this.#exempt = opts.exempt ?? [];
    this.#max = opts.maxEntries ?? MAX_RRL_ENTRIES;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** Buckets held now. */
  get size(): number {
    return this.#buckets.size;
  }

  /** Whether `client` is in an exempt prefix. */
  exempt(client: ClientAddr): boolean {
    for (const c of this.#exempt) if (inCidr(c, client)) return true;
    return false;
  }

  /** Charges one response of `kind` to the client's bucket: SEND, SLIP or DROP. */
  decide(client: ClientAddr, kind: number): number {
    if (this.#exempt.length > 0 && this.exempt(client)) return RrlAction.SEND;
    const b = client.bytes;
    // IPv4: kind and 24 bits in one number; IPv6: 56 bits do not fit with the kind, use text.
    const key = client.family === 4
      ? kind * 0x1000000 + ((b[0] << 16) | (b[1] << 8) | b[2])
      : `${kind}:${b[0]}.${b[1]}.${b[2]}.${b[3]}.${b[4]}.${b[5]}.${b[6]}`;
    const now = this.#now();
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#max) this.#makeRoom(now);
      bucket = { tokens: this.rate, last: now, limited: 0 };
      this.#buckets.set(key, bucket);
    } else {
      const t = bucket.tokens + ((now - bucket.last) * this.rate) / 1000;
      bucket.tokens = t > this.rate ? this.rate : t;
      bucket.last = now;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return RrlAction.SEND;
    }
    const c = this.counters;
    c.limited++;
    bucket.limited++;
    if (this.slip > 0 && bucket.limited % this.slip === 0) {
      c.slipped++;
      return RrlAction.SLIP;
    }
    c.dropped++;
    return RrlAction.DROP;
  }

  /** Frees at least one entry: idle buckets (at most once per interval), else the oldest. */
  #makeRoom(now: number): void {
    const map = this.#buckets;
    if (now - this.#lastSweep >= SWEEP_INTERVAL_MS) {
      this.#lastSweep = now;
      for (const [k, v] of map) {
        if (now - v.last >= SWEEP_INTERVAL_MS) {
          map.delete(k);
          this.counters.evicted++;
        }
      }
    }
    while (map.size >= this.#max) {
      map.delete(map.keys().next().value!);
      this.counters.evicted++;
    }
  }
}

/**
 * A Bloom filter of strings (the URLs a replica holds), sent to the other members in its
 * summary: `has` is never wrong for a string that was added, and wrong with probability about
 * 0.8 % for one that was not at {@link BITS_PER_KEY} bits per key and {@link HASHES} hashes.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { fmix32 } from "../cache/hash.ts";

/** Bits per key: with {@link HASHES} hashes, about 0.8 % false positives. */
export const BITS_PER_KEY = 10;
/** Hashes per key. */
export const HASHES = 7;
/** Largest filter accepted from a peer, in bits (16 MiB). */
export const MAX_BLOOM_BITS = 2 ** 27;

/** The two 32-bit hashes of `s` (FNV-1a of its UTF-16 code units, then mixed). */
function hashes(s: string): [number, number] {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return [fmix32(h), fmix32(h ^ 0x9e3779b9) | 1];
}

/** The wire form of a filter. */
export interface BloomJson {
  /** Bits (a power of two). */
  m: number;
  k: number;
  /** The bit array, base64. */
  bits: string;
}

/** See the module doc. */
export class BloomFilter {
  readonly m: number;
  readonly k: number;
  readonly bits: Uint8Array;

  constructor(m: number, k: number, bits?: Uint8Array) {
    if (!(Number.isSafeInteger(m) && m >= 8 && (m & (m - 1)) === 0 && m <= MAX_BLOOM_BITS)) {
      throw new RangeError(
        `Bloom filter size must be a power of two from 8 to 2^27: received ${m}`,
      );
    }
    if (!(Number.isSafeInteger(k) && k >= 1 && k <= 16)) {
      throw new RangeError(`Bloom filter hash count must be 1 to 16: received ${k}`);
    }
    if (bits !== undefined && bits.length !== m / 8) {
      throw new RangeError(
        `Bloom filter of ${m} bits needs ${m / 8} bytes: received ${bits.length}`,
      );
    }
    this.m = m;
    this.k = k;
    this.bits = bits ?? new Uint8Array(m / 8);
  }

  /** An empty filter sized for `n` keys. */
  static forCount(n: number): BloomFilter {
    let m = 1024;
    while (m < n * BITS_PER_KEY && m < MAX_BLOOM_BITS) m *= 2;
    return new BloomFilter(m, HASHES);
  }

  /** Reads a peer's filter; throws a RangeError when malformed. */
  static fromJson(j: BloomJson): BloomFilter {
    if (typeof j?.bits !== "string") throw new RangeError("Bloom filter bits must be base64");
    return new BloomFilter(j.m, j.k, new Uint8Array(Buffer.from(j.bits, "base64")));
  }

  toJson(): BloomJson {
    return { m: this.m, k: this.k, bits: Buffer.from(this.bits).toString("base64") };
  }

  add(s: string): void {
    const [h1, h2] = hashes(s);
    const mask = this.m - 1;
    for (let i = 0; i < this.k; i++) {
      const b = (h1 + Math.imul(i, h2)) & mask;
      this.bits[b >>> 3] |= 1 << (b & 7);
    }
  }

  has(s: string): boolean {
    const [h1, h2] = hashes(s);
    const mask = this.m - 1;
    for (let i = 0; i < this.k; i++) {
      const b = (h1 + Math.imul(i, h2)) & mask;
      if ((this.bits[b >>> 3] & (1 << (b & 7))) === 0) return false;
    }
    return true;
  }

  /** Whether both filters have the same size and bits. */
  equals(o: BloomFilter): boolean {
    if (o.m !== this.m || o.k !== this.k) return false;
    for (let i = 0; i < this.bits.length; i++) if (o.bits[i] !== this.bits[i]) return false;
    return true;
  }
}

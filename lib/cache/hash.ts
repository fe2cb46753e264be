/**
 * 64-bit string hashing for cache keys, done in 32-bit halves with `Math.imul` so that no
 * BigInt or allocation is needed. The structure is MurmurHash3 x86_128 cut to two lanes: each
 * block of four UTF-16 code units is two 32-bit words, one per lane, with cross-lane mixing
 * after every block and the murmur finalizer on both lanes at the end. Callers keep the full
 * key and compare it on a hit, so a collision costs a miss, never a wrong body.
 *
 * @module
 */

const C1 = 0x239b961b;
const C2 = 0xab0e9789;
const C3 = 0x38b34ae5;
const SEED_HI = 0x9747b28c;
const SEED_LO = 0x2f3a5bd1;

/** MurmurHash3's 32-bit finalizer: a bijection with full avalanche. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The 32-bit table hash of a 64-bit key (hi, lo), used by both cache index implementations for
 * the hash table and the frequency sketch. Keys need not be well mixed (the simulator passes
 * object ids as lo with hi = 0).
 */
export function mixKey(hi: number, lo: number): number {
  return fmix32(lo ^ fmix32(hi ^ 0x9e3779b9));
}

/**
 * Writes a 64-bit hash of `key` into `out[0]` (high half) and `out[1]` (low half).
 *
 * @example
 * ```ts
 * import { hashKey } from "./hash.ts";
 * const h = new Uint32Array(2);
 * hashKey("/images/cat.jpg", h);
 * const again = new Uint32Array(2);
 * hashKey("/images/cat.jpg", again);
 * if (h[0] !== again[0] || h[1] !== again[1]) throw new Error("not deterministic");
 * ```
 */
export function hashKey(key: string, out: Uint32Array): void {
  const len = key.length;
  let h1 = SEED_HI;
  let h2 = SEED_LO;
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    let k1 = key.charCodeAt(i) | (key.charCodeAt(i + 1) << 16);
    let k2 = key.charCodeAt(i + 2) | (key.charCodeAt(i + 3) << 16);
    k1 = Math.imul(k1, C1);
    k1 = (k1 << 15) | (k1 >>> 17);
    k1 = Math.imul(k1, C2);
    h1 ^= k1;
    h1 = (h1 << 19) | (h1 >>> 13);
    h1 = (h1 + h2) | 0;
    h1 = (Math.imul(h1, 5) + 0x561ccd1b) | 0;
    k2 = Math.imul(k2, C2);
    k2 = (k2 << 16) | (k2 >>> 16);
    k2 = Math.imul(k2, C3);
    h2 ^= k2;
    h2 = (h2 << 17) | (h2 >>> 15);
    h2 = (h2 + h1) | 0;
    h2 = (Math.imul(h2, 5) + 0x0bcaa747) | 0;
  }
  // Tail: up to three code units, folded into the lanes like murmur's tail bytes.
  const rest = len - i;
  if (rest > 0) {
    let k1 = key.charCodeAt(i);
    if (rest > 1) k1 |= key.charCodeAt(i + 1) << 16;
    k1 = Math.imul(k1, C1);
    k1 = (k1 << 15) | (k1 >>> 17);
    k1 = Math.imul(k1, C2);
    h1 ^= k1;
    if (rest > 2) {
      let k2 = key.charCodeAt(i + 2);
      k2 = Math.imul(k2, C2);
      k2 = (k2 << 16) | (k2 >>> 16);
      k2 = Math.imul(k2, C3);
      h2 ^= k2;
    }
  }
  h1 ^= len;
  h2 ^= len;
  h1 = (h1 + h2) | 0;
  h2 = (h2 + h1) | 0;
  h1 = fmix32(h1);
  h2 = fmix32(h2);
  h1 = (h1 + h2) | 0;
  h2 = (h2 + h1) | 0;
  out[0] = h1;
  out[1] = h2;
}

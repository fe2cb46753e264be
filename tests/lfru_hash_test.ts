/** Properties of the 64-bit key hash (there is no published vector: the mix is our own). */
import { hashKey, mixKey } from "../lib/cache/hash.ts";

import { deepStrictEqual, ok } from "node:assert/strict";

const assert: (cond: unknown, msg?: string) => asserts cond = ok;
const assertEquals = <T>(actual: T, expected: T, msg?: string): void =>
  deepStrictEqual(actual, expected, msg);

function hash64(key: string): bigint {
  const out = new Uint32Array(2);
  hashKey(key, out);
  return (BigInt(out[0]) << 32n) | BigInt(out[1]);
}

function popcount64(x: bigint): number {
  let n = 0;
  for (; x; x &= x - 1n) n++;
  return n;
}

Deno.test("hashKey is deterministic and writes both halves", () => {
  const a = new Uint32Array([7, 7]);
  const b = new Uint32Array(2);
  hashKey("/video/seg-0001.ts", a);
  hashKey("/video/seg-0001.ts", b);
  assertEquals([...a], [...b]);
  assert(a[0] !== 7 && a[1] !== 7, "both halves written");
});

Deno.test("hashKey: no 64-bit collision among 300,000 similar keys", () => {
  const seen = new Set<bigint>();
  for (let i = 0; i < 100_000; i++) {
    seen.add(hash64(`/objects/${i}`));
    seen.add(hash64(`/objects/${i}?v=2`));
    seen.add(hash64(String.fromCharCode(i & 0xffff, i >>> 16)));
  }
  assertEquals(seen.size, 300_000);
});

Deno.test("hashKey: every length and tail is distinct, including empty and surrogates", () => {
  const seen = new Set<bigint>();
  const base = "abcdefghijklmnop\u{1F600}\u00e9";
  for (let n = 0; n <= base.length; n++) seen.add(hash64(base.slice(0, n)));
  assertEquals(seen.size, base.length + 1);
  assert(hash64("a\0") !== hash64("a"), "trailing NUL counts");
  assert(hash64("\0") !== hash64(""), "NUL differs from empty");
});

Deno.test("hashKey avalanches: one flipped bit changes about half of the 64 output bits", () => {
  let total = 0;
  let worst = 64;
  let samples = 0;
  for (let i = 0; i < 2000; i++) {
    const key = `/k/${i * 7919}/x`;
    const h = hash64(key);
    for (const pos of [0, key.length >> 1, key.length - 1]) {
      for (const bit of [1, 0x20, 0x100]) {
        const flipped = key.slice(0, pos) + String.fromCharCode(key.charCodeAt(pos) ^ bit) +
          key.slice(pos + 1);
        const d = popcount64(h ^ hash64(flipped));
        total += d;
        worst = Math.min(worst, d);
        samples++;
      }
    }
  }
  const mean = total / samples;
  assert(mean > 31 && mean < 33, `mean flipped bits ${mean}`);
  assert(worst >= 12, `a flip changed only ${worst} bits`);
});

Deno.test("mixKey spreads sequential ids over the low bits", () => {
  // The simulator passes object ids as (0, id): the table index is mixKey & mask.
  const buckets = new Uint32Array(1024);
  for (let id = 0; id < 102_400; id++) buckets[mixKey(0, id) & 1023]++;
  let max = 0;
  for (const b of buckets) max = Math.max(max, b);
  assert(max < 160, `fullest bucket ${max} of mean 100`);
});

/**
 * One conformance suite for both LFRU implementations (TypeScript reference and WASM).
 */
import { TsLfru } from "../lib/cache/lfru.ts";
import { createWasmLfru } from "../lib/cache/wasm_lfru.ts";
import type { CacheIndex, LfruOptions } from "../lib/cache/types.ts";

import { deepStrictEqual, ok, throws } from "node:assert/strict";

const assert: (cond: unknown, msg?: string) => asserts cond = ok;
const assertEquals = <T>(actual: T, expected: T, msg?: string): void =>
  deepStrictEqual(actual, expected, msg);

/** Asserts that `fn` throws an instance of `type` whose message includes `includes`. */
function assertThrows(
  fn: () => unknown,
  type: new (...a: never[]) => Error,
  includes: string,
): void {
  throws(fn, (e: unknown) => {
    ok(e instanceof type, `expected ${type.name}, got ${e}`);
    ok((e as Error).message.includes(includes), `"${(e as Error).message}" lacks "${includes}"`);
    return true;
  });
}

type Index = CacheIndex & { frequency(hi: number, lo: number): number; windowShare(): number };
const IMPLEMENTATIONS: [string, (budget: number, options?: LfruOptions) => Index][] = [
  ["ts", (b, o) => new TsLfru(b, o)],
  ["wasm", (b, o) => createWasmLfru(b, o)],
];

/** Small deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A request as the replica makes it: get, and on a miss set. Returns the slot or -1. */
function request(c: CacheIndex, key: number, size = 1): number {
  const s = c.get(0, key);
  return s >= 0 ? s : c.set(0, key, size);
}

/** Requests `key` `n` times (gets) and stores it with size 1; returns the slot or -1. */
function warm(c: CacheIndex, key: number, n: number): number {
  for (let i = 0; i < n; i++) c.get(0, key);
  return c.set(0, key, 1);
}

function evictedList(c: CacheIndex): number[] {
  const out: number[] = [];
  for (let i = 0; i < c.evictedCount(); i++) out.push(c.evictedSlot(i));
  return out;
}

for (const [name, make] of IMPLEMENTATIONS) {
  Deno.test(`${name}: bad budgets and options are RangeErrors`, () => {
    for (const b of [-1, 0, 1.5, NaN, Infinity, 2 ** 53]) {
      assertThrows(() => make(b), RangeError, "budget must be a positive integer");
    }
    assertThrows(() => make(10, { windowFraction: 2 }), RangeError, "windowFraction");
    assertThrows(() => make(10, { maxFrequency: 0 }), RangeError, "maxFrequency");
    assertThrows(() => make(10, { victimScan: 1.5 }), RangeError, "victimScan");
    assertThrows(() => make(10, { initialCapacity: 8 }), RangeError, "initialCapacity");
    const c = make(10);
    assertThrows(() => c.set(0, 1, -1), RangeError, "size must be an integer");
    assertThrows(() => c.set(0, 1, 2 ** 32), RangeError, "size must be an integer");
    assertThrows(() => c.set(0, 1, 0.5), RangeError, "size must be an integer");
  });

  Deno.test(`${name}: budget, byte accounting and reported evictions agree with a model`, () => {
    const budget = 5000;
    const c = make(budget, { initialCapacity: 16 });
    const r = rng(1);
    const live = new Map<number, { slot: number; size: number }>();
    for (let i = 0; i < 20_000; i++) {
      const key = Math.floor(r() ** 2 * 400);
      const op = r();
      if (op < 0.7) {
        const s = c.get(0, key);
        assertEquals(s, live.get(key)?.slot ?? -1, "get returns the live slot");
      } else if (op < 0.95) {
        const size = Math.floor(r() * 300);
        const before = new Map(live);
        const s = c.set(0, key, size);
        const evicted = evictedList(c);
        for (const slot of evicted) {
          const k = [...live].find(([, v]) => v.slot === slot)?.[0];
          assert(k !== undefined, `evicted slot ${slot} was live`);
          live.delete(k);
        }
        if (s >= 0) live.set(key, { slot: s, size });
        else live.delete(key);
        // Every key that disappeared was reported, and only those.
        for (const [k] of before) {
          if (k !== key || s >= 0) assertEquals(c.peek(0, k) >= 0, live.has(k), `key ${k}`);
        }
      } else {
        const s = c.delete(0, key);
        assertEquals(s, live.get(key)?.slot ?? -1, "delete returns the freed slot");
        live.delete(key);
      }
      assert(c.usedBytes <= budget, `usedBytes ${c.usedBytes} over budget`);
      let sum = 0;
      for (const v of live.values()) sum += v.size;
      assertEquals(c.usedBytes, sum, "usedBytes is the sum of live sizes");
      assertEquals(c.count, live.size, "count");
    }
    const slots = new Set([...live.values()].map((v) => v.slot));
    assertEquals(slots.size, live.size, "live slots are unique");
  });

  Deno.test(`${name}: slots are small and reused after eviction and deletion`, () => {
    const c = make(1_000_000, { initialCapacity: 16 });
    for (let k = 0; k < 1000; k++) assertEquals(c.set(0, k, 1), k, "fresh slots in order");
    for (let k = 0; k < 1000; k++) assertEquals(c.peek(0, k), k, "all present after growth");
    const freed = new Set<number>();
    for (let k = 0; k < 1000; k += 3) freed.add(c.delete(0, k));
    for (let k = 1000; k < 1000 + freed.size; k++) {
      const s = c.set(0, k, 1);
      assert(freed.delete(s), `slot ${s} is a freed one`);
    }
    // A small cache under churn never uses a slot beyond its peak entry count.
    const small = make(50);
    let maxSlot = -1;
    for (let k = 0; k < 10_000; k++) maxSlot = Math.max(maxSlot, request(small, k));
    assert(maxSlot < 51, `max slot ${maxSlot}`);
  });

  Deno.test(`${name}: frequent keys survive a scan of one-time keys`, () => {
    const c = make(100);
    for (let round = 0; round < 5; round++) {
      for (let k = 0; k < 50; k++) request(c, k);
    }
    // Six times the cache in one-time keys, within one aging period (10 × entries uses).
    for (let k = 1000; k < 1600; k++) request(c, k);
    for (let k = 0; k < 50; k++) assert(c.peek(0, k) >= 0, `hot key ${k} evicted by a scan`);
  });

  Deno.test(`${name}: aging lets a new working set replace an old popular one`, () => {
    const c = make(100);
    for (let round = 0; round < 50; round++) {
      for (let k = 0; k < 80; k++) request(c, k);
    }
    for (let round = 0; round < 200; round++) {
      for (let k = 500; k < 580; k++) request(c, k);
    }
    let present = 0;
    for (let k = 500; k < 580; k++) if (c.peek(0, k) >= 0) present++;
    assertEquals(present, 80, "the new working set is cached");
  });

  Deno.test(`${name}: recency decides within the privileged segment`, () => {
    // Fill, promote everything (second use), then touch half: the untouched half goes first.
    const c = make(1000, { windowFraction: 0, protectedFraction: 1 });
    for (let k = 0; k < 100; k++) c.set(0, k, 10);
    for (let k = 0; k < 100; k++) c.get(0, k);
    for (let k = 50; k < 100; k++) c.get(0, k);
    // The newcomer displaces ten entries: it must be more frequent than all ten together.
    for (let i = 0; i < 12; i++) c.get(0, 1000);
    c.set(0, 1000, 100);
    const gone = evictedList(c);
    assertEquals(gone.length, 10);
    for (const s of gone) assert(s < 10, `evicted slot ${s} is among the least recent`);
  });

  Deno.test(`${name}: a large newcomer must outweigh every entry it would displace`, () => {
    // 100 entries of 10 bytes, each used once; a 100-byte newcomer used twice is more frequent
    // than each of them but not than the ten it would push out together: refused. Used 11
    // times, it wins and evicts exactly ten.
    const c = make(1000, { windowFraction: 0, protectedFraction: 0, adaptive: false });
    for (let k = 0; k < 100; k++) c.set(0, k, 10);
    for (let k = 0; k < 100; k++) c.get(0, k);
    c.get(0, 1000);
    c.get(0, 1000);
    assertEquals(c.set(0, 1000, 100), -1, "refused");
    assertEquals(c.count, 100);
    for (let i = 0; i < 9; i++) c.get(0, 1000);
    assert(c.set(0, 1000, 100) >= 0, "admitted");
    assertEquals(evictedList(c).length, 10);
  });

  Deno.test(`${name}: a new key above the mean size waits for its second request`, () => {
    // Ten entries of 10 bytes (mean 10) in a 130-byte cache: a 40-byte key (4 × the mean) does
    // not fit without an eviction. Missed once, it is refused without evicting anything; missed
    // again, it wins the duel against one 10-byte entry seen once and is admitted.
    const c = make(130);
    for (let k = 0; k < 10; k++) assert(request(c, k, 10) >= 0);
    c.get(0, 100);
    assertEquals(c.set(0, 100, 40), -1, "first request: refused");
    assertEquals(c.count, 10);
    assertEquals(c.usedBytes, 100);
    c.get(0, 100);
    assert(c.set(0, 100, 40) >= 0, "second request: admitted");
  });

  Deno.test(`${name}: a new key waits one more request per factor 4 above the mean`, () => {
    // Ten entries of 10 bytes (mean 10) in a 140-byte cache. A 50-byte key (5 × the mean, more
    // than 4 ×) is refused on its first and second requests, with nothing evicted, and admitted
    // on its third (5 ≤ 4² × the mean), winning the duel against one 10-byte entry seen once.
    const c = make(140);
    for (let k = 0; k < 10; k++) assert(request(c, k, 10) >= 0);
    for (const n of ["first", "second"]) {
      c.get(0, 100);
      assertEquals(c.set(0, 100, 50), -1, `${n} request: refused`);
      assertEquals(c.count, 10);
      assertEquals(c.usedBytes, 100);
    }
    c.get(0, 100);
    assert(c.set(0, 100, 50) >= 0, "third request: admitted");
    assertEquals(evictedList(c).length, 1);
  });

  Deno.test(`${name}: a window ghost counts only within ARC's history`, () => {
    // 4 entries, window 1 (25 %), no privileged segment. Four keys used 5 times fill it; each
    // new key seen once pushes the one before it out of the window (it loses its duel). A miss
    // on key 100 counts while the window evicted at most entries × (1 − window share) = 3 keys
    // since key 100 left (itself included): two keys later (2) the window grows by one step
    // (1/16); five keys later (5) it does not.
    for (const [later, grows] of [[1, true], [4, false]] as const) {
      const c = make(4, { windowFraction: 0.25, protectedFraction: 0 });
      for (let k = 0; k < 4; k++) assert(warm(c, k, 5) >= 0);
      warm(c, 100, 1);
      for (let k = 101; k <= 101 + later; k++) warm(c, k, 1);
      assertEquals(c.windowShare(), 0.25);
      c.get(0, 100);
      assertEquals(
        c.windowShare(),
        grows ? 0.25 + 1 / 16 : 0.25,
        `${later + 1} window evictions since`,
      );
    }
  });

  Deno.test(`${name}: newcomers refused at once do not age the window ghost`, () => {
    // 4 entries and a window of 0 (1 % of 4 rounds down): a new key is its own duel candidate.
    // Four keys used 5 times fill the cache; ten new keys seen once are each refused against
    // them. Their refusals are remembered (a refused key that comes back argues for a bigger
    // window) but are not window evictions: key 102, refused third, still counts after the
    // seven others (more than the 4 entries) and the window grows by one step (1/16). A replica
    // on a tiny cache whose every newcomer was refused otherwise never adapted
    // (tests/http_store_evict_test.ts). Key 102's ghost position is not shared by the others.
    const c = make(4, { windowFraction: 0.01, protectedFraction: 0 });
    for (let k = 0; k < 4; k++) assert(warm(c, k, 5) >= 0);
    for (let k = 100; k < 110; k++) assertEquals(warm(c, k, 1), -1, `key ${k} refused`);
    assertEquals(c.windowShare(), 0.01);
    c.get(0, 102);
    assertEquals(c.windowShare(), 0.01 + 1 / 16);
  });

  Deno.test(`${name}: a main ghost counts only within as many evictions as entries`, () => {
    // 4 entries, window 2 (50 %), no privileged segment. Keys 0 and 1 (used once) and 2 and 3
    // (twice) fill it; each later key is used once more than the one before, wins its duel
    // and evicts one main entry: key 0 first. A miss on key 0 right after (1 main eviction
    // since, its own) shrinks the window by one step (1/16); after six (more than the 4
    // entries) it does not.
    for (const [newKeys, shrinks] of [[1, true], [6, false]] as const) {
      const c = make(4, { windowFraction: 0.5, protectedFraction: 0 });
      for (let k = 0; k < 4; k++) assert(warm(c, k, k < 2 ? 1 : 2) >= 0);
      for (let i = 0; i < newKeys; i++) {
        assert(warm(c, 10 + i, 3 + i) >= 0);
        assertEquals(c.evictedCount(), 1);
      }
      assertEquals(c.peek(0, 0), -1, "key 0 was evicted");
      assertEquals(c.windowShare(), 0.5);
      c.get(0, 0);
      assertEquals(
        c.windowShare(),
        shrinks ? 0.5 - 1 / 16 : 0.5,
        `${newKeys} main evictions since`,
      );
    }
  });

  Deno.test(`${name}: a cache with room admits a large new key at once`, () => {
    // The rule only decides what to evict for: with room, nothing is refused (a replica that
    // did not keep a cacheable response on its first fetch would look broken).
    const c = make(10_000);
    for (let k = 0; k < 10; k++) assert(request(c, k, 10) >= 0);
    c.get(0, 100);
    assert(c.set(0, 100, 50) >= 0, "first request, room left: admitted");
    c.get(0, 101);
    assert(c.set(0, 101, 10) >= 0, "not above the mean: admitted at once");
    assert(c.set(0, 102, 500) >= 0, "set without get: admitted");
  });

  Deno.test(`${name}: get counts a use and peek does not`, () => {
    const c = make(100);
    assertEquals(c.frequency(0, 7), 0);
    c.peek(0, 7);
    assertEquals(c.frequency(0, 7), 0);
    c.get(0, 7);
    c.get(0, 7);
    assertEquals(c.frequency(0, 7), 2);
  });

  Deno.test(`${name}: pinned entries are never evicted and count toward usedBytes`, () => {
    const c = make(1000);
    const pinnedSlots = new Map<number, number>();
    for (let k = 0; k < 10; k++) pinnedSlots.set(k, c.set(7, k, 50, true));
    assertEquals(c.usedBytes, 500);
    for (let k = 100; k < 20_000; k++) request(c, k, 1 + (k % 37));
    for (const [k, s] of pinnedSlots) assertEquals(c.peek(7, k), s, `pinned ${k}`);
    assert(c.usedBytes <= 1000);
    // Space for pinned entries is limited by the budget only.
    assertEquals(c.set(7, 99, 501, true), -1, "pinned over the budget is refused");
    assertEquals(c.set(7, 99, 500, true) >= 0, true, "pinned that fits evicts unpinned");
    assertEquals(c.usedBytes, 1000);
    assertEquals(c.set(0, 5, 1), -1, "no room left for unpinned entries");
    // Unpinning makes an entry evictable again.
    c.set(7, 99, 500, false);
    for (let k = 30_000; k < 31_000; k++) request(c, k, 10);
    for (const [k, s] of pinnedSlots) assertEquals(c.peek(7, k), s, `pinned ${k}`);
  });

  Deno.test(`${name}: delete frees bytes, the slot and the key`, () => {
    const c = make(100);
    const s = c.set(1, 2, 40);
    c.set(1, 3, 30);
    assertEquals(c.delete(1, 2), s);
    assertEquals(c.delete(1, 2), -1);
    assertEquals(c.peek(1, 2), -1);
    assertEquals(c.get(1, 2), -1);
    assertEquals(c.usedBytes, 30);
    assertEquals(c.count, 1);
    assertEquals(c.evictedCount(), 0);
    assertEquals(c.set(1, 4, 5), s, "the freed slot is reused");
  });

  Deno.test(`${name}: set of a present key updates its size in place`, () => {
    const c = make(100);
    const a = c.set(0, 1, 10);
    c.set(0, 2, 10);
    assertEquals(c.set(0, 1, 60), a);
    assertEquals(c.usedBytes, 70);
    assertEquals(c.count, 2);
    assertEquals(c.set(0, 1, 5), a);
    assertEquals(c.usedBytes, 15);
    // Growing past the budget drops the key and reports its slot.
    assertEquals(c.set(0, 1, 101), -1);
    assertEquals(evictedList(c), [a]);
    assertEquals(c.peek(0, 1), -1);
    assertEquals(c.usedBytes, 10);
  });

  Deno.test(`${name}: an object larger than the budget is refused without evicting`, () => {
    const c = make(100);
    for (let k = 0; k < 10; k++) c.set(0, k, 10);
    assertEquals(c.set(0, 99, 101), -1);
    assertEquals(c.evictedCount(), 0);
    assertEquals(c.count, 10);
    assertEquals(c.usedBytes, 100);
    assertEquals(c.peek(0, 99), -1);
  });

  Deno.test(`${name}: 64-bit keys differing in one half are distinct`, () => {
    const c = make(1000);
    const a = c.set(0xffffffff, 1, 1);
    const b = c.set(1, 0xffffffff, 1);
    const d = c.set(-1, 1, 1); // same as 0xffffffff: halves are taken mod 2^32
    assert(a !== b);
    assertEquals(d, a);
    assertEquals(c.count, 2);
  });
}

for (
  const [name, make] of [
    ["ts", (b: number) => new TsLfru(b)],
    ["wasm", (b: number) => createWasmLfru(b)],
  ] as const
) {
  Deno.test(`${name}: a batch replays get-then-set and reports per-request evictions`, () => {
    const c = make(3);
    const input = c.batchInput();
    // Keys 1, 2, 1, 3, 4, 5 of size 1 in a cache of 3 bytes.
    const keys = [1, 2, 1, 3, 4, 5];
    keys.forEach((k, i) => input.set([0, k, 1], 3 * i));
    assertEquals(c.requests(keys.length), keys.length);
    const res = [...c.batchResults().subarray(0, keys.length)];
    const STORED = 0x4000_0000;
    assertEquals(res[0], 0 | STORED, "miss stored in slot 0");
    assertEquals(res[1], 1 | STORED);
    assertEquals(res[2], 0, "hit returns the slot");
    assertEquals(res[3], 2 | STORED);
    // Reference replay with single calls gives the same slots and evictions.
    const d = make(3);
    const ends: number[] = [];
    const evicted: number[] = [];
    for (const k of keys) {
      const s = d.get(0, k);
      if (s < 0) {
        d.set(0, k, 1);
        for (let e = 0; e < d.evictedCount(); e++) evicted.push(d.evictedSlot(e));
      }
      ends.push(evicted.length);
    }
    assertEquals(keys.map((_, i) => c.batchEvictedEnd(i)), ends);
    assertEquals(evicted.map((_, j) => c.batchEvictedSlot(j)), evicted);
    assertThrows(() => c.requests(1025), RangeError, "batch length");
  });
}

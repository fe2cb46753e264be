/**
 * Seeded randomized differential test: the WASM index must give exactly the results of the
 * TypeScript reference (slot returned, evicted slots, usedBytes, count) on the same operations.
 */
import { TsLfru } from "../lib/cache/lfru.ts";
import { createWasmLfru } from "../lib/cache/wasm_lfru.ts";
import type { LfruOptions } from "../lib/cache/types.ts";

import { deepStrictEqual } from "node:assert/strict";

const assertEquals = <T>(actual: T, expected: T, msg?: string): void =>
  deepStrictEqual(actual, expected, msg);

/** Operations per configuration; the suite runs several configurations. */
const OPERATIONS = 100_000;

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CONFIGS: { name: string; budget: number; keys: number; options: LfruOptions }[] = [
  { name: "defaults, small budget", budget: 20_000, keys: 3000, options: {} },
  {
    name: "growth, scan 4, fast aging",
    budget: 2_000_000,
    keys: 20_000,
    options: { initialCapacity: 16, victimScan: 4, sampleFactor: 2, maxFrequency: 7 },
  },
  {
    name: "big window, no privileged segment",
    budget: 50_000,
    keys: 5000,
    options: { windowFraction: 0.3, protectedFraction: 0, maxFrequency: 255 },
  },
];

for (const [i, cfg] of CONFIGS.entries()) {
  Deno.test(`wasm and ts agree: ${cfg.name} (${OPERATIONS} ops)`, () => {
    const r = rng(1000 + i);
    const ts = new TsLfru(cfg.budget, cfg.options);
    const wasm = createWasmLfru(cfg.budget, cfg.options);
    // A fixed random upper half per key, so both 32-bit halves matter.
    const his = new Uint32Array(cfg.keys).map(() => Math.floor(r() * 2 ** 32));
    for (let n = 0; n < OPERATIONS; n++) {
      const k = Math.floor(r() ** 3 * cfg.keys);
      const hi = his[k];
      const op = r();
      let a: number, b: number, what: string;
      if (op < 0.55) {
        what = "get";
        a = ts.get(hi, k);
        b = wasm.get(hi, k);
      } else if (op < 0.6) {
        what = "peek";
        a = ts.peek(hi, k);
        b = wasm.peek(hi, k);
      } else if (op < 0.95) {
        what = "set";
        // Heavy-tailed sizes, now and then bigger than the whole budget.
        const size = Math.min(Math.floor(10 * Math.exp(r() * 9)), 2 ** 32 - 1);
        const pinned = r() < 0.01;
        a = ts.set(hi, k, size, pinned);
        b = wasm.set(hi, k, size, pinned);
      } else {
        what = "delete";
        a = ts.delete(hi, k);
        b = wasm.delete(hi, k);
      }
      if (a !== b) assertEquals(b, a, `op ${n} ${what}(${hi}, ${k}) result`);
      if (ts.evictedCount() !== wasm.evictedCount()) {
        assertEquals(wasm.evictedCount(), ts.evictedCount(), `op ${n} evictedCount`);
      }
      for (let e = 0; e < ts.evictedCount(); e++) {
        if (ts.evictedSlot(e) !== wasm.evictedSlot(e)) {
          assertEquals(wasm.evictedSlot(e), ts.evictedSlot(e), `op ${n} evicted[${e}]`);
        }
      }
      if (ts.usedBytes !== wasm.usedBytes || ts.count !== wasm.count) {
        assertEquals([wasm.usedBytes, wasm.count], [ts.usedBytes, ts.count], `op ${n} state`);
      }
      if ((n & 255) === 0 && ts.frequency(hi, k) !== wasm.frequency(hi, k)) {
        assertEquals(wasm.frequency(hi, k), ts.frequency(hi, k), `op ${n} frequency`);
      }
    }
  });
}

Deno.test("wasm and ts agree on batched requests (growth, early stops included)", () => {
  const r = rng(77);
  const opts: LfruOptions = { initialCapacity: 16 };
  // A small cache (a few dozen entries) so that busy batches outgrow the eviction list.
  const ts = new TsLfru(60_000, opts);
  const wasm = createWasmLfru(60_000, opts);
  let shortBatches = 0;
  let evictions = 0;
  for (let batch = 0; batch < 150; batch++) {
    const n = 1 + Math.floor(r() * 1024);
    const a = ts.batchInput();
    const b = wasm.batchInput();
    for (let i = 0; i < n; i++) {
      const k = Math.floor(r() ** 2 * 8000);
      a[3 * i] = b[3 * i] = k * 7;
      a[3 * i + 1] = b[3 * i + 1] = k;
      a[3 * i + 2] = b[3 * i + 2] = 1 + Math.floor(r() * 2000);
    }
    const doneA = ts.requests(n);
    const doneB = wasm.requests(n);
    assertEquals(doneB, doneA, `batch ${batch} done`);
    if (doneA < n) shortBatches++;
    const ra = ts.batchResults();
    const rb = wasm.batchResults();
    for (let i = 0; i < doneA; i++) {
      if (ra[i] !== rb[i]) assertEquals(rb[i], ra[i], `batch ${batch} result ${i}`);
      const end = ts.batchEvictedEnd(i);
      if (end !== wasm.batchEvictedEnd(i)) {
        assertEquals(wasm.batchEvictedEnd(i), end, `batch ${batch} end ${i}`);
      }
    }
    const total = doneA > 0 ? ts.batchEvictedEnd(doneA - 1) : 0;
    evictions += total;
    for (let j = 0; j < total; j++) {
      if (ts.batchEvictedSlot(j) !== wasm.batchEvictedSlot(j)) {
        assertEquals(wasm.batchEvictedSlot(j), ts.batchEvictedSlot(j), `batch ${batch} ev ${j}`);
      }
    }
    assertEquals([wasm.usedBytes, wasm.count], [ts.usedBytes, ts.count], `batch ${batch}`);
  }
  // The run must have exercised evictions and the early stop.
  assertEquals(evictions > 10_000, true, `evictions ${evictions}`);
  assertEquals(shortBatches > 0, true, "some batch stopped early");
});

/** A model of what an index holds: key → slot, updated from the results and evictions. */
class Holdings {
  readonly bySlot = new Map<number, string>();
  readonly byKey = new Map<string, number>();
  stored(key: string, slot: number): void {
    const old = this.byKey.get(key);
    if (old !== undefined) this.bySlot.delete(old);
    this.byKey.set(key, slot);
    this.bySlot.set(slot, key);
  }
  freed(slot: number): void {
    const key = this.bySlot.get(slot);
    if (key === undefined) throw new Error(`slot ${slot} freed twice`);
    this.bySlot.delete(slot);
    this.byKey.delete(key);
  }
  afterSet(c: TsLfru, key: string, slot: number): void {
    for (let e = 0; e < c.evictedCount(); e++) this.freed(c.evictedSlot(e));
    if (slot >= 0) this.stored(key, slot);
  }
}

Deno.test("wasm and ts agree on the replica's pattern: get, then set on a miss, with calls between", () => {
  // A `get` miss remembers where its probe ended for the `set` that follows; anything that
  // changes the table in between (a set or delete of another key, growth) must make the set
  // probe again. A model of the holdings checks that no key is lost or stored twice.
  const r = rng(4242);
  const opts: LfruOptions = { initialCapacity: 16 };
  const ts = new TsLfru(400_000, opts);
  const wasm = createWasmLfru(400_000, opts);
  const model = new Holdings();
  const hiOf = (k: number) => Math.imul(k, 0x9e3779b1) >>> 0;
  const compareSet = (n: number, what: string, hi: number, lo: number, size: number) => {
    const a = ts.set(hi, lo, size);
    const b = wasm.set(hi, lo, size);
    if (a !== b) assertEquals(b, a, `op ${n} ${what}`);
    if (ts.evictedCount() !== wasm.evictedCount()) {
      assertEquals(wasm.evictedCount(), ts.evictedCount(), `op ${n} ${what} evictedCount`);
    }
    for (let e = 0; e < ts.evictedCount(); e++) {
      if (ts.evictedSlot(e) !== wasm.evictedSlot(e)) {
        assertEquals(wasm.evictedSlot(e), ts.evictedSlot(e), `op ${n} ${what} evicted[${e}]`);
      }
    }
    model.afterSet(ts, `${hi}/${lo}`, a);
    return a;
  };
  let stored = 0;
  for (let n = 0; n < OPERATIONS; n++) {
    const k = Math.floor(r() ** 2 * 6000);
    const hi = hiOf(k);
    const a = ts.get(hi, k);
    const b = wasm.get(hi, k);
    if (a !== b) assertEquals(b, a, `op ${n} get(${k})`);
    if (a >= 0) continue;
    const between = r();
    const o = Math.floor(r() * 6000);
    if (between < 0.1) compareSet(n, "set between", hiOf(o), o, 1 + Math.floor(r() * 300));
    else if (between < 0.2) {
      const d = ts.delete(hiOf(o), o);
      assertEquals(wasm.delete(hiOf(o), o), d, `op ${n} delete between`);
      if (d >= 0) model.freed(d);
    } else if (between < 0.3) {
      assertEquals(wasm.get(hiOf(o), o), ts.get(hiOf(o), o), `op ${n} get between`);
      assertEquals(wasm.peek(hi, k), ts.peek(hi, k), `op ${n} peek between`);
    }
    if (compareSet(n, `set(${k})`, hi, k, 1 + Math.floor(r() * 300)) >= 0) stored++;
    if (ts.usedBytes !== wasm.usedBytes || ts.count !== wasm.count) {
      assertEquals([wasm.usedBytes, wasm.count], [ts.usedBytes, ts.count], `op ${n} state`);
    }
  }
  // Both grew from 16 slots; what the model says is held is exactly what both find.
  assertEquals(ts.count > 1000 && stored > 10_000, true, `count ${ts.count}, stored ${stored}`);
  assertEquals(model.byKey.size, ts.count, "held keys");
  for (const [key, slot] of model.byKey) {
    const [hi, lo] = key.split("/").map(Number);
    assertEquals([ts.peek(hi, lo), wasm.peek(hi, lo)], [slot, slot], `peek ${key}`);
  }
});

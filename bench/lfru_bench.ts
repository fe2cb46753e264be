/**
 * Per-operation cost of the LFRU index: WASM vs the TypeScript reference vs npm:lru-cache.
 * Each bench call replays BATCH requests of a Zipf(1.0) stream over KEYS keys, so divide the
 * reported time by BATCH for the time per operation (ops/s = BATCH / time).
 *
 * Run: `deno task bench` (or `deno bench -A bench/lfru_bench.ts` after `deno task build:wasm`).
 */
import { LRUCache } from "lru-cache";
import { hashKey } from "../lib/cache/hash.ts";
import type { BatchedCacheIndex, CacheIndex } from "../lib/cache/types.ts";

type TsModule = typeof import("../lib/cache/lfru.ts");
type WasmModule = typeof import("../lib/cache/wasm_lfru.ts");

/**
 * Both implementations, from a copy of their modules for one bench group. A replica holds one
 * index; here each group has its own. V8 keeps call feedback per function, so with one shared
 * adapter class the adapter's calls into WASM would see every group's instance (each instance
 * has its own export functions) and V8 would stop inlining the JS-to-Wasm call: 8% slower for
 * WASM in every group after the first. Each group imports its own copy (a query in the URL),
 * the TypeScript one too, for symmetry.
 */
async function implementations(group: string): Promise<{
  TsLfru: TsModule["TsLfru"];
  createWasmLfru: WasmModule["createWasmLfru"];
}> {
  const at = (path: string) => new URL(`${path}?group=${group}`, import.meta.url).href;
  const ts: TsModule = await import(at("../lib/cache/lfru.ts"));
  const wasm: WasmModule = await import(at("../lib/cache/wasm_lfru.ts"));
  return { TsLfru: ts.TsLfru, createWasmLfru: wasm.createWasmLfru };
}

/** Requests per bench call. */
const BATCH = 10_000;
/** Distinct keys; the cache holds 1% of them, like the reference traces. */
const KEYS = 100_000;
const ENTRIES = 1_000;
const SIZE = 4096;
const STREAM = 1 << 20;

// A Zipf(1.0) stream of key numbers, and each key's 64-bit hash of its URL.
const stream = new Uint32Array(STREAM);
{
  const cdf = new Float64Array(KEYS);
  let s = 0;
  for (let k = 0; k < KEYS; k++) cdf[k] = s += 1 / (k + 1);
  let x = 12345;
  for (let i = 0; i < STREAM; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const u = ((x >>> 8) / 2 ** 24) * s;
    let lo = 0;
    let hi = KEYS - 1;
    while (lo < hi) {
      const m = (lo + hi) >>> 1;
      if (cdf[m] > u) hi = m;
      else lo = m + 1;
    }
    stream[i] = lo;
  }
}
const keyHi = new Uint32Array(KEYS);
const keyLo = new Uint32Array(KEYS);
{
  const h = new Uint32Array(2);
  for (let k = 0; k < KEYS; k++) {
    hashKey(`/objects/${k}.bin`, h);
    keyHi[k] = h[0];
    keyLo[k] = h[1];
  }
}

// Each implementation gets its own textual copy of every loop, so that no call site is shared
// (polymorphic) between two implementations and each is optimized for its own receiver.

/** The replica's pattern: get, and on a miss set. */
function requests(index: CacheIndex, state: { at: number }): number {
  let hits = 0;
  let at = state.at;
  for (let i = 0; i < BATCH; i++) {
    const k = stream[at];
    at = (at + 1) & (STREAM - 1);
    if (index.get(keyHi[k], keyLo[k]) >= 0) hits++;
    else index.set(keyHi[k], keyLo[k], SIZE);
  }
  state.at = at;
  return hits;
}

/** `requests` again, for the WASM index only. */
function requestsWasm(index: CacheIndex, state: { at: number }): number {
  let hits = 0;
  let at = state.at;
  for (let i = 0; i < BATCH; i++) {
    const k = stream[at];
    at = (at + 1) & (STREAM - 1);
    if (index.get(keyHi[k], keyLo[k]) >= 0) hits++;
    else index.set(keyHi[k], keyLo[k], SIZE);
  }
  state.at = at;
  return hits;
}

/** Lookups of keys that are all present (no eviction): the hit path alone. */
function hitsOnly(index: CacheIndex, state: { at: number }): number {
  let sum = 0;
  for (let i = 0; i < BATCH; i++) {
    const k = state.at;
    state.at = (k + 1) % ENTRIES;
    sum += index.get(keyHi[k], keyLo[k]);
  }
  return sum;
}

/** `hitsOnly` again, for the WASM index only. */
function hitsOnlyWasm(index: CacheIndex, state: { at: number }): number {
  let sum = 0;
  for (let i = 0; i < BATCH; i++) {
    const k = state.at;
    state.at = (k + 1) % ENTRIES;
    sum += index.get(keyHi[k], keyLo[k]);
  }
  return sum;
}

function lruRequests(cache: LRUCache<number, number>, state: { at: number }): number {
  let hits = 0;
  let at = state.at;
  for (let i = 0; i < BATCH; i++) {
    const k = stream[at];
    at = (at + 1) & (STREAM - 1);
    if (cache.get(k) !== undefined) hits++;
    else cache.set(k, k);
  }
  state.at = at;
  return hits;
}

function warm<T extends CacheIndex>(index: T): T {
  // Warm-up through a third copy of the loop, leaving the measured ones untouched.
  let at = STREAM - 200_000;
  for (let i = 0; i < 200_000; i++, at = (at + 1) & (STREAM - 1)) {
    const k = stream[at];
    if (index.get(keyHi[k], keyLo[k]) < 0) index.set(keyHi[k], keyLo[k], SIZE);
  }
  return index;
}

const budget = ENTRIES * SIZE;
const request = await implementations("request");
const ts = warm(new request.TsLfru(budget));
const wasm = warm(request.createWasmLfru(budget));
const lru = new LRUCache<number, number>({ max: ENTRIES });
lruRequests(lru, { at: STREAM - 200_000 });

const tsState = { at: 0 };
const wasmState = { at: 0 };
const lruState = { at: 0 };
Deno.bench({
  name: "wasm lfru",
  group: "request (get, set on miss)",
  baseline: true,
  fn: () => void requestsWasm(wasm, wasmState),
});
Deno.bench({
  name: "ts lfru",
  group: "request (get, set on miss)",
  fn: () => void requests(ts, tsState),
});
Deno.bench({
  name: "npm:lru-cache",
  group: "request (get, set on miss)",
  fn: () => void lruRequests(lru, lruState),
});

/** The same requests through the batched boundary: BATCH_MAX per WASM call. */
function batched(index: BatchedCacheIndex, state: { at: number }): number {
  let hits = 0;
  let at = state.at;
  for (let done = 0; done < BATCH;) {
    const n = Math.min(1024, BATCH - done);
    const input = index.batchInput();
    for (let i = 0; i < n; i++) {
      const k = stream[(at + i) & (STREAM - 1)];
      input[3 * i] = keyHi[k];
      input[3 * i + 1] = keyLo[k];
      input[3 * i + 2] = SIZE;
    }
    const m = index.requests(n);
    const results = index.batchResults();
    for (let i = 0; i < m; i++) if (results[i] >= 0 && results[i] < 0x4000_0000) hits++;
    at = (at + m) & (STREAM - 1);
    done += m;
  }
  state.at = at;
  return hits;
}

/** `batched` again, for the TypeScript index only. */
function batchedTs(index: BatchedCacheIndex, state: { at: number }): number {
  let hits = 0;
  let at = state.at;
  for (let done = 0; done < BATCH;) {
    const n = Math.min(1024, BATCH - done);
    const input = index.batchInput();
    for (let i = 0; i < n; i++) {
      const k = stream[(at + i) & (STREAM - 1)];
      input[3 * i] = keyHi[k];
      input[3 * i + 1] = keyLo[k];
      input[3 * i + 2] = SIZE;
    }
    const m = index.requests(n);
    const results = index.batchResults();
    for (let i = 0; i < m; i++) if (results[i] >= 0 && results[i] < 0x4000_0000) hits++;
    at = (at + m) & (STREAM - 1);
    done += m;
  }
  state.at = at;
  return hits;
}

/** `requests` again, for the batched group's TypeScript index. */
function requestsTsB(index: CacheIndex, state: { at: number }): number {
  let hits = 0;
  let at = state.at;
  for (let i = 0; i < BATCH; i++) {
    const k = stream[at];
    at = (at + 1) & (STREAM - 1);
    if (index.get(keyHi[k], keyLo[k]) >= 0) hits++;
    else index.set(keyHi[k], keyLo[k], SIZE);
  }
  state.at = at;
  return hits;
}

const batch = await implementations("batched");
const tsB = warm(new batch.TsLfru(budget));
const wasmB = warm(batch.createWasmLfru(budget));
const tsBState = { at: 0 };
const wasmBState = { at: 0 };
Deno.bench({
  name: "wasm lfru, batched",
  group: "request, batched boundary",
  baseline: true,
  fn: () => void batched(wasmB, wasmBState),
});
Deno.bench({
  name: "ts lfru, batched",
  group: "request, batched boundary",
  fn: () => void batchedTs(tsB, tsBState),
});
Deno.bench({
  name: "ts lfru, per call",
  group: "request, batched boundary",
  fn: () => void requestsTsB(tsB, tsBState),
});

// The hit path alone: a cache holding every key it is asked for.
const hit = await implementations("hit");
const tsHits = new hit.TsLfru(budget * 2);
const wasmHits = hit.createWasmLfru(budget * 2);
for (let k = 0; k < ENTRIES; k++) {
  tsHits.set(keyHi[k], keyLo[k], SIZE);
  wasmHits.set(keyHi[k], keyLo[k], SIZE);
}
const lruHits = new LRUCache<number, number>({ max: ENTRIES });
for (let k = 0; k < ENTRIES; k++) lruHits.set(k, k);
const hs = { at: 0 };
Deno.bench({
  name: "wasm lfru",
  group: "get (hit)",
  baseline: true,
  fn: () => void hitsOnlyWasm(wasmHits, hs),
});
Deno.bench({ name: "ts lfru", group: "get (hit)", fn: () => void hitsOnly(tsHits, hs) });
Deno.bench({
  name: "npm:lru-cache",
  group: "get (hit)",
  fn: () => {
    for (let i = 0; i < BATCH; i++) {
      const k = hs.at;
      hs.at = (k + 1) % ENTRIES;
      lruHits.get(k);
    }
  },
});

// The boundary alone: peek of an absent key is one hash and one probe of an empty table.
const peek = await implementations("peek");
const tsEmpty = new peek.TsLfru(budget);
const wasmEmpty = peek.createWasmLfru(budget);
Deno.bench({
  name: "wasm lfru",
  group: "peek (absent): call overhead",
  baseline: true,
  fn: () => {
    for (let i = 0; i < BATCH; i++) wasmEmpty.peek(keyHi[i], keyLo[i]);
  },
});
Deno.bench({
  name: "ts lfru",
  group: "peek (absent): call overhead",
  fn: () => {
    for (let i = 0; i < BATCH; i++) tsEmpty.peek(keyHi[i], keyLo[i]);
  },
});

/**
 * Cache simulator: replays a trace (CSV `timestamp,object_id,size`) through the real LFRU index
 * (WASM and TypeScript), LRU and Belady's offline optimum, and prints object and byte miss
 * ratios at 0.1%, 1% and 10% of the footprint, beside libCacheSim's reference numbers when the
 * trace is one of the six of `/work/shared/traces/README.md`.
 *
 * Usage: `deno task sim TRACE... [options]`; TRACE is a CSV path or a reference trace name
 * (`zipf1.0_eq` reads `traces/zipf1.0_eq.csv`, made by `deno task traces`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { TsLfru } from "../lib/cache/lfru.ts";
import { createWasmLfru } from "../lib/cache/wasm_lfru.ts";
import type { CacheIndex, LfruOptions } from "../lib/cache/types.ts";
import { FRACTIONS, TRACES, type TraceSpec } from "./gen_traces.ts";

/** A parsed trace with objects renumbered densely (0..objects-1) in first-seen order. */
export interface Trace {
  /** Dense object number per request. */
  obj: Uint32Array;
  /** Size per request. */
  size: Uint32Array;
  /** The original 64-bit id of each dense object, as hi/lo u32 halves. */
  hi: Uint32Array;
  lo: Uint32Array;
  /** Size at first sight of each dense object. */
  firstSize: Float64Array;
  objects: number;
}

/** Miss counts of one run. */
export interface Result {
  requests: number;
  misses: number;
  bytes: number;
  missBytes: number;
}

export const missRatio = (r: Result): number => r.misses / r.requests;
export const byteMissRatio = (r: Result): number => r.missBytes / r.bytes;

const NEWLINE = 10;
const COMMA = 44;
const TWO_32 = 2 ** 32;

/** Parses CSV bytes `timestamp,object_id,size` (header optional); SyntaxError on a bad line. */
export function parseTrace(bytes: Uint8Array): Trace {
  let lines = 0;
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === NEWLINE) lines++;
  if (bytes.length > 0 && bytes[bytes.length - 1] !== NEWLINE) lines++;
  const obj = new Uint32Array(lines);
  const size = new Uint32Array(lines);
  const dense = new Map<number, number>();
  const his: number[] = [];
  const los: number[] = [];
  const firsts: number[] = [];
  let n = 0;
  let pos = 0;
  let line = 0;
  while (pos < bytes.length) {
    line++;
    let end = bytes.indexOf(NEWLINE, pos);
    if (end < 0) end = bytes.length;
    if (end > pos && bytes[pos] >= 0x30 && bytes[pos] <= 0x39) {
      // Three unsigned integers separated by commas.
      const fields = [0, 0, 0];
      let f = 0;
      let digits = 0;
      for (let i = pos; i < end; i++) {
        const c = bytes[i];
        if (c === COMMA) {
          if (digits === 0 || ++f > 2) break;
          digits = 0;
        } else if (c >= 0x30 && c <= 0x39) {
          fields[f] = fields[f] * 10 + (c - 0x30);
          digits++;
        } else if (!(c === 13 && i === end - 1)) {
          f = 3;
          break;
        }
      }
      if (f !== 2 || digits === 0 || !Number.isSafeInteger(fields[1]) || fields[2] >= TWO_32) {
        throw new SyntaxError(`Cannot parse trace: line ${line} is not timestamp,object_id,size`);
      }
      const id = fields[1];
      let d = dense.get(id);
      if (d === undefined) {
        d = his.length;
        dense.set(id, d);
        his.push(Math.floor(id / TWO_32));
        los.push(id % TWO_32);
        firsts.push(fields[2]);
      }
      obj[n] = d;
      size[n] = fields[2];
      n++;
    } else if (end > pos && line !== 1) {
      throw new SyntaxError(`Cannot parse trace: line ${line} is not timestamp,object_id,size`);
    }
    pos = end + 1;
  }
  return {
    obj: obj.subarray(0, n),
    size: size.subarray(0, n),
    hi: Uint32Array.from(his),
    lo: Uint32Array.from(los),
    firstSize: Float64Array.from(firsts),
    objects: his.length,
  };
}

/**
 * Cache capacity in bytes for a fraction of the footprint. When every request has the same
 * size the cache is counted in objects (floor(objects × fraction) objects of that size), else
 * in bytes (floor(distinct bytes × fraction)), as in the reference README.
 */
export function capacityFor(t: Trace, fraction: number): { bytes: number; label: string } {
  const s0 = t.size[0];
  let equal = true;
  for (let i = 1; i < t.size.length && equal; i++) equal = t.size[i] === s0;
  if (equal) {
    const n = Math.floor(t.objects * fraction);
    return { bytes: n * s0, label: `${n} objects` };
  }
  let total = 0;
  for (let i = 0; i < t.objects; i++) total += t.firstSize[i];
  const b = Math.floor(total * fraction);
  return { bytes: b, label: `${b} bytes` };
}

function emptyResult(t: Trace): Result {
  let bytes = 0;
  for (let i = 0; i < t.size.length; i++) bytes += t.size[i];
  return { requests: t.size.length, misses: 0, bytes, missBytes: 0 };
}

/**
 * LRU counted in bytes, as libCacheSim's: a miss inserts at the head and evicts from the tail
 * until the object fits; an object larger than the cache is not inserted.
 */
export function simulateLru(t: Trace, capacity: number): Result {
  const r = emptyResult(t);
  const prev = new Int32Array(t.objects).fill(-1);
  const next = new Int32Array(t.objects).fill(-1);
  const held = new Float64Array(t.objects); // size held, 0 when absent (sizes ≥ 0: use flag)
  const present = new Uint8Array(t.objects);
  let head = -1;
  let tail = -1;
  let used = 0;
  const unlink = (o: number) => {
    const p = prev[o];
    const n = next[o];
    if (p < 0) head = n;
    else next[p] = n;
    if (n < 0) tail = p;
    else prev[n] = p;
  };
  const pushHead = (o: number) => {
    prev[o] = -1;
    next[o] = head;
    if (head < 0) tail = o;
    else prev[head] = o;
    head = o;
  };
  for (let i = 0; i < t.obj.length; i++) {
    const o = t.obj[i];
    const s = t.size[i];
    if (present[o]) {
      unlink(o);
      pushHead(o);
      continue;
    }
    r.misses++;
    r.missBytes += s;
    if (s > capacity) continue;
    while (used + s > capacity) {
      const v = tail;
      unlink(v);
      present[v] = 0;
      used -= held[v];
    }
    pushHead(o);
    present[o] = 1;
    held[o] = s;
    used += s;
  }
  return r;
}

/**
 * Belady's MIN: on a miss, evict the cached objects requested furthest in the future, and do
 * not admit the new object when it is itself requested later than all of them. Optimal for
 * equal sizes; with variable sizes it is the classic greedy bound, not the size-aware optimum
 * the reference table's "optimal" column uses.
 */
export function simulateBelady(t: Trace, capacity: number): Result {
  const r = emptyResult(t);
  const n = t.obj.length;
  const NEVER = n; // requested never again
  const nextUse = new Int32Array(n);
  const last = new Int32Array(t.objects).fill(NEVER);
  for (let i = n - 1; i >= 0; i--) {
    nextUse[i] = last[t.obj[i]];
    last[t.obj[i]] = i;
  }
  // Max-heap of (next use, object) with lazy deletion: an entry is live when the object is
  // cached and the key equals its current next use.
  const heapKey = new Int32Array(n + 1);
  const heapObj = new Int32Array(n + 1);
  let size = 0;
  const push = (k: number, o: number) => {
    let i = size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (heapKey[p] >= k) break;
      heapKey[i] = heapKey[p];
      heapObj[i] = heapObj[p];
      i = p;
    }
    heapKey[i] = k;
    heapObj[i] = o;
  };
  const pop = () => {
    const k = heapKey[--size];
    const o = heapObj[size];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= size) break;
      if (c + 1 < size && heapKey[c + 1] > heapKey[c]) c++;
      if (heapKey[c] <= k) break;
      heapKey[i] = heapKey[c];
      heapObj[i] = heapObj[c];
      i = c;
    }
    heapKey[i] = k;
    heapObj[i] = o;
  };
  const cachedNext = new Int32Array(t.objects).fill(-1); // -1: not cached
  const held = new Float64Array(t.objects);
  let used = 0;
  /** Drops stale entries so the top is live; returns false when the heap is empty. */
  const clean = () => {
    while (size > 0 && cachedNext[heapObj[0]] !== heapKey[0]) pop();
    return size > 0;
  };
  for (let i = 0; i < n; i++) {
    const o = t.obj[i];
    const s = t.size[i];
    const nu = nextUse[i];
    if (cachedNext[o] >= 0) {
      cachedNext[o] = nu;
      push(nu, o);
      continue;
    }
    r.misses++;
    r.missBytes += s;
    if (s > capacity || nu === NEVER) continue;
    if (used + s > capacity) {
      if (clean() && heapKey[0] <= nu) continue; // the newcomer is needed last: bypass
      while (used + s > capacity && clean()) {
        const v = heapObj[0];
        pop();
        cachedNext[v] = -1;
        used -= held[v];
      }
    }
    cachedNext[o] = nu;
    held[o] = s;
    used += s;
    push(nu, o);
  }
  return r;
}

/** Replays through a CacheIndex the way the replica uses it: get, and set on a miss. */
export function simulateIndex(t: Trace, index: CacheIndex): Result {
  const r = emptyResult(t);
  const { obj, size, hi, lo } = t;
  for (let i = 0; i < obj.length; i++) {
    const o = obj[i];
    if (index.get(hi[o], lo[o]) >= 0) continue;
    const s = size[i];
    r.misses++;
    r.missBytes += s;
    index.set(hi[o], lo[o], s);
  }
  return r;
}

/** Policies the simulator knows. */
export const POLICY_NAMES = ["lru", "belady", "lfru-ts", "lfru-wasm"] as const;
export type Policy = typeof POLICY_NAMES[number];

/** Runs one policy at one capacity. */
export function simulate(t: Trace, policy: Policy, capacity: number, o?: LfruOptions): Result {
  switch (policy) {
    case "lru":
      return simulateLru(t, capacity);
    case "belady":
      return simulateBelady(t, capacity);
    case "lfru-ts":
      return simulateIndex(t, new TsLfru(capacity, o));
    case "lfru-wasm":
      return simulateIndex(t, createWasmLfru(capacity, o));
  }
}

const f4 = (x: number | undefined) => x === undefined ? "" : x.toFixed(4);
const pct = (f: number) => `${+(f * 100).toFixed(2)}%`;

const HELP = `Usage: deno task sim TRACE... [options]

Replays each trace through LRU, Belady's MIN and the LFRU index (TypeScript and WASM) and
prints object and byte miss ratios at 0.1%, 1% and 10% of the footprint, with libCacheSim's
reference LRU, best non-optimal policy and optimum for the six reference traces. Exits 1
when our LRU is more than 0.001 off the reference LRU or the two LFRU indexes disagree.

TRACE is a CSV path (timestamp,object_id,size) or a reference trace name such as
zipf1.0_eq (read from traces/, made by \`deno task traces\`).

Options:
  --policies LIST      comma-separated subset of ${POLICY_NAMES.join(",")} (default: all)
  --fractions LIST     cache sizes as fractions of the footprint (default: 0.001,0.01,0.1)
  --window F           LFRU windowFraction (initial share of the window)
  --fixed-window       LFRU adaptive: false (the window keeps its initial share)
  --protected F        LFRU protectedFraction
  --sample-factor F    LFRU sampleFactor (aging period in multiples of the entry count)
  --max-frequency N    LFRU maxFrequency (counter cap)
  --victim-scan N      LFRU victimScan
  -h, --help           show this help`;

function resolveTrace(arg: string): { path: string; spec?: TraceSpec } {
  const spec = TRACES.find((t) => t.name === arg || `${t.name}.csv` === arg.split("/").pop());
  if (spec && !arg.includes("/") && !arg.endsWith(".csv")) {
    return { path: new URL(`../traces/${spec.name}.csv`, import.meta.url).pathname, spec };
  }
  return { path: arg, spec };
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      policies: { type: "string" },
      fractions: { type: "string" },
      window: { type: "string" },
      "fixed-window": { type: "boolean", default: false },
      protected: { type: "string" },
      "sample-factor": { type: "string" },
      "max-frequency": { type: "string" },
      "victim-scan": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help || positionals.length === 0) {
    console.log(HELP);
    return values.help ? 0 : 2;
  }
  const policies = (values.policies ?? POLICY_NAMES.join(",")).split(",") as Policy[];
  for (const p of policies) {
    if (!POLICY_NAMES.includes(p)) {
      console.error(`unknown policy ${p}; known: ${POLICY_NAMES.join(", ")}`);
      return 2;
    }
  }
  const fractions = values.fractions ? values.fractions.split(",").map(Number) : [...FRACTIONS];
  const num = (v: string | undefined) => v === undefined ? undefined : Number(v);
  const options: LfruOptions = {
    windowFraction: num(values.window),
    adaptive: values["fixed-window"] ? false : undefined,
    protectedFraction: num(values.protected),
    sampleFactor: num(values["sample-factor"]),
    maxFrequency: num(values["max-frequency"]),
    victimScan: num(values["victim-scan"]),
  };
  for (const k of Object.keys(options) as (keyof LfruOptions)[]) {
    if (options[k] === undefined) delete options[k];
  }
  let failed = false;
  console.log(
    "| trace | size | cache | LRU | ref LRU | LFRU obj | best ref obj | LFRU byte | best ref byte | Belady obj | ref opt obj |",
  );
  console.log("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const arg of positionals) {
    const { path, spec } = resolveTrace(arg);
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (e) {
      console.error(
        `cannot read ${path}: ${(e as Error).message}` +
          (spec ? " (run `deno task traces`)" : ""),
      );
      return 1;
    }
    const trace = parseTrace(bytes);
    const name = spec?.name ?? path;
    for (const fraction of fractions) {
      const cap = capacityFor(trace, fraction);
      const col = spec ? FRACTIONS.indexOf(fraction as typeof FRACTIONS[number]) : -1;
      const ref = col >= 0 ? spec!.reference : undefined;
      const res = new Map<Policy, Result>();
      for (const p of policies) res.set(p, simulate(trace, p, cap.bytes, options));
      const lru = res.get("lru");
      const lfru = res.get("lfru-wasm") ?? res.get("lfru-ts");
      const ts = res.get("lfru-ts");
      const wasm = res.get("lfru-wasm");
      if (ts && wasm && (ts.misses !== wasm.misses || ts.missBytes !== wasm.missBytes)) {
        console.error(`${name} ${pct(fraction)}: WASM and TS LFRU disagree`);
        failed = true;
      }
      if (lru && ref && Math.abs(missRatio(lru) - ref.object.lru[col]) > 0.001) {
        console.error(`${name} ${pct(fraction)}: LRU ${f4(missRatio(lru))} is not the reference`);
        failed = true;
      }
      const bytesToo = spec ? spec.kind === "lognorm" : true;
      const both = (r: Result | undefined) =>
        r ? bytesToo ? `${f4(missRatio(r))} / ${f4(byteMissRatio(r))}` : f4(missRatio(r)) : "";
      const refBoth = (o?: number, b?: number) =>
        o === undefined ? "" : b === undefined ? f4(o) : `${f4(o)} / ${f4(b)}`;
      console.log(
        `| ${name} | ${pct(fraction)} | ${cap.label} | ${both(lru)} | ${
          refBoth(ref?.object.lru[col], ref?.byte?.lru[col])
        } | ${f4(lfru && missRatio(lfru))} | ${
          ref ? `${f4(ref.object.best[col])} ${ref.object.bestName[col]}` : ""
        } | ${bytesToo && lfru ? f4(byteMissRatio(lfru)) : ""} | ${
          ref?.byte ? `${f4(ref.byte.best[col])} ${ref.byte.bestName[col]}` : ""
        } | ${both(res.get("belady"))} | ${
          refBoth(ref?.object.optimal[col], ref?.byte?.optimal[col])
        } |`,
      );
    }
  }
  return failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());

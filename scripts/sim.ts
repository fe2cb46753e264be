/**
 * Cache simulator: replays traces through the LFRU index (WASM and TypeScript) and the
 * reference policies in the same run — LRU, ARC, SIEVE, S3-FIFO, W-TinyLFU with hill climbing,
 * GDSF — and Belady's MIN, and prints object and byte miss ratios at 0.1 %, 1 % and 10 % of
 * the footprint. Our LRU is checked against libCacheSim's reference numbers when the trace is
 * one of the six of `/work/shared/traces/README.md`.
 *
 * Usage: `deno task sim TRACE... [options]`; TRACE is a CSV path, a key trace (`.trace`, or
 * `.trace.xz` read through `xz -dc`), a reference trace name (`zipf1.0_eq` reads
 * `traces/zipf1.0_eq.csv`, made by `deno task traces`) or a real trace name (`orm-busy` reads
 * `cache2k_orm-busy.trace.xz` in `--real-dir`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { TsLfru } from "../lib/cache/lfru.ts";
import { createWasmLfru } from "../lib/cache/wasm_lfru.ts";
import type { CacheIndex, LfruOptions } from "../lib/cache/types.ts";
import { FRACTIONS, TRACES, type TraceSpec } from "./gen_traces.ts";
import {
  byteMissRatio,
  countMiss,
  emptyResult,
  missRatio,
  type Result,
  type Trace,
} from "./sim/_common.ts";
import { parseKeyTrace, parseTrace } from "./sim/_parse.ts";
import { simulateLru } from "./sim/lru.ts";
import { simulateBelady } from "./sim/belady.ts";
import { simulateArc } from "./sim/arc.ts";
import { simulateSieve } from "./sim/sieve.ts";
import { simulateS3Fifo } from "./sim/s3fifo.ts";
import { simulateWTinyLfu } from "./sim/wtinylfu.ts";
import { simulateGdsf } from "./sim/gdsf.ts";

export { byteMissRatio, missRatio, parseKeyTrace, parseTrace, simulateBelady, simulateLru };
export type { Result, Trace };

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

/** Replays through a CacheIndex the way the replica uses it: get, and set on a miss. */
export function simulateIndex(t: Trace, index: CacheIndex): Result {
  const r = emptyResult(t);
  const { obj, size, hi, lo } = t;
  for (let i = 0; i < obj.length; i++) {
    const o = obj[i];
    if (index.get(hi[o], lo[o]) >= 0) continue;
    const s = size[i];
    countMiss(r, s);
    index.set(hi[o], lo[o], s);
  }
  return r;
}

/** Reference policies (baselines), in table order. */
export const BASELINES = {
  lru: { label: "LRU", run: simulateLru },
  arc: { label: "ARC", run: simulateArc },
  sieve: { label: "SIEVE", run: simulateSieve },
  s3fifo: { label: "S3-FIFO", run: simulateS3Fifo },
  wtinylfu: { label: "W-TinyLFU", run: simulateWTinyLfu },
  gdsf: { label: "GDSF", run: simulateGdsf },
} as const;
type Baseline = keyof typeof BASELINES;

/** Policies the simulator knows. */
export const POLICY_NAMES = [
  ...Object.keys(BASELINES) as Baseline[],
  "lfru-ts",
  "lfru-wasm",
  "belady",
] as const;
export type Policy = typeof POLICY_NAMES[number];

const LABELS: Record<Policy, string> = {
  ...Object.fromEntries(Object.entries(BASELINES).map(([k, v]) => [k, v.label])),
  "lfru-ts": "LFRU (TS)",
  "lfru-wasm": "LFRU",
  belady: "Belady",
} as Record<Policy, string>;

/** Runs one policy at one capacity. */
export function simulate(t: Trace, policy: Policy, capacity: number, o?: LfruOptions): Result {
  switch (policy) {
    case "belady":
      return simulateBelady(t, capacity);
    case "lfru-ts":
      return simulateIndex(t, new TsLfru(capacity, o));
    case "lfru-wasm":
      return simulateIndex(t, createWasmLfru(capacity, o));
    default:
      return BASELINES[policy].run(t, capacity);
  }
}

const f4 = (x: number) => x.toFixed(4);
const pct = (f: number) => `${+(f * 100).toFixed(2)}%`;

const HELP = `Usage: deno task sim TRACE... [options]

Replays each trace through the reference policies (LRU, ARC, SIEVE, S3-FIFO, W-TinyLFU
with hill climbing, GDSF), the LFRU index (TypeScript and WASM) and Belady's MIN, and prints
object miss ratios (and byte miss ratios, "object / byte", when sizes vary) at 0.1%, 1% and
10% of the footprint, libCacheSim's optimum for the six reference traces (size-aware when
sizes vary), the best baseline per cell, and how much of the gap from the best baseline to
the optimum (the lower of Belady and the reference optimum) the LFRU closes (negative when
it is worse than the best baseline). Exits 1 when our LRU is more than 0.001 off
libCacheSim's reference LRU or the two LFRU indexes disagree.

TRACE is a CSV path (timestamp,object_id,size), a key trace (.trace: big-endian u32 keys,
unit size; .trace.xz is read through xz -dc), a reference trace name such as zipf1.0_eq
(read from traces/, made by \`deno task traces\`), or orm-busy / orm-night (the cache2k
traces in --real-dir).

Options:
  --policies LIST      comma-separated subset of ${POLICY_NAMES.join(",")} (default: all)
  --fractions LIST     cache sizes as fractions of the footprint (default: 0.001,0.01,0.1)
  --requests N         replay only the first N requests of each trace
  --real-dir DIR       where orm-busy / orm-night live (default: ../shared/traces/real from
                       the repository root)
  --window F           LFRU windowFraction (initial share of the window)
  --fixed-window       LFRU adaptive: false (the window keeps its initial share)
  --protected F        LFRU protectedFraction
  --sample-factor F    LFRU sampleFactor (aging period in multiples of the entry count)
  --max-frequency N    LFRU maxFrequency (counter cap)
  --victim-scan N      LFRU victimScan
  -h, --help           show this help`;

const REAL = ["orm-busy", "orm-night"];

function resolveTrace(arg: string, realDir: string): { path: string; spec?: TraceSpec } {
  const spec = TRACES.find((t) => t.name === arg || `${t.name}.csv` === arg.split("/").pop());
  if (spec && !arg.includes("/") && !arg.endsWith(".csv")) {
    return { path: new URL(`../traces/${spec.name}.csv`, import.meta.url).pathname, spec };
  }
  if (REAL.includes(arg)) return { path: `${realDir}/cache2k_${arg}.trace.xz` };
  return { path: arg, spec };
}

/** Reads and parses a trace file by its extension. */
async function readTrace(path: string): Promise<Trace> {
  if (path.endsWith(".xz")) {
    const out = await new Deno.Command("xz", { args: ["-dc", path], stderr: "piped" }).output();
    if (!out.success) {
      throw new Error(`xz -dc ${path} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
    }
    return parseKeyTrace(out.stdout);
  }
  const bytes = await Deno.readFile(path);
  return path.endsWith(".trace") ? parseKeyTrace(bytes) : parseTrace(bytes);
}

/** The first `n` requests of a trace (objects keep their numbers). */
function sliceTrace(t: Trace, n: number): Trace {
  return { ...t, obj: t.obj.subarray(0, n), size: t.size.subarray(0, n) };
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      policies: { type: "string" },
      fractions: { type: "string" },
      requests: { type: "string" },
      "real-dir": { type: "string" },
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
  const realDir = values["real-dir"] ??
    new URL("../../shared/traces/real", import.meta.url).pathname;
  const limit = num(values.requests);
  let failed = false;
  const baselines = policies.filter((p): p is Baseline => p in BASELINES);
  console.log(
    `| trace | size | cache | ${
      policies.map((p) => LABELS[p]).join(" | ")
    } | ref optimum | best baseline | gap closed |`,
  );
  console.log(`|---|---|---|${policies.map(() => "---:|").join("")}---:|---|---:|`);
  for (const arg of positionals) {
    const { path, spec } = resolveTrace(arg, realDir);
    let trace: Trace;
    try {
      trace = await readTrace(path);
    } catch (e) {
      console.error(
        `cannot read ${path}: ${(e as Error).message}` +
          (spec ? " (run `deno task traces`)" : ""),
      );
      return 1;
    }
    if (limit !== undefined) trace = sliceTrace(trace, limit);
    const name = spec?.name ?? arg.split("/").pop()!;
    const bytesToo = !trace.size.every((x) => x === trace.size[0]);
    for (const fraction of fractions) {
      const cap = capacityFor(trace, fraction);
      const col = spec && limit === undefined
        ? FRACTIONS.indexOf(fraction as typeof FRACTIONS[number])
        : -1;
      const ref = col >= 0 ? spec!.reference : undefined;
      const res = new Map<Policy, Result>();
      for (const p of policies) res.set(p, simulate(trace, p, cap.bytes, options));
      const lru = res.get("lru");
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
      const cell = (r: Result) =>
        bytesToo ? `${f4(missRatio(r))} / ${f4(byteMissRatio(r))}` : f4(missRatio(r));
      const best = (ratio: (r: Result) => number) => {
        let b: Baseline | undefined;
        for (const p of baselines) {
          if (b === undefined || ratio(res.get(p)!) < ratio(res.get(b)!)) b = p;
        }
        return b;
      };
      const bestObj = best(missRatio);
      const bestByte = best(byteMissRatio);
      const lfru = wasm ?? ts;
      const belady = res.get("belady");
      // The optimum: our Belady, or libCacheSim's size-aware optimum when lower (Belady is not
      // optimal in objects when sizes vary).
      const optObj = Math.min(
        belady ? missRatio(belady) : Infinity,
        ref?.object.optimal[col] ?? Infinity,
      );
      const optByte = Math.min(
        belady ? byteMissRatio(belady) : Infinity,
        ref?.byte?.optimal[col] ?? Infinity,
      );
      const closed = (ratio: (r: Result) => number, b: Baseline | undefined, opt: number) => {
        if (!lfru || opt === Infinity || !b) return "";
        const gap = ratio(res.get(b)!) - opt;
        return gap > 0 ? `${Math.round(100 * (ratio(res.get(b)!) - ratio(lfru)) / gap)}%` : "";
      };
      const bestCell = !bestObj
        ? ""
        : bytesToo
        ? `${LABELS[bestObj]} / ${LABELS[bestByte!]}`
        : LABELS[bestObj];
      const closedCell = bytesToo
        ? `${closed(missRatio, bestObj, optObj)} / ${closed(byteMissRatio, bestByte, optByte)}`
        : closed(missRatio, bestObj, optObj);
      const refOpt = !ref
        ? ""
        : bytesToo
        ? `${f4(ref.object.optimal[col])} / ${f4(ref.byte!.optimal[col])}`
        : f4(ref.object.optimal[col]);
      console.log(
        `| ${name} | ${pct(fraction)} | ${cap.label} | ${
          policies.map((p) => cell(res.get(p)!)).join(" | ")
        } | ${refOpt} | ${bestCell} | ${closedCell} |`,
      );
    }
  }
  return failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());

/**
 * Generates the six synthetic Zipf cache traces of `/work/shared/traces/README.md` bit for bit
 * and checks their SHA-256; also holds that README's cache sizes and libCacheSim reference miss
 * ratios, which `scripts/sim.ts` compares against.
 *
 * Usage: `deno task traces [--out DIR] [--only NAME]... [--force]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { concatBytes } from "../lib/common/bytes.ts";

/** Requests per trace. */
export const REQUESTS = 2_000_000;
/** Objects in the popularity distribution (ids 1..N). */
export const OBJECTS = 100_000;
/** Requests per timestamp unit. */
const REQUESTS_PER_TICK = 100;
const REQUEST_SEED = 42n;
const SIZE_SEED = 43n;
/** Equal-size traces use 4096-byte objects. */
export const EQUAL_SIZE = 4096;
/** Heavy-tailed sizes: lognormal around 20,000 bytes with sigma 1.5, clamped. */
const LOGNORM_MEDIAN = 20_000;
const LOGNORM_SIGMA = 1.5;
const MIN_SIZE = 16;
const MAX_SIZE = 2 ** 31 - 1;

export type Kind = "eq" | "lognorm";
/** Cache sizes as fractions of the footprint, as in the reference table. */
export const FRACTIONS = [0.001, 0.01, 0.1] as const;

/** Reference miss ratios from libCacheSim: object, and byte for heavy-tailed traces. */
export interface Reference {
  lru: number[];
  best: number[];
  bestName: string[];
  optimal: number[];
}

export interface TraceSpec {
  name: string;
  alpha: number;
  kind: Kind;
  sha256: string;
  /** Cache sizes from the README (objects for eq, bytes for lognorm) at 0.1%, 1%, 10%. */
  sizes: number[];
  /** Per fraction: object ratios, then byte ratios (lognorm only). */
  reference: { object: Reference; byte?: Reference };
}

const POLICIES = ["LRU", "2Q", "SLRU(2)", "SLRU(4)", "LFU", "W-TinyLFU", "S3-FIFO", "SIEVE"];

/** Builds a Reference from README rows (LRU..SIEVE, then optimal); W-TinyLFU's 1.0 is excluded. */
function ref(rows: number[][]): Reference {
  const r: Reference = { lru: [], best: [], bestName: [], optimal: [] };
  for (const row of rows) {
    r.lru.push(row[0]);
    let best = Infinity;
    let name = "";
    for (let i = 1; i < POLICIES.length; i++) {
      if (row[i] < best && row[i] < 1) {
        best = row[i];
        name = POLICIES[i];
      }
    }
    r.best.push(best);
    r.bestName.push(name);
    r.optimal.push(row[POLICIES.length]);
  }
  return r;
}

/** Splits "0.9310 / 0.9544" rows into object and byte tables. */
function split(rows: string[][]): { object: Reference; byte: Reference } {
  const obj = rows.map((r) => r.map((c) => Number(c.split("/")[0])));
  const byt = rows.map((r) => r.map((c) => Number(c.split("/")[1])));
  return { object: ref(obj), byte: ref(byt) };
}

/** The README's tables, verbatim. */
export const TRACES: TraceSpec[] = [
  {
    name: "zipf0.8_eq",
    alpha: 0.8,
    kind: "eq",
    sha256: "b1a7dea3bb7e2e6db56d2e09e8c00f615fcaa0e8d5be084ccb77475fe7134d2c",
    sizes: [99, 997, 9975],
    reference: {
      object: ref([
        [0.9329, 0.8471, 0.8643, 0.8450, 0.8506, 1.0000, 0.8340, 0.8369, 0.7783],
        [0.7963, 0.7017, 0.7236, 0.6951, 0.6949, 0.6866, 0.6844, 0.6862, 0.5899],
        [0.5326, 0.4702, 0.4840, 0.4552, 0.4577, 0.4444, 0.4503, 0.4562, 0.3145],
      ]),
    },
  },
  {
    name: "zipf1.0_eq",
    alpha: 1.0,
    kind: "eq",
    sha256: "29b4ba7680420ba35fef16b162f1bb6eb099800c117d288c304f2067a68ecf6c",
    sizes: [94, 941, 9413],
    reference: {
      object: ref([
        [0.7161, 0.6124, 0.6372, 0.6081, 0.5956, 1.0000, 0.5937, 0.5915, 0.5334],
        [0.5001, 0.4226, 0.4432, 0.4164, 0.4109, 0.4069, 0.4063, 0.4023, 0.3404],
        [0.2703, 0.2353, 0.2434, 0.2263, 0.2245, 0.2189, 0.2221, 0.2244, 0.1567],
      ]),
    },
  },
  {
    name: "zipf1.2_eq",
    alpha: 1.2,
    kind: "eq",
    sha256: "4e8937dca085c6917a1da3844920d5e9d5ae38d169d44f04812557d1548ab013",
    sizes: [64, 644, 6441],
    reference: {
      object: ref([
        [0.4420, 0.3662, 0.3877, 0.3588, 0.3528, 1.0000, 0.3460, 0.3434, 0.2966],
        [0.2349, 0.1941, 0.2067, 0.1897, 0.1848, 0.1838, 0.1834, 0.1807, 0.1492],
        [0.1032, 0.0894, 0.0928, 0.0859, 0.0841, 0.0827, 0.0837, 0.0841, 0.0609],
      ]),
    },
  },
  {
    name: "zipf0.8_lognorm",
    alpha: 0.8,
    kind: "lognorm",
    sha256: "9931f49eb973c9e5dd8f96d27f6a46802f21ae184c695023de1e90cf6c01881e",
    sizes: [6_101_587, 61_015_878, 610_158_786],
    reference: split([
      ["0.9310/0.9544", "0.8550/0.8831", "0.8599/0.8922", "0.8587/0.8992", "0.8524/0.8847"]
        .concat(["0.7936/0.9302", "0.8199/0.8843", "0.8695/0.8972", "0.7266/0.8302"]),
      ["0.7949/0.8222", "0.7039/0.7321", "0.7242/0.7633", "0.7032/0.7632", "0.6813/0.7092"]
        .concat(["0.6633/0.7683", "0.6816/0.7109", "0.6970/0.7247", "0.4723/0.6198"]),
      ["0.5318/0.5547", "0.4695/0.4909", "0.4845/0.5147", "0.4577/0.5082", "0.4535/0.4722"]
        .concat(["0.4278/0.4734", "0.4498/0.4703", "0.4488/0.4676", "0.2047/0.3295"]),
    ]),
  },
  {
    name: "zipf1.0_lognorm",
    alpha: 1.0,
    kind: "lognorm",
    sha256: "7567943ec49a01db1fef7e0f545c9f5440e016b058bdcbf183a0d6877becf039",
    sizes: [5_761_706, 57_617_063, 576_170_631],
    reference: split([
      ["0.7126/0.7912", "0.6192/0.6916", "0.6302/0.7070", "0.6314/0.7167", "0.6068/0.6849"]
        .concat(["0.5545/0.8329", "0.5727/0.7254", "0.6295/0.7026", "0.4818/0.6249"]),
      ["0.4981/0.5606", "0.4223/0.4785", "0.4436/0.5078", "0.4313/0.5093", "0.3982/0.4494"]
        .concat(["0.3916/0.5813", "0.4031/0.4579", "0.4045/0.4595", "0.2660/0.3891"]),
      ["0.2698/0.3057", "0.2354/0.2680", "0.2441/0.2820", "0.2332/0.2781", "0.2222/0.2536"]
        .concat(["0.2119/0.2543", "0.2218/0.2518", "0.2207/0.2519", "0.1075/0.1779"]),
    ]),
  },
  {
    name: "zipf1.2_lognorm",
    alpha: 1.2,
    kind: "lognorm",
    sha256: "32023d65f25c73e09cd2dd864ad2ea659ca63abc8250cf5a0732a729c567c4e4",
    sizes: [3_906_268, 39_062_685, 390_626_853],
    reference: split([
      ["0.4373/0.5623", "0.3642/0.4696", "0.3800/0.4895", "0.3916/0.5148", "0.3583/0.4674"]
        .concat(["0.4902/0.8863", "0.3113/0.5661", "0.3750/0.4833", "0.2642/0.4153"]),
      ["0.2334/0.3090", "0.1943/0.2590", "0.2069/0.2788", "0.2009/0.2776", "0.1783/0.2359"]
        .concat(["0.1774/0.4556", "0.1809/0.2422", "0.1819/0.2447", "0.1139/0.2010"]),
      ["0.1032/0.1374", "0.0894/0.1195", "0.0935/0.1265", "0.0905/0.1252", "0.0837/0.1122"]
        .concat(["0.0808/0.1130", "0.0840/0.1119", "0.0835/0.1121", "0.0458/0.0815"]),
    ]),
  },
];

const MASK64 = (1n << 64n) - 1n;

/** splitmix64 as the README gives it; `next()` returns a uniform double in [0, 1). */
export function splitmix64(seed: bigint): () => number {
  let state = seed & MASK64;
  return () => {
    state = (state + 0x9E3779B97F4A7C15n) & MASK64;
    let z = state;
    z = ((z ^ (z >> 30n)) * 0xBF58476D1CE4E5B9n) & MASK64;
    z = ((z ^ (z >> 27n)) * 0x94D049BB133111EBn) & MASK64;
    z = z ^ (z >> 31n);
    return Number(z >> 11n) * 2 ** -53;
  };
}

/** Zipf CDF over ids 1..N: summed in k order, divided by the total. */
function zipfCdf(alpha: number): Float64Array {
  const cdf = new Float64Array(OBJECTS);
  let sum = 0;
  for (let k = 1; k <= OBJECTS; k++) {
    sum += Math.pow(k, -alpha);
    cdf[k - 1] = sum;
  }
  for (let i = 0; i < OBJECTS; i++) cdf[i] /= sum;
  return cdf;
}

/** The request stream: object ids (1..N) for alpha, seed 42. */
export function requestIds(alpha: number): Uint32Array {
  const cdf = zipfCdf(alpha);
  const next = splitmix64(REQUEST_SEED);
  const ids = new Uint32Array(REQUESTS);
  for (let i = 0; i < REQUESTS; i++) {
    const u = next();
    // Smallest k with cdf_k > u.
    let lo = 0;
    let hi = OBJECTS - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] > u) hi = mid;
      else lo = mid + 1;
    }
    ids[i] = lo + 1;
  }
  return ids;
}

/**
 * Per-object sizes, index k - 1 for id k: constant for eq, lognormal (seed 43) otherwise.
 * `count` beyond OBJECTS continues the same stream (the moving traces name more objects), so
 * the first OBJECTS sizes are always the reference traces'.
 */
export function objectSizes(kind: Kind, count = OBJECTS): Uint32Array {
  const sizes = new Uint32Array(count);
  if (kind === "eq") return sizes.fill(EQUAL_SIZE);
  const next = splitmix64(SIZE_SEED);
  const mu = Math.log(LOGNORM_MEDIAN);
  for (let k = 0; k < count; k++) {
    const u1 = next();
    const u2 = next();
    const z = Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
    const s = Math.floor(Math.exp(mu + LOGNORM_SIGMA * z) + 0.5);
    sizes[k] = Math.min(MAX_SIZE, Math.max(MIN_SIZE, s));
  }
  return sizes;
}

/**
 * A recency-heavy request stream beyond the reference set: Zipf(alpha) popularity over ranks,
 * where rank r is object r + shift and shift grows by `drift` every 1,000 requests, so hot
 * objects keep being replaced by new ones (a news site, a live event). `drift` 0 is plain
 * Zipf. Not hash-checked: it is ours, for checking that the LFRU stays close to LRU where
 * recency is what matters.
 */
export function movingZipfIds(alpha: number, drift: number, n: number, seed = 7n): Uint32Array {
  const cdf = zipfCdf(alpha);
  const next = splitmix64(seed);
  const ids = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const u = next();
    let lo = 0;
    let hi = OBJECTS - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] > u) hi = mid;
      else lo = mid + 1;
    }
    ids[i] = lo + 1 + Math.floor(i / 1000) * drift;
  }
  return ids;
}

/** The CSV bytes of a trace. */
export function traceCsv(ids: Uint32Array, sizes: Uint32Array | number): Uint8Array {
  const enc = new TextEncoder();
  const chunks: Uint8Array[] = [enc.encode("timestamp,object_id,size\n")];
  let total = chunks[0].length;
  const LINES_PER_CHUNK = 50_000;
  for (let start = 0; start < ids.length; start += LINES_PER_CHUNK) {
    let text = "";
    const end = Math.min(ids.length, start + LINES_PER_CHUNK);
    for (let i = start; i < end; i++) {
      const id = ids[i];
      const size = typeof sizes === "number" ? sizes : sizes[id - 1];
      text += `${Math.floor(i / REQUESTS_PER_TICK)},${id},${size}\n`;
    }
    const bytes = enc.encode(text);
    chunks.push(bytes);
    total += bytes.length;
  }
  return concatBytes(chunks, total);
}

/** Hex SHA-256. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Generates the CSV of a named trace (no I/O). */
export function generateTrace(spec: TraceSpec): Uint8Array {
  return traceCsv(requestIds(spec.alpha), objectSizes(spec.kind));
}

const HELP = `Usage: deno task traces [options]

Generates the six Zipf traces of /work/shared/traces/README.md into traces/ and checks
their SHA-256 (exits 1 on a mismatch). Existing files with the right hash are kept.

Options:
  --out DIR     output directory (default: traces/ at the repository root)
  --moving D    instead, write moving_zipf1.0_dD.csv: 2,000,000 Zipf(1.0) requests whose
                popular objects shift by D ids every 1,000 requests (recency-heavy; ours,
                not in the reference set, no hash to check)
  --sizes KIND  with --moving: eq (4096 bytes each, the default) or lognorm (each object's
                size as in the lognorm traces; written as moving_zipf1.0_dD_lognorm.csv)
  --only NAME   generate only this trace, e.g. zipf1.0_eq (repeatable)
  --force       regenerate even if a file with the right hash exists
  -h, --help    show this help`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      out: { type: "string" },
      only: { type: "string", multiple: true },
      force: { type: "boolean", default: false },
      moving: { type: "string" },
      sizes: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const out = values.out ?? new URL("../traces/", import.meta.url).pathname;
  await Deno.mkdir(out, { recursive: true });
  if (values.moving !== undefined) {
    const drift = Number(values.moving);
    if (!Number.isInteger(drift) || drift < 0 || drift > 100_000) {
      console.error(`--moving must be an integer in [0, 100000]: received ${values.moving}`);
      return 2;
    }
    const kind = values.sizes ?? "eq";
    if (kind !== "eq" && kind !== "lognorm") {
      console.error(`--sizes must be eq or lognorm: received ${kind}`);
      return 2;
    }
    const ids = movingZipfIds(1.0, drift, REQUESTS);
    const suffix = kind === "eq" ? "" : "_lognorm";
    const path = `${out.replace(/\/$/, "")}/moving_zipf1.0_d${drift}${suffix}.csv`;
    let last = 0;
    for (const id of ids) last = Math.max(last, id);
    const sizes = kind === "eq" ? EQUAL_SIZE : objectSizes(kind, last);
    await Deno.writeFile(path, traceCsv(ids, sizes));
    console.log(`wrote ${path}`);
    return 0;
  }
  if (values.sizes !== undefined) {
    console.error("--sizes goes with --moving");
    return 2;
  }
  const only = values.only ?? [];
  for (const name of only) {
    if (!TRACES.some((t) => t.name === name)) {
      console.error(`unknown trace ${name}; known: ${TRACES.map((t) => t.name).join(", ")}`);
      return 2;
    }
  }
  let bad = 0;
  // One request stream per alpha serves both the eq and the lognorm trace.
  const streams = new Map<number, Uint32Array>();
  for (const spec of TRACES) {
    if (only.length > 0 && !only.includes(spec.name)) continue;
    const path = `${out.replace(/\/$/, "")}/${spec.name}.csv`;
    if (!values.force) {
      try {
        if ((await sha256Hex(await Deno.readFile(path))) === spec.sha256) {
          console.log(`${spec.name}: ok (kept)`);
          continue;
        }
      } catch { /* missing: generate it */ }
    }
    let ids = streams.get(spec.alpha);
    if (!ids) streams.set(spec.alpha, ids = requestIds(spec.alpha));
    const csv = traceCsv(ids, objectSizes(spec.kind));
    const hash = await sha256Hex(csv);
    await Deno.writeFile(path + ".tmp", csv);
    await Deno.rename(path + ".tmp", path);
    if (hash === spec.sha256) console.log(`${spec.name}: ok ${hash}`);
    else {
      console.error(`${spec.name}: SHA-256 MISMATCH ${hash}, expected ${spec.sha256}`);
      bad++;
    }
  }
  return bad === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());

/**
 * What range misses cost the origin, with and without `--slice-size`: a replica (`--data`)
 * in front of a test origin holding one large object receives small random ranges of it;
 * the origin's requests and body bytes (`nearcast_http_origin_*` of `/_cdn/metrics`) and the
 * hits are reported for each mode. Counts and bytes, not times: they do not depend on load.
 *
 * ```sh
 * ./deno run -A bench/slice/run.ts [--object-mib 64] [--ranges 20] [--range-bytes 4096]
 *   [--slice-size 1MiB]
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { startOrigin } from "../../tests/_http_origin.ts";
import { startReplica } from "../../tests/_http_replica.ts";

const { values: a } = parseArgs({
  options: {
    "object-mib": { type: "string", default: "64" },
    ranges: { type: "string", default: "20" },
    "range-bytes": { type: "string", default: "4096" },
    "slice-size": { type: "string", default: "1MiB" },
  },
});
const size = Number(a["object-mib"]) * 1024 * 1024;
const count = Number(a.ranges);
const length = Number(a["range-bytes"]);
const body = new Uint8Array(size).map((_, i) => (i * 31 + (i >> 12)) & 0xff);

/** A deterministic sequence of range starts (a linear congruential generator). */
function starts(): number[] {
  let x = 12345;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    out.push(x % (size - length));
  }
  return out;
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  return m === null ? NaN : Number(m[1]);
}

async function run(extra: string[]) {
  const origin = await startOrigin({
    "/big.bin": {
      ranges: true,
      headers: { "cache-control": "max-age=600", etag: '"big"' },
      body,
    },
  });
  const data = await Deno.makeTempDir({ prefix: "bench-slice-" });
  const replica = await startReplica([
    "-o",
    origin.url,
    "--id",
    "benchslice",
    "--data",
    data,
    "--cache-bytes",
    `${2 * size}`,
    ...extra,
  ]);
  let hits = 0;
  try {
    // Each range twice: the second time it may be a hit.
    for (const start of [...starts(), ...starts()]) {
      const res = await fetch(`${replica.url}/big.bin`, {
        headers: { range: `bytes=${start}-${start + length - 1}` },
      });
      const got = new Uint8Array(await res.arrayBuffer());
      if (res.status !== 206 || got.byteLength !== length || got[0] !== body[start]) {
        throw new Error(`bad answer for ${start}: ${res.status}, ${got.byteLength} bytes`);
      }
      if (res.headers.get("x-cache") === "HIT") hits++;
    }
    // Let a whole-object fill finish before reading the counters.
    await new Promise((r) => setTimeout(r, 500));
    const text = await (await fetch(`${replica.url}/_cdn/metrics`)).text();
    return {
      originRequests: metric(text, "nearcast_http_origin_requests_total"),
      originBytes: metric(text, "nearcast_http_origin_bytes_total"),
      hits,
      requests: 2 * count,
    };
  } finally {
    await replica.close();
    await origin.close();
    await Deno.remove(data, { recursive: true });
  }
}

const whole = await run([]);
const sliced = await run(["--slice-size", a["slice-size"]!]);
console.log(JSON.stringify(
  {
    objectBytes: size,
    ranges: count,
    rangeBytes: length,
    sliceSize: a["slice-size"],
    whole,
    sliced,
  },
  null,
  2,
));

/**
 * What pinning `--ca` costs a node's HTTPS client: a body downloaded and one uploaded (streamed)
 * over loopback TLS, with Deno's `fetch` and `caCerts` (which adds the CA to the public roots)
 * and with `peerFetch` after `trustCa` (`node:https`, the CA alone: lib/tls/_node_fetch.ts), in
 * interleaved rounds; the median time of each. The server is `Deno.serve` in this process,
 * with a certificate from lib/tls/certs.ts.
 *
 * Usage: deno run -A bench/listener/tls_client.ts [--size 100MiB] [--rounds 3]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseSize } from "../../lib/http/units.ts";
import { makeCa, makeCert } from "../../lib/tls/certs.ts";
import { peerFetch, trustCa } from "../../lib/tls/client.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "100MiB" },
    rounds: { type: "string", default: "3" },
  },
});
const size = parseSize(values.size!);
const rounds = Number(values.rounds);
const CHUNK = 256 * 1024;

const dir = await Deno.makeTempDir({ prefix: "bench_tls_client_" });
try {
  await makeCa(dir);
  await makeCert(dir, { name: "n", addresses: ["127.0.0.1"] });
  const ca = await Deno.readTextFile(`${dir}/ca.pem`);
  const chunk = new Uint8Array(CHUNK).fill(0x61);
  const body = () =>
    ReadableStream.from((function* () {
      for (let left = size; left > 0; left -= CHUNK) {
        yield left >= CHUNK ? chunk : chunk.subarray(0, left);
      }
    })());
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: await Deno.readTextFile(`${dir}/n.pem`),
    key: await Deno.readTextFile(`${dir}/n-key.pem`),
    onListen() {},
  }, async (req) => {
    if (req.method !== "POST") {
      return new Response(body(), { headers: { "content-length": String(size) } });
    }
    let n = 0;
    for await (const c of req.body!) n += c.length;
    return new Response(String(n));
  });
  const url = `https://127.0.0.1:${server.addr.port}/`;
  trustCa(ca);
  const client = Deno.createHttpClient({ caCerts: [ca] });
  const clients: Record<string, (u: string, init?: RequestInit) => Promise<Response>> = {
    "fetch + caCerts": (u, init = {}) => fetch(u, { ...init, client } as RequestInit),
    "peerFetch (node:tls, --ca only)": (u, init = {}) => peerFetch(u, init),
  };
  const times = new Map<string, number[]>();
  const record = (k: string, ms: number) => times.set(k, [...times.get(k) ?? [], ms]);
  for (let r = 0; r < rounds; r++) {
    for (const [name, f] of Object.entries(clients)) {
      let t = performance.now();
      let n = 0;
      for await (const c of (await f(url)).body!) n += c.length;
      if (n !== size) throw new Error(`${name}: downloaded ${n} of ${size} bytes`);
      record(`${name} GET`, performance.now() - t);
      t = performance.now();
      const res = await f(url, { method: "POST", body: body(), duplex: "half" } as RequestInit);
      const got = Number(await res.text());
      if (got !== size) throw new Error(`${name}: uploaded ${got} of ${size} bytes`);
      record(`${name} POST`, performance.now() - t);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`tls_client: ${values.size} over loopback TLS, ${rounds} interleaved rounds`);
  for (const [k, xs] of times) {
    const ms = median(xs);
    console.log(
      `${k.padEnd(38)} median ${ms.toFixed(0).padStart(6)} ms  ${
        (size / 1048576 / (ms / 1000)).toFixed(0).padStart(5)
      } MiB/s  (${xs.map((x) => x.toFixed(0)).join(", ")})`,
    );
  }
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  console.log(`load average at the end: ${load}`);
  client.close();
  await server.shutdown();
} finally {
  await Deno.remove(dir, { recursive: true });
}
Deno.exit(0);

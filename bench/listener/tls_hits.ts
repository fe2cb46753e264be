/**
 * What `--tls` costs on cache hits: two replicas (`main_http.ts`, one plain, one `--tls` with a
 * certificate from lib/tls/certs.ts) each holding one uploaded file, asked for it by
 * `CONCURRENCY` keep-alive clients (`fetch`, one connection each) in interleaved rounds; median
 * requests per second of each, and a first request on a fresh connection (handshake included).
 *
 * Usage: deno run -A bench/listener/tls_hits.ts [--size 1KiB] [--rounds 5] [--requests 2000]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseSize } from "../../lib/http/units.ts";
import { makeCa, makeCert } from "../../lib/tls/certs.ts";
import { uploadFile } from "../../lib/upload/client.ts";
import { trustCa } from "../../lib/tls/client.ts";
import { type ReplicaProc, startReplica } from "../../tests/_http_replica.ts";

const TOKEN = "bench-token";
const CONCURRENCY = 8;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "1KiB" },
    rounds: { type: "string", default: "5" },
    requests: { type: "string", default: "2000" },
  },
});
const size = parseSize(values.size!);
const rounds = Number(values.rounds);
const requests = Number(values.requests);

/** A replica on `dir` (origin unused), with `--tls` when `tlsDir` holds its certificate. */
function node(dir: string, tlsDir: string | null): Promise<ReplicaProc> {
  const args = ["-o", "http://127.0.0.1:9", "--data", dir, "--admin-token", TOKEN];
  if (tlsDir !== null) {
    args.push("--tls", "--cert", `${tlsDir}/n.pem`, "--key", `${tlsDir}/n-key.pem`);
    args.push("--ca", `${tlsDir}/ca.pem`);
  }
  return startReplica(args);
}

/** Requests per second for `requests` GETs of `url` by CONCURRENCY clients of their own. */
async function rate(url: string, client: () => Deno.HttpClient): Promise<number> {
  const clients = Array.from({ length: CONCURRENCY }, client);
  const t0 = performance.now();
  await Promise.all(clients.map(async (c) => {
    for (let i = 0; i < requests / CONCURRENCY; i++) {
      const res = await fetch(url, { client: c } as RequestInit);
      await res.arrayBuffer();
    }
  }));
  const s = (performance.now() - t0) / 1000;
  for (const c of clients) c.close();
  return requests / s;
}

/** Median ms of one GET on a new connection (TCP, TLS handshake when https, request). */
async function firstRequestMs(url: string, client: () => Deno.HttpClient): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < 50; i++) {
    const c = client();
    const t0 = performance.now();
    await (await fetch(url, { client: c } as RequestInit)).arrayBuffer();
    xs.push(performance.now() - t0);
    c.close();
  }
  return median(xs);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

const dir = await Deno.makeTempDir({ prefix: "nearcast-bench-tls-hits-" });
const nodes: ReplicaProc[] = [];
try {
  await makeCa(`${dir}/certs`);
  await makeCert(`${dir}/certs`, { name: "n", addresses: ["127.0.0.1"] });
  const ca = await Deno.readTextFile(`${dir}/certs/ca.pem`);
  trustCa(ca);
  const plain = await node(`${dir}/plain`, null);
  nodes.push(plain);
  const tls = await node(`${dir}/tls`, `${dir}/certs`);
  nodes.push(tls);
  await Deno.writeFile(
    `${dir}/f.bin`,
    crypto.getRandomValues(new Uint8Array(Math.min(size, 65536))).slice(0, size),
  );
  for (const n of [plain, tls]) {
    await uploadFile({ file: `${dir}/f.bin`, to: n.url, token: TOKEN, name: "f.bin" });
  }
  const clientFor = (https: boolean) => () => Deno.createHttpClient(https ? { caCerts: [ca] } : {});
  await rate(`${plain.url}/f.bin`, clientFor(false)); // warm-up
  await rate(`${tls.url}/f.bin`, clientFor(true));
  const p: number[] = [], t: number[] = [];
  for (let r = 0; r < rounds; r++) {
    p.push(await rate(`${plain.url}/f.bin`, clientFor(false)));
    t.push(await rate(`${tls.url}/f.bin`, clientFor(true)));
  }
  const fp = await firstRequestMs(`${plain.url}/f.bin`, clientFor(false));
  const ft = await firstRequestMs(`${tls.url}/f.bin`, clientFor(true));
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  console.log(
    [
      `| ${size} B hits, ${CONCURRENCY} keep-alive clients | plain | TLS | TLS / plain |`,
      "| --- | ---: | ---: | ---: |",
      `| requests/s (median of ${rounds} rounds of ${requests}) | ${median(p).toFixed(0)} | ` +
      `${median(t).toFixed(0)} | ${(median(t) / median(p)).toFixed(2)} |`,
      `| first request on a new connection (median of 50) | ${fp.toFixed(2)} ms | ` +
      `${ft.toFixed(2)} ms | ${(ft / fp).toFixed(2)} |`,
      "",
      `rounds: plain ${p.map((x) => x.toFixed(0)).join(" ")}; TLS ${
        t.map((x) => x.toFixed(0)).join(" ")
      }; load average ${load}`,
    ].join("\n"),
  );
} finally {
  for (const n of nodes) await n.close();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/**
 * Cooperative caching against independent replicas: three replicas (`main_http.ts`
 * subprocesses on loopback, same `--cache-bytes` each), each receiving its own client
 * population: the Zipf trace `zipf{alpha}_eq` of ../shared/traces (regenerated bit for bit by
 * scripts/gen_traces.ts; its first `--requests` requests) split by client, request i going to
 * replica i mod 3, so the three share one popularity but see different requests. Each
 * population replays its share in trace order (`--workers` requests in flight per replica).
 * Three setups on fresh replicas:
 *
 * - `independent`: no membership (no `--data`): each replica asks only the origin;
 * - `peering`: one membership (`--data`, `--join`), today's default: a miss asks up to 3
 *   members chosen by URL hash, then the origin;
 * - `coop`: the same with `--coop`: a miss asks the members whose summary claims the URL,
 *   and each replica prefetches the group's hottest objects within its budgets.
 *
 * Also printed: the distinct objects of the replayed requests, a floor no setup can go
 * under (each must come from the origin once).
 *
 * Reported: origin requests (what the origin served, prefetches included), group hit ratio
 * (1 - origin requests / client requests), per-replica hit ratio (`X-Cache: HIT`, from its
 * own cache), peer-filled misses, the requests the replicas received from each other (peer
 * asks, heartbeats, summary fetches), and for `coop` the prefetches, bytes prefetched, bytes
 * wasted (prefetched objects evicted or purged before any hit) and bytes not hit yet at the end.
 *
 * `deno task bench:coop [--requests 24000] [--alpha 1.0] [--cache-bytes 4MiB] [--workers 4]
 * [--heartbeat 1s] [--setups independent,peering,coop]`; JSON to bench/.out/coop.json.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { EQUAL_SIZE, requestIds } from "../../scripts/gen_traces.ts";
import { startReplica } from "../../tests/_http_replica.ts";
import { startNode, stopAll, type TestNode } from "../../tests/_upload_cluster.ts";
import { MODES, replay, shared } from "./_sim.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    requests: { type: "string" },
    offset: { type: "string" },
    alpha: { type: "string" },
    "cache-bytes": { type: "string" },
    workers: { type: "string" },
    heartbeat: { type: "string" },
    setups: { type: "string" },
    "coop-args": { type: "string" },
  },
});
const REQUESTS = Number(values.requests ?? 24_000);
const OFFSET = Number(values.offset ?? 0);
const ALPHA = Number(values.alpha ?? 1.0);
const CACHE = values["cache-bytes"] ?? "4MiB";
const WORKERS = Number(values.workers ?? 4);
const HEARTBEAT = values.heartbeat ?? "1s";
const SETUPS = (values.setups ?? "independent,peering,coop").split(",");
const COOP_ARGS = (values["coop-args"] ?? "").split(" ").filter((a) => a !== "");
const REPLICAS = 3;

const ids = requestIds(ALPHA).subarray(OFFSET, OFFSET + REQUESTS);
const body = new Uint8Array(EQUAL_SIZE).fill(120);
let originRequests = 0;
const origin = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, () => {
  originRequests++;
  return new Response(body, { headers: { "cache-control": "max-age=3600" } });
});
const originUrl = `http://127.0.0.1:${origin.addr.port}`;

interface Row {
  setup: string;
  requests: number;
  originRequests: number;
  groupHitRatio: number;
  replicaHitRatio: number[];
  peerFilled: number;
  /**
   * Requests the replicas received from each other: peer asks, and with a membership also
   * heartbeats and summary fetches (the replica's request counter counts them all).
   */
  peerRequests: number;
  seconds: number;
  /** Objects each replica's cache held at the end. */
  entries: number[];
  coop?: Record<string, unknown>[];
}

type Node = { url: string; close: () => Promise<void> };

async function start(setup: string, dir: string): Promise<Node[]> {
  const common = ["-o", originUrl, "--cache-bytes", CACHE];
  if (setup === "independent") {
    const out: Node[] = [];
    for (let i = 0; i < REPLICAS; i++) {
      const p = await startReplica([...common, "--id", `r${i}`]);
      out.push({ url: p.url, close: () => p.close() });
    }
    return out;
  }
  const extra = [
    ...common,
    "--heartbeat",
    HEARTBEAT,
    ...(setup === "coop" ? ["--coop", ...COOP_ARGS] : []),
  ];
  const nodes: TestNode[] = [await startNode("r0", `${dir}/r0`, extra)];
  for (let i = 1; i < REPLICAS; i++) {
    nodes.push(await startNode(`r${i}`, `${dir}/r${i}`, [...extra, "--join", nodes[0].url]));
  }
  // Every node lists the others as alive before the replay.
  for (const since = Date.now(); Date.now() - since < 30_000;) {
    const views = await Promise.all(
      nodes.map(async (n) => await (await fetch(`${n.url}/_cdn/servers`)).json()),
    );
    if (views.every((v: { alive: boolean }[]) => v.filter((e) => e.alive).length === REPLICAS)) {
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return nodes.map((n) => ({ url: n.url, close: () => stopAll([n]) }));
}

async function run(setup: string): Promise<Row> {
  const dir = await Deno.makeTempDir({ prefix: "nearcast-coop-bench-" });
  const nodes = await start(setup, dir);
  try {
    originRequests = 0;
    const hits = new Array(REPLICAS).fill(0);
    const sent = new Array(REPLICAS).fill(0);
    let peerFilled = 0;
    const t0 = performance.now();
    await Promise.all(nodes.map(async (n, r) => {
      let next = r;
      const worker = async () => {
        while (next < ids.length) {
          const i = next;
          next += REPLICAS;
          const res = await fetch(`${n.url}/o/${ids[i]}`);
          await res.arrayBuffer();
          sent[r]++;
          if (res.headers.get("x-cache") === "HIT") hits[r]++;
          else if (/nearcast-r\d, .*nearcast-r/.test(res.headers.get("via") ?? "")) peerFilled++;
        }
      };
      await Promise.all(Array.from({ length: WORKERS }, worker));
    }));
    const seconds = (performance.now() - t0) / 1000;
    // Every request a replica received: the clients', the peer asks, the prefetches (and this
    // metrics request itself).
    let received = 0;
    const entries: number[] = [];
    for (const n of nodes) {
      const text = await (await fetch(`${n.url}/_cdn/metrics`)).text();
      received += Number(/^nearcast_http_requests_total (\d+)/m.exec(text)![1]) - 1;
      entries.push(Number(/^nearcast_http_cache_entries (\d+)/m.exec(text)![1]));
    }
    const row: Row = {
      setup,
      requests: ids.length,
      originRequests,
      groupHitRatio: 1 - originRequests / ids.length,
      replicaHitRatio: hits.map((h, r) => h / sent[r]),
      peerFilled,
      peerRequests: received - ids.length,
      seconds,
      entries,
    };
    if (setup === "coop") {
      row.coop = await Promise.all(
        nodes.map(async (n) => (await (await fetch(`${n.url}/_cdn/health`)).json()).coop),
      );
      for (const c of row.coop as { prefetches: number; prefetchFailures: number }[]) {
        row.peerRequests -= c.prefetches + c.prefetchFailures;
      }
    }
    return row;
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
    await Deno.remove(dir, { recursive: true });
  }
}

const rows: Row[] = [];
try {
  for (const s of SETUPS) rows.push(await run(s));
} finally {
  await origin.shutdown();
}
const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
const base = rows.find((r) => r.setup === "independent");
console.log(
  `zipf${ALPHA.toFixed(1)}_eq, requests ${OFFSET} to ${OFFSET + ids.length} split over ` +
    `${REPLICAS} replicas (request i to replica i mod ${REPLICAS}), --cache-bytes ${CACHE} each, ` +
    `${WORKERS} in flight per replica, heartbeat ${HEARTBEAT}`,
);
console.log(
  "| setup | origin requests | vs independent | group hit ratio | per-replica hit ratio | " +
    "filled from a member | node-to-node requests | prefetched objects (hit / bytes wasted) | " +
    "copies held (removed for the budget) | time |",
);
console.log("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |");
for (const r of rows) {
  const vs = base === undefined ? "" : pct(r.originRequests / base.originRequests - 1);
  const c = r.coop as Record<string, number>[] | undefined;
  const sum = (k: string) => c?.reduce((a, x) => a + x[k], 0) ?? 0;
  console.log(
    `| ${r.setup} | ${r.originRequests} | ${vs} | ${pct(r.groupHitRatio)} | ` +
      `${r.replicaHitRatio.map(pct).join(", ")} | ${r.peerFilled} | ${r.peerRequests} | ` +
      (c === undefined ? "– | – | " : `${sum("prefetches")} (${sum("prefetchesUsed")} / ` +
        `${sum("prefetchWastedBytes")}) | ${sum("copies")} (${sum("copiesRemoved")}) | `) +
      `${r.seconds.toFixed(1)} s |`,
  );
}
// The same split simulated with caches of the objects the replicas held (LFRU, the replica's
// policy): what cooperation could reach, and the floor (each distinct object fetched once).
const held = rows.flatMap((r) => r.entries);
const cap = Math.round(held.reduce((a, x) => a + x, 0) / Math.max(1, held.length));
const sim = MODES.map((m) => replay(ids, "lfru", cap, m));
const simBase = sim[0].origin;
const vsSim = (n: number) => pct(n / simBase - 1);
console.log(
  `\nsimulated (bench/coop/bound.ts), LFRU caches of ${cap} objects (what the replicas held ` +
    "on average): origin requests (vs independent); node-to-node requests",
);
console.log(`| ${MODES.join(" | ")} | one shared cache of 3C | floor (distinct objects) |`);
console.log(`|${" ---: |".repeat(MODES.length + 2)}`);
const distinct = new Set(ids).size;
const one = shared(ids, "lfru", cap);
console.log(
  `| ${
    sim.map((x, i) => i === 0 ? `${x.origin}` : `${x.origin} (${vsSim(x.origin)}); ${x.n2n}`)
      .join(" | ")
  } | ${one} (${vsSim(one)}) | ${distinct} (${vsSim(distinct)}) |`,
);
await Deno.mkdir("bench/.out", { recursive: true });
await Deno.writeTextFile(
  "bench/.out/coop.json",
  JSON.stringify({ rows, simulated: { cap, sim, shared: one, distinct } }, null, 2),
);

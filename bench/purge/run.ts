/**
 * Purge propagation: three replicas (`main_http.ts` subprocesses on loopback, each with its
 * own `--data`, `--admin-token`, `b` and `c` joining through `a`, the default 1 s heartbeat:
 * the demo fleet's setup without its DNS server) each hold `--objects` objects tagged with
 * surrogate keys by an in-process origin. Each run purges one key (hard, then soft, on the
 * replicas in turn) and measures:
 *
 * - `answer`: the `POST /_cdn/purge` round trip (the answer waits for every member);
 * - `visible`: from sending the purge until every replica no longer serves any object of the
 *   key from its cache (each replica polled with peer requests, which answer 504 for a purged
 *   or soft-purged entry), polled every 2 ms.
 *
 * `deno run -A bench/purge/run.ts [--runs 20] [--objects 2000]`; JSON to bench/.out/purge.json.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { startNode, stopAll, type TestNode, TOKEN } from "../../tests/_upload_cluster.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { runs: { type: "string" }, objects: { type: "string" } },
});
const RUNS = Number(values.runs ?? 20);
const OBJECTS = Number(values.objects ?? 2000);
/** Objects per surrogate key. */
const PER_KEY = 10;
const POLL_MS = 2;

const origin = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
  const i = Number(new URL(req.url).pathname.slice(3));
  return new Response(`object ${i}`, {
    headers: { "cache-control": "max-age=3600", "surrogate-key": `k${Math.floor(i / PER_KEY)}` },
  });
});
const originUrl = `http://127.0.0.1:${origin.addr.port}`;
const dir = await Deno.makeTempDir({ prefix: "nearcast-purge-bench-" });
const nodes: TestNode[] = [];

async function peerHolds(n: TestNode, path: string): Promise<boolean> {
  const res = await fetch(n.url + path, { headers: { "x-nearcast-peer": "1" } });
  await res.body?.cancel();
  return res.status === 200;
}

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  return {
    median: s[Math.floor(s.length / 2)],
    p90: s[Math.floor(s.length * 0.9)],
    max: s[s.length - 1],
  };
}

try {
  const common = ["-o", originUrl, "--heartbeat", "1s"];
  const a = await startNode("a", `${dir}/a`, common);
  nodes.push(a);
  for (const id of ["b", "c"]) {
    nodes.push(await startNode(id, `${dir}/${id}`, [...common, "--join", a.url]));
  }
  // Every node lists the two others as alive.
  const since = Date.now();
  while (Date.now() - since < 30_000) {
    const views = await Promise.all(
      nodes.map(async (n) => await (await fetch(`${n.url}/_cdn/servers`)).json()),
    );
    if (views.every((v: { alive: boolean }[]) => v.filter((e) => e.alive).length === 3)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  // Each replica fills every object itself (peer requests skip the member peering).
  for (const n of nodes) {
    for (let i = 0; i < OBJECTS; i += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, OBJECTS - i) }, async (_, j) => {
          const res = await fetch(`${n.url}/o/${i + j}`);
          await res.body?.cancel();
        }),
      );
    }
  }
  const rows: Record<string, { answer: number[]; visible: number[] }> = {
    hard: { answer: [], visible: [] },
    soft: { answer: [], visible: [] },
  };
  const keys = Math.floor(OBJECTS / PER_KEY);
  for (let r = 0; r < RUNS; r++) {
    for (const mode of ["hard", "soft"] as const) {
      const key = (2 * r + (mode === "soft" ? 1 : 0)) % keys;
      const paths = Array.from({ length: PER_KEY }, (_, j) => `/o/${key * PER_KEY + j}`);
      for (const n of nodes) {
        if (!(await peerHolds(n, paths[0]))) throw new Error(`${n.id} does not hold ${paths[0]}`);
      }
      const via = nodes[r % nodes.length];
      const t0 = performance.now();
      const answered = fetch(`${via.url}/_cdn/purge`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ key: `k${key}`, soft: mode === "soft" }),
      }).then(async (res) => {
        const body = await res.json();
        if (body.purged !== 3 * PER_KEY) throw new Error(`purged ${JSON.stringify(body)}`);
        return performance.now() - t0;
      });
      await Promise.all(nodes.map(async (n) => {
        for (const p of paths) {
          while (await peerHolds(n, p)) await new Promise((r) => setTimeout(r, POLL_MS));
        }
      }));
      rows[mode].visible.push(performance.now() - t0);
      rows[mode].answer.push(await answered);
    }
  }
  const out = Object.entries(rows).map(([mode, r]) => ({
    mode,
    answerMs: stats(r.answer),
    visibleMs: stats(r.visible),
  }));
  console.log(
    `purge of one key (${PER_KEY} objects) on 3 replicas, ${OBJECTS} objects each, ${RUNS} runs`,
  );
  console.log(
    "| purge | answer median / p90 / max (ms) | visible everywhere median / p90 / max (ms) |",
  );
  console.log("| --- | --- | --- |");
  const f = (s: { median: number; p90: number; max: number }) =>
    `${s.median.toFixed(1)} / ${s.p90.toFixed(1)} / ${s.max.toFixed(1)}`;
  for (const o of out) console.log(`| ${o.mode} | ${f(o.answerMs)} | ${f(o.visibleMs)} |`);
  await Deno.mkdir("bench/.out", { recursive: true });
  await Deno.writeTextFile("bench/.out/purge.json", JSON.stringify(out, null, 2));
} finally {
  await stopAll(nodes);
  await origin.shutdown();
  await Deno.remove(dir, { recursive: true });
}

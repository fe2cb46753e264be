/**
 * Readiness means caught up: a node joining through one that holds 8 files of 8 MiB answers
 * 200 on `/_cdn/health` only once it holds every one of them (verified), and its health says
 * how the catch-up ended. The health is polled often so a premature 200 cannot slip by.
 */
import { deepEqual, equal } from "node:assert/strict";
import { startReplica } from "./_http_replica.ts";
import {
  bytesOf,
  get,
  sha256,
  startJoined,
  startNode,
  TEST_HEARTBEAT,
  type TestNode,
  tfetch,
  TOKEN,
  uploadAs,
  withNodes,
} from "./_upload_cluster.ts";

const FILES = 8;
const FILE_BYTES = 8 * 1024 * 1024;
/** Longest the joining node may take to turn healthy. */
const READY_TIMEOUT_MS = 60_000;

Deno.test("replication: a joining node is healthy only once it holds every file of its peers", async () => {
  await withNodes(async (dir, nodes) => {
    const a = await startNode("a", `${dir}/a`);
    nodes.push(a);
    const sums = new Map<string, string>();
    for (let i = 0; i < FILES; i++) {
      const name = `big/f${i}.bin`;
      const bytes = bytesOf(FILE_BYTES, i + 7);
      sums.set(name, await sha256(bytes));
      await uploadAs(dir, a, name, bytes);
    }
    const proc = await startReplica([
      "-o",
      "http://127.0.0.1:9",
      "--data",
      `${dir}/d`,
      "--admin-token",
      TOKEN,
      "--id",
      "d",
      "--heartbeat",
      TEST_HEARTBEAT,
      "--join",
      a.url,
    ]);
    nodes.push({ id: "d", dir: `${dir}/d`, proc, url: proc.url });
    // Poll every 10 ms: the first 200 must already mean every file is there.
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let health: Record<string, unknown> | null = null;
    while (Date.now() < deadline) {
      const res = await tfetch(`${proc.url}/_cdn/health`);
      const body = await res.json();
      if (res.status === 200) {
        health = body;
        break;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    if (health === null) throw new Error(`d not healthy after ${READY_TIMEOUT_MS} ms`);
    equal(health.files, FILES, `health at first 200: ${JSON.stringify(health)}`);
    const listed = await (await tfetch(`${proc.url}/_cdn/files`)).json() as { name: string }[];
    equal(listed.length, FILES);
    const catchUp = health.catchUp as { state: string; missing: number; unreachable: string[] };
    equal(catchUp.state, "done");
    equal(catchUp.missing, 0);
    deepEqual(catchUp.unreachable, []);
    for (const [name, sum] of sums) {
      const got = await get(`${proc.url}/${name}`);
      equal(got.status, 200, name);
      equal(await sha256(got.body), sum, name);
    }
  });
});

Deno.test("replication: a node whose peers are down turns ready and names them unreachable", async () => {
  await withNodes<TestNode | null>(async (dir, nodes) => {
    const [a, first] = await startJoined(dir, nodes, ["a", "b"]);
    let b = first;
    await b.proc.close();
    nodes[1] = null;
    await a.proc.close();
    nodes[0] = null;
    b = await startNode("b", `${dir}/b`);
    nodes[1] = b;
    const health = await (await tfetch(`${b.url}/_cdn/health`)).json();
    const catchUp = health.catchUp as { state: string; unreachable: string[] };
    equal(catchUp.state, "done");
    deepEqual(catchUp.unreachable, [a.url]);
  });
});

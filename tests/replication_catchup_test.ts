/**
 * End-to-end catching up: a new, empty node joining through one known node holds every file
 * by the time it reports healthy, and every node learns of it; a file deleted (and another
 * replaced) while a node was down stays deleted (and replaced) after that node returns.
 */
import { equal, ok } from "node:assert/strict";
import {
  bytesOf,
  converged,
  get,
  manifestOf,
  runUpload,
  sha256,
  startJoined,
  startNode,
  type TestNode,
  tfetch,
  TOKEN,
  uploadAs,
  waitUntil,
  withNodes,
} from "./_upload_cluster.ts";

const CONVERGE_MS = 15_000;

/** Uploads in 32 KiB chunks. */
function upload(dir: string, node: TestNode, name: string, bytes: Uint8Array) {
  return uploadAs(dir, node, name, bytes, ["--chunk-bytes", "32768"]);
}

Deno.test("replication: a new empty node joins through one node and ends with every file", async () => {
  await withNodes(async (dir, nodes) => {
    const [a, b] = await startJoined(dir, nodes, ["a", "b"]);
    const files = new Map<string, Uint8Array>();
    for (let i = 0; i < 6; i++) files.set(`set/f${i}.bin`, bytesOf(10_000 + i * 50_000, i + 1));
    let i = 0;
    for (const [name, bytes] of files) await upload(dir, i++ % 2 === 0 ? a : b, name, bytes);
    await waitUntil(() => converged([a, b]), CONVERGE_MS, "a and b to agree");

    // d knows only b. Healthy means caught up: every file is there at once.
    const d = await startNode("d", `${dir}/d`, ["--join", b.url]);
    nodes.push(d);
    for (const [name, bytes] of files) {
      const got = await get(`${d.url}/${name}`);
      equal(got.status, 200, name);
      equal(await sha256(got.body), await sha256(bytes), name);
    }
    // a learns of d through b's heartbeats, and d's manifest equals the others'.
    await waitUntil(
      async () => {
        const list = await (await tfetch(`${a.url}/_cdn/servers`)).json();
        return list.some((s: { id: string; alive: boolean }) => s.id === "d" && s.alive);
      },
      CONVERGE_MS,
      "a to know d",
    );
    await waitUntil(() => converged(nodes), CONVERGE_MS, "equal manifests");
    // An upload to a now reaches d directly.
    await upload(dir, a, "late.txt", new TextEncoder().encode("late"));
    await waitUntil(
      async () => (await get(`${d.url}/late.txt`)).status === 200,
      CONVERGE_MS,
      "d late.txt",
    );
  });
});

Deno.test("replication: a file deleted while a node was down stays deleted when it returns", async () => {
  await withNodes<TestNode | null>(async (dir, nodes) => {
    const [a, b, first] = await startJoined(dir, nodes, ["a", "b", "c"]);
    let c = first;
    await upload(dir, a, "gone.txt", new TextEncoder().encode("to be deleted"));
    await upload(dir, a, "kept.txt", new TextEncoder().encode("version 1"));
    await waitUntil(() => converged([a, b, c]), CONVERGE_MS, "three nodes to agree");
    equal((await get(`${c.url}/gone.txt`)).status, 200);

    await c.proc.close();
    nodes[2] = null;
    const r = await runUpload(["--delete", "gone.txt", "--to", b.url, "--token", TOKEN]);
    equal(r.code, 0, r.err);
    await upload(dir, a, "kept.txt", new TextEncoder().encode("version 2"));
    await waitUntil(() => converged([a, b]), CONVERGE_MS, "a and b to agree");

    // c comes back on another port with its old data: healthy means caught up.
    c = await startNode("c", `${dir}/c`, ["--join", a.url]);
    nodes[2] = c;
    const gone = await tfetch(`${c.url}/gone.txt`);
    await gone.body?.cancel();
    ok(gone.status !== 200, `gone.txt must not be served: ${gone.status}`);
    equal(new TextDecoder().decode((await get(`${c.url}/kept.txt`)).body), "version 2");
    // Several heartbeats later it is still deleted everywhere (c did not bring it back).
    await waitUntil(() => converged([a, b, c]), CONVERGE_MS, "three nodes to agree again");
    await new Promise((r) => setTimeout(r, 1000));
    for (const n of [a, b, c]) {
      equal((await manifestOf(n.url)).get("gone.txt"), "-", n.id);
      const res = await tfetch(`${n.url}/gone.txt`);
      await res.body?.cancel();
      ok(res.status !== 200, `${n.id} serves gone.txt`);
    }
  });
});

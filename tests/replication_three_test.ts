/**
 * End-to-end, three nodes on loopback: an upload to one is served with identical bytes by all
 * three; the server list (`--servers FILE`, `GET/POST/DELETE /_cdn/servers`) spreads through
 * heartbeats; a delete reaches every node.
 */
import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import {
  bytesOf,
  converged,
  get,
  knowEachOther,
  manifestOf,
  runUpload,
  sha256,
  startNode,
  tfetch,
  TOKEN,
  waitUntil,
  withNodes,
} from "./_upload_cluster.ts";

/** Bound on replication to every node in these tests (heartbeat 200 ms). */
const CONVERGE_MS = 15_000;

async function serversOf(url: string): Promise<{ id: string; url: string; alive: boolean }[]> {
  return await (await tfetch(`${url}/_cdn/servers`)).json();
}

Deno.test("replication: upload to one node, all three serve identical bytes", async () => {
  await withNodes(async (dir, nodes) => {
    nodes.push(await startNode("a", `${dir}/a`));
    await Deno.writeTextFile(`${dir}/servers-b.json`, JSON.stringify([nodes[0].url]));
    nodes.push(await startNode("b", `${dir}/b`, ["--servers", `${dir}/servers-b.json`]));
    await Deno.writeTextFile(
      `${dir}/servers-c.json`,
      JSON.stringify([nodes[0].url, { url: nodes[1].url }]),
    );
    nodes.push(await startNode("c", `${dir}/c`, ["--servers", `${dir}/servers-c.json`]));
    const [a, b, c] = nodes;

    // Every node learns every other (a was given nobody).
    await knowEachOther(nodes, CONVERGE_MS);
    deepStrictEqual((await serversOf(a.url)).map((s) => s.id).sort(), ["a", "b", "c"]);

    // A 3 MiB file in 64 KiB chunks, and a small one.
    const big = bytesOf(3 * 1024 * 1024 + 123, 11);
    await Deno.writeFile(`${dir}/big.bin`, big);
    await Deno.writeTextFile(`${dir}/small.txt`, "hello, nearcast\n");
    let r = await runUpload([
      `${dir}/big.bin`,
      "--to",
      b.url,
      "--token",
      TOKEN,
      "--name",
      "media/big.bin",
      "--chunk-bytes",
      "65536",
    ]);
    equal(r.code, 0, r.err);
    r = await runUpload([`${dir}/small.txt`, "--to", b.url, "--token", TOKEN]);
    equal(r.code, 0, r.err);
    const want = await sha256(big);
    for (const n of nodes) {
      await waitUntil(
        async () => {
          const got = await get(`${n.url}/media/big.bin`);
          return got.status === 200 && await sha256(got.body) === want;
        },
        CONVERGE_MS,
        `${n.id} to serve media/big.bin`,
      );
      const small = await get(`${n.url}/small.txt`);
      await waitUntil(
        async () => (await get(`${n.url}/small.txt`)).status === 200,
        CONVERGE_MS,
        "small",
      );
      equal(small.headers.get("content-type"), "text/plain; charset=utf-8");
    }
    for (const n of nodes) {
      const res = await get(`${n.url}/small.txt`);
      equal(new TextDecoder().decode(res.body), "hello, nearcast\n");
      equal(res.headers.get("x-cache"), "HIT", "uploads are in the cache, pinned");
    }
    await waitUntil(() => converged(nodes), CONVERGE_MS, "equal manifests");

    // Delete through c: every node stops serving it, manifests agree on the tombstone.
    r = await runUpload(["--delete", "small.txt", "--to", c.url, "--token", TOKEN]);
    equal(r.code, 0, r.err);
    for (const n of nodes) {
      await waitUntil(
        async () => (await manifestOf(n.url)).get("small.txt") === "-",
        CONVERGE_MS,
        `${n.id} to drop small.txt`,
      );
      const res = await tfetch(`${n.url}/small.txt`);
      await res.body?.cancel();
      equal(res.status, 502, "served by nobody but the (absent) origin");
    }
  });
});

Deno.test("replication: server list API (auth, add, remove) spreads by heartbeat", async () => {
  await withNodes(async (dir, nodes) => {
    for (const id of ["a", "b", "c"]) nodes.push(await startNode(id, `${dir}/${id}`));
    const [a, b, c] = nodes;
    equal((await serversOf(a.url)).length, 1, "a knows only itself");

    const noAuth = await tfetch(`${a.url}/_cdn/servers`, {
      method: "POST",
      body: JSON.stringify({ url: b.url }),
    });
    equal(noAuth.status, 401);
    await noAuth.body?.cancel();
    const auth = { authorization: `Bearer ${TOKEN}` };
    const bad = await tfetch(`${a.url}/_cdn/servers`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ url: "ftp://x" }),
    });
    equal(bad.status, 400);
    match(await bad.text(), /url must be an http\(s\) base URL/);
    const down = await tfetch(`${a.url}/_cdn/servers`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ url: "http://127.0.0.1:9" }),
    });
    equal(down.status, 502);
    match(await down.text(), /cannot reach http:\/\/127\.0\.0\.1:9 to learn its id/);

    // Add b to a, and c to b: everybody ends up knowing everybody.
    for (const [at, url] of [[a, b.url], [b, c.url]] as const) {
      const res = await tfetch(`${at.url}/_cdn/servers`, {
        method: "POST",
        headers: auth,
        body: JSON.stringify({ url }),
      });
      equal(res.status, 201, await res.text());
    }
    await waitUntil(
      async () => {
        for (const n of nodes) if ((await serversOf(n.url)).length !== 3) return false;
        return true;
      },
      CONVERGE_MS,
      "the three lists to hold three nodes",
    );

    // An upload to c now reaches a, which c learned of only through b.
    await Deno.writeTextFile(`${dir}/f.txt`, "via heartbeats");
    const r = await runUpload([`${dir}/f.txt`, "--to", c.url, "--token", TOKEN]);
    equal(r.code, 0, r.err);
    await waitUntil(
      async () => (await get(`${a.url}/f.txt`)).status === 200,
      CONVERGE_MS,
      "a f.txt",
    );

    // Remove c through a: gone from every list.
    const del = await tfetch(`${a.url}/_cdn/servers/c`, { method: "DELETE", headers: auth });
    equal(del.status, 200, await del.text());
    const again = await tfetch(`${a.url}/_cdn/servers/c`, { method: "DELETE", headers: auth });
    equal(again.status, 404);
    match(await again.text(), /no such server: c/);
    await waitUntil(
      async () => {
        for (const n of [a, b]) {
          if ((await serversOf(n.url)).some((s) => s.id === "c")) return false;
        }
        return true;
      },
      CONVERGE_MS,
      "c to leave a's and b's lists",
    );
    const all = await (await tfetch(`${b.url}/_cdn/servers?all=1`)).json();
    ok(all.some((s: { id: string; removed: boolean }) => s.id === "c" && s.removed));
  });
});

Deno.test("replication: three nodes started at once from one --servers file replicate", async () => {
  await withNodes(async (dir, nodes) => {
    // Free ports picked ahead, so the one file can name all three before any starts.
    const ports = [0, 0, 0].map(() => {
      const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const p = (l.addr as Deno.NetAddr).port;
      l.close();
      return p;
    });
    const file = `${dir}/servers.json`;
    await Deno.writeTextFile(file, JSON.stringify(ports.map((p) => `http://127.0.0.1:${p}`)));
    nodes.push(
      ...await Promise.all(
        ["a", "b", "c"].map((id, i) =>
          startNode(id, `${dir}/${id}`, ["-p", String(ports[i]), "--servers", file])
        ),
      ),
    );
    await knowEachOther(nodes, CONVERGE_MS);
    await Deno.writeTextFile(`${dir}/f.txt`, "at once");
    const r = await runUpload([`${dir}/f.txt`, "--to", nodes[2].url, "--token", TOKEN]);
    equal(r.code, 0, r.err);
    for (const n of nodes) {
      await waitUntil(
        async () => (await get(`${n.url}/f.txt`)).status === 200,
        CONVERGE_MS,
        `${n.id} f.txt`,
      );
    }
  });
});

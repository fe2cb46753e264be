/**
 * The routing proxy against a real three-node cluster (`main_http.ts` with `--data`, joined
 * through the first), two of them made slower by delaying forwarders they advertise: latency
 * mode picks the fast node; when it is killed, a GET is retried once on the next best and the
 * killed node is ejected; the server list follows nodes that join and are removed, asked of
 * the other nodes once `--node` is gone.
 */
import { equal, match, notEqual, ok } from "node:assert/strict";
import { startOrigin } from "./_http_origin.ts";
import {
  startNode,
  stopAll,
  type TestNode,
  tfetch,
  TOKEN,
  waitUntil,
  withTempDir,
} from "./_upload_cluster.ts";
import {
  curlVia,
  type Delayer,
  type ProxyProc,
  startDelayer,
  startProxyProc,
} from "./_proxy_procs.ts";

Deno.test("proxy: latency mode, retry after a kill, ejection, membership followed", async () => {
  await withTempDir(async (dir) => {
    const origin = await startOrigin({
      "/a.txt": { body: "alpha\n", headers: { "cache-control": "max-age=60" } },
    });
    const nodes: TestNode[] = [];
    const delayers: Delayer[] = [];
    let proxy: ProxyProc | undefined;
    try {
      const a = await startNode("a", `${dir}/a`, ["-o", origin.url]);
      nodes.push(a);
      for (const [id, ms] of [["b", 300], ["c", 600]] as const) {
        const d = startDelayer(ms);
        delayers.push(d);
        // The node advertises the delayer: every other node and the proxy reach it through it.
        const n = await startNode(id, `${dir}/${id}`, [
          "-o",
          origin.url,
          "--join",
          a.url,
          "--advertise",
          d.url,
        ]);
        d.target = n.proc.port;
        nodes.push(n);
      }
      await waitUntil(
        async () => {
          const list = await (await tfetch(`${a.url}/_cdn/servers`)).json() as unknown[];
          return list.length === 3;
        },
        20_000,
        "a lists three servers",
      );
      // Warm every node's cache (and code paths): proxied requests are then hits, whose time
      // to head is the link's delay, not an origin fetch.
      for (const n of nodes) {
        for (let i = 0; i < 3; i++) await (await tfetch(`${n.url}/a.txt`)).text();
      }
      proxy = await startProxyProc([
        "--node",
        a.url,
        "--name",
        "cdn.test",
        "--mode",
        "latency",
        "--refresh",
        "200ms",
        // Only the request must find the kill (a probe would eject the node first).
        "--probe-interval",
        "60s",
      ]);
      const ex = await proxy.explain();
      equal(ex.servers.length, 3);
      equal(ex.choice, "a", JSON.stringify(ex));
      for (let i = 0; i < 3; i++) {
        const r = await curlVia(proxy.url, "http://cdn.test/a.txt");
        equal(r.body, "alpha\n");
        equal(r.headers.get("x-nearcast-server"), "a");
      }

      // Kill the chosen node: the next GET fails on it before any byte and is retried on b.
      await a.proc.kill9();
      const r = await curlVia(proxy.url, "http://cdn.test/a.txt");
      equal(r.status, 200);
      equal(r.body, "alpha\n");
      equal(r.headers.get("x-nearcast-server"), "b");
      match(r.headers.get("x-nearcast-reason")!, /retried after a failed \(cannot connect/);
      const after = await proxy.explain();
      const dead = after.servers.find((s) => s.id === "a")!;
      equal(dead.eligible, false);
      ok(dead.ejectedForMs > 0);
      match(dead.lastError!, /cannot connect/);
      notEqual(after.choice, "a");
      // Not retried again: the ejected node is not asked.
      equal(
        (await curlVia(proxy.url, "http://cdn.test/a.txt")).headers.get("x-nearcast-server"),
        "b",
      );

      // A node that joins (through b: a is gone) appears; removed, it leaves.
      const d = await startNode("d", `${dir}/d`, ["-o", origin.url, "--join", nodes[1].proc.url]);
      nodes.push(d);
      await waitUntil(
        async () => (await proxy!.explain()).servers.some((s) => s.id === "d"),
        20_000,
        "the proxy lists d",
      );
      const del = await tfetch(`${nodes[1].proc.url}/_cdn/servers/d`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      equal(del.status, 200, await del.text());
      await waitUntil(
        async () => !(await proxy!.explain()).servers.some((s) => s.id === "d"),
        20_000,
        "the proxy drops d",
      );
    } finally {
      await proxy?.close();
      await stopAll(nodes);
      for (const d of delayers) d.close();
      await origin.close();
    }
  });
});

/**
 * The proxy's default `--name`, with real processes: a replica started with `--announce` learns
 * the CDN's name (the DNS server's zone, `-n NAME`) from its registration answer and reports it
 * as `cdnName` in `/_cdn/health`; a proxy started without `--name` routes that name. With two
 * DNS servers serving different zones the replica keeps the first answer and logs the mismatch;
 * `--cdn-name` names the CDN on a node without `--announce`.
 */
import { equal, match, ok } from "node:assert/strict";
import { startOrigin } from "./_http_origin.ts";
import { type ReplicaProc, startReplica } from "./_http_replica.ts";
import { curlVia, startProxyProc } from "./_proxy_procs.ts";
import { startDns, waitFor } from "../lib/fleet/_testing.ts";
import {
  startNode,
  stopAll,
  type TestNode,
  tfetch,
  waitUntil,
  withTempDir,
} from "./_upload_cluster.ts";

const PAGE = "<html>routed by the reported name</html>\n";

async function health(url: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}/_cdn/health`, { signal: AbortSignal.timeout(10_000) });
  return await res.json();
}

Deno.test({
  name: "proxy: without --name it routes the CDN name the node learnt from its DNS servers",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const origin = await startOrigin({
      "/page.html": { body: PAGE, headers: { "cache-control": "max-age=60" } },
    });
    const a = await startDns(["-n", "zone-a.test", "--probe-port", "9"]);
    const b = await startDns(["-n", "zone-b.test", "--probe-port", "9"]);
    const replica = await startReplica([
      "-o",
      origin.url,
      "--id",
      "named1",
      "--announce",
      `127.0.0.1:${a.control},127.0.0.1:${b.control}`,
    ]);
    let fixed: ReplicaProc | null = null;
    const out = () => a.output() + b.output() + replica.lines.join("\n");
    try {
      // The first DNS server to answer names the CDN; the other one's zone is a logged mismatch.
      const name = await waitFor(
        "the replica's cdnName",
        async () => {
          const h = await health(replica.url);
          return typeof h.cdnName === "string" ? h.cdnName : undefined;
        },
        30_000,
        100,
        out,
      );
      ok(name === "zone-a.test" || name === "zone-b.test", `cdnName ${name}`);
      const other = name === "zone-a.test" ? "zone-b.test" : "zone-a.test";
      await replica.waitFor(
        new RegExp(`fleet: \\S+ serves zone ${other}, not ${name}: still reporting ${name}`),
      );
      const fleet = await (await fetch(`${replica.url}/_cdn/fleet`)).json();
      equal(fleet.cdnName, name);

      const proxy = await startProxyProc(["--node", replica.url]);
      try {
        match(proxy.output(), new RegExp(`CDN ${name.replace(".", "\\.")}, 1 servers`));
        const r = await curlVia(proxy.url, `http://${name}/page.html`);
        equal(r.status, 200);
        equal(r.body, PAGE);
        equal(r.headers.get("x-nearcast-server"), "named1");
      } finally {
        await proxy.close();
      }

      // --cdn-name on a node without --announce (lower case, no final dot).
      fixed = await startReplica([
        "-o",
        origin.url,
        "--id",
        "fixed1",
        "--cdn-name",
        "Fix.Test.",
      ]);
      equal((await health(fixed.url)).cdnName, "fix.test");
      const proxy2 = await startProxyProc(["--node", fixed.url]);
      try {
        const r = await curlVia(proxy2.url, "http://fix.test/page.html");
        equal(r.status, 200);
        equal(r.headers.get("x-nearcast-server"), "fixed1");
      } finally {
        await proxy2.close();
      }
    } finally {
      await replica.close();
      await fixed?.close();
      await a.stop();
      await b.stop();
      await origin.close();
    }
  },
});

Deno.test("proxy: without --name it asks the other listed servers when --node reports none", async () => {
  await withTempDir(async (dir) => {
    const nodes: TestNode[] = [];
    try {
      const a = await startNode("a", `${dir}/a`);
      nodes.push(a);
      nodes.push(await startNode("b", `${dir}/b`, ["--join", a.url, "--cdn-name", "other.test"]));
      await waitUntil(
        async () =>
          (await (await tfetch(`${a.url}/_cdn/servers`)).json() as unknown[]).length === 2,
        20_000,
        "a lists two servers",
      );
      equal((await health(a.url)).cdnName, null);
      const proxy = await startProxyProc(["--node", a.url]);
      try {
        match(proxy.output(), /CDN other\.test, 2 servers/);
        equal((await curlVia(proxy.url, "http://other.test/_cdn/health")).status, 200);
      } finally {
        await proxy.close();
      }
    } finally {
      await stopAll(nodes);
    }
  });
});

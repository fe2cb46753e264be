/**
 * The routing proxy in front of `--tls` nodes: with `--ca` it reads the server list and forwards
 * CDN requests over HTTPS verified against the CA (curl through it gets the node's content);
 * without `--ca` it refuses to start, naming the TLS failure.
 */
import { equal, match } from "node:assert/strict";
import { startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";
import { curlVia, runProxyCli, startProxyProc } from "./_proxy_procs.ts";
import { makeCerts, tlsArgs } from "./_tls_cluster.ts";
import { withTempDir } from "./_upload_cluster.ts";

const R = "127.0.0.76";
const PAGE = "<html>hello through the proxy over TLS</html>\n";

Deno.test("tls: the proxy reaches --tls nodes with --ca, and says why not without", async () => {
  await withTempDir(async (dir) => {
    await makeCerts(["--out", `${dir}/c`, "--nodes", `e=${R}`]);
    const origin = await startOrigin({
      "/page.html": { body: PAGE, headers: { "cache-control": "max-age=60" } },
    });
    const replica = await startReplica([
      "--host",
      R,
      "-o",
      origin.url,
      "--id",
      "edge1",
      ...tlsArgs(`${dir}/c`, "e"),
    ]);
    try {
      const without = await runProxyCli(["-p", "0", "--node", replica.url, "--name", "cdn.test"]);
      equal(without.code, 2, without.stderr);
      match(
        new TextDecoder().decode(without.stdout) + without.stderr,
        /cannot get the server list: .*TLS: the peer's certificate is not signed by our CA/,
      );
      const proxy = await startProxyProc([
        "--node",
        replica.url,
        "--name",
        "cdn.test",
        "--ca",
        `${dir}/c/ca.pem`,
      ]);
      try {
        const r = await curlVia(proxy.url, "http://cdn.test/page.html");
        equal(r.status, 200, proxy.output());
        equal(r.body, PAGE);
        equal(r.headers.get("x-nearcast-server"), "edge1");
      } finally {
        await proxy.close();
      }
    } finally {
      await replica.close();
      await origin.close();
    }
  });
});

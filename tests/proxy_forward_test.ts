/**
 * The routing proxy as an ordinary HTTP forward proxy, with real processes: a replica
 * (`main_http.ts`) in front of a test origin, the proxy (`main_proxy.ts`), curl and wget
 * through it. CDN requests carry X-Nearcast-Server/Reason and Via; hop-by-hop headers are
 * dropped both ways; bodies pass through byte for byte (gzip stays gzip); other hosts are
 * forwarded or refused by flag; CONNECT is refused; /_proxy/explain; forwarding loops.
 */
import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";
import { curlVia, run, startProxyProc } from "./_proxy_procs.ts";

const PAGE = "<html>hello through the proxy</html>\n";
const GZ = gzipSync(new TextEncoder().encode("squeeze me ".repeat(200)));

Deno.test("proxy: curl and wget through it; headers, bodies, other hosts, CONNECT, explain, loops", async () => {
  const origin = await startOrigin({
    "/page.html": {
      body: PAGE,
      headers: { "cache-control": "max-age=60", "content-type": "text/html" },
    },
    "/hop": {
      body: "hop\n",
      headers: {
        "cache-control": "no-store",
        connection: "x-secret",
        "x-secret": "1",
        "x-kept": "2",
      },
    },
    "/gz": {
      body: new Uint8Array(GZ),
      headers: {
        "content-encoding": "gzip",
        "cache-control": "no-store",
        "content-type": "text/plain",
      },
    },
  });
  const replica = await startReplica(["-o", origin.url, "--id", "edge1"]);
  const proxy = await startProxyProc(["--node", replica.url, "--name", "cdn.test"]);
  const refusing = await startProxyProc([
    "--node",
    replica.url,
    "--name",
    "cdn.test",
    "--other",
    "refuse",
  ]);
  try {
    // A CDN request, twice: routed to the replica, a miss then a hit.
    const a = await curlVia(proxy.url, "http://cdn.test/page.html");
    equal(a.status, 200);
    equal(a.body, PAGE);
    equal(a.headers.get("x-nearcast-server"), "edge1");
    match(a.headers.get("x-nearcast-reason")!, /rtt [\d.]+ ms.*mode latency/);
    match(a.headers.get("via")!, /nearcast-edge1, 1\.1 nearcast-proxy-\w+$/);
    const b = await curlVia(proxy.url, "http://cdn.test/page.html");
    equal(b.headers.get("x-cache"), "HIT");
    // Kept alive to the server: more requests reuse the pooled connection.
    const before = (await proxy.explain()).upstream.reused;
    for (let i = 0; i < 4; i++) await curlVia(proxy.url, "http://cdn.test/page.html");
    ok((await proxy.explain()).upstream.reused >= before + 4);

    // HEAD keeps the length, sends no body.
    const h = await curlVia(proxy.url, "http://cdn.test/page.html", ["-I"]);
    equal(h.headers.get("content-length"), String(PAGE.length));
    equal(h.body, "");

    // wget with http_proxy in the environment and with -e use_proxy.
    const w = await new Deno.Command("wget", {
      args: ["-q", "-O", "-", "http://cdn.test/page.html"],
      env: { http_proxy: proxy.url },
      stdout: "piped",
      stderr: "piped",
    }).output();
    equal(w.code, 0, new TextDecoder().decode(w.stderr));
    equal(new TextDecoder().decode(w.stdout), PAGE);
    const w2 = await run("wget", [
      "-q",
      "-S",
      "-O",
      "-",
      "-e",
      "use_proxy=yes",
      "-e",
      `http_proxy=${proxy.url}`,
      "http://cdn.test/page.html",
    ]);
    equal(w2.code, 0);
    match(w2.stderr, /X-Nearcast-Server: edge1/i);

    // Hop-by-hop headers dropped both ways; end-to-end ones kept; Via added upstream.
    const hop = await curlVia(proxy.url, `${origin.url}/hop`, [
      "-H",
      "Connection: x-drop",
      "-H",
      "x-drop: 1",
      "-H",
      "Proxy-Authorization: Basic Zm9vOmJhcg==",
      "-H",
      "x-end: 3",
    ]);
    equal(hop.status, 200);
    equal(hop.headers.get("x-secret"), undefined);
    equal(hop.headers.get("x-kept"), "2");
    equal(hop.headers.get("x-nearcast-reason"), "direct: not the CDN's name");
    const seen = origin.seen.find((s) => s.path === "/hop")!.headers;
    deepStrictEqual(
      [seen.get("x-drop"), seen.get("proxy-authorization"), seen.get("x-end")],
      [null, null, "3"],
    );
    match(seen.get("via")!, /^1\.1 nearcast-proxy-\w+$/);
    equal(seen.get("host"), `127.0.0.1:${origin.port}`);

    // A gzip body passes through as the origin sent it.
    const gz = await run("curl", [
      "-s",
      "-x",
      proxy.url,
      "-H",
      "Accept-Encoding: gzip",
      `${origin.url}/gz`,
    ]);
    deepStrictEqual(gz.stdout, new Uint8Array(GZ));

    // Other hosts refused under --other refuse; the CDN still served.
    const refused = await curlVia(refusing.url, `${origin.url}/page.html`);
    equal(refused.status, 403);
    match(refused.body, /not the CDN's name \(cdn\.test\).*--other refuse/);
    equal(
      (await curlVia(refusing.url, "http://cdn.test/page.html")).headers.get("x-nearcast-server"),
      "edge1",
    );

    // CONNECT: a clear 501.
    const tunnel = await run("curl", [
      "-s",
      "-p",
      "-x",
      proxy.url,
      "http://example.test/",
      "--max-time",
      "10",
    ]);
    ok(tunnel.code !== 0);
    const raw = await rawRequest(
      proxy.port,
      "CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n",
    );
    match(raw, /^HTTP\/1\.1 501 [^]*CONNECT \(HTTPS tunnels\) is not supported/);

    // The proxy's own routes, origin-form.
    const ex = await proxy.explain();
    equal(ex.choice, "edge1");
    equal(ex.servers[0].id, "edge1");
    ok(ex.servers[0].latencyMs !== null && ex.servers[0].latencyMs > 0);
    const metrics = await (await fetch(`${proxy.url}/_proxy/metrics`)).text();
    match(
      metrics,
      /^nearcast_proxy_server_requests_total\{server="edge1",mode="latency"\} [1-9]\d*$/m,
    );
    match(metrics, /^nearcast_proxy_requests_total\{outcome="direct"\} [1-9]\d*$/m);
    match(metrics, /^nearcast_proxy_connections_open \d+$/m);
    const own = await fetch(`${proxy.url}/elsewhere`);
    equal(own.status, 404);
    match(await own.text(), /\/_proxy\/explain/);

    // A request head over 32 KiB is refused.
    const big = await curlVia(proxy.url, "http://cdn.test/page.html", [
      "-H",
      `X-Big: ${"x".repeat(40_000)}`,
    ]);
    equal(big.status, 431);

    // A request carrying this proxy's Via token is a loop.
    const token = /nearcast-proxy-\w+/.exec(a.headers.get("via")!)![0];
    const loop = await curlVia(proxy.url, "http://cdn.test/page.html", ["-H", `Via: 1.1 ${token}`]);
    equal(loop.status, 508);
  } finally {
    await proxy.close();
    await refusing.close();
    await replica.close();
    await origin.close();
  }
});

/** Sends raw bytes to 127.0.0.1:port and answers what came back within 5 s. */
async function rawRequest(port: number, text: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(text));
  const buf = new Uint8Array(4096);
  let out = "";
  const deadline = Date.now() + 5_000;
  while (!out.includes("\r\n\r\n") || !/\n$/.test(out)) {
    const timer = setTimeout(() => conn.close(), Math.max(1, deadline - Date.now()));
    const n = await conn.read(buf).catch(() => null);
    clearTimeout(timer);
    if (n === null) break;
    out += new TextDecoder().decode(buf.subarray(0, n));
  }
  try {
    conn.close();
  } catch { /* closed */ }
  return out;
}

/**
 * Every process's metrics endpoint passes `promtool check metrics` (Debian's `prometheus`
 * package): the DNS server's control API `/metrics`, a replica's `/_cdn/metrics` (with
 * `--data`: replication figures), the pricing service's `/metrics` and the routing proxy's
 * `/_proxy/metrics`, each started as a real process on loopback after some traffic. The
 * families the issue names are there, under `nearcast_<process>_`.
 */
import { equal, fail, match } from "node:assert/strict";
import { resolveA, startDns, waitFor } from "../lib/fleet/_testing.ts";
import { startOrigin } from "./_http_origin.ts";
import { startPrice } from "./_price_service.ts";
import { curlVia, startProxyProc } from "./_proxy_procs.ts";
import { startNode, tfetch, withTempDir } from "./_upload_cluster.ts";

const ZONE = "cdn.test";

/** `promtool check metrics` on `text`: its exit code and output. */
async function promtool(text: string): Promise<{ code: number; out: string }> {
  let child;
  try {
    child = new Deno.Command("promtool", {
      args: ["check", "metrics"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      fail("promtool is not installed: apt-get install prometheus (scripts/ensure_tools.sh)");
    }
    throw e;
  }
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const o = await child.output();
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

/** Fetches `url`, checks its content type and runs promtool on it; returns the text. */
async function checked(url: string, families: string[]): Promise<string> {
  const res = await tfetch(url);
  equal(res.status, 200, url);
  match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  const r = await promtool(text);
  equal(r.code, 0, `promtool check metrics ${url}:\n${r.out}\n${text}`);
  for (const f of families) {
    match(text, new RegExp(`^# TYPE ${f} `, "m"), `${url} has no ${f}`);
  }
  return text;
}

Deno.test({
  name: "metrics: promtool accepts every process's endpoint",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withTempDir(async (dir) => {
      const origin = await startOrigin({
        "/a.txt": { body: "alpha\n", headers: { "cache-control": "max-age=60" } },
      });
      const dns = await startDns(["-n", ZONE, "--data", `${dir}/dns`, "--probe-port", "9"]);
      const closers: (() => Promise<void>)[] = [() => dns.stop(), () => origin.close()];
      try {
        const node = await startNode("a", `${dir}/a`, [
          "-o",
          origin.url,
          "--announce",
          `127.0.0.1:${dns.control}`,
        ]);
        closers.push(() => node.proc.close());
        const price = await startPrice([]);
        closers.push(() => price.close());
        const proxy = await startProxyProc(["--node", node.url, "--name", ZONE]);
        closers.push(() => proxy.close());

        const control = `http://127.0.0.1:${dns.control}`;
        await waitFor("the replica alive at the DNS server", async () => {
          const body = await (await tfetch(`${control}/replicas`)).json();
          return body.replicas.some((r: { state: string }) => r.state === "alive") || undefined;
        }, 30_000);
        await resolveA(dns.port, ZONE);
        for (let i = 0; i < 2; i++) await (await tfetch(`${node.url}/a.txt`)).text();
        equal((await curlVia(proxy.url, `http://${ZONE}/a.txt`)).status, 200);
        await (await tfetch(`${price.url}/providers`)).text();

        const d = await checked(`${control}/metrics`, [
          "nearcast_dns_questions_total",
          "nearcast_dns_responses_total",
          "nearcast_dns_truncated_total",
          "nearcast_dns_answers_total",
          "nearcast_dns_replica_state",
          "nearcast_dns_replica_heartbeat_age_seconds",
          "nearcast_dns_measurements_total",
          "nearcast_dns_rtt_seconds",
          "nearcast_dns_heartbeats_total",
          "nearcast_dns_rrl_responses_total",
          "process_resident_memory_bytes",
        ]);
        match(d, /^nearcast_dns_questions_total\{type="A"\} [1-9]/m);
        match(d, /^nearcast_dns_replica_state\{replica="a",state="alive"\} 1$/m);
        const h = await checked(`${node.url}/_cdn/metrics`, [
          "nearcast_http_requests_total",
          "nearcast_http_origin_latency_seconds",
          "nearcast_http_replication_lag_seconds",
          "nearcast_http_replication_store_bytes",
          "nearcast_http_connections_open",
          "nearcast_http_v8_heap_used_bytes",
        ]);
        match(h, /^nearcast_http_cache_hits_total [1-9]/m);
        const p = await checked(`${price.url}/metrics`, [
          "nearcast_price_requests_total",
          "nearcast_price_providers",
          "nearcast_price_connections_open",
        ]);
        match(
          p,
          /^nearcast_price_requests_total\{route="\/providers",method="GET",code="200"\} 1$/m,
        );
        const x = await checked(`${proxy.url}/_proxy/metrics`, [
          "nearcast_proxy_server_requests_total",
          "nearcast_proxy_upstream_latency_seconds",
          "nearcast_proxy_connections_open",
        ]);
        match(x, /^nearcast_proxy_server_requests_total\{server="a",mode="latency"\} 1$/m);
        match(x, /^nearcast_proxy_upstream_latency_seconds_count\{server="a"\} 1$/m);
      } finally {
        for (const c of closers.reverse()) await c();
      }
    });
  },
});

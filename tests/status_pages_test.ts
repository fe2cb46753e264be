/**
 * Each process's root URL (`/_cdn/` on a replica, `/` on the DNS control API and the pricing
 * service, `/_proxy/` on the proxy) answers a browser (`Accept: text/html`) with a small HTML
 * page linking its JSON and metrics, and JSON otherwise. `GET /_cdn/cache` lists what a
 * replica holds, paged, admin only, without counting as an access.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { startDns } from "../lib/fleet/_testing.ts";
import { startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";
import { startPrice } from "./_price_service.ts";
import { startProxyProc } from "./_proxy_procs.ts";

const TOKEN = "status-test-token";
const BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

async function page(url: string, links: string[]): Promise<void> {
  const res = await fetch(url, { headers: { accept: BROWSER } });
  equal(res.status, 200, url);
  match(res.headers.get("content-type")!, /^text\/html/);
  const html = await res.text();
  match(html, /^<!doctype html>/);
  for (const l of links) ok(html.includes(`href="${l}"`), `${url} links ${l}:\n${html}`);
  const json = await fetch(url);
  equal(json.status, 200);
  match(json.headers.get("content-type")!, /^application\/json/);
  await json.json();
}

Deno.test({
  name: "status pages: HTML for a browser at every root, JSON otherwise; /_cdn/cache",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const routes: Record<string, { body: string; headers: Record<string, string> }> = {};
    for (const p of ["/a/1.txt", "/a/2.txt", "/a/3.txt", "/b/1.txt"]) {
      routes[p] = { body: `body of ${p}\n`, headers: { "cache-control": "max-age=60" } };
    }
    const origin = await startOrigin(routes);
    const stops: (() => Promise<void>)[] = [() => origin.close()];
    try {
      const r = await startReplica(["-o", origin.url, "--admin-token", TOKEN]);
      stops.push(() => r.close());
      await page(`${r.url}/_cdn/`, ["/_cdn/health", "/_cdn/metrics"]);
      for (const p of Object.keys(routes)) await (await fetch(`${r.url}${p}`)).text();
      for (let i = 0; i < 2; i++) await (await fetch(`${r.url}/a/2.txt`)).text();

      const auth = { authorization: `Bearer ${TOKEN}` };
      equal((await fetch(`${r.url}/_cdn/cache`).then((x) => (x.body?.cancel(), x))).status, 401);
      const bad = await fetch(`${r.url}/_cdn/cache?limit=0`, { headers: auth });
      equal(bad.status, 400);
      match(await bad.text(), /limit must be an integer from 1 to 1000/);
      const list = async (q: string) =>
        await (await fetch(`${r.url}/_cdn/cache?${q}`, { headers: auth })).json();
      const first = await list("prefix=/a/&limit=2");
      equal(first.count, 3);
      deepEqual(first.entries.map((e: { key: string }) => e.key), ["/a/1.txt", "/a/2.txt"]);
      equal(first.next, "/a/2.txt");
      const e2 = first.entries[1];
      equal(e2.hits, 2, JSON.stringify(e2));
      equal(e2.fresh, true);
      equal(e2.lifetimeSeconds, 60);
      equal(e2.size, "body of /a/2.txt\n".length);
      const second = await list(`prefix=/a/&limit=2&after=${encodeURIComponent(first.next)}`);
      deepEqual(second.entries.map((e: { key: string }) => e.key), ["/a/3.txt"]);
      equal(second.next, null);
      // Listing counted nothing: the hits are as they were.
      equal((await list("prefix=/a/2")).entries[0].hits, 2);
      equal((await list("")).count, 4);

      const dns = await startDns(["-n", "cdn.test", "--probe-port", "9"]);
      stops.push(() => dns.stop());
      await page(`http://127.0.0.1:${dns.control}/`, ["/replicas", "/metrics"]);
      const price = await startPrice([]);
      stops.push(() => price.close());
      await page(`${price.url}/`, ["/providers", "/metrics"]);
      const proxy = await startProxyProc(["--node", r.url, "--name", "cdn.test"]);
      stops.push(() => proxy.close());
      await page(`${proxy.url}/_proxy/`, ["/_proxy/explain", "/_proxy/metrics"]);
    } finally {
      for (const s of stops.reverse()) await s();
    }
  },
});

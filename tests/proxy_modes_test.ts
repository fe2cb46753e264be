/**
 * The routing proxy's modes with real processes: three nodes on three providers (`--provider`,
 * listed by `GET /_cdn/servers`), two of them slowed by delaying forwarders (~0, 300, 1000 ms: margins that a loaded machine does not cross),
 * and the real pricing service (`main_price.ts`). Latency mode picks the nearest, price mode
 * the cheapest, balanced the cheapest within `--max-extra-ms`; balanced flips when a price is
 * changed through the pricing API; an exact price tie goes to the faster server.
 */
import { equal, match } from "node:assert/strict";
import { startOrigin } from "./_http_origin.ts";
import { send, startPrice } from "./_price_service.ts";
import {
  curlVia,
  type Delayer,
  type ProxyProc,
  startDelayer,
  startProxyProc,
} from "./_proxy_procs.ts";
import {
  startNode,
  stopAll,
  type TestNode,
  tfetch,
  waitUntil,
  withTempDir,
} from "./_upload_cluster.ts";

const TOKEN = "price-token";
/** serverPerHour 0: the cost per GiB is the egress price. */
const price = (egressPerGiB: number) => ({ serverPerHour: 0, egressPerGiB, currency: "USD" });

/** `--provider` needs `--announce`: a port where no DNS server listens is enough here. */
function noDns(): string {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return `127.0.0.1:${port}`;
}

Deno.test("proxy modes: latency, price, balanced; a price change through the API flips balanced", async () => {
  await withTempDir(async (dir) => {
    const origin = await startOrigin({
      "/p.txt": { body: "page\n", headers: { "cache-control": "max-age=600" } },
    });
    const svc = await startPrice(["--admin-token", TOKEN]);
    const nodes: TestNode[] = [];
    const delayers: Delayer[] = [];
    const proxies: ProxyProc[] = [];
    try {
      for (const [name, egress] of [["alpha", 0.09], ["beta", 0.05], ["gamma", 0.01]] as const) {
        equal(
          (await send(`${svc.url}/providers/${name}`, "PUT", price(egress), TOKEN)).status,
          201,
        );
      }
      const announce = noDns();
      const a = await startNode("a", `${dir}/a`, [
        "-o",
        origin.url,
        "--announce",
        announce,
        "--provider",
        "alpha",
      ]);
      nodes.push(a);
      for (const [id, provider, ms] of [["b", "beta", 300], ["c", "gamma", 1000]] as const) {
        const d = startDelayer(ms);
        delayers.push(d);
        const n = await startNode(id, `${dir}/${id}`, [
          "-o",
          origin.url,
          "--join",
          a.url,
          "--advertise",
          d.url,
          "--announce",
          announce,
          "--provider",
          provider,
        ]);
        d.target = n.proc.port;
        nodes.push(n);
      }
      await waitUntil(
        async () => {
          const list = await (await tfetch(`${a.url}/_cdn/servers`)).json() as {
            provider: string;
          }[];
          return list.length === 3 && list.every((s) => s.provider !== "");
        },
        20_000,
        "a lists three servers with their providers",
      );
      for (const n of nodes) {
        for (let i = 0; i < 3; i++) await (await tfetch(`${n.url}/p.txt`)).text();
      }
      const start = (mode: string, more: string[] = []) =>
        startProxyProc([
          "--node",
          a.url,
          "--price",
          svc.url,
          "--name",
          "cdn.test",
          "--mode",
          mode,
          "--probe-interval",
          "300ms",
          ...more,
        ]);
      const [lat, cheap, bal] = await Promise.all([
        start("latency"),
        start("price"),
        start("balanced", ["--max-extra-ms", "600"]),
      ]);
      proxies.push(lat, cheap, bal);
      const served = async (p: ProxyProc) => {
        const r = await curlVia(p.url, "http://cdn.test/p.txt");
        equal(r.status, 200);
        equal(r.body, "page\n");
        return {
          server: r.headers.get("x-nearcast-server"),
          reason: r.headers.get("x-nearcast-reason")!,
        };
      };

      const l = await served(lat);
      equal(l.server, "a", l.reason);
      match(
        l.reason,
        /^price 0\.0900 USD\/GiB, rtt [\d.]+ ms, \d+ in flight, mode latency: lowest expected latency$/,
      );
      const p = await served(cheap);
      equal(p.server, "c", p.reason);
      match(p.reason, /^price 0\.0100 USD\/GiB, rtt [\d.]+ ms, .*mode price: cheapest$/);
      const b = await served(bal);
      equal(b.server, "b", b.reason);
      match(
        b.reason,
        /^price 0\.0500 USD\/GiB, .*mode balanced: cheapest within 600 ms of fastest [\d.]+ ms$/,
      );
      const ex = await bal.explain();
      equal(ex.choice, "b");
      equal(ex.servers.find((s) => s.id === "c")?.pricePerGiB, 0.01);

      // beta becomes the dearest: balanced takes the nearest (c is out of the window).
      equal(
        (await send(`${svc.url}/providers/beta`, "PATCH", { egressPerGiB: 0.2 }, TOKEN)).status,
        200,
      );
      await waitUntil(
        async () => (await served(bal)).server === "a",
        10_000,
        "balanced flips to a",
      );
      match((await served(bal)).reason, /^price 0\.0900 USD\/GiB/);

      // beta as cheap as gamma: an exact tie in price mode goes to the faster, b.
      equal(
        (await send(`${svc.url}/providers/beta`, "PATCH", { egressPerGiB: 0.01 }, TOKEN)).status,
        200,
      );
      await waitUntil(
        async () => (await served(cheap)).server === "b",
        10_000,
        "price mode takes b on a tie",
      );
    } finally {
      await Promise.all(proxies.map((p) => p.close()));
      await stopAll(nodes);
      for (const d of delayers) d.close();
      await svc.close();
      await origin.close();
    }
  });
});

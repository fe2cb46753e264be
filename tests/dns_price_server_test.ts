/**
 * Price steering end to end: the real DNS server (`main_dns.ts --price URL`) takes prices from
 * the real pricing service (`main_price.ts`), answers dig by price, follows a price changed
 * through the pricing API within seconds, keeps answering (with the last prices) when the
 * pricing service is killed, and starts and answers by latency when the pricing service is not
 * up yet, taking prices once it is. `/explain` shows the price term.
 */
import assert from "node:assert/strict";
import { dig } from "../lib/dns/_testing.ts";
import { type DnsProc, http, startDns, waitFor } from "../lib/fleet/_testing.ts";
import { startPrice } from "./_price_service.ts";

const TOKEN = "price-test-token";
/** Client 127.0.0.1 is in Paris; replicas in London (~3 ms), Madrid (~10 ms), New York (~58 ms). */
const CONFIG = {
  ttl: 5,
  answers: 1,
  replicas: [
    { id: "lon", ipv4: "192.0.2.1", lat: 51.51, lon: -0.13, provider: "dear" },
    { id: "mad", ipv4: "192.0.2.2", lat: 40.42, lon: -3.7, provider: "middle" },
    { id: "nyc", ipv4: "192.0.2.3", lat: 40.71, lon: -74.01, provider: "cheap" },
  ],
  geo: [{ cidr: "127.0.0.0/8", lat: 48.86, lon: 2.35 }],
};
const IP = { lon: "192.0.2.1", mad: "192.0.2.2", nyc: "192.0.2.3" };
const PRICES = {
  providers: {
    dear: { serverPerHour: 0, egressPerGiB: 0.09, currency: "USD" },
    middle: { serverPerHour: 0, egressPerGiB: 0.05, currency: "USD" },
    cheap: { serverPerHour: 0, egressPerGiB: 0.01, currency: "USD" },
  },
};

async function files() {
  const dir = await Deno.makeTempDir({ prefix: "dns-price-" });
  await Deno.writeTextFile(`${dir}/cdn.json`, JSON.stringify(CONFIG));
  await Deno.writeTextFile(`${dir}/prices.json`, JSON.stringify(PRICES));
  return dir;
}

async function answer(dns: DnsProc): Promise<string> {
  const r = await dig(dns.port, "cdn.test", "A");
  return r.answer.map((a) => a.data).join(",");
}

/** Waits until dig answers `ip` (prices propagate by long poll: well within 10 s). */
function answers(dns: DnsProc, ip: string, what: string): Promise<true> {
  return waitFor(
    what,
    async () => (await answer(dns)) === ip ? true : undefined,
    10_000,
    100,
    () => dns.output(),
  );
}

async function explain(dns: DnsProc) {
  const r = await http(`http://127.0.0.1:${dns.control}/explain?client=127.0.0.1`);
  assert.equal(r.status, 200);
  return r.body as {
    answer: string[];
    reason: string;
    prices: { healthy: boolean | null };
    replicas: { id: string; costPerGiB: number | null; price: string; withinBound: boolean }[];
  };
}

Deno.test("dns --policy price/balanced: dig follows the pricing service; its outage never blocks an answer", async () => {
  const dir = await files();
  const price = await startPrice(["--admin-token", TOKEN, "--config", `${dir}/prices.json`]);
  const procs: DnsProc[] = [];
  try {
    const common = ["-n", "cdn.test", "--config", `${dir}/cdn.json`, "--price", price.url];
    const byPrice = await startDns([...common, "--policy", "price"]);
    procs.push(byPrice);
    const balanced = await startDns([...common, "--policy", "balanced", "--max-extra-ms", "20"]);
    procs.push(balanced);
    const latency = await startDns([...common, "--policy", "latency"]);
    procs.push(latency);
    assert.equal(await answer(latency), IP.lon, "latency: the nearest");
    await answers(byPrice, IP.nyc, "price: the cheapest (nyc)");
    await answers(balanced, IP.mad, "balanced: the cheapest within 20 ms (mad)");
    const ex = await explain(balanced);
    assert.match(
      ex.reason,
      /^mad: cheapest within 20 ms of the fastest \(0\.05 USD\/GiB from middle/,
    );
    assert.deepEqual(ex.replicas.map((r) => [r.id, r.costPerGiB, r.withinBound]), [
      ["lon", 0.09, true],
      ["mad", 0.05, true],
      ["nyc", 0.01, false],
    ]);

    // A price changed through the pricing API flips both.
    const patch = await fetch(`${price.url}/providers/dear`, {
      method: "PATCH",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ egressPerGiB: 0.001 }),
    });
    assert.equal(patch.status, 200, await patch.text());
    await answers(byPrice, IP.lon, "price: lon after its price fell");
    await answers(balanced, IP.lon, "balanced: lon after its price fell");

    // The pricing service dies: answers go on with the last prices, and explain says so.
    await price.kill9();
    await waitFor(
      "the feed to notice",
      async () => (await explain(byPrice)).prices.healthy === false ? true : undefined,
    );
    assert.equal(await answer(byPrice), IP.lon);
    assert.match(
      (await explain(byPrice)).reason,
      /pricing service unreachable: using the last prices/,
    );
  } finally {
    for (const p of procs) await p.stop();
    await price.kill9();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dns --price with the pricing service down: starts, answers by latency, takes prices once it is up", async () => {
  const dir = await files();
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  let dns: DnsProc | null = null;
  let price: Awaited<ReturnType<typeof startPrice>> | null = null;
  try {
    dns = await startDns([
      "-n",
      "cdn.test",
      "--config",
      `${dir}/cdn.json`,
      "--price",
      `http://127.0.0.1:${port}`,
      "--policy",
      "price",
    ]);
    assert.match(dns.output(), /going on without prices/);
    assert.equal(await answer(dns), IP.lon, "no price: by latency");
    const ex = await explain(dns);
    assert.match(ex.reason, /no price received yet: price not used/);
    assert.match(ex.reason, /by latency/);
    assert.deepEqual(ex.replicas.map((r) => r.price), [
      "pricing service unreachable",
      "pricing service unreachable",
      "pricing service unreachable",
    ]);
    price = await startPrice(["--config", `${dir}/prices.json`], port);
    await answers(dns, IP.nyc, "price: nyc once the pricing service answers");
  } finally {
    await dns?.stop();
    await price?.kill9();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * The shared price client (`lib/price/client.ts`) against the real service: first load,
 * following changes by long poll, surviving a service restart, and `costPerGiB`.
 */
import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import { costPerGiB, PriceFeed } from "../lib/price/client.ts";
import { send, startPrice } from "./_price_service.ts";

const TOKEN = "feed-token";
const AWS = { serverPerHour: 0.5, egressPerGiB: 0.09, currency: "USD" };

/** Polls `cond` every 20 ms until true or `ms` pass; answers the time it took. */
async function until(cond: () => boolean, ms: number, what: string): Promise<number> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return performance.now() - t0;
}

Deno.test("costPerGiB: egress plus server cost over capacity (default 100), region overrides", () => {
  const p = { name: "a", serverPerHour: 2, egressPerGiB: 0.05, currency: "USD" };
  equal(costPerGiB(p), 0.05 + 2 / 100);
  equal(costPerGiB({ ...p, capacityGiBPerHour: 400 }), 0.05 + 2 / 400);
  const r = { ...p, regions: { eu: { egressPerGiB: 0.02 } } };
  equal(costPerGiB(r, "eu"), 0.02 + 2 / 100);
  equal(costPerGiB(r, "us"), costPerGiB(p));
});

Deno.test("PriceFeed: loads, follows a change within 1 s, survives a restart of the service", async () => {
  const dir = await Deno.makeTempDir({ prefix: "price_feed_" });
  let svc = await startPrice(["--admin-token", TOKEN, "--data", dir]);
  const changes: string[] = [];
  const feed = new PriceFeed(svc.url, { onChange: (v) => changes.push(v), maxBackoffMs: 200 });
  try {
    equal((await send(`${svc.url}/providers/aws`, "PUT", AWS, TOKEN)).status, 201);
    await feed.start();
    ok(feed.healthy);
    deepStrictEqual(feed.all().map((p) => p.name), ["aws"]);
    equal(feed.get("aws")?.egressPerGiB, 0.09);
    equal(changes.length, 1);
    equal(feed.version, changes[0]);

    // A change reaches the feed through the long poll (generous functional bound).
    await new Promise((r) => setTimeout(r, 200)); // the long poll is in flight
    const put = await send(`${svc.url}/providers/aws`, "PATCH", { egressPerGiB: 0.01 }, TOKEN);
    equal(put.status, 200);
    const newVersion = JSON.parse(await put.text()).version;
    await until(() => feed.get("aws")?.egressPerGiB === 0.01, 1000, "the feed sees the PATCH");
    equal(feed.version, newVersion);

    // The service goes away: the feed keeps its prices and says it is unhealthy.
    const port = svc.port;
    await svc.kill9();
    await until(() => !feed.healthy, 5000, "the feed notices the service is down");
    equal(feed.get("aws")?.egressPerGiB, 0.01);

    // Back on the same port with the same data: the feed reconnects and follows new changes.
    svc = await startPrice(["--admin-token", TOKEN, "--data", dir], port);
    await until(() => feed.healthy, 5000, "the feed reconnects");
    const gcp = { serverPerHour: 0.4, egressPerGiB: 0.08, currency: "USD" };
    equal((await send(`${svc.url}/providers/gcp`, "PUT", gcp, TOKEN)).status, 201);
    await until(() => feed.get("gcp") !== undefined, 3000, "the feed sees gcp after the restart");
    deepStrictEqual(feed.all().map((p) => p.name).sort(), ["aws", "gcp"]);
  } finally {
    feed.close();
    await feed.closed();
    await svc.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PriceFeed: start rejects naming the URL when nothing answers, then retries", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const feed = new PriceFeed(`http://127.0.0.1:${port}`, { maxBackoffMs: 200 });
  let svc;
  try {
    await rejects(feed.start(), new RegExp(`127\\.0\\.0\\.1:${port}/prices`));
    equal(feed.healthy, false);
    svc = await startPrice(["--admin-token", TOKEN], port);
    equal((await send(`${svc.url}/providers/aws`, "PUT", AWS, TOKEN)).status, 201);
    await until(() => feed.get("aws") !== undefined, 5000, "the feed loads once the service is up");
    ok(feed.healthy);
  } finally {
    feed.close();
    await feed.closed();
    await svc?.close();
  }
});

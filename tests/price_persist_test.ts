/**
 * The pricing service's store across restarts (real processes, kill -9): an acknowledged PUT
 * survives, versions keep increasing, and `--config` seeds only providers the database has never
 * seen.
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { send, startPrice } from "./_price_service.ts";

const TOKEN = "persist-token";

async function record(url: string, name: string) {
  const res = await fetch(`${url}/providers/${name}`);
  return res.status === 404 ? (await res.body?.cancel(), null) : await res.json();
}

Deno.test("price store: an acknowledged PUT survives kill -9; the version survives and grows", async () => {
  const dir = await Deno.makeTempDir({ prefix: "price_persist_" });
  try {
    let svc = await startPrice(["--admin-token", TOKEN, "--data", dir]);
    const put = await send(`${svc.url}/providers/aws`, "PUT", {
      serverPerHour: 0.5,
      egressPerGiB: 0.09,
      currency: "USD",
      regions: { "us-east": { egressPerGiB: 0.05 } },
    }, TOKEN);
    equal(put.status, 201);
    const acked = await put.json();
    await svc.kill9(); // right after the acknowledgement: no clean shutdown
    svc = await startPrice(["--admin-token", TOKEN, "--data", dir]);
    try {
      deepStrictEqual(await record(svc.url, "aws"), acked);
      const snap = await (await fetch(`${svc.url}/prices`)).json();
      equal(snap.version, acked.version, "the global version survived");
      const next = await send(`${svc.url}/providers/aws`, "PATCH", { egressPerGiB: 0.1 }, TOKEN);
      ok(BigInt((await next.json()).version) > BigInt(acked.version), "and keeps growing");
    } finally {
      await svc.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("price store: --config seeds only providers the database never saw", async () => {
  const dir = await Deno.makeTempDir({ prefix: "price_seed_" });
  const config = `${dir}/prices.json`;
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      providers: {
        aws: { serverPerHour: 0.5, egressPerGiB: 0.09, currency: "USD" },
        gcp: { serverPerHour: 0.4, egressPerGiB: 0.08, currency: "USD" },
      },
    }),
  );
  const args = ["--admin-token", TOKEN, "--data", `${dir}/db`, "--config", config];
  try {
    let svc = await startPrice(args);
    ok(/seeded aws gcp from --config/.test(svc.output()), svc.output());
    equal((await record(svc.url, "gcp")).egressPerGiB, 0.08);
    equal(
      (await send(`${svc.url}/providers/aws`, "PATCH", { egressPerGiB: 0.01 }, TOKEN)).status,
      200,
    );
    equal((await send(`${svc.url}/providers/gcp`, "DELETE", undefined, TOKEN)).status, 204);
    await svc.close();

    // Same config: the API's changes stand (aws keeps 0.01, gcp stays deleted).
    svc = await startPrice(args);
    equal((await record(svc.url, "aws")).egressPerGiB, 0.01);
    equal(await record(svc.url, "gcp"), null);
    ok(!/seeded/.test(svc.output()), svc.output());
    // A provider added to the config later is seeded at the next start.
    await Deno.writeTextFile(
      config,
      JSON.stringify({
        providers: { azure: { serverPerHour: 0.6, egressPerGiB: 0.087, currency: "EUR" } },
      }),
    );
    await svc.close();
    svc = await startPrice(args);
    equal((await record(svc.url, "azure")).currency, "EUR");
    equal((await record(svc.url, "aws")).egressPerGiB, 0.01);
    await svc.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

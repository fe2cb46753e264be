/**
 * The pricing service's HTTP API on a real process and real sockets: CRUD, ETags and
 * preconditions, auth before the body, bad bodies naming the field, limits.
 */
import { deepStrictEqual, equal, match, notEqual, ok } from "node:assert/strict";
import { type PriceProc, send, startPrice } from "./_price_service.ts";

const TOKEN = "api-token";
const AWS = { serverPerHour: 0.5, egressPerGiB: 0.09, currency: "USD" };

async function getJson(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  const text = await res.text();
  return { res, body: text === "" ? null : JSON.parse(text) };
}

async function withService(args: string[], fn: (svc: PriceProc) => Promise<void>) {
  const svc = await startPrice(args);
  try {
    await fn(svc);
  } finally {
    await svc.close();
  }
}

Deno.test("price API: create, read, replace, patch, list, delete; ETag and version change on every update", async () => {
  await withService(["--admin-token", TOKEN], async (svc) => {
    const u = `${svc.url}/providers/aws`;
    const created = await send(u, "PUT", AWS, TOKEN);
    equal(created.status, 201);
    equal(created.headers.get("location"), "/providers/aws");
    const e1 = created.headers.get("etag")!;
    match(e1, /^"\d+"$/);
    const rec = await created.json();
    equal(rec.name, "aws");
    equal(rec.egressPerGiB, 0.09);
    equal(`"${rec.version}"`, e1);
    equal(created.headers.get("nearcast-price-version"), rec.version);

    const got = await getJson(u);
    equal(got.res.status, 200);
    equal(got.res.headers.get("etag"), e1);
    deepStrictEqual(got.body, rec);

    const replaced = await send(u, "PUT", { ...AWS, egressPerGiB: 0.08, name: "aws" }, TOKEN);
    equal(replaced.status, 200);
    const e2 = replaced.headers.get("etag")!;
    notEqual(e2, e1);
    ok(BigInt(e2.slice(1, -1)) > BigInt(e1.slice(1, -1)), "versions increase");
    equal((await replaced.json()).egressPerGiB, 0.08);

    // PATCH is a JSON merge patch: add a region and a capacity, then remove the capacity.
    const p1 = await send(
      u,
      "PATCH",
      {
        capacityGiBPerHour: 200,
        regions: { "eu-west": { egressPerGiB: 0.02 } },
      },
      TOKEN,
      { "content-type": "application/merge-patch+json" },
    );
    equal(p1.status, 200);
    const e3 = p1.headers.get("etag")!;
    notEqual(e3, e2);
    const r1 = await p1.json();
    equal(r1.capacityGiBPerHour, 200);
    deepStrictEqual(r1.regions, { "eu-west": { egressPerGiB: 0.02 } });
    equal(r1.serverPerHour, 0.5);
    const p2 = await send(u, "PATCH", { capacityGiBPerHour: null }, TOKEN);
    equal(p2.status, 200);
    equal((await p2.json()).capacityGiBPerHour, undefined);

    equal(
      (await send(`${svc.url}/providers/gcp`, "PUT", { ...AWS, currency: "EUR" }, TOKEN)).status,
      201,
    );
    const list = await getJson(`${svc.url}/providers`);
    deepStrictEqual(list.body.providers.map((p: { name: string }) => p.name), ["aws", "gcp"]);
    equal(list.res.headers.get("etag"), `"${list.body.version}"`);

    const del = await send(u, "DELETE", undefined, TOKEN);
    equal(del.status, 204);
    ok(BigInt(del.headers.get("nearcast-price-version")!) > BigInt(list.body.version));
    equal((await getJson(u)).res.status, 404);
    equal((await send(u, "DELETE", undefined, TOKEN)).status, 404);
    equal((await send(u, "PATCH", { egressPerGiB: 1 }, TOKEN)).status, 404);
    const after = await getJson(`${svc.url}/providers`);
    deepStrictEqual(after.body.providers.map((p: { name: string }) => p.name), ["gcp"]);
  });
});

Deno.test("price API: If-Match / If-None-Match give 412 and 304; a failed precondition changes nothing", async () => {
  await withService(["--admin-token", TOKEN], async (svc) => {
    const u = `${svc.url}/providers/aws`;
    const e1 = (await send(u, "PUT", AWS, TOKEN)).headers.get("etag")!;
    const e2 = (await send(u, "PATCH", { egressPerGiB: 0.07 }, TOKEN)).headers.get("etag")!;

    const stale = await send(u, "PUT", { ...AWS, egressPerGiB: 1 }, TOKEN, { "if-match": e1 });
    equal(stale.status, 412);
    await stale.body?.cancel();
    equal((await send(u, "PATCH", { egressPerGiB: 1 }, TOKEN, { "if-match": e1 })).status, 412);
    equal((await send(u, "DELETE", undefined, TOKEN, { "if-match": e1 })).status, 412);
    const now = await getJson(u);
    equal(now.body.egressPerGiB, 0.07);
    equal(now.res.headers.get("etag"), e2);

    const ok1 = await send(u, "PATCH", { egressPerGiB: 0.06 }, TOKEN, { "if-match": e2 });
    equal(ok1.status, 200);
    await ok1.body?.cancel();
    // Create-only: If-None-Match: * refuses an existing record, accepts a new one.
    equal((await send(u, "PUT", AWS, TOKEN, { "if-none-match": "*" })).status, 412);
    equal(
      (await send(`${svc.url}/providers/new`, "PUT", AWS, TOKEN, { "if-none-match": "*" })).status,
      201,
    );
    // If-Match on an absent record fails.
    equal(
      (await send(`${svc.url}/providers/nope`, "PUT", AWS, TOKEN, { "if-match": "*" })).status,
      412,
    );

    const cur = (await getJson(u)).res.headers.get("etag")!;
    const cond = await fetch(u, { headers: { "if-none-match": cur } });
    equal(cond.status, 304);
    equal(cond.headers.get("etag"), cur);
  });
});

/** Sends a PUT head declaring a large body, sends no body, and answers the status line. */
async function headOnly(port: number, auth: string | null): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const head = `PUT /providers/aws HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n` +
      `content-length: 1000000\r\n${auth === null ? "" : `authorization: ${auth}\r\n`}\r\n`;
    await conn.write(new TextEncoder().encode(head));
    const buf = new Uint8Array(4096);
    const timer = setTimeout(() => conn.close(), 10_000);
    const n = await conn.read(buf).catch(() => null);
    clearTimeout(timer);
    return n === null ? "(no answer: the server waited for the body)" : new TextDecoder().decode(
      buf.subarray(0, n),
    ).split("\r\n")[0];
  } finally {
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}

Deno.test("price API: 401 and 403 come before the body is read", async () => {
  await withService(["--admin-token", TOKEN], async (svc) => {
    equal(await headOnly(svc.port, null), "HTTP/1.1 401 Unauthorized");
    equal(await headOnly(svc.port, "Bearer wrong"), "HTTP/1.1 401 Unauthorized");
    const r = await send(`${svc.url}/providers/aws`, "PUT", AWS, null);
    equal(r.status, 401);
    equal(r.headers.get("www-authenticate"), 'Bearer realm="nearcast"');
    await r.body?.cancel();
    equal((await getJson(`${svc.url}/providers/aws`)).res.status, 404, "nothing was written");
  });
  await withService([], async (svc) => {
    equal(await headOnly(svc.port, `Bearer ${TOKEN}`), "HTTP/1.1 403 Forbidden");
    const r = await send(`${svc.url}/providers/aws`, "DELETE", undefined, TOKEN);
    equal(r.status, 403);
    match(await r.text(), /--admin-token/);
  });
});

Deno.test("price API: bad bodies get 400 naming the field, and change nothing", async () => {
  await withService(["--admin-token", TOKEN], async (svc) => {
    const u = `${svc.url}/providers/aws`;
    equal((await send(u, "PUT", AWS, TOKEN)).status, 201);
    const before = (await getJson(u)).body;
    const cases: [string, unknown, string, RegExp][] = [
      ["PUT", { ...AWS, egressPerGiB: -1 }, "egressPerGiB", />= 0: received -1/],
      ["PUT", { ...AWS, serverPerHour: "1" }, "serverPerHour", /finite number/],
      ["PUT", { egressPerGiB: 1, currency: "USD" }, "serverPerHour", /required/],
      ["PUT", { ...AWS, currency: "usd" }, "currency", /ISO 4217/],
      ["PUT", { ...AWS, currency: "DOLLAR" }, "currency", /three uppercase letters/],
      ["PUT", { ...AWS, colour: "red" }, "colour", /unknown field/],
      ["PUT", { ...AWS, name: "gcp" }, "name", /must be "aws"/],
      ["PUT", { ...AWS, capacityGiBPerHour: 0 }, "capacityGiBPerHour", /> 0/],
      ["PUT", { ...AWS, regions: { eu: { egressPerGiB: -2 } } }, "regions.eu.egressPerGiB", />= 0/],
      ["PUT", { ...AWS, regions: { eu: { tax: 1 } } }, "regions.eu.tax", /unknown field/],
      ["PUT", { ...AWS, regions: { "bad region": {} } }, "regions.bad region", /region name/],
      ["PUT", [1, 2], "body", /JSON object/],
      ["PUT", "{not json", "body", /not JSON/],
      ["PATCH", { egressPerGiB: null }, "egressPerGiB", /required/],
      ["PATCH", { currency: 1 }, "currency", /ISO 4217/],
      ["PATCH", [], "body", /merge patch must be a JSON object/],
    ];
    for (const [method, body, field, message] of cases) {
      const r = await send(u, method, body, TOKEN);
      const j = await r.json();
      equal(r.status, 400, `${method} ${JSON.stringify(body)}: ${JSON.stringify(j)}`);
      equal(j.field, field, JSON.stringify(j));
      match(j.error, message);
    }
    deepStrictEqual((await getJson(u)).body, before, "no bad body changed the record");

    const bad = await send(`${svc.url}/providers/a%20b`, "PUT", AWS, TOKEN);
    equal(bad.status, 400);
    equal((await bad.json()).field, "name");
    const long = await send(`${svc.url}/providers/${"x".repeat(64)}`, "PUT", AWS, TOKEN);
    equal(long.status, 400);
    await long.body?.cancel();
    const plain = await send(u, "PATCH", "{}", TOKEN, { "content-type": "text/plain" });
    equal(plain.status, 415);
    await plain.body?.cancel();
    const big = await send(u, "PUT", { ...AWS, pad: "x".repeat(100_000) }, TOKEN);
    equal(big.status, 413);
    ok(big.headers.has("nearcast-price-version"), "every answer carries the version");
    await big.body?.cancel();
  });
});

Deno.test("price API: unknown routes 404, other methods 405 with Allow, read routes are open", async () => {
  await withService(["--admin-token", TOKEN], async (svc) => {
    const nf = await fetch(`${svc.url}/nothing`);
    equal(nf.status, 404);
    await nf.body?.cancel();
    const m = await fetch(`${svc.url}/providers`, { method: "POST", body: "{}" });
    equal(m.status, 405);
    equal(m.headers.get("allow"), "GET, HEAD");
    await m.body?.cancel();
    const m2 = await fetch(`${svc.url}/providers/aws`, { method: "POST", body: "{}" });
    equal(m2.status, 405);
    equal(m2.headers.get("allow"), "GET, HEAD, PUT, PATCH, DELETE");
    await m2.body?.cancel();
    const head = await fetch(`${svc.url}/prices`, { method: "HEAD" });
    equal(head.status, 200);
    ok(head.headers.get("etag"));
  });
});

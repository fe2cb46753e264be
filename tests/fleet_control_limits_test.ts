/**
 * The DNS server's control API under hostile clients, with real processes under
 * `ulimit -n 1024`: 1,100 idle connections, slowloris heads, an unauthenticated 300 MB chunked
 * PUT (401 before the body is read), an oversize authenticated body (413 while reading), and
 * the 401/403 split.
 */
import { equal, ok } from "node:assert/strict";
import {
  chunkedUpload,
  closedWithin,
  limitedDns,
  openIdle,
  rssBytes,
  sleep,
  withServer,
} from "./_limits.ts";

const TOKEN = "control-limits-token";
const MiB = 1024 * 1024;

function dns(extra: string[] = []) {
  return limitedDns(["--admin-token", TOKEN, ...extra]);
}

async function call(url: string, init?: RequestInit) {
  const res = await fetch(url, init);
  await res.body?.cancel();
  return res;
}

Deno.test({
  name: "control limits: 1,100 idle connections under ulimit -n 1024 do not end the DNS server",
  sanitizeResources: false,
  async fn() {
    await withServer(await dns(), async (d, conns) => {
      conns.push(...await openIdle(d.port, 1100));
      await sleep(500);
      equal(d.p.exited(), null, `the DNS server exited:\n${d.p.output()}`);
      equal((await call(d.url + "/replicas")).status, 200);
      const closed = await Promise.all(conns.slice(0, 200).map((c) => closedWithin(c, 2000)));
      ok(closed.filter(Boolean).length >= 100, `closed ${closed.filter(Boolean).length}/200`);
      const listener = (await (await fetch(d.url + "/replicas")).json()).listener;
      equal(listener.maxConns, 512);
      ok(listener.evicted >= 100 && listener.open <= 512, JSON.stringify(listener));
    });
  },
});

Deno.test({
  name: "control limits: slowloris heads are closed after --header-timeout",
  sanitizeResources: false,
  async fn() {
    await withServer(await dns(["--header-timeout", "1s"]), async (d, conns) => {
      conns.push(...await openIdle(d.port, 100, "PUT /replicas/x/held HTTP/1.1\r\nHost: x\r\n"));
      const closed = await Promise.all(conns.map((c) => closedWithin(c, 15_000)));
      equal(closed.filter((x) => !x).length, 0, "some slowloris connections stayed open");
      equal((await call(d.url + "/servers")).status, 200);
      const listener = (await (await fetch(d.url + "/replicas")).json()).listener;
      ok(listener.headerTimeouts >= 100, JSON.stringify(listener));
    });
  },
});

Deno.test({
  name: "control limits: credentials before bodies (401), bodies capped while read (413), 403",
  sanitizeResources: false,
  async fn() {
    await withServer(await dns(), async (d) => {
      const before = rssBytes(d.p.pid);
      const put = (auth: string) =>
        `PUT /replicas/x1/held HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n\r\n`;
      const anon = await chunkedUpload(d.port, put(""), 300 * MiB);
      equal(anon.status, 401);
      ok(anon.sent < 64 * MiB, `sent ${anon.sent} bytes before the 401`);
      const wrong = await chunkedUpload(d.port, put("Authorization: Bearer nope\r\n"), 300 * MiB);
      equal(wrong.status, 401);
      const reg = (auth: string) =>
        `POST /register HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n\r\n`;
      const big = await chunkedUpload(d.port, reg(`Authorization: bearer ${TOKEN}\r\n`), 300 * MiB);
      equal(big.status, 413);
      ok(big.sent < 64 * MiB, `sent ${big.sent} bytes before the 413`);
      const grew = rssBytes(d.p.pid) - before;
      console.log(`control: 401 after ${anon.sent} bytes, 413 after ${big.sent}, RSS +${grew}`);
      ok(grew < 64 * MiB, `RSS grew by ${grew} bytes`);

      // A valid credential without the right is 403: a session token on an admin route or on
      // another replica's route.
      const register = async (id: string) => {
        const res = await fetch(d.url + "/register", {
          method: "POST",
          headers: { authorization: `Bearer ${TOKEN}` },
          body: JSON.stringify({ id, address: "127.0.0.99", port: 1 }),
        });
        equal(res.status, 200);
        return (await res.json()).token as string;
      };
      const t1 = await register("x1");
      await register("x2");
      const as = (token: string) => ({ authorization: `Bearer ${token}` });
      const held = JSON.stringify({ paths: ["/a"] });
      equal(
        (await call(d.url + "/replicas/x1/held", { method: "PUT", headers: as(t1), body: held }))
          .status,
        200,
      );
      equal(
        (await call(d.url + "/replicas/x2/held", { method: "PUT", headers: as(t1), body: held }))
          .status,
        403,
      );
      equal(
        (await call(d.url + "/replicas/x2/held", { method: "PUT", headers: as(TOKEN), body: held }))
          .status,
        403,
      );
      equal(
        (await call(d.url + "/replicas/x2", { method: "DELETE", headers: as(t1) })).status,
        403,
      );
      const body = JSON.stringify({ id: "x3", address: "127.0.0.99", port: 1 });
      equal(
        (await call(d.url + "/register", { method: "POST", headers: as(t1), body })).status,
        403,
      );
      const anonReg = await call(d.url + "/register", { method: "POST", body });
      equal(anonReg.status, 401);
      equal(anonReg.headers.get("www-authenticate"), 'Bearer realm="nearcast"');
    });
  },
});

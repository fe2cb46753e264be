/**
 * End-to-end: a stale copy stands in for an origin that drops the connection (before or in
 * the body) or is unreachable, within `--stale-on-error` past expiry (default 1h; 0 turns it
 * off), logged, with a correct `Age`; never past must-revalidate, proxy-revalidate or
 * no-cache; `stale-if-error` (RFC 5861), when present, sets the window.
 */
import { deepStrictEqual as assertEquals, equal, ok } from "node:assert/strict";
import { rawResponse, startRawOrigin } from "./_http_raw_origin.ts";
import { startReplica } from "./_http_replica.ts";

Deno.test("http stale on error: origin dropping connections, then unreachable", async (t) => {
  const routes: Record<string, [string, string][]> = {
    "/plain": [["cache-control", "max-age=0"]],
    "/cut": [["cache-control", "max-age=0"]],
    "/aged": [["cache-control", "max-age=0"], ["age", "100"]],
    "/too-old": [["cache-control", "max-age=0"], ["age", "7200"]],
    "/sie-long": [["cache-control", "max-age=0, stale-if-error=86400"], ["age", "7200"]],
    "/sie-short": [["cache-control", "max-age=0, stale-if-error=50"], ["age", "100"]],
    "/must-revalidate": [["cache-control", "max-age=0, must-revalidate"]],
    "/proxy-revalidate": [["cache-control", "max-age=0, proxy-revalidate"]],
    "/no-cache": [["cache-control", "no-cache"]],
  };
  let dropping = false;
  const origin = startRawOrigin((r) => {
    const headers = routes[r.path] ?? [];
    if (!dropping) return rawResponse("200 OK", headers, `body of ${r.path}`);
    if (r.path === "/cut") {
      // Headers and 3 of 100 promised bytes, then the connection closes.
      return { text: "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc", close: true };
    }
    return null; // closes the connection without answering
  });
  const dflt = await startReplica(["-o", origin.url, "--id", "soe", "--index", "ts"]);
  const off = await startReplica([
    "-o",
    origin.url,
    "--id",
    "soe0",
    "--index",
    "ts",
    "--stale-on-error",
    "0",
  ]);
  const get = async (base: string, path: string) => {
    const res = await fetch(base + path);
    const body = await res.text();
    return {
      status: res.status,
      x: res.headers.get("x-cache"),
      age: res.headers.get("age"),
      warning: res.headers.get("warning"),
      body,
    };
  };
  const check = async (when: string) => {
    for (const path of ["/plain", "/aged", "/sie-long"]) {
      const r = await get(dflt.url, path);
      assertEquals([r.status, r.x, r.body], [200, "STALE", `body of ${path}`], `${when} ${path}`);
      equal(r.warning, null);
    }
    const aged = Number((await get(dflt.url, "/aged")).age);
    ok(aged >= 100 && aged < 130, `Age of /aged: ${aged}`);
    const sieAge = Number((await get(dflt.url, "/sie-long")).age);
    ok(sieAge >= 7200 && sieAge < 7230, `Age of /sie-long: ${sieAge}`);
    for (
      const path of ["/too-old", "/sie-short", "/must-revalidate", "/proxy-revalidate", "/no-cache"]
    ) {
      equal((await get(dflt.url, path)).status, 502, `${when} ${path}`);
    }
    // --stale-on-error 0: only stale-if-error lets a stale copy stand in.
    equal((await get(off.url, "/plain")).status, 502, `${when} off /plain`);
    equal((await get(off.url, "/sie-long")).x, "STALE", `${when} off /sie-long`);
  };
  try {
    for (const path of Object.keys(routes)) {
      for (const r of [dflt, off]) equal((await get(r.url, path)).status, 200, path);
    }
    await t.step("origin closes the connection without answering", async () => {
      dropping = true;
      await check("dropping");
      await dflt.waitFor(
        /origin failure: GET \/plain: origin unreachable: .*; served the stale copy \(age \d+ s, \d+ s past expiry\)/,
        5000,
      );
    });
    await t.step("origin cuts the body short", async () => {
      const r = await get(dflt.url, "/cut");
      assertEquals([r.status, r.x, r.body], [200, "STALE", "body of /cut"]);
      await dflt.waitFor(
        /origin failure: GET \/cut: origin body failed.*served the stale copy/,
        5000,
      );
    });
    await t.step("origin unreachable", async () => {
      await origin.close();
      await check("unreachable");
    });
  } finally {
    await dflt.close();
    await off.close();
    await origin.close();
  }
});

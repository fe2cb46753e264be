/**
 * End-to-end: a request forwarded to the origin that fails because the origin closed its
 * keep-alive connections is retried once on a new connection (fills and forwarded idempotent
 * methods), and a forwarded failure that remains is logged with its cause; a 504 to a request
 * that allows only cached answers asked no origin and is not logged as one.
 */
import { deepStrictEqual as assertEquals, equal, ok } from "node:assert/strict";
import { rawResponse, startRawOrigin } from "./_http_raw_origin.ts";
import { startReplica } from "./_http_replica.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("http origin retry: keep-alive connections closed by the origin", async (t) => {
  // Each connection answers its first request only; later ones on it are dropped, as an origin
  // closing idle keep-alive connections (its timeout, a restart) does to a reusing client.
  const origin = startRawOrigin(async (r) => {
    if (r.path.startsWith("/never")) return null;
    if (r.onConn >= 2) return null;
    if (r.path.startsWith("/warm")) await sleep(200); // overlap: one connection each
    return rawResponse("200 OK", [["cache-control", "no-store"]], `body of ${r.path}`);
  });
  const replica = await startReplica(["-o", origin.url, "--id", "retry", "--index", "ts"]);
  /** Leaves several idle keep-alive connections in the replica's pool to the origin. */
  const warm = async () => {
    const res = await Promise.all(
      [1, 2, 3, 4].map((i) => fetch(`${replica.url}/warm${i}?${Math.random()}`)),
    );
    for (const r of res) equal((await r.text()).startsWith("body of /warm"), true);
  };
  try {
    await t.step(
      "a fill whose pooled connections are all closed succeeds on a new one",
      async () => {
        await warm();
        const res = await fetch(`${replica.url}/page`);
        assertEquals([res.status, await res.text()], [200, "body of /page"]);
        await replica.waitFor(/origin: GET \/page: .*; retrying once on a new connection/, 5000);
      },
    );
    await t.step("so does a forwarded DELETE (idempotent, no body)", async () => {
      await warm();
      const res = await fetch(`${replica.url}/thing`, { method: "DELETE" });
      assertEquals([res.status, await res.text()], [200, "body of /thing"]);
      await replica.waitFor(/origin: DELETE \/thing: .*; retrying once on a new connection/, 5000);
    });
    await t.step(
      "a 504 to only-if-cached asked no origin and is not logged as a failure",
      async () => {
        const res = await fetch(`${replica.url}/absent`, {
          headers: { "cache-control": "only-if-cached" },
        });
        equal(res.status, 504);
        ok((await res.text()).includes("allows only cached answers"));
        // Lines come in order: once the next failure is logged, a line for /absent would be there.
        const bad = await fetch(`${replica.url}/never-a`);
        equal(bad.status, 502);
        await bad.body?.cancel();
        await replica.waitFor(/origin failure: 502 GET \/never-a/, 5000);
        const logged = replica.lines.filter((l) => l.includes("/absent"));
        assertEquals(logged, []);
      },
    );
    await t.step("a failure that remains is a 502 logged with its cause", async () => {
      const res = await fetch(`${replica.url}/never`);
      equal(res.status, 502);
      ok((await res.text()).includes("connection closed before message completed"));
      await replica.waitFor(
        /origin failure: 502 GET \/never: origin unreachable: fetch failed: .*connection closed before message completed/,
        5000,
      );
    });
  } finally {
    await replica.close();
    await origin.close();
  }
});

/**
 * A replica says nothing on its own for requests with a body: the listener wraps such a
 * request's body to watch its progress, and copying the request (`new Request(req, ...)`)
 * made Deno print a warning about `request.signal`'s legacy abort behaviour on standard error
 * for every one of them (seen in `bench:upload` and in every node's log).
 */
import { equal, ok } from "node:assert/strict";
import { startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";

Deno.test("replica: requests with a body print no runtime warning", async () => {
  const origin = await startOrigin({
    "/a.txt": { body: "a", headers: { "cache-control": "max-age=60" } },
  });
  const replica = await startReplica(["-o", origin.url, "--admin-token", "t"]);
  try {
    for (const method of ["POST", "PUT", "DELETE"]) {
      const res = await fetch(`${replica.url}/_cdn/upload`, { method, body: "x".repeat(1000) });
      await res.body?.cancel();
      ok(res.status >= 400, `${method}: ${res.status}`);
    }
    const purge = await fetch(`${replica.url}/_cdn/purge`, {
      method: "POST",
      headers: { authorization: "Bearer wrong" },
      body: JSON.stringify({ url: "/a.txt" }),
    });
    await purge.body?.cancel();
    equal(purge.status, 401);
    // The warning is printed while the request is handled; a later request flushes past it.
    equal(await (await fetch(`${replica.url}/a.txt`)).text(), "a");
    await new Promise((r) => setTimeout(r, 200));
    const noisy = replica.lines.filter((l) => /legacy behavior|request\.signal/.test(l));
    equal(noisy.length, 0, noisy.join("\n"));
  } finally {
    await replica.close();
    await origin.close();
  }
});

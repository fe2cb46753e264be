/**
 * The replica process's one route table (lib/http/routes.ts) drives a real replica: every method
 * it lists that needs the admin token, a node signature or the DNS session is refused 401
 * without one (before a large body is read), and a method it does not list gets 405 with the
 * table's `Allow`.
 */
import { deepStrictEqual, equal } from "node:assert/strict";
import { REPLICATION_ROUTES, replicationRoute } from "../lib/replication/node.ts";
import { REPLICA_ROUTES } from "../lib/http/routes.ts";
import { startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";

const METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"];

Deno.test("replication routes: the table names each path once and finds prefixed names", () => {
  for (const r of REPLICATION_ROUTES) {
    equal(replicationRoute(r.prefix ? r.path + "x" : r.path), r, r.path);
  }
  equal(replicationRoute("/_cdn/files/"), null); // a prefix needs a name after it
  equal(replicationRoute("/_cdn/purge"), null); // the replica's own API, not replication
  const paths = REPLICA_ROUTES.map((r) => r.path);
  equal(new Set(paths).size, paths.length, `a path stands twice: ${paths}`);
});

Deno.test({
  name: "replica routes: auth and methods of every route of the one table, on a real replica",
  sanitizeResources: false,
  async fn() {
    const origin = await startOrigin();
    const data = await Deno.makeTempDir();
    // --announce to a closed port: the agent's routes exist while it retries the registration.
    const replica = await startReplica([
      "-o",
      origin.url,
      "--data",
      data,
      "--admin-token",
      "tok",
      "--announce",
      "127.0.0.1:9",
    ]);
    try {
      for (const route of REPLICA_ROUTES) {
        const path = route.prefix ? route.path + "some-name" : route.path;
        const allow = Object.keys(route.methods).join(", ");
        for (const method of METHODS) {
          const who = route.methods[method];
          if (who === "open") continue; // answered; their content has tests of its own
          // A large body that must not be read when the caller is refused.
          const body = ["POST", "PUT", "PATCH"].includes(method)
            ? new Uint8Array(4 * 1024 * 1024)
            : undefined;
          const res = await fetch(replica.url + path, { method, body });
          await res.body?.cancel();
          if (who === undefined) {
            deepStrictEqual(
              [res.status, res.headers.get("allow")],
              [405, allow],
              `${method} ${path}`,
            );
          } else {
            equal(res.status, 401, `${method} ${path} without a credential (${who})`);
          }
        }
      }
      const wrong = await fetch(replica.url + "/_cdn/upload", {
        method: "POST",
        headers: { authorization: "bearer wrong" },
        body: "x",
      });
      await wrong.body?.cancel();
      equal(wrong.status, 401, "a wrong admin token");
    } finally {
      await replica.close();
      await origin.close();
      await Deno.remove(data, { recursive: true });
    }
  },
});

/**
 * The control API's route table (CONTROL_ROUTES) on a real DNS server: each route answers only
 * the method the table states (405 with `Allow` otherwise), a route that needs a credential is
 * refused 401 without one before its body is read, and an unknown path is 404 naming the table.
 */
import { deepStrictEqual, equal, match } from "node:assert/strict";
import { CONTROL_ROUTES } from "../lib/fleet/dns/control.ts";
import { limitedDns } from "./_limits.ts";

const METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"];

/** A concrete path for a route's shown path (`ID`, `PATH` filled in, the query dropped). */
function concrete(shown: string): string {
  return shown.split("?")[0].replace("ID", "r1").replace("PATH", "some/file.bin");
}

Deno.test({
  name: "control routes: methods and auth of every route, from the table, on a real DNS server",
  sanitizeResources: false,
  async fn() {
    const d = await limitedDns(["--admin-token", "control-routes-token"]);
    try {
      const base = d.url;
      for (const route of CONTROL_ROUTES) {
        const path = concrete(route.path);
        const allow = CONTROL_ROUTES.filter((r) => r.pattern.test(path)).map((r) => r.method);
        for (const method of METHODS) {
          const body = ["POST", "PUT", "PATCH"].includes(method)
            ? new Uint8Array(1024 * 1024)
            : undefined;
          const res = await fetch(base + path, { method, body });
          const text = await res.text();
          if (!allow.includes(method)) {
            deepStrictEqual(
              [res.status, res.headers.get("allow")],
              [405, allow.join(", ")],
              `${method} ${path}: ${text}`,
            );
          } else if (method === route.method && route.auth !== "open") {
            equal(res.status, 401, `${method} ${path} without a credential: ${text}`);
          }
        }
      }
      const unknown = await fetch(base + "/nope");
      equal(unknown.status, 404);
      match(await unknown.text(), /PUT \/replicas\/ID\/held/);
    } finally {
      await d.p.stop();
    }
  },
});

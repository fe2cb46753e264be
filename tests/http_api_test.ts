/**
 * The replica's `/_cdn/` route table (lib/http/api.ts), in-process: every route answers the
 * methods and requires the auth the table states (405 for a method it does not list, then
 * 401/403 for a listed one without the right), unknown routes list
 * the table. The API over a real socket is in http_admin_test.ts.
 */
import { deepStrictEqual, equal, match } from "node:assert/strict";
import { API_ROUTES, type ApiOptions, createApi } from "../lib/http/api.ts";
import { httpParts } from "./_http_parts.ts";

const METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"];

function api(adminToken: string | null, extraApi?: ApiOptions["extraApi"]) {
  const { cache, metrics, respond } = httpParts({ cacheVia: "v" });
  return createApi({
    cache,
    metrics,
    respond,
    id: "t",
    originBase: "http://127.0.0.1:9",
    adminToken,
    extraApi,
    now: Date.now,
  });
}

async function call(
  handler: ReturnType<typeof api>,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
) {
  const res = await handler(new Request(`http://r${path}`, { method, headers, body }), path);
  return { status: res.status, allow: res.headers.get("allow"), text: await res.text() };
}

Deno.test("api: every route answers its methods with its auth, per the table", async () => {
  const withToken = api("tok");
  const without = api(null);
  const bearer = { authorization: "Bearer tok" };
  for (const route of API_ROUTES) {
    for (const method of METHODS) {
      const admin = Object.values(route.methods).includes("admin");
      const body = method === "POST" ? '{"url":"/x"}' : undefined;
      const r = await call(withToken, method, route.path, admin ? bearer : {}, body);
      if (method in route.methods) {
        equal(r.status < 400, true, `${method} ${route.path}: ${r.status} ${r.text}`);
      } else {
        deepStrictEqual(
          [r.status, r.allow],
          [405, Object.keys(route.methods).join(", ")],
          `${method} ${route.path}`,
        );
      }
      // A method the route does not list is 405 for anyone (above); auth is per listed method.
      if (!admin || !(method in route.methods)) continue;
      equal(
        (await call(withToken, method, route.path)).status,
        401,
        `${method} ${route.path} no token`,
      );
      const wrong = await call(withToken, method, route.path, { authorization: "Bearer no" });
      equal(wrong.status, 401, `${method} ${route.path} wrong token`);
      const off = await call(without, method, route.path, bearer);
      deepStrictEqual([off.status, /disabled/.test(off.text)], [403, true]);
    }
  }
});

Deno.test("api: an unknown route is 404 and names the table's routes", async () => {
  const r = await call(api(null), "GET", "/_cdn/nope");
  equal(r.status, 404);
  for (const route of API_ROUTES) match(r.text, new RegExp(route.path));
});

Deno.test("api: extraApi routes are asked first", async () => {
  const handler = api(
    null,
    (_req, path) => path === "/_cdn/health" ? new Response("mine", { status: 299 }) : null,
  );
  const r = await call(handler, "GET", "/_cdn/health");
  deepStrictEqual([r.status, r.text], [299, "mine"]);
});

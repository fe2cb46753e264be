/**
 * The pricing service's HTTP API: the route table and one handler.
 *
 * | route | methods |
 * | --- | --- |
 * | `/providers` | `GET` (every record) |
 * | `/providers/NAME` | `GET`; `PUT` (full record: 201 created, 200 replaced); `PATCH` (JSON merge patch, RFC 7396); `DELETE` (204) |
 * | `/prices` | `GET` (snapshot, long poll, SSE: `prices.ts`) |
 *
 * Every answer carries `Nearcast-Price-Version` (the global version); a record's answers carry
 * its `ETag`, the collection's the global version. `If-Match` on PUT/PATCH/DELETE and
 * `If-None-Match: *` on PUT are honoured (412); `If-None-Match` on GET answers 304.
 * Mutations need `Authorization: Bearer TOKEN` (checked before the body is read); bodies are
 * capped at {@link MAX_BODY_BYTES}; a bad body gets 400 `{"error", "field"}`.
 *
 * @module
 */
import { checkBearer } from "../common/auth.ts";
import { BodyTooLarge, readBodyJson, tooLargeResponse } from "../common/body.ts";
import { allowOf, findRoute, type Route } from "../common/routes.ts";
import { type Exposition, metricsResponse } from "../common/prometheus.ts";
import { PriceMetrics, rootPage } from "./metrics.ts";
import { toPrice } from "./db.ts";
import { checkProvider, fieldOf, mergePatch, NAME_RE, type ProviderFields } from "./record.ts";
import { type PriceWatch, servePrices } from "./prices.ts";
import { error, etag, json, tagMatches, VERSION_HEADER } from "./_respond.ts";

/** Largest request body: a record with {@link MAX_REGIONS} regions fits well within it. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Most providers the service holds (a PUT creating one more gets 409). */
export const MAX_PROVIDERS = 1000;

/** The routes (other methods get 405 with `Allow`). */
export const PRICE_ROUTES: readonly Route[] = [
  { path: "/providers", prefix: false, methods: { GET: "open", HEAD: "open" } },
  {
    path: "/providers/",
    prefix: true,
    methods: { GET: "open", HEAD: "open", PUT: "admin", PATCH: "admin", DELETE: "admin" },
  },
  { path: "/prices", prefix: false, methods: { GET: "open", HEAD: "open" } },
  { path: "/metrics", prefix: false, methods: { GET: "open", HEAD: "open" } },
  { path: "/", prefix: false, methods: { GET: "open", HEAD: "open" } },
];

/** What the handler needs. */
export interface PriceApiOptions {
  watch: PriceWatch;
  /** Bearer token for mutations; null: mutations are refused with 403. */
  adminToken: string | null;
  log?: (line: string) => void;
  /** Writes the listener's and the process's figures into `/metrics`. */
  moreMetrics?: (e: Exposition) => void;
}

/** The request handler of the pricing service. */
export function priceHandler(o: PriceApiOptions): (req: Request) => Promise<Response> {
  const { watch } = o;
  const db = watch.db;
  const log = o.log ?? (() => {});
  const metrics = new PriceMetrics();

  function current(name: string): string | null {
    const r = db.get(name);
    return r === undefined ? null : etag(r.version);
  }

  /** 412 when the request's preconditions fail for `name` (null: they hold). */
  function preconditions(req: Request, name: string): Response | null {
    const tag = current(name);
    const im = req.headers.get("if-match");
    if (im !== null && !tagMatches(im, tag)) {
      return error(412, `If-Match: ${name} is ${tag ?? "absent"}`, db.version);
    }
    const inm = req.headers.get("if-none-match");
    if (
      inm !== null && req.method !== "GET" && req.method !== "HEAD" && tagMatches(inm, tag, true)
    ) {
      return error(412, `If-None-Match: ${name} exists (${tag})`, db.version);
    }
    return null;
  }

  function badBody(problems: string[]): Response {
    return json(400, {
      error: problems.join("; "),
      field: fieldOf(problems[0]),
      problems,
    }, db.version);
  }

  function record(status: number, name: string, extra: Record<string, string> = {}): Response {
    const r = db.get(name)!;
    return json(status, toPrice(r), db.version, { etag: etag(r.version), ...extra });
  }

  function write(req: Request, name: string, fields: ProviderFields): Response {
    const fail = preconditions(req, name);
    if (fail !== null) return fail;
    if (db.get(name) === undefined && db.size >= MAX_PROVIDERS) {
      return error(409, `at most ${MAX_PROVIDERS} providers`, db.version);
    }
    const { created } = db.put(name, fields);
    watch.changed();
    log(`price: ${created ? "created" : "replaced"} ${name} (version ${db.version})`);
    return record(created ? 201 : 200, name, created ? { location: `/providers/${name}` } : {});
  }

  async function mutate(req: Request, name: string): Promise<Response> {
    if (req.method === "DELETE") {
      if (db.get(name) === undefined) return error(404, `no provider ${name}`, db.version);
      const fail = preconditions(req, name);
      if (fail !== null) return fail;
      db.delete(name);
      watch.changed();
      log(`price: deleted ${name} (version ${db.version})`);
      return json(204, null, db.version);
    }
    let body: unknown;
    try {
      body = await readBodyJson(req, MAX_BODY_BYTES, "body");
    } catch (e) {
      if (e instanceof BodyTooLarge) return tooLargeResponse(e);
      if (e instanceof SyntaxError) return error(400, e.message, db.version, "body");
      throw e;
    }
    const problems: string[] = [];
    if (req.method === "PUT") {
      const fields = checkProvider(body, "", problems, name);
      return fields === undefined ? badBody(problems) : write(req, name, fields);
    }
    // PATCH: merge into the current record, then check the result as a whole.
    const type = (req.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (type !== "application/merge-patch+json" && type !== "application/json") {
      return error(
        415,
        "PATCH takes application/merge-patch+json (or application/json)",
        db.version,
      );
    }
    const cur = db.get(name);
    if (cur === undefined) return error(404, `no provider ${name}`, db.version);
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      return error(400, "body: a merge patch must be a JSON object", db.version, "body");
    }
    const fields = checkProvider(mergePatch(cur.fields, body), "", problems, name);
    return fields === undefined ? badBody(problems) : write(req, name, fields);
  }

  return async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const res = await answer(req, url);
    metrics.count(findRoute(PRICE_ROUTES, url.pathname)?.path ?? "none", req.method, res.status);
    return res;
  };

  async function answer(req: Request, url: URL): Promise<Response> {
    const route = findRoute(PRICE_ROUTES, url.pathname);
    if (route === null) return error(404, `no such route: ${url.pathname}`, db.version);
    const auth = route.methods[req.method];
    if (auth === undefined) {
      const res = error(405, `${req.method} not allowed on ${route.path}`, db.version);
      res.headers.set("allow", allowOf(route));
      return res;
    }
    if (auth === "admin") {
      const denied = checkBearer(
        req,
        o.adminToken,
        "mutations are disabled: start with --admin-token",
      );
      if (denied !== null) {
        await req.body?.cancel().catch(() => {});
        denied.headers.set(VERSION_HEADER, String(db.version));
        return denied;
      }
    }
    const res = await dispatch(req, url, route);
    // The shared 413 carries no version: every answer of the API does.
    if (!res.headers.has(VERSION_HEADER)) res.headers.set(VERSION_HEADER, String(db.version));
    return req.method === "HEAD" ? new Response(null, res) : res;
  }

  /** Answers an allowed, authorized request. */
  async function dispatch(req: Request, url: URL, route: Route): Promise<Response> {
    if (route.path === "/prices") return await servePrices(req, url, watch);
    if (route.path === "/") return rootPage(req, db);
    if (route.path === "/metrics") {
      return metricsResponse(metrics.text(db, o.moreMetrics ?? (() => {})));
    }
    const inm = req.headers.get("if-none-match");
    if (route.path === "/providers") {
      const tag = etag(db.version);
      if (inm !== null && tagMatches(inm, tag, true)) {
        return json(304, null, db.version, { etag: tag });
      }
      const all = { version: String(db.version), providers: db.all().map(toPrice) };
      return json(200, all, db.version, { etag: tag });
    }
    let name: string;
    try {
      name = decodeURIComponent(url.pathname.slice(route.path.length));
    } catch {
      return error(400, "name: not valid percent-encoding", db.version, "name");
    }
    if (!NAME_RE.test(name)) {
      return error(
        400,
        `name: must match ${NAME_RE.source}: received ${JSON.stringify(name.slice(0, 80))}`,
        db.version,
        "name",
      );
    }
    if (req.method !== "GET" && req.method !== "HEAD") return await mutate(req, name);
    const r = db.get(name);
    if (r === undefined) return error(404, `no provider ${name}`, db.version);
    if (inm !== null && tagMatches(inm, etag(r.version), true)) {
      return json(304, null, db.version, { etag: etag(r.version) });
    }
    return record(200, name);
  }
}

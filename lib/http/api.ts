/**
 * The replica's own `/_cdn/` API, from one route table ({@link API_ROUTES}) stating each
 * route's path, methods and required auth: the dispatcher checks the auth first (401/403),
 * then the method (405 with `Allow`), then runs the route. Routes of `extraApi` (uploads and
 * replication, lib/replication/) are asked first and check their own.
 *
 * @module
 */

import { checkBearer } from "../common/auth.ts";
import { writeMemoryGauges } from "../common/process_metrics.ts";
import { Exposition, metricsResponse } from "../common/prometheus.ts";
import { statusResponse } from "../common/status_page.ts";
import { listCache } from "./cache_list.ts";
import { allowOf, type Route } from "../common/routes.ts";
import { BodyTooLarge, readBodyJson, tooLargeResponse } from "../common/body.ts";
import type { HttpCache } from "./cache.ts";
import type { Metrics } from "./metrics.ts";
import { applyPurge, type PurgeFanOut, type PurgeTarget, purgeTarget } from "./purge.ts";
import type { Responder } from "./respond.ts";

/** Prefix of the replica's own API. */
export const API_PREFIX = "/_cdn/";
/** Largest purge request body: a JSON object with one URL, prefix or key. */
export const MAX_PURGE_BODY = 16 * 1024;

/** Every route of the replica's own API (part of the replica's one table, `routes.ts`). */
export const API_ROUTES: readonly Route[] = [
  { path: "/_cdn/health", prefix: false, methods: { GET: "open", HEAD: "open" } },
  { path: "/_cdn/metrics", prefix: false, methods: { GET: "open", HEAD: "open" } },
  { path: "/_cdn/purge", prefix: false, methods: { POST: "admin" } },
  { path: "/_cdn/cache", prefix: false, methods: { GET: "admin", HEAD: "admin" } },
  { path: "/_cdn/", prefix: false, methods: { GET: "open", HEAD: "open" } },
];

/** Options of {@link createApi}. */
export interface ApiOptions {
  cache: HttpCache;
  metrics: Metrics;
  respond: Responder;
  /** Replica id and origin, shown by health. */
  id: string;
  originBase: string;
  /** Token of the admin routes; they answer 403 without one. */
  adminToken: string | null;
  /** More `/_cdn/` routes, asked first: a response, or null when not one of them. */
  extraApi?: (req: Request, path: string) => Response | Promise<Response> | null;
  /**
   * Pushes a purge applied here to the other members (signed node-to-node calls); how they
   * answered, or null when this node has no membership (no `--data`).
   */
  purgeMembers?: (t: PurgeTarget) => Promise<PurgeFanOut | null>;
  /** More health fields; `ready: false` makes health answer 503. */
  health?: () => { ready: boolean; [field: string]: unknown };
  /** Writes more metrics (the listener's counters, replication). */
  moreMetrics?: (e: Exposition) => void;
  now: () => number;
}

type Handler = (req: Request) => Response | Promise<Response>;

/** The API handler for a request whose target (path and query) starts with {@link API_PREFIX}. */
export function createApi(
  o: ApiOptions,
): (req: Request, url: string) => Response | Promise<Response> {
  const { cache, metrics, respond, adminToken, now } = o;
  const via = respond.via;
  const startedAt = now();

  async function purge(req: Request): Promise<Response> {
    const q = new URL(req.url).searchParams;
    let target: Record<string, unknown> = {};
    for (const name of ["url", "prefix", "key", "soft"]) {
      const v = q.get(name);
      if (v !== null) target[name] = v;
    }
    if (target.url === undefined && target.prefix === undefined && target.key === undefined) {
      try {
        target = await readBodyJson(req, MAX_PURGE_BODY, "purge body") as typeof target;
      } catch (e) {
        if (e instanceof BodyTooLarge) return tooLargeResponse(e);
        return respond.text(
          400,
          'purge body must be JSON: {"url": "/path"}, {"prefix": "/dir/"} or {"key": "K"}',
        );
      }
      if (typeof target !== "object" || target === null || Array.isArray(target)) {
        return respond.text(400, 'purge body must be a JSON object: {"url": "/path"}');
      }
    }
    const t = purgeTarget(target);
    if (typeof t === "string") return respond.text(400, t);
    const here = applyPurge(cache, metrics, t, now());
    const fan = o.purgeMembers === undefined ? null : await o.purgeMembers(t);
    const replicas: Record<string, number> = { [o.id]: here, ...fan?.purgedBy };
    const purged = Object.values(replicas).reduce((a, b) => a + b, 0);
    const body = fan === null ? { purged, replicas } : {
      purged,
      replicas,
      members: { asked: fan.asked, acknowledged: fan.acknowledged, failed: fan.failed },
    };
    return Response.json(body, { headers: { "cache-control": "no-store", via } });
  }

  function health(): Response {
    const more = o.health?.() ?? { ready: true };
    return Response.json({
      ...more,
      status: more.ready ? "ok" : "syncing",
      id: o.id,
      origin: o.originBase,
      entries: cache.count,
      usedBytes: cache.usedBytes,
      budgetBytes: cache.budget,
      uptimeSeconds: Math.floor((now() - startedAt) / 1000),
    }, { status: more.ready ? 200 : 503, headers: { "cache-control": "no-store", via } });
  }

  function metricsText(req: Request): Response {
    metrics.evictions = cache.evictions;
    const e = new Exposition("nearcast_http");
    metrics.write(e);
    e.gauge("cache_entries", "Entries in the cache.", cache.count);
    e.gauge("cache_bytes", "Bytes held by the cache index.", cache.usedBytes);
    e.gauge("cache_budget_bytes", "Cache byte budget.", cache.budget);
    writeMemoryGauges(e);
    o.moreMetrics?.(e);
    const res = metricsResponse(e.text(), req.method === "HEAD");
    res.headers.set("via", via);
    return res;
  }

  function cacheList(req: Request): Response {
    try {
      const page = listCache(cache, new URL(req.url).searchParams, now());
      return Response.json(page, { headers: { "cache-control": "no-store", via } });
    } catch (e) {
      if (e instanceof RangeError) return respond.text(400, e.message);
      throw e;
    }
  }

  function root(req: Request): Response {
    const more = o.health?.() ?? { ready: true };
    const state = {
      id: o.id,
      origin: o.originBase,
      status: more.ready ? "ok" : "syncing",
      entries: cache.count,
      usedBytes: cache.usedBytes,
      budgetBytes: cache.budget,
      uptimeSeconds: Math.floor((now() - startedAt) / 1000),
    };
    const links = [
      ["/_cdn/health", "health and state (JSON)"],
      ["/_cdn/metrics", "metrics (Prometheus text)"],
      ["/_cdn/cache?limit=100", "what this replica holds (JSON, admin token)"],
    ] as const;
    const res = statusResponse(req, {
      title: `Nearcast replica ${o.id}`,
      what: `A caching HTTP replica of ${o.originBase}: its own routes are under /_cdn/.`,
      state: Object.entries(state),
      links,
    }, { what: "nearcast replica", ...state, links: links.map(([href]) => href) });
    res.headers.set("via", via);
    return res;
  }

  const handlers: Record<string, Handler> = {
    "/_cdn/": root,
    "/_cdn/cache": cacheList,
    "/_cdn/health": health,
    "/_cdn/metrics": metricsText,
    "/_cdn/purge": purge,
  };
  const routes = new Map(API_ROUTES.map((r) => [r.path, { ...r, run: handlers[r.path] }]));
  const known = API_ROUTES.map((r) => r.path).join(", ");

  return function api(req: Request, url: string): Response | Promise<Response> {
    const path = url.split("?")[0];
    const extra = o.extraApi?.(req, path) ?? null;
    if (extra !== null) return extra;
    const route = routes.get(path);
    if (route === undefined) return respond.text(404, `no such API: ${path} (see ${known})`);
    const who = route.methods[req.method];
    if (who === undefined) {
      return respond.text(405, `use ${Object.keys(route.methods)[0]}`, [["allow", allowOf(route)]]);
    }
    if (who === "admin") {
      const denied = checkBearer(
        req,
        adminToken,
        `${path.slice(API_PREFIX.length)} is disabled: start the replica with --admin-token`,
      );
      if (denied !== null) return denied;
    }
    return route.run(req);
  };
}

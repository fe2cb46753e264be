/**
 * The proxy's request handler. A request is, in this order:
 *
 * - `CONNECT`: refused with 501 (no tunnels: HTTPS through this proxy is not supported yet);
 * - for the proxy itself (its own address, origin-form or absolute-form): `GET /_proxy/explain`
 *   (every server's score as JSON), else 404;
 * - already through this proxy (our `Via` token in it): 508 Loop Detected;
 * - for the CDN's name: routed to the server ranked first for the request's mode
 *   (`select.ts`); an idempotent request without a body whose server fails before answering
 *   is retried once on the next one;
 * - for another host: forwarded directly, or refused with 403 under `--other refuse`.
 *
 * @module
 */

import type { LimitedHandler } from "../common/http_server.ts";
import {
  clientResponse,
  exchange,
  type ExchangeContext,
  IDEMPOTENT,
  proxyText,
  readRequestFields,
  type RequestFields,
  upstreamRequest,
} from "./forward.ts";
import { formatMs, formatPrice, type Mode, type PriceLookup, priceOf, rank } from "./select.ts";
import type { ServerState } from "./server_state.ts";
import { newCounters, writeProxyMetrics } from "./metrics.ts";
import { Exposition, metricsResponse } from "../common/prometheus.ts";
import { writeMemoryGauges } from "../common/process_metrics.ts";
import { statusResponse } from "../common/status_page.ts";
import { UpstreamError } from "./upstream.ts";

/**
 * Largest request head (header names and values) accepted from a client: 32 KiB, nginx's
 * default (4 × 8 KiB). Deno's HTTP server itself answers 400 to heads of about 64 KiB and more.
 */
export const MAX_REQUEST_HEAD_BYTES = 32 * 1024;
/** The proxy's own routes. */
export const PROXY_ROUTES = ["/_proxy/", "/_proxy/explain", "/_proxy/metrics"];

/** What the handler needs. */
export interface HandlerOptions extends ExchangeContext {
  servers: () => readonly ServerState[];
  prices: PriceLookup;
  /** The pricing feed's state for explain (null without --price). */
  priceState: () => unknown;
  /** Where the server list came from, for explain. */
  listState: () => unknown;
  /** The client listener's counters, for explain. */
  listenerState?: () => unknown;
  /** Writes the client listener's metrics. */
  listenerMetrics?: (e: Exposition) => void;
  mode: Mode;
  maxExtraMs: number;
  pick: "best" | "p2c";
  other: "forward" | "refuse";
  /** Lower-case CDN host names (read per request: the node may report one later). */
  names: () => readonly string[];
  /** Whether `host:port` (lower case, as in a URL's `host`) is this proxy. */
  isSelf: (host: string, hostname: string, port: string) => boolean;
  /** Our `Via` entry, e.g. `1.1 nearcast-proxy-1a2b3c`. */
  via: string;
  random?: () => number;
}

/** The handler of the proxy's listener; see the module doc. */
export function createHandler(o: HandlerOptions): LimitedHandler & { explain(): unknown } {
  const random = o.random ?? Math.random;
  const counters = newCounters();
  const viaToken = o.via.split(" ")[1];
  const rankNow = () =>
    rank(o.servers(), {
      mode: o.mode,
      maxExtraMs: o.maxExtraMs,
      pick: o.pick,
      prices: o.prices,
      now: o.now(),
      random,
    });

  function explain(): unknown {
    const now = o.now();
    const r = rankNow();
    const rankOf = new Map(r.order.map((s, i) => [s, i + 1]));
    return {
      mode: o.mode,
      maxExtraMs: o.maxExtraMs,
      pick: o.pick,
      names: o.names(),
      other: o.other,
      choice: r.order[0]?.id ?? null,
      reason: r.order[0] === undefined ? null : r.reason(r.order[0]),
      panic: r.panic,
      serverList: o.listState(),
      upstream: { ...o.pool.stats },
      listener: o.listenerState?.() ?? null,
      prices: o.priceState(),
      servers: o.servers().map((s) => {
        const q = priceOf(s, o.prices);
        return {
          rank: rankOf.get(s) ?? null,
          id: s.id,
          url: s.info.url,
          provider: s.info.provider,
          alive: s.info.alive,
          eligible: s.eligible(now),
          ejectedForMs: s.ejected(now) ? Math.round(s.ejectedUntil - now) : 0,
          ejections: s.ejections,
          pricePerGiB: q?.perGiB ?? null,
          currency: q?.currency ?? null,
          latencyMs: s.latency.value,
          connectMs: s.connect.value,
          outstanding: s.outstanding,
          cost: s.cost(),
          samples: s.latency.samples,
          requests: s.requests,
          failures: s.failures,
          lastError: s.lastError,
          lastProbe: s.lastProbe === null
            ? null
            : { ...s.lastProbe, agoMs: Math.round(now - s.lastProbe.at), at: undefined },
          summary: `${formatPrice(q)}, rtt ${formatMs(s.latency.value)}`,
        };
      }),
    };
  }

  function own(req: Request, url: URL): Response {
    const route = PROXY_ROUTES.find((r) => r === url.pathname);
    if (route !== undefined && req.method !== "GET" && req.method !== "HEAD") {
      return proxyText(405, "use GET", [["allow", "GET, HEAD"]]);
    }
    if (route === "/_proxy/") {
      const page = {
        mode: o.mode,
        names: o.names(),
        servers: o.servers().length,
        eligible: o.servers().filter((s) => s.eligible(o.now())).length,
      };
      const links = [
        ["/_proxy/explain", "servers, their scores and the current choice (JSON)"],
        ["/_proxy/metrics", "metrics (Prometheus text)"],
      ] as const;
      return statusResponse(req, {
        title: "Nearcast routing proxy",
        what: "An HTTP proxy that sends requests for the CDN's name to the server its mode " +
          "ranks first, and other requests on as they are.",
        state: [
          ["mode", page.mode],
          ["CDN names", page.names.join(" ")],
          ["servers", page.servers],
          ["eligible", page.eligible],
        ],
        links,
      }, { what: "nearcast routing proxy", ...page, links: links.map(([href]) => href) });
    }
    if (route === "/_proxy/explain") {
      return Response.json(explain(), { headers: { "cache-control": "no-store" } });
    }
    if (route === "/_proxy/metrics") {
      const e = new Exposition("nearcast_proxy");
      writeProxyMetrics(e, o.servers(), counters, o.pool.stats, o.mode, o.now());
      o.listenerMetrics?.(e);
      writeMemoryGauges(e);
      return metricsResponse(e.text(), req.method === "HEAD");
    }
    return proxyText(
      404,
      `this is the Nearcast routing proxy: use it as an HTTP proxy (curl -x), or see ${
        PROXY_ROUTES.join(", ")
      }`,
    );
  }

  async function toCdn(req: Request, url: URL, fields: RequestFields): Promise<Response> {
    const r = rankNow();
    if (r.order.length === 0) {
      counters.failed++;
      return proxyText(503, "no CDN server is known (the server list is empty)");
    }
    const up = upstreamRequest(req, url, o.via, fields);
    const tries = IDEMPOTENT.has(req.method) && req.body === null ? 2 : 1;
    const failed: string[] = [];
    for (const s of r.order.slice(0, tries)) {
      try {
        const res = await exchange(s, up, o);
        counters.cdn++;
        if (failed.length > 0) counters.retried++;
        const retry = failed.length === 0 ? "" : `; retried after ${failed.join("; ")}`;
        return clientResponse(res, o.via, [
          ["x-nearcast-server", s.id],
          ["x-nearcast-reason", r.reason(s) + retry],
        ]);
      } catch (e) {
        if (!(e instanceof UpstreamError)) throw e;
        failed.push(`${s.id} failed (${e.message})`);
      }
    }
    counters.failed++;
    return proxyText(502, `no CDN server answered: ${failed.join("; ")}`, [
      ["x-nearcast-reason", failed.join("; ")],
    ]);
  }

  async function direct(req: Request, url: URL, fields: RequestFields): Promise<Response> {
    const port = Number(url.port || 80);
    counters.direct++;
    try {
      const res = await o.pool.request(
        url.hostname.replace(/^\[|\]$/g, ""),
        port,
        upstreamRequest(req, url, o.via, fields),
      );
      return clientResponse(res, o.via, [["x-nearcast-reason", "direct: not the CDN's name"]]);
    } catch (e) {
      if (!(e instanceof UpstreamError)) throw e;
      return proxyText(502, `cannot reach ${url.host}: ${e.message}`);
    }
  }

  const handler = (req: Request): Response | Promise<Response> => {
    if (req.method === "CONNECT") {
      return proxyText(
        501,
        "CONNECT (HTTPS tunnels) is not supported by this proxy: use http:// URLs through it",
      );
    }
    const url = new URL(req.url);
    if (o.isSelf(url.host.toLowerCase(), url.hostname.toLowerCase(), url.port)) {
      return own(req, url);
    }
    const fields = readRequestFields(req.headers);
    if (fields.bytes > MAX_REQUEST_HEAD_BYTES) {
      return proxyText(431, `request headers over ${MAX_REQUEST_HEAD_BYTES} bytes`);
    }
    if (fields.via?.includes(viaToken)) {
      return proxyText(508, "this request already went through this proxy (a forwarding loop)");
    }
    if (url.protocol !== "http:") {
      return proxyText(
        501,
        `only http:// URLs can go through this proxy: received ${url.protocol}`,
      );
    }
    const host = url.hostname.toLowerCase().replace(/\.$/, "");
    if (o.names().includes(host)) return toCdn(req, url, fields);
    if (o.other === "refuse") {
      counters.refused++;
      return proxyText(
        403,
        `${url.host} is not the CDN's name (${
          o.names().join(", ") || "none known"
        }): this proxy forwards only the CDN (--other refuse)`,
      );
    }
    return direct(req, url, fields);
  };
  return Object.assign(handler, { explain });
}

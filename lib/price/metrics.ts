/**
 * `GET /metrics` of the pricing service (Prometheus text format, prefix `nearcast_price`):
 * requests by route, method and status, the providers held and the price version, the
 * listener's counters and the process's memory. And `GET /`: what the service is, for a
 * browser (HTML) or as JSON.
 *
 * @module
 */
import { Exposition } from "../common/prometheus.ts";
import type { PriceDb } from "./db.ts";
import { statusResponse } from "../common/status_page.ts";

/** `GET /`: what the service is, its state and links (HTML for a browser, else JSON). */
export function rootPage(req: Request, db: PriceDb): Response {
  const state = { providers: db.all().length, version: db.version };
  const links = [
    ["/providers", "every provider's prices (JSON)"],
    ["/prices", "the price feed: long poll or event stream (JSON)"],
    ["/metrics", "metrics (Prometheus text)"],
  ] as const;
  return statusResponse(req, {
    title: "Nearcast pricing service",
    what: "Providers' prices per GiB by region, for the DNS server and the routing proxy.",
    state: Object.entries(state),
    links,
  }, { what: "nearcast pricing service", ...state, links: links.map(([href]) => href) });
}

const METHODS = new Set(["GET", "HEAD", "PUT", "PATCH", "DELETE", "POST", "OPTIONS"]);

/** Request counters of the pricing service. */
export class PriceMetrics {
  readonly #requests = new Map<string, { labels: Record<string, string>; n: number }>();

  /** Counts one answered request (`route`: the route's path, or `none`). */
  count(route: string, anyMethod: string, status: number): void {
    // Clients choose methods: unknown ones share one label value (bounded series).
    const method = METHODS.has(anyMethod) ? anyMethod : "other";
    const key = `${route} ${method} ${status}`;
    const row = this.#requests.get(key);
    if (row !== undefined) row.n++;
    else this.#requests.set(key, { labels: { route, method, code: String(status) }, n: 1 });
  }

  /** The exposition; `more` writes the listener's and the process's figures. */
  text(db: PriceDb, more: (e: Exposition) => void): string {
    const e = new Exposition("nearcast_price");
    e.counter(
      "requests_total",
      "Requests answered, by route, method and status code.",
      [...this.#requests.values()].map((r) => [r.labels, r.n] as const),
    );
    e.gauge("providers", "Providers held.", db.all().length);
    e.gauge("version", "Global price version (moves on every change).", db.version);
    more(e);
    return e.text();
  }
}

/**
 * The control API's `GET /` for a browser: what the DNS server is, its fleet at a glance and
 * links to its JSON routes and metrics (`lib/common/status_page.ts`).
 *
 * @module
 */
import { statusHtml } from "../../common/status_page.ts";
import type { SteeringEngine } from "../../dns/policy.ts";
import type { FleetRegistry } from "./registry.ts";

/** The HTML page of `GET /`. */
export function controlRootPage(registry: FleetRegistry, policy: SteeringEngine): Response {
  const entries = registry.entries();
  const count = (st: string) => entries.filter((e) => e.state === st).length;
  const html = statusHtml({
    title: "Nearcast DNS server",
    what: "The DNS steering server's control API: replicas register and heartbeat here, and " +
      "its answers are explained here.",
    state: [
      ["policy", policy.mode],
      ["replicas", entries.length],
      ["alive", count("alive")],
      ["pending", count("pending")],
      ["dead", count("dead")],
      ["known-servers version", registry.version],
    ],
    links: [
      ["/dashboard", "the live dashboard: fleet, map, RTTs, decisions, replication, events"],
      ["/replicas", "every replica: state, reason, heartbeat, load (JSON)"],
      ["/servers", "the known-servers list (JSON)"],
      ["/explain?client=127.0.0.1", "scores and the reason of an answer (JSON)"],
      ["/metrics", "metrics (Prometheus text)"],
    ],
  });
  return new Response(html, {
    headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
  });
}

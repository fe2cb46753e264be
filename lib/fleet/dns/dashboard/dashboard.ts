/**
 * The DNS server's live dashboard, served by the control API (`control.ts`):
 *
 * | route | what |
 * | --- | --- |
 * | `GET /dashboard` | the page (HTML, its CSS and script inline; no build step, no CDN) |
 * | `GET /dashboard/events` | `Accept: text/event-stream`: a `state` event every tick; else the state as JSON |
 * | `POST /dashboard/purge` | admin: `{"url": "/path"}` or `{"prefix": "/dir/"}`, sent to a live replica's `/_cdn/purge` with the same bearer token |
 * | `POST /dashboard/replicas/ID/drain` | admin: stop answering ID (state `draining`) |
 * | `DELETE /dashboard/replicas/ID/drain` | admin: answer ID again |
 *
 * An action whose `Origin` is another site's is refused (403) after the admin check.
 *
 * Every {@link DEFAULT_TICK_MS} it samples each replica's requests/s and hit ratio for the
 * sparklines ({@link HISTORY_POINTS} samples), turns state changes into events and, while a
 * stream is open, polls the replicas (`poller.ts`) and sends the state (`snapshot.ts`) to every
 * stream (`hub.ts`: capped, slow clients dropped). It looks for a change of membership or state
 * every {@link CHANGE_CHECK_MS} and sends at once when there is one (a death shows without
 * waiting for the tick).
 *
 * @module
 */
import { bearerToken } from "../../../common/auth.ts";
import { readBodyJson } from "../../../common/body.ts";
import type { SteeringEngine } from "../../../dns/policy.ts";
import { describeFetchError, peerFetch } from "../../../tls/client.ts";
import type { FleetRegistry } from "../registry.ts";
import type { RttCache } from "../rtt.ts";
import type { DecisionLog } from "./decisions.ts";
import { EventHub, frame } from "./hub.ts";
import { dashboardHtml } from "./page.ts";
import { ReplicaPoller } from "./poller.ts";
import { buildSnapshot, type DashEvent, type History } from "./snapshot.ts";

/** Period of samples and of the state sent to the streams. */
export const DEFAULT_TICK_MS = 1_000;
/** How often the registry's version is compared with the one last sent. */
export const CHANGE_CHECK_MS = 100;
/** Sparkline samples kept per replica: five minutes at the default tick. */
export const HISTORY_POINTS = 300;
/** Events kept (the newest). */
export const MAX_EVENTS = 100;
/** Largest action body. */
export const MAX_ACTION_BODY = 16 * 1024;
/** Time allowed for a replica to answer a purge sent from the dashboard. */
export const ACTION_TIMEOUT_MS = 5_000;

/** Options of {@link Dashboard}. */
export interface DashboardOptions {
  registry: FleetRegistry;
  policy: SteeringEngine;
  rtt?: RttCache | null;
  decisions?: DecisionLog | null;
  /** Replicas per answer (as `/explain`). */
  answers: number;
  zone?: string | null;
  scheme?: "http" | "https";
  tickMs?: number;
  now?: () => number;
  log?: (line: string) => void;
}

/** Checks an admin request before any work: null when allowed, else the refusal. */
export type AdminCheck = (req: Request) => Response | null;

const JSON_HEADERS = { "content-type": "application/json", "cache-control": "no-store" };

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body) + "\n", { status, headers: JSON_HEADERS });
}

/** See the module doc. */
export class Dashboard {
  readonly #o: DashboardOptions;
  readonly #now: () => number;
  readonly hub = new EventHub();
  readonly #poller: ReplicaPoller;
  readonly #history = new Map<string, History>();
  readonly #states = new Map<string, string>();
  readonly #events: DashEvent[] = [];
  #seq = 0;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly tickMs: number;
  #lastTick = -Infinity;
  #sentVersion = -1;

  constructor(o: DashboardOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.tickMs = o.tickMs ?? DEFAULT_TICK_MS;
    this.#poller = new ReplicaPoller({
      scheme: o.scheme,
      now: this.#now,
      onEvent: (e) => this.event(e.kind, e.text),
    });
    for (const e of o.registry.entries()) this.#states.set(e.id, e.state);
    this.#timer = setInterval(() => {
      const now = this.#now();
      if (now - this.#lastTick >= this.tickMs) this.tick();
      else if (this.#o.registry.version !== this.#sentVersion) this.#send();
    }, Math.min(CHANGE_CHECK_MS, this.tickMs));
  }

  /** Adds an event (shown newest first). */
  event(kind: string, text: string): void {
    this.#events.unshift({ seq: ++this.#seq, at: this.#now(), kind, text });
    if (this.#events.length > MAX_EVENTS) this.#events.pop();
  }

  /** One tick: samples, state changes, and (with a stream open) polls and sends. */
  tick(): void {
    this.#lastTick = this.#now();
    const entries = this.#o.registry.entries();
    const ids = new Set(entries.map((e) => e.id));
    for (const id of this.#history.keys()) if (!ids.has(id)) this.#history.delete(id);
    for (const e of entries) {
      let h = this.#history.get(e.id);
      if (h === undefined) this.#history.set(e.id, h = { rps: [], hit: [] });
      const live = e.state !== "dead";
      h.rps.push(live ? e.load?.rps ?? 0 : 0);
      h.hit.push(live ? e.load?.hitRatio ?? 0 : 0);
      if (h.rps.length > HISTORY_POINTS) (h.rps.shift(), h.hit.shift());
    }
    this.#send();
  }

  /** State changes become events; with a stream open, polls and sends the state. */
  #send(): void {
    const entries = this.#o.registry.entries();
    this.#sentVersion = this.#o.registry.version;
    const ids = new Set(entries.map((e) => e.id));
    for (const [id] of this.#states) {
      if (!ids.has(id)) {
        this.#states.delete(id);
        this.event("state", `${id} removed from the fleet`);
      }
    }
    for (const e of entries) {
      if (this.#states.get(e.id) !== e.state) {
        this.#states.set(e.id, e.state);
        this.event("state", `${e.id} is ${e.state}: ${e.reason}`);
      }
    }
    if (!this.hub.active) return;
    this.#poller.poll(entries);
    this.hub.send(frame("state", JSON.stringify(this.snapshot())));
  }

  /** The state the page shows. */
  snapshot(): Record<string, unknown> {
    const o = this.#o;
    return buildSnapshot({
      zone: o.zone ?? null,
      registry: o.registry,
      policy: o.policy,
      rtt: o.rtt ?? null,
      answers: o.answers,
      decisions: o.decisions?.latest() ?? [],
      events: this.#events,
      node: (id) => this.#poller.view(id),
      history: (id) => this.#history.get(id) ?? { rps: [], hit: [] },
      hub: this.hub.stats,
      tickMs: this.tickMs,
      now: this.#now(),
    });
  }

  /** Answers a `/dashboard` route (`admin` checks the admin token before any work). */
  async handle(req: Request, path: string, admin: AdminCheck): Promise<Response> {
    if (path === "/dashboard") {
      return new Response(dashboardHtml(), {
        headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
      });
    }
    if (path === "/dashboard/events") {
      if (!(req.headers.get("accept") ?? "").includes("text/event-stream")) {
        return json(this.snapshot());
      }
      this.#poller.poll(this.#o.registry.entries());
      const body = this.hub.open(frame("state", JSON.stringify(this.snapshot())));
      if (body === null) {
        return json({ error: `too many dashboard streams (${this.hub.stats.max})` }, 503);
      }
      return new Response(body, {
        headers: { "content-type": "text/event-stream", "cache-control": "no-store" },
      });
    }
    const denied = admin(req);
    if (denied) return denied;
    // A page of another site cannot act through a browser that may (loopback without a token).
    const origin = req.headers.get("origin");
    if (origin !== null && origin !== new URL(req.url).origin) {
      return json({ error: `cross-origin dashboard action refused (Origin ${origin})` }, 403);
    }
    if (path === "/dashboard/purge") return await this.#purge(req);
    const drain = /^\/dashboard\/replicas\/([^/]+)\/drain$/.exec(path);
    if (drain) {
      const id = decodeURIComponent(drain[1]);
      const on = req.method === "POST";
      const e = this.#o.registry.drain(id, on);
      if (e === undefined) return json({ error: `no replica ${id}` }, 404);
      this.event("action", `${on ? "drain" : "undrain"} ${id} (dashboard): now ${e.state}`);
      this.#send();
      return json({ id, state: e.state, reason: e.reason });
    }
    return json({ error: `no such route: ${req.method} ${path}` }, 404);
  }

  async #purge(req: Request): Promise<Response> {
    const body = await readBodyJson(req, MAX_ACTION_BODY, "purge body") as Record<
      string,
      unknown
    >;
    const url = body?.url, prefix = body?.prefix;
    if (typeof url !== "string" && typeof prefix !== "string") {
      throw new TypeError('purge body must be {"url": "/path"} or {"prefix": "/dir/"}');
    }
    const target = this.#o.registry.entries().find((e) =>
      e.state === "alive" && e.source === "registered"
    );
    if (target === undefined) return json({ error: "no live replica to purge through" }, 503);
    const host = target.address.includes(":") ? `[${target.address}]` : target.address;
    const token = bearerToken(req);
    const what = typeof url === "string" ? `url ${url}` : `prefix ${prefix}`;
    try {
      const res = await peerFetch(
        `${this.#o.scheme ?? "http"}://${host}:${target.port}/_cdn/purge`,
        {
          method: "POST",
          headers: {
            "content-type": "application/json",
            ...(token === null ? {} : { authorization: `Bearer ${token}` }),
          },
          body: JSON.stringify(typeof url === "string" ? { url } : { prefix }),
          signal: AbortSignal.timeout(ACTION_TIMEOUT_MS),
        },
      );
      const text = await res.text();
      let answer: unknown = text;
      try {
        answer = JSON.parse(text);
      } catch { /* a text answer */ }
      this.event("action", `purge ${what} via ${target.id} (dashboard): HTTP ${res.status}`);
      return json({ via: target.id, status: res.status, answer }, res.status);
    } catch (e) {
      const why = describeFetchError(e).split("\n")[0];
      this.event("action", `purge ${what} via ${target.id} (dashboard) failed: ${why}`);
      return json({ via: target.id, error: why }, 502);
    }
  }

  /** Stops the timer and the polls, and ends every stream. */
  close(): void {
    clearInterval(this.#timer);
    this.#poller.close();
    this.hub.close();
  }
}

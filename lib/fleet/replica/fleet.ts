/**
 * A replica's side of the fleet with one or several DNS servers (`--announce` repeated or
 * comma-separated): one {@link FleetAgent} per server, each with its own registration, session,
 * heartbeats and deregistration, so each server keeps its own registry and any one can die
 * (and come back: the agent registers again) without the others noticing; the probes all of
 * them ask for share one {@link Prober}.
 *
 * Routes it adds to the replica: `GET /_cdn/probe?target=IP[&port=N][&count=K][&maxAge=MS]`
 * (TCP connect times in ms; a refused connection times the round trip as well as an accepted
 * one; `maxAge`: a result of the same subnet that recent is reused) and `GET /_cdn/fleet`
 * (registration state per DNS server, the CDN's name learnt from them, and the known-servers
 * list, for other modules such as replication).
 *
 * @module
 */
import { allowOf, findRoute, type Route } from "../../common/routes.ts";
import { parseClientIp } from "../../common/ip.ts";
import { answerMac, type KnownServer, MAC_HEADER } from "../protocol.ts";
import { type AgentOptions, FleetAgent } from "./agent.ts";
import { MAX_PROBE_COUNT, ProbeBusyError, Prober } from "./probe.ts";

/**
 * The fleet's routes on the replica (part of the replica's one table, `lib/http/routes.ts`):
 * what it knows of the fleet, and the RTT probes the DNS servers ask for.
 */
export const AGENT_ROUTES: readonly Route[] = [
  { path: "/_cdn/fleet", prefix: false, methods: { GET: "open", HEAD: "open" } },
  { path: "/_cdn/probe", prefix: false, methods: { GET: "session" } },
];

/** Options of {@link ReplicaFleet}: those of an agent, with every DNS server to announce to. */
export interface ReplicaFleetOptions extends Omit<AgentOptions, "announce" | "onZone"> {
  /** The DNS control APIs, `HOST:PORT` or `https://HOST:PORT` (at least one). */
  announce: string[];
  /** `--cdn-name`: the CDN's name, reported whatever the DNS servers' zone (absent: theirs). */
  cdnName?: string | null;
  prober?: Prober;
}

const NO_STORE = { "cache-control": "no-store" };

function error(status: number, error: string): Response {
  return Response.json({ error }, { status, headers: NO_STORE });
}

/** See the module doc. */
export class ReplicaFleet {
  readonly agents: readonly FleetAgent[];
  readonly prober: Prober;
  readonly #id: string;
  readonly #log: (line: string) => void;
  /** The CDN's name: `--cdn-name`, else the zone of the first DNS server that answered. */
  #cdnName: string | null;
  /** Mismatches already logged (`announce zone`): once each, not on every registration. */
  readonly #mismatches = new Set<string>();

  constructor(o: ReplicaFleetOptions) {
    if (o.announce.length === 0) throw new RangeError("Cannot start the fleet: no DNS server");
    this.#id = o.id;
    this.#log = o.log ?? (() => {});
    this.#cdnName = o.cdnName ?? null;
    this.prober = o.prober ?? new Prober();
    const onZone = (zone: string, announce: string) => this.#onZone(zone, announce);
    this.agents = o.announce.map((announce) => new FleetAgent({ ...o, announce, onZone }));
  }

  /**
   * The CDN's name this node reports (`cdnName` in `/_cdn/health` and `/_cdn/fleet`):
   * `--cdn-name`, else the zone (`-n NAME`) of the first DNS server whose registration answer
   * named one; null until then.
   */
  get cdnName(): string | null {
    return this.#cdnName;
  }

  #onZone(zone: string, announce: string): void {
    zone = zone.toLowerCase();
    if (this.#cdnName === null) {
      this.#cdnName = zone;
      this.#log(`fleet: CDN name ${zone} (the zone of ${announce})`);
      return;
    }
    const key = `${announce} ${zone}`;
    if (zone === this.#cdnName || this.#mismatches.has(key)) return;
    this.#mismatches.add(key);
    this.#log(
      `fleet: ${announce} serves zone ${zone}, not ${this.#cdnName}: still reporting ` +
        `${this.#cdnName} as the CDN name (the DNS servers of one CDN serve one zone)`,
    );
  }

  /** Starts every agent (each registers in the background, then heartbeats). */
  start(): void {
    for (const a of this.agents) a.start();
  }

  /** True once every DNS server has registered this replica. */
  get registered(): boolean {
    return this.agents.every((a) => a.registered);
  }

  /**
   * The known servers of every DNS server, one entry per id: the first server's view, unless
   * another one sees that replica alive (a server that lost it has not caught up yet).
   */
  get servers(): KnownServer[] {
    const out = new Map<string, KnownServer>();
    for (const a of this.agents) {
      for (const s of a.servers) {
        const had = out.get(s.id);
        if (had === undefined || (had.state !== "alive" && s.state === "alive")) out.set(s.id, s);
      }
    }
    return [...out.values()];
  }

  /** The fleet's routes ({@link AGENT_ROUTES}), or null for any other path. */
  handle(req: Request, path: string): Response | Promise<Response> | null {
    const route = findRoute(AGENT_ROUTES, path);
    if (route === null) return null;
    if (route.methods[req.method] === undefined) {
      return Response.json({ error: `use ${Object.keys(route.methods).join(" or ")}` }, {
        status: 405,
        headers: { allow: allowOf(route), ...NO_STORE },
      });
    }
    if (path === "/_cdn/probe") return this.#probe(req); // checks the session itself
    const sum: Record<string, number> = {};
    for (const a of this.agents) {
      for (const [k, v] of Object.entries(a.stats)) sum[k] = (sum[k] ?? 0) + v;
    }
    return Response.json({
      id: this.#id,
      cdnName: this.#cdnName,
      announce: this.agents.map((a) => a.announce),
      registered: this.registered,
      servers: this.servers,
      // Summed over the DNS servers; per server in `dns`.
      stats: sum,
      probes: this.prober.stats,
      dns: this.agents.map((a) => ({
        announce: a.announce,
        registered: a.registered,
        version: a.version,
        stats: a.stats,
      })),
    }, { headers: NO_STORE });
  }

  async #probe(req: Request): Promise<Response> {
    // Any of our DNS servers, each by the session of its own registration.
    let session = null;
    for (const a of this.agents) if ((session = a.session(req)) !== null) break;
    if (session === null) {
      return error(
        401,
        "probes are for the DNS server: Authorization: Nearcast-Session (or Bearer)",
      );
    }
    const q = new URL(req.url).searchParams;
    const target = q.get("target") ?? "";
    const ip = parseClientIp(target);
    if (ip === null) return error(400, `target must be an IP address: received ${target}`);
    const port = Number(q.get("port") ?? "80");
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      return error(400, `port must be 1..65535: received ${q.get("port")}`);
    }
    const count = Number(q.get("count") ?? "3");
    if (!Number.isInteger(count) || count < 1 || count > MAX_PROBE_COUNT) {
      return error(400, `count must be 1..${MAX_PROBE_COUNT}: received ${q.get("count")}`);
    }
    const maxAge = Number(q.get("maxAge") ?? "0");
    if (!Number.isSafeInteger(maxAge) || maxAge < 0) {
      return error(400, `maxAge must be an integer >= 0 (ms): received ${q.get("maxAge")}`);
    }
    let r;
    try {
      r = await this.prober.measure(ip, port, count, maxAge);
    } catch (e) {
      if (e instanceof ProbeBusyError) return error(503, e.message);
      throw e;
    }
    const body = JSON.stringify({
      target,
      port,
      method: "tcp-connect",
      samples: r.samples,
      measured: r.measured,
      ageMs: r.ageMs,
      shared: r.shared,
    });
    const headers: Record<string, string> = { "content-type": "application/json", ...NO_STORE };
    // The answer is MAC'd for the DNS server: samples it can trust came from this replica.
    if (session.nonce !== null) {
      headers[MAC_HEADER] = answerMac(session.token, session.nonce, body);
    }
    return new Response(body, { headers });
  }

  /** Deregisters from every DNS server at once (each bounded); true when all confirmed. */
  async deregister(): Promise<boolean> {
    const done = await Promise.all(this.agents.map((a) => a.deregister()));
    return done.every((x) => x);
  }

  /** Stops every agent; resolves when their background work has ended. */
  async close(): Promise<void> {
    await Promise.all(this.agents.map((a) => a.close()));
  }
}

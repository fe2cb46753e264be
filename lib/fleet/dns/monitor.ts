/**
 * The DNS server's background work on the fleet: active health checks (`GET /_cdn/health`)
 * of the replicas the registry says are due, and RTT measurements requested from every live
 * replica (`GET /_cdn/probe?target=IP`, authenticated with the replica's session token) for
 * the subnets the policy asks about. Nothing here is on the answer path.
 *
 * @module
 */
import { MAC_HEADER, sealValid, sessionHeaders } from "../protocol.ts";
import { type FleetRegistry, replicaScheme } from "./registry.ts";
import type { RttCache } from "./rtt.ts";
import { describeFetchError, peerFetch } from "../../tls/client.ts";
import { Histogram } from "../../common/prometheus.ts";

/** Bounds of the RTT histogram, seconds (1 ms to 1 s). */
export const RTT_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/** How often the registry is asked which checks are due: bounds failure detection latency. */
export const TICK_MS = 100;
/** Time allowed for a health check: a live replica answers in ms; a dead one refuses or hangs. */
export const HEALTH_TIMEOUT_MS = 1_000;
/** Time allowed for a replica's probe answer (its connects time out sooner, see the agent). */
export const PROBE_REQUEST_TIMEOUT_MS = 3_000;
/** Measurements in flight at most (each asks every live replica): bounds outgoing requests. */
export const MAX_MEASUREMENTS_IN_FLIGHT = 64;
/** Least time between two measurements of one subnet, so failing probes are not repeated per query. */
export const MEASURE_MIN_INTERVAL_MS = 1_000;
/** Subnets remembered for that rate limit; the map is emptied beyond (it is only a limiter). */
export const MAX_RATE_LIMITED_SUBNETS = 100_000;
/** Port the replicas connect to by default: a refused connection times the path as well. */
export const DEFAULT_PROBE_PORT = 80;
/** Connects per probe; the median is the sample (one slow connect does not count). */
export const DEFAULT_PROBE_COUNT = 3;

/** Options of {@link FleetMonitor}. */
export interface FleetMonitorOptions {
  registry: FleetRegistry;
  rtt: RttCache;
  probePort?: number;
  probeCount?: number;
  /**
   * `maxAge` of probe requests, ms: a replica answers from its result for the subnet when it is
   * this recent (another DNS server asked), instead of probing again. The steering refresh
   * interval: a server refreshing a measurement never gets back one as old as its own. Default 0.
   */
  probeMaxAgeMs?: number;
  /**
   * The scheme of a replica that did not register whether it speaks TLS (`tls` of its
   * registration, which decides otherwise; trust: lib/tls/client.ts). Default "http".
   */
  scheme?: "http" | "https";
  now?: () => number;
  log?: (line: string) => void;
}

/** Counters for `/replicas` and logs. */
export interface MonitorStats {
  checks: number;
  checkFailures: number;
  measurements: number;
  probes: number;
  probeFailures: number;
  measurementsSkipped: number;
}

function hostPort(address: string, port: number): string {
  return `${address.includes(":") ? `[${address}]` : address}:${port}`;
}

/** The median of a non-empty list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** See the module doc. */
export class FleetMonitor {
  /** Medians of the RTT measurements replicas reported, seconds. */
  readonly rttSeconds = new Histogram(RTT_BUCKETS_SECONDS);
  readonly stats: MonitorStats = {
    checks: 0,
    checkFailures: 0,
    measurements: 0,
    probes: 0,
    probeFailures: 0,
    measurementsSkipped: 0,
  };
  readonly #registry: FleetRegistry;
  readonly #rtt: RttCache;
  readonly #port: number;
  readonly #count: number;
  readonly #maxAge: number;
  readonly #scheme: "http" | "https";
  readonly #now: () => number;
  readonly #log: (line: string) => void;
  readonly #inFlight = new Set<string>();
  readonly #lastAsked = new Map<string, number>();
  readonly #tasks = new Set<Promise<unknown>>();
  readonly #ac = new AbortController();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(o: FleetMonitorOptions) {
    this.#registry = o.registry;
    this.#rtt = o.rtt;
    this.#port = o.probePort ?? DEFAULT_PROBE_PORT;
    this.#count = o.probeCount ?? DEFAULT_PROBE_COUNT;
    this.#maxAge = o.probeMaxAgeMs ?? 0;
    this.#scheme = o.scheme ?? "http";
    this.#now = o.now ?? Date.now;
    this.#log = o.log ?? (() => {});
  }

  /** Starts the periodic tick. */
  start(): void {
    this.#timer ??= setInterval(() => this.tick(), TICK_MS);
    this.tick();
  }

  #track(p: Promise<unknown>): void {
    this.#tasks.add(p);
    p.finally(() => this.#tasks.delete(p));
  }

  /** Applies timeouts and starts the health checks that are due. */
  tick(): void {
    if (this.#ac.signal.aborted) return;
    for (const id of this.#registry.due()) this.#track(this.#check(id));
  }

  async #check(id: string): Promise<void> {
    const e = this.#registry.get(id);
    if (e === undefined) return;
    this.#registry.checkStarted(id);
    this.stats.checks++;
    const t0 = performance.now();
    let ok = false, notReady = false, detail: string;
    try {
      const res = await peerFetch(
        `${replicaScheme(e, this.#scheme)}://${hostPort(e.address, e.port)}/_cdn/health`,
        {
          signal: AbortSignal.any([this.#ac.signal, AbortSignal.timeout(HEALTH_TIMEOUT_MS)]),
        },
      );
      await res.body?.cancel();
      ok = res.status === 200;
      notReady = res.status === 503;
      detail = `HTTP ${res.status} in ${Math.round(performance.now() - t0)} ms`;
    } catch (err) {
      const name = (err as Error).name;
      detail = name === "TimeoutError"
        ? `no answer in ${HEALTH_TIMEOUT_MS} ms`
        : describeFetchError(err).split("\n")[0];
    }
    if (!ok) this.stats.checkFailures++;
    if (this.#ac.signal.aborted) return;
    this.#registry.checkDone(id, ok, detail, notReady);
  }

  /**
   * Asks every live registered replica to measure its RTT to `target` and records the medians
   * under `subnet`. Returns at once; deduplicated and rate-limited per subnet.
   */
  measure(subnet: string, target: string): void {
    const now = this.#now();
    const last = this.#lastAsked.get(subnet);
    if (
      this.#ac.signal.aborted || this.#inFlight.has(subnet) ||
      (last !== undefined && now - last < MEASURE_MIN_INTERVAL_MS) ||
      this.#inFlight.size >= MAX_MEASUREMENTS_IN_FLIGHT
    ) {
      this.stats.measurementsSkipped++;
      return;
    }
    if (this.#lastAsked.size >= MAX_RATE_LIMITED_SUBNETS) this.#lastAsked.clear();
    this.#lastAsked.set(subnet, now);
    this.#inFlight.add(subnet);
    this.stats.measurements++;
    const live = this.#registry.entries().filter((e) =>
      e.state === "alive" && e.source === "registered"
    );
    const p = Promise.all(live.map((e) => this.#probe(e.id, subnet, target)))
      .finally(() => this.#inFlight.delete(subnet));
    this.#track(p);
  }

  async #probe(id: string, subnet: string, target: string): Promise<void> {
    const e = this.#registry.get(id);
    if (e === undefined) return;
    this.stats.probes++;
    const q = new URLSearchParams({
      target,
      port: String(this.#port),
      count: String(this.#count),
      maxAge: String(this.#maxAge),
    });
    try {
      // Signed with the replica's session token (not sent); its answer is MAC'd with it.
      const path = `/_cdn/probe?${q}`;
      const { headers, nonce } = sessionHeaders(e.token, id, "GET", path);
      const res = await peerFetch(
        `${replicaScheme(e, this.#scheme)}://${hostPort(e.address, e.port)}${path}`,
        {
          headers,
          signal: AbortSignal.any([this.#ac.signal, AbortSignal.timeout(PROBE_REQUEST_TIMEOUT_MS)]),
        },
      );
      const text = await res.text();
      if (!sealValid(e.token, `${nonce}\n${text}`, res.headers.get(MAC_HEADER) ?? "")) {
        throw new Error(`HTTP ${res.status}: the answer is not MAC'd with ${id}'s session token`);
      }
      const body = JSON.parse(text) as { samples?: unknown };
      const samples = Array.isArray(body.samples)
        ? body.samples.filter((x): x is number => typeof x === "number" && x >= 0)
        : [];
      if (res.status !== 200 || samples.length === 0) {
        throw new Error(`HTTP ${res.status}: ${JSON.stringify(body).slice(0, 200)}`);
      }
      const ms = median(samples);
      this.rttSeconds.observe(ms / 1000);
      if (this.#registry.get(id) === e) this.#rtt.record(subnet, id, ms);
    } catch (err) {
      this.stats.probeFailures++;
      if (!this.#ac.signal.aborted) {
        this.#log(`fleet: probe ${id} -> ${target} failed: ${describeFetchError(err)}`);
      }
    }
  }

  /** Stops the tick and aborts what is in flight; resolves when all of it has ended. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#ac.abort();
    await Promise.allSettled([...this.#tasks]);
  }
}

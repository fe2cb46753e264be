/**
 * The DNS server with a live fleet: the authoritative server of `lib/dns/`, the replica
 * registry persisted in SQLite, the steering engine fed with its loads and RTTs, the health and RTT monitor, and the
 * control API with its heartbeat socket, wired together. `main_dns.ts` is its command line.
 *
 * @module
 */
import type { ListenerLimits } from "../../common/http_server.ts";
import type { DnsConfig } from "../../dns/config.ts";
import { type DnsServer, startDnsServer } from "../../dns/server.ts";
import type { RrlOptions } from "../../dns/rrl.ts";
import {
  DEFAULT_REFRESH_MS,
  type PolicyName,
  SteeringEngine,
  type Weights,
} from "../../dns/policy.ts";
import type { PriceSource } from "../../dns/price_term.ts";
import { ReplicaSet, replicasFromConfig } from "../../dns/steering.ts";
import { type ControlServer, startControl } from "./control.ts";
import { FleetDb } from "./db.ts";
import { writeDnsMetrics } from "./metrics.ts";
import { FleetMonitor } from "./monitor.ts";
import { FleetRegistry } from "./registry.ts";
import { RttCache } from "./rtt.ts";
import { Dashboard } from "./dashboard/dashboard.ts";
import { DecisionLog } from "./dashboard/decisions.ts";
import type { TlsKeyPair } from "../../tls/listen.ts";

/** Options of {@link startFleetDns}. */
export interface FleetDnsOptions {
  zone: string;
  config: DnsConfig;
  hostname: string;
  port: number;
  codec?: "wasm" | "ts";
  io?: "portable" | "mmsg";
  /** Control API port (HTTP and heartbeat UDP); 0 picks a free one; null: none. */
  controlPort: number | null;
  /** Limits of the control API's HTTP listener (lib/common/http_server.ts). */
  controlLimits?: ListenerLimits;
  /** Directory of `fleet.sqlite`, or `:memory:`. */
  data: string;
  adminToken: string | null;
  policy: PolicyName;
  weights?: Partial<Weights>;
  /** Balanced's latency bound in ms (cheapest within it), or null for the weighted score. */
  maxExtraMs?: number | null;
  /** Provider prices (the pricing service's feed); null or absent: none. */
  prices?: PriceSource | null;
  overloadRps?: number;
  refreshMs?: number;
  rttTtlMs?: number;
  shortTtl?: number;
  probePort?: number;
  /** The control API's certificate (HTTPS only), or absent for plain HTTP. */
  controlTls?: TlsKeyPair;
  /** How health checks and probe requests reach replicas: "https" for `--tls` replicas. */
  replicaScheme?: "http" | "https";
  intervalMs?: number;
  /** UDP response rate limiting (absent: none). */
  rrl?: RrlOptions;
  /** Most DNS-over-TCP connections per client address (default 16). */
  tcpPerClient?: number;
  onError?: (e: unknown) => void;
  log?: (line: string) => void;
}

/** A running DNS server with its fleet. */
export interface FleetDns {
  readonly dns: DnsServer;
  /** Null when started without a control API. */
  readonly control: ControlServer | null;
  readonly registry: FleetRegistry;
  readonly policy: SteeringEngine;
  readonly monitor: FleetMonitor;
  close(): Promise<void>;
}

/**
 * A port the server could not listen on (in use, address not available, not permitted):
 * which socket, its port, and the system's error as `cause`.
 */
export class FleetListenError extends Error {
  constructor(readonly socket: "dns" | "control", readonly port: number, cause: Error) {
    super(`cannot listen on the ${socket} port ${port}: ${cause.message}`, { cause });
    this.name = "FleetListenError";
  }
}

function isListenFailure(e: unknown): e is Error {
  return e instanceof Deno.errors.AddrInUse || e instanceof Deno.errors.AddrNotAvailable ||
    e instanceof Deno.errors.PermissionDenied;
}

/**
 * Starts everything; on a failure, what was started is stopped before the error is thrown (a
 * {@link FleetListenError} when a port could not be opened).
 */
export async function startFleetDns(o: FleetDnsOptions): Promise<FleetDns> {
  const log = o.log ?? (() => {});
  const set = new ReplicaSet(replicasFromConfig(o.config.replicas));
  const db = new FleetDb(o.data);
  const registry = new FleetRegistry({
    set,
    db,
    statics: o.config.replicas,
    intervalMs: o.intervalMs,
    log,
  });
  const rtt = new RttCache({ ttlMs: o.rttTtlMs });
  const monitor = new FleetMonitor({
    registry,
    rtt,
    probePort: o.probePort,
    // Replicas share a result this recent between the DNS servers that ask for it.
    probeMaxAgeMs: o.refreshMs ?? DEFAULT_REFRESH_MS,
    scheme: o.replicaScheme,
    log,
  });
  const policy = new SteeringEngine({
    mode: o.policy,
    set,
    geo: o.config.geo,
    loads: registry,
    rtt,
    weights: o.weights,
    maxExtraMs: o.maxExtraMs,
    prices: o.prices,
    overloadRps: o.overloadRps,
    refreshMs: o.refreshMs,
    shortTtl: o.shortTtl,
    fullTtl: o.config.ttl,
    states: registry,
    onMeasure: (subnet, target) => monitor.measure(subnet, target),
  });
  // The dashboard's sample of decisions: only with a control API (where it is shown).
  const decisions = o.controlPort === null ? null : new DecisionLog(policy);
  let dns: DnsServer | null = null;
  let control: ControlServer | null = null;
  let dashboard: Dashboard | null = null;
  try {
    dns = await startDnsServer({
      zone: o.zone,
      config: o.config,
      hostname: o.hostname,
      port: o.port,
      codec: o.codec,
      io: o.io,
      policy: decisions ?? policy,
      replicas: set,
      rrl: o.rrl,
      tcpPerClient: o.tcpPerClient,
      onError: o.onError,
    });
    dashboard = o.controlPort === null ? null : new Dashboard({
      registry,
      policy,
      rtt,
      decisions,
      answers: o.config.answers,
      zone: o.zone,
      scheme: o.replicaScheme,
    });
    control = o.controlPort === null ? null : await startControl({
      hostname: o.hostname,
      port: o.controlPort,
      registry,
      policy,
      monitor,
      answers: o.config.answers,
      adminToken: o.adminToken,
      zone: o.zone,
      limits: o.controlLimits,
      tls: o.controlTls,
      metrics: (e) => writeDnsMetrics(e, { dns: dns!, registry, policy, monitor }),
      dashboard: dashboard ?? undefined,
      log,
    });
  } catch (e) {
    dashboard?.close();
    await dns?.close();
    await monitor.close();
    db.close();
    if (!isListenFailure(e)) throw e;
    throw dns === null
      ? new FleetListenError("dns", o.port, e)
      : new FleetListenError("control", o.controlPort ?? 0, e);
  }
  monitor.start();
  const d = dns, c = control, board = dashboard;
  let closing: Promise<void> | null = null;
  return {
    dns: d,
    control: c,
    registry,
    policy,
    monitor,
    close() {
      closing ??= (async () => {
        await monitor.close();
        board?.close(); // ends its event streams: the listener's drain need not wait for them
        await Promise.all([c?.close(), d.close()]);
        db.close();
      })();
      return closing;
    },
  };
}

/**
 * What the proxy knows about one CDN server: its address and provider (from the node's server
 * list), its latency (Peak-EWMA of active probes and of every proxied response's time to
 * head), its TCP connect time, the requests in flight to it, and its outlier state.
 *
 * Outlier ejection (as Envoy's and Linkerd's failure accrual): a failed connect or a failed
 * probe ejects a server at once; other failures (no response head, a 502/503/504, a body cut
 * short) eject it after {@link CONSECUTIVE_FAILURES} in a row. The n-th ejection in a row lasts
 * `base × 2^(n-1)`, at most `max`; once it ends the server is eligible again, and a success
 * after that resets the count.
 *
 * @module
 */

import { PeakEwma } from "./peak_ewma.ts";
import { Histogram } from "../common/prometheus.ts";

/** Failures in a row (other than connect and probe failures) that eject a server. */
export const CONSECUTIVE_FAILURES = 3;

/** Ejection backoff. */
export interface EjectionPolicy {
  baseMs: number;
  maxMs: number;
}

/** Default {@link EjectionPolicy}: 1 s doubling up to 10 s. */
export const DEFAULT_EJECTION: EjectionPolicy = { baseMs: 1_000, maxMs: 10_000 };

/** One server's entry as the node lists it (the fields the proxy uses). */
export interface ServerInfo {
  id: string;
  /** Base URL, e.g. `http://127.0.0.11:8080`. */
  url: string;
  /** Cloud provider (pricing), when the node knows it. */
  provider: string | null;
  /** The node's view of its liveness (heartbeats). */
  alive: boolean;
}

/** See the module doc. */
export class ServerState {
  info: ServerInfo;
  readonly hostname: string;
  readonly port: number;
  /** `host[:port]` of its URL (the Host header of probes). */
  readonly authority: string;
  readonly latency: PeakEwma;
  /** TCP connect time (Peak-EWMA of the probes' connects), ms. */
  readonly connect: PeakEwma;
  /** Time to response head of forwarded requests (not probes), seconds. */
  readonly headSeconds = new Histogram();
  outstanding = 0;
  requests = 0;
  failures = 0;
  consecutiveFailures = 0;
  /** Ejections in a row (reset by a success after the last one ended). */
  ejections = 0;
  /** Ejected until this time (ms, the proxy's clock); 0 when not ejected. */
  ejectedUntil = 0;
  lastError: string | null = null;
  lastProbe: { at: number; ok: boolean; status: number | null } | null = null;

  constructor(info: ServerInfo, decayMs: number, readonly policy: EjectionPolicy) {
    this.info = info;
    const u = new URL(info.url);
    this.hostname = u.hostname.replace(/^\[|\]$/g, "");
    this.port = Number(u.port || (u.protocol === "https:" ? 443 : 80));
    this.authority = u.host;
    this.latency = new PeakEwma(decayMs);
    this.connect = new PeakEwma(decayMs);
  }

  get id(): string {
    return this.info.id;
  }

  /** Whether the server is out of rotation at `now`. */
  ejected(now: number): boolean {
    return now < this.ejectedUntil;
  }

  /**
   * Whether the server may take requests at `now`: not ejected, and listed alive by the node or
   * answering this proxy's last probe (the client's own view wins over the node's heartbeats:
   * a node restarted and not heartbeating yet, or cut off from the listing node only, still
   * serves this client).
   */
  eligible(now: number): boolean {
    return !this.ejected(now) && (this.info.alive || this.lastProbe?.ok === true);
  }

  /** Load-aware expected latency, ms: estimate × (in flight + 1); null before any sample. */
  cost(): number | null {
    const v = this.latency.value;
    return v === null ? null : v * (this.outstanding + 1);
  }

  /** Records a success (a response head, a good probe) with its latency sample. */
  succeeded(ms: number | null, now: number): void {
    if (ms !== null) this.latency.observe(ms, now);
    this.consecutiveFailures = 0;
    if (!this.ejected(now) && this.ejectedUntil !== 0) {
      this.ejectedUntil = 0;
      this.ejections = 0;
    }
  }

  /**
   * Records a failure; `hard` (connect or probe failure) ejects at once. Returns true when this
   * failure ejected the server. A server already ejected stays as it is.
   */
  failed(why: string, hard: boolean, now: number): boolean {
    this.failures++;
    this.lastError = why;
    if (this.ejected(now)) return false;
    this.consecutiveFailures++;
    if (!hard && this.consecutiveFailures < CONSECUTIVE_FAILURES) return false;
    const ms = Math.min(this.policy.maxMs, this.policy.baseMs * 2 ** this.ejections);
    this.ejections++;
    this.ejectedUntil = now + ms;
    this.consecutiveFailures = 0;
    return true;
  }
}

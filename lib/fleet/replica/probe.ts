/**
 * The replica's RTT probes for the DNS servers (`GET /_cdn/probe`): TCP connect times to a
 * client, shared between the DNS servers a replica announces to. A request for a subnet
 * (/24 IPv4, /56 IPv6, as the DNS servers key their measurements) measured less than `maxAge`
 * ago (the asking server's refresh interval, capped at {@link MAX_SHARE_MS}) is answered from
 * that result instead of probing again, and one probe in flight serves every request for its
 * subnet that arrives meanwhile: several DNS servers asking about the same clients cost one
 * probe per subnet and interval.
 *
 * @module
 */
import { formatIp, type IpAddr, maskIp, parseClientIp } from "../../common/ip.ts";

/** Most connects one probe request may ask for: bounds the work a request causes. */
export const MAX_PROBE_COUNT = 5;
/** Probes running at once; more get 503 (bounds sockets and scans). Shared answers do not count. */
export const MAX_CONCURRENT_PROBES = 8;
/** Longest wait for one connect: beyond, the path is too slow to be the best anyway. */
export const PROBE_CONNECT_TIMEOUT_MS = 1_000;
/** Longest a result is shared, whatever `maxAge` a request gives: paths change. */
export const MAX_SHARE_MS = 5 * 60_000;
/** Subnets whose latest result is kept for sharing; the oldest are dropped beyond. */
export const MAX_SHARED_SUBNETS = 10_000;
/** Bits of the subnet a result is shared within (the DNS servers' measurement key). */
export const SHARE_BITS = { 4: 24, 6: 56 } as const;

/** One TCP connect time to `target:port` in ms, or null when it neither connected nor was refused. */
export async function connectTime(target: string, port: number): Promise<number | null> {
  const t0 = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const connecting = Deno.connect({ hostname: target, port, transport: "tcp" });
  try {
    const conn = await Promise.race([
      connecting,
      new Promise<null>((resolve) =>
        timer = setTimeout(() => resolve(null), PROBE_CONNECT_TIMEOUT_MS)
      ),
    ]);
    const ms = performance.now() - t0;
    if (conn === null) {
      connecting.then((c) => c.close(), () => {}); // close it if it connects after all
      return null;
    }
    conn.close();
    return ms;
  } catch (e) {
    // RST: the SYN went there and the refusal came back, one round trip.
    return e instanceof Deno.errors.ConnectionRefused ? performance.now() - t0 : null;
  } finally {
    clearTimeout(timer);
  }
}

/** A probe's result: the connect times and the address they were measured to. */
export interface ProbeResult {
  /** The address probed (the first request's target; others in its subnet share it). */
  measured: string;
  samples: number[];
  /** Age of the result when given out, ms (0: probed for this request). */
  ageMs: number;
  /** True when this request was answered from another request's probe. */
  shared: boolean;
}

/** Counters for `/_cdn/fleet`. */
export interface ProberStats {
  /** Probes run (each `count` connects). */
  probes: number;
  /** Requests answered from a recent or in-flight probe of their subnet. */
  shared: number;
}

interface Entry {
  /** Null until the probe ends. */
  done: { measured: string; samples: number[]; endedAt: number } | null;
  running: Promise<void>;
}

/** Options of {@link Prober}. */
export interface ProberOptions {
  /** The connect timer; tests may count or fake connects. */
  connect?: (target: string, port: number) => Promise<number | null>;
  now?: () => number;
}

/** Too many probes running: the request is refused (503), not queued. */
export class ProbeBusyError extends Error {}

/** See the module doc. */
export class Prober {
  readonly stats: ProberStats = { probes: 0, shared: 0 };
  readonly #connect: (target: string, port: number) => Promise<number | null>;
  readonly #now: () => number;
  /** `subnet port count` → latest probe; Map order is oldest first. */
  readonly #recent = new Map<string, Entry>();
  /** Subnet → smallest connect time of its latest probe and when it ended (the image layer's RTT). */
  readonly #rtt = new Map<string, { ms: number; at: number }>();
  #running = 0;

  constructor(o: ProberOptions = {}) {
    this.#connect = o.connect ?? connectTime;
    this.#now = o.now ?? (() => performance.now());
  }

  /**
   * Connect times to `target:port` (`count` connects), from a probe of the same subnet, port
   * and count that ended less than `maxAgeMs` ago or is still running, else measured now.
   * Throws {@link ProbeBusyError} when {@link MAX_CONCURRENT_PROBES} are running.
   */
  async measure(
    target: IpAddr,
    port: number,
    count: number,
    maxAgeMs: number,
  ): Promise<ProbeResult> {
    const key = `${subnetOf(target)} ${port} ${count}`;
    const maxAge = Math.min(Math.max(0, maxAgeMs), MAX_SHARE_MS);
    const old = this.#recent.get(key);
    if (
      old !== undefined && (old.done === null || this.#now() - old.done.endedAt < maxAge)
    ) {
      await old.running; // a rejection is the same bug for every request: at the edge
      const d = old.done!;
      this.stats.shared++;
      return {
        measured: d.measured,
        samples: d.samples,
        ageMs: Math.round(this.#now() - d.endedAt),
        shared: true,
      };
    }
    if (this.#running >= MAX_CONCURRENT_PROBES) {
      throw new ProbeBusyError("too many probes in flight");
    }
    const text = formatIp(target);
    const e: Entry = { done: null, running: Promise.resolve() };
    e.running = this.#probe(text, port, count).then((samples) => {
      e.done = { measured: text, samples, endedAt: this.#now() };
      if (samples.length > 0) this.#keepRtt(subnetOf(target), Math.min(...samples));
      // Nothing measured (unreachable, or timed out): the next request tries again.
      if (samples.length === 0 && this.#recent.get(key) === e) this.#recent.delete(key);
    }, (err) => {
      if (this.#recent.get(key) === e) this.#recent.delete(key);
      throw err;
    });
    this.#recent.delete(key); // re-inserted: newest last
    this.#recent.set(key, e);
    while (this.#recent.size > MAX_SHARED_SUBNETS) {
      const [oldest, v] = this.#recent.entries().next().value!;
      if (v.done === null) break; // running ones stay until they end (at most 8)
      this.#recent.delete(oldest);
    }
    await e.running;
    return { measured: text, samples: e.done!.samples, ageMs: 0, shared: false };
  }

  /**
   * The RTT to the subnet of client address `ip` (text), ms: the smallest connect time of the
   * latest probe the DNS servers asked for, if it ended less than {@link MAX_SHARE_MS} ago.
   */
  rttTo(ip: string): number | undefined {
    const a = parseClientIp(ip);
    const got = a === null ? undefined : this.#rtt.get(subnetOf(a));
    return got !== undefined && this.#now() - got.at < MAX_SHARE_MS ? got.ms : undefined;
  }

  #keepRtt(subnet: string, ms: number): void {
    this.#rtt.delete(subnet); // re-inserted: newest last
    this.#rtt.set(subnet, { ms, at: this.#now() });
    if (this.#rtt.size > MAX_SHARED_SUBNETS) this.#rtt.delete(this.#rtt.keys().next().value!);
  }

  async #probe(target: string, port: number, count: number): Promise<number[]> {
    this.#running++;
    this.stats.probes++;
    try {
      const samples: number[] = [];
      for (let i = 0; i < count; i++) {
        const ms = await this.#connect(target, port);
        if (ms !== null) samples.push(Math.round(ms * 100) / 100);
      }
      return samples;
    } finally {
      this.#running--;
    }
  }
}

/** The shared subnet of `a`, e.g. `10.1.2.0/24`. */
function subnetOf(a: IpAddr): string {
  return `${formatIp(maskIp(a, SHARE_BITS[a.family]))}/${SHARE_BITS[a.family]}`;
}

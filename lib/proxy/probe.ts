/**
 * Active probes: every `intervalMs` (with ±20 % jitter so servers are not probed in step), each
 * server gets a new TCP connection (its connect time is one sample of `connect`) and a
 * `GET /_cdn/health` on it (its time to response head is one latency sample, like a proxied
 * request's). A 2xx or 3xx answer is a success; a failed connect, a timeout or any other
 * status (503 while a node catches up) ejects the server (`server_state.ts`). The first probe
 * of a server only warms up: its timings are not kept.
 *
 * @module
 */

import type { ServerState } from "./server_state.ts";
import type { UpstreamPool } from "./upstream.ts";
import type { ByteConn } from "../tls/pinned_conn.ts";

/** Path the probes ask. */
export const PROBE_PATH = "/_cdn/health";

/** Options of {@link Prober}. */
export interface ProberOptions {
  pool: UpstreamPool;
  intervalMs: number;
  now: () => number;
  log: (line: string) => void;
}

/** Probes one server once; resolves when done (never rejects). */
export async function probeOnce(
  s: ServerState,
  o: ProberOptions,
  sample = true,
): Promise<boolean> {
  let conn: ByteConn | null = null;
  try {
    const c = await o.pool.connect(s.hostname, s.port);
    conn = c.conn;
    if (sample) s.connect.observe(c.ms, o.now());
    // The probe's connection is its own: it is closed, never pooled.
    const res = await o.pool.requestOn(conn, {
      method: "GET",
      target: PROBE_PATH,
      headers: [
        ["host", s.authority],
        ["connection", "close"],
        ["user-agent", "nearcast-proxy-probe"],
      ],
      body: null,
      bodyLength: null,
    });
    conn = null; // owned by the exchange now
    if (res.body instanceof ReadableStream) await res.body.cancel();
    const status = res.head.status;
    s.lastProbe = { at: o.now(), ok: status < 400, status };
    if (status >= 400) {
      if (s.failed(`probe: ${PROBE_PATH} answered ${status}`, true, o.now())) {
        o.log(`proxy: ejected ${s.id}: probe answered ${status}`);
      }
      return false;
    }
    s.succeeded(sample ? res.headMs : null, o.now());
    return true;
  } catch (e) {
    try {
      conn?.close();
    } catch { /* closed */ }
    s.lastProbe = { at: o.now(), ok: false, status: null };
    if ((e as { phase?: string }).phase === "local") return false; // our descriptors, not it
    if (s.failed(`probe: ${(e as Error).message}`, true, o.now())) {
      o.log(`proxy: ejected ${s.id}: probe failed: ${(e as Error).message}`);
    }
    return false;
  }
}

/** Probes every server of `servers()` periodically. */
export class Prober {
  #o: ProberOptions;
  #timers = new Map<ServerState, ReturnType<typeof setTimeout> | null>();
  #closed = false;
  #servers: () => readonly ServerState[];

  constructor(servers: () => readonly ServerState[], o: ProberOptions) {
    this.#servers = servers;
    this.#o = o;
  }

  /** Probes every server now (resolves when all answered or failed), then keeps probing. */
  async start(): Promise<void> {
    await Promise.all(this.#servers().map((s) => this.#loop(s)));
  }

  /** Starts probing a server that joined. */
  add(s: ServerState): void {
    if (!this.#closed && !this.#timers.has(s)) this.#loop(s);
  }

  close(): void {
    this.#closed = true;
    for (const t of this.#timers.values()) if (t !== null) clearTimeout(t);
    this.#timers.clear();
  }

  async #loop(s: ServerState): Promise<void> {
    const first = !this.#timers.has(s);
    this.#timers.set(s, null);
    // A first contact is a warm-up (cold code paths and caches on both sides): its latency is
    // not kept, and a second probe follows at once.
    if (!first || await probeOnce(s, this.#o, false)) await probeOnce(s, this.#o);
    if (this.#closed) return;
    if (!this.#servers().includes(s)) {
      this.#timers.delete(s);
      return;
    }
    const jitter = 0.8 + 0.4 * Math.random();
    this.#timers.set(s, setTimeout(() => this.#loop(s), this.#o.intervalMs * jitter));
  }
}

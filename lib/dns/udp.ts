/**
 * The portable UDP transport: `Deno.listenDatagram`, each datagram received straight into a
 * packet slot of the codec's memory, answered in place by the handler, and sent from there.
 * {@link RECEIVERS} receives are pending at once, each cycling through its own share of the
 * slots; a slot is reused only once its previous send has completed.
 *
 * @module
 */
import { ClientCache } from "./clients.ts";
import type { DnsHandler } from "./handler.ts";

/**
 * Receives kept pending at once, each over its own share of the slots: the runtime can then
 * complete several datagrams per event-loop turn instead of one (measured on loopback with
 * dnsperf: about 1.5x the queries per second of a single receive; 8 gave no more than 4).
 */
export const RECEIVERS = 4;

/** Options of {@link serveUdp}. */
export interface UdpOptions {
  hostname: string;
  port: number;
  handler: DnsHandler;
  /** Offset of the first packet slot in `handler.codec.memory`. */
  slotBase: number;
  /**
   * Bytes per slot: datagrams of this length or more are taken as cut and answered FORMERR.
   */
  slotSize: number;
  /** Number of slots: responses that may be in flight at once. */
  slots: number;
  clients?: ClientCache;
  /** Called with socket errors (after counting them). */
  onError?: (error: unknown) => void;
}

/** Socket-level counts of a UDP server. */
export interface UdpStats {
  received: number;
  sent: number;
  /** Failed receives and sends. */
  errors: number;
}

/** A running UDP server. */
export interface UdpServer {
  readonly port: number;
  readonly stats: UdpStats;
  close(): Promise<void>;
}

/** Serves DNS over UDP until `close()`. Binding errors throw synchronously. */
export function serveUdp(opts: UdpOptions): UdpServer {
  const { handler, slotBase, slotSize, slots } = opts;
  const mem = handler.codec.memory;
  if (slotBase < handler.codec.scratchBase || slotBase + slots * slotSize > mem.length) {
    throw new RangeError(
      `Cannot serve UDP: slots [${slotBase}, ${
        slotBase + slots * slotSize
      }) must lie in codec scratch memory`,
    );
  }
  const clients = opts.clients ?? new ClientCache();
  const onError = opts.onError ?? (() => {});
  const conn = Deno.listenDatagram({ hostname: opts.hostname, port: opts.port, transport: "udp" });
  const stats: UdpStats = { received: 0, sent: 0, errors: 0 };
  const inFlight: (Promise<void> | null)[] = new Array(slots).fill(null);
  let closed = false;

  const fail = (e: unknown) => {
    stats.errors++;
    onError(e);
  };
  // Slot views and completion callbacks, made once: a datagram allocates no view or closure
  // of ours beyond the response subarray.
  const views = inFlight.map((_, s) =>
    mem.subarray(slotBase + s * slotSize, slotBase + (s + 1) * slotSize)
  );
  const sent = inFlight.map((_, s) => () => {
    stats.sent++;
    inFlight[s] = null;
  });
  const failed = inFlight.map((_, s) => (e: unknown) => {
    inFlight[s] = null;
    if (!closed) fail(e);
  });

  /** Receiver `r` of `RECEIVERS` uses slots r, r + RECEIVERS, ... in turn. */
  async function loop(first: number): Promise<void> {
    let slot = first;
    while (!closed) {
      const pending = inFlight[slot];
      if (pending) await pending;
      const base = slotBase + slot * slotSize;
      let len: number, addr: Deno.Addr;
      try {
        const [data, from] = await conn.receive(views[slot]);
        len = data.length;
        addr = from;
      } catch (e) {
        if (closed) break;
        fail(e);
        continue;
      }
      stats.received++;
      const client = clients.get((addr as Deno.NetAddr).hostname);
      // Deno reports no truncation: a datagram filling the slot is taken as cut (longer).
      const n = handler.respond(base, len, client, false, len === slotSize);
      if (n > 0) {
        inFlight[slot] = conn.send(views[slot].subarray(0, n), addr).then(
          sent[slot],
          failed[slot],
        );
      }
      slot += receivers;
      if (slot >= slots) slot = first;
    }
  }

  const receivers = Math.min(RECEIVERS, slots);
  const done = Promise.all(Array.from({ length: receivers }, (_, r) => loop(r)));
  return {
    port: (conn.addr as Deno.NetAddr).port,
    stats,
    async close() {
      if (closed) return;
      closed = true;
      conn.close();
      await done;
      await Promise.all(inFlight.filter((p) => p !== null));
    },
  };
}

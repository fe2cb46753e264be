/**
 * DNS over TCP (RFC 7766): each message has a 2-octet length prefix (RFC 1035 §4.2.2); a
 * connection carries any number of queries, pipelined ones are answered in order, reads may
 * end anywhere in a message, a connection with no complete query for the idle timeout is
 * closed, and connections beyond the caps are closed at once.
 *
 * Two limits keep idle connections from locking clients out: each client address may hold at
 * most `perClient` connections, and connections that have not yet sent a complete query may take
 * at most the slots left after a reserved share ({@link RESERVED_SHARE}) of `maxConnections`;
 * when they reach that share, or the table is full, the oldest of them is closed to let the new
 * one in. Connections that have sent a query are never evicted for a newcomer.
 *
 * The handler is synchronous, so one packet slot in codec memory serves every connection: a
 * query is copied in, answered in place, and the response copied out before the next one.
 *
 * @module
 */
import { ClientCache } from "./clients.ts";
import type { DnsHandler } from "./handler.ts";

/** RFC 1035 §4.2.2: the length prefix of a TCP DNS message. */
export const LENGTH_PREFIX = 2;
/** Initial read buffer per connection; grows up to one whole message (2 + 65535). */
export const INITIAL_READ_BUFFER = 4096;
/** Largest framed message: the 16-bit length allows 65535 octets. */
export const MAX_FRAME = LENGTH_PREFIX + 65535;
/** Longest wait after a failed `accept()` (e.g. EMFILE) before the next try. */
export const MAX_ACCEPT_BACKOFF_MS = 1_000;
/** Failed accepts are reported (`onError`) at most once per this interval. */
export const ACCEPT_ERROR_REPORT_MS = 5_000;

/** Default most connections per client address. */
export const DEFAULT_TCP_PER_CLIENT = 16;
/** Share of `maxConnections` kept for connections that have sent a complete query. */
export const RESERVED_SHARE = 0.25;

/** Options of {@link serveTcp}. */
export interface TcpOptions {
  hostname: string;
  port: number;
  handler: DnsHandler;
  /** Offset of a 65535-byte packet slot in `handler.codec.memory`. */
  slot: number;
  idleTimeoutMs: number;
  maxConnections: number;
  /** Most connections per client address (default {@link DEFAULT_TCP_PER_CLIENT}). */
  perClient?: number;
  clients?: ClientCache;
  /** Called with connection errors (after counting them). */
  onError?: (error: unknown) => void;
}

/** Connection-level counts of a TCP server. */
export interface TcpStats {
  accepted: number;
  /** Closed at once: `maxConnections` open, all of them having sent a query. */
  rejected: number;
  /** Closed at once because their address already held `perClient` connections. */
  perClientRejected: number;
  /** Closed, before sending a complete query, to make room for a newer connection. */
  evicted: number;
  /** Closed by the idle timeout. */
  idleClosed: number;
  /** Connections open now. */
  open: number;
  errors: number;
  /** Failed `accept()` calls (e.g. EMFILE), each followed by a backoff; also in `errors`. */
  acceptErrors: number;
}

/** A running TCP server. */
export interface TcpServer {
  readonly port: number;
  readonly stats: TcpStats;
  close(): Promise<void>;
}

/** Writes all of `data`, however many calls it takes. */
async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** Serves DNS over TCP until `close()`. Binding errors throw synchronously. */
export function serveTcp(opts: TcpOptions): TcpServer {
  const { handler, slot } = opts;
  const mem = handler.codec.memory;
  if (slot < handler.codec.scratchBase || slot + 65535 > mem.length) {
    throw new RangeError(
      `Cannot serve TCP: the slot [${slot}, ${slot + 65535}) must lie in codec scratch memory`,
    );
  }
  const clients = opts.clients ?? new ClientCache();
  const onError = opts.onError ?? (() => {});
  const listener = Deno.listen({ hostname: opts.hostname, port: opts.port, transport: "tcp" });
  const stats: TcpStats = {
    accepted: 0,
    rejected: 0,
    perClientRejected: 0,
    evicted: 0,
    idleClosed: 0,
    open: 0,
    errors: 0,
    acceptErrors: 0,
  };
  const perClient = opts.perClient ?? DEFAULT_TCP_PER_CLIENT;
  const freshCap = Math.max(
    1,
    opts.maxConnections - Math.floor(opts.maxConnections * RESERVED_SHARE),
  );
  const conns = new Set<Deno.Conn>();
  /** Connections with no complete query yet, oldest first. */
  const fresh = new Set<Deno.Conn>();
  /** Open connections per client address. */
  const byClient = new Map<string, number>();
  const tasks = new Set<Promise<void>>();
  let closed = false;

  function closeQuietly(conn: Deno.Conn): void {
    try {
      conn.close();
    } catch { /* already closed */ }
  }

  /** Answers every complete message in `buf[0..have)`; returns [bytes consumed, responses]. */
  function answerAll(
    buf: Uint8Array,
    have: number,
    client: ReturnType<ClientCache["get"]>,
    out: Uint8Array[],
  ): number {
    let off = 0;
    while (have - off >= LENGTH_PREFIX) {
      const len = (buf[off] << 8) | buf[off + 1];
      if (have - off - LENGTH_PREFIX < len) break;
      mem.set(buf.subarray(off + LENGTH_PREFIX, off + LENGTH_PREFIX + len), slot);
      const n = handler.respond(slot, len, client, true);
      if (n > 0) {
        const frame = new Uint8Array(LENGTH_PREFIX + n);
        frame[0] = n >> 8;
        frame[1] = n & 0xff;
        frame.set(mem.subarray(slot, slot + n), LENGTH_PREFIX);
        out.push(frame);
      }
      off += LENGTH_PREFIX + len;
    }
    return off;
  }

  /** Forgets `conn` in every table (once: eviction and the connection's end both call it). */
  function release(conn: Deno.Conn, host: string): void {
    if (!conns.delete(conn)) return;
    fresh.delete(conn);
    const n = (byClient.get(host) ?? 1) - 1;
    if (n === 0) byClient.delete(host);
    else byClient.set(host, n);
    stats.open--;
  }

  /** Whether `conn` from `host` may be served; evicts the oldest fresh connection if needed. */
  function admit(host: string): boolean {
    if ((byClient.get(host) ?? 0) >= perClient) {
      stats.perClientRejected++;
      return false;
    }
    if (conns.size >= opts.maxConnections || fresh.size >= freshCap) {
      const oldest = fresh.values().next().value;
      if (oldest === undefined) {
        stats.rejected++;
        return false;
      }
      stats.evicted++;
      release(oldest, (oldest.remoteAddr as Deno.NetAddr).hostname);
      closeQuietly(oldest);
    }
    return true;
  }

  async function serveConn(conn: Deno.Conn, host: string): Promise<void> {
    const client = clients.get(host);
    let buf = new Uint8Array(INITIAL_READ_BUFFER);
    let have = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stats.idleClosed++;
        closeQuietly(conn);
      }, opts.idleTimeoutMs);
    };
    arm();
    try {
      while (!closed) {
        if (have === buf.length) {
          // Only a partial frame is buffered (complete ones were consumed): grow to hold it.
          const need = LENGTH_PREFIX + ((buf[0] << 8) | buf[1]);
          const grown = new Uint8Array(Math.min(MAX_FRAME, Math.max(need, buf.length * 2)));
          grown.set(buf.subarray(0, have));
          buf = grown;
        }
        const n = await conn.read(buf.subarray(have));
        if (n === null) break;
        have += n;
        const out: Uint8Array[] = [];
        const used = answerAll(buf, have, client, out);
        if (used > 0) {
          buf.copyWithin(0, used, have);
          have -= used;
          arm(); // idle time counts from the last complete query
          fresh.delete(conn);
        }
        for (const frame of out) await writeAll(conn, frame);
      }
    } catch (e) {
      // A reset, or the idle timer / close() closing the socket under a pending read.
      if (
        !closed && !(e instanceof Deno.errors.BadResource) &&
        !(e instanceof Deno.errors.Interrupted)
      ) {
        stats.errors++;
        onError(e);
      }
    } finally {
      clearTimeout(timer);
      release(conn, host);
      closeQuietly(conn);
    }
  }

  async function acceptLoop(): Promise<void> {
    let backoff = 0;
    let lastReport = -Infinity;
    while (!closed) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (closed) break;
        // EMFILE and the like repeat until a descriptor is freed: wait (doubling up to
        // MAX_ACCEPT_BACKOFF_MS) instead of spinning, and report at most once per interval.
        stats.errors++;
        stats.acceptErrors++;
        const now = Date.now();
        if (now - lastReport >= ACCEPT_ERROR_REPORT_MS) {
          lastReport = now;
          onError(e);
        }
        backoff = Math.min(MAX_ACCEPT_BACKOFF_MS, backoff === 0 ? 10 : backoff * 2);
        await new Promise((r) => setTimeout(r, backoff));
        continue;
      }
      backoff = 0;
      stats.accepted++;
      const host = (conn.remoteAddr as Deno.NetAddr).hostname;
      if (!admit(host)) {
        closeQuietly(conn);
        continue;
      }
      conns.add(conn);
      fresh.add(conn);
      byClient.set(host, (byClient.get(host) ?? 0) + 1);
      stats.open++;
      const task = serveConn(conn, host);
      tasks.add(task);
      task.finally(() => tasks.delete(task));
    }
  }

  const done = acceptLoop();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    stats,
    async close() {
      if (closed) return;
      closed = true;
      listener.close();
      for (const c of conns) closeQuietly(c);
      await done;
      await Promise.all([...tasks]);
    },
  };
}

/**
 * An HTTP listener with resource limits, for every HTTP server in Nearcast (replica, DNS
 * control API). `Deno.serve` has no connection cap, no header timeout and no hook for accept
 * errors (an `EMFILE` from accept ends the process); this module accepts connections itself and
 * hands each one to Deno's HTTP machinery (see `_serve_conn.ts`), so:
 *
 * - **Connection cap** ({@link ListenerLimits.maxConns}): past it, the oldest connection with no
 *   request in flight is closed to make room; when every connection is busy, the new one is
 *   closed at once. The default stays below the process's open-file limit
 *   ({@link defaultMaxConns}).
 * - **Accept errors** (`EMFILE`, `ENFILE`, `ECONNABORTED`...) are counted and retried with a
 *   backoff of up to 1 s; they never end the process.
 * - **Header timeout** ({@link ListenerLimits.headerTimeoutMs}, 30 s): a connection with no
 *   request in flight (a new one, or a kept-alive one waiting for its next request) is closed
 *   when no complete request head arrived within it. A partial head (slowloris) is closed so.
 * - **Idle timeout** ({@link ListenerLimits.idleTimeoutMs}, 60 s): a connection with a request in
 *   flight is closed when no byte moved for that long: request body chunks read and response
 *   body chunks sent both count, so an event stream or long poll that sends keepalives stays
 *   open, and a client that stops reading is dropped.
 * - **TLS** ({@link LimitedServeOptions.tls}): HTTPS only on the port; the certificate can be
 *   replaced while running ({@link LimitedServer.setCertificate}, see `lib/tls/listen.ts`). A
 *   TLS handshake that does not complete counts against the header timeout.
 * - A body held in memory is taken by Deno whole (the request counts as done at once) and written
 *   without progress reports, so its connection gets both timeouts plus the body's size at
 *   {@link MIN_STATIC_SEND_RATE}.
 *
 * @module
 */
import { innerBody, serveOnConnection } from "./_serve_conn.ts";
import type { Exposition } from "./prometheus.ts";
import { listenTlsSwappable, relistenTls, type TlsKeyPair } from "../tls/listen.ts";
import { negotiateError } from "./error_body.ts";

/** Default header timeout: a partial request head is closed within it. */
export const DEFAULT_HEADER_TIMEOUT_MS = 30_000;
/** Default idle timeout for a connection with a request in flight. */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/**
 * Default connection cap when the open-file limit allows it. An open connection holds about
 * 33 KiB of the replica's memory (`bench/listener/conn_rss.ts`), so 4096 is about 135 MiB.
 */
export const DEFAULT_MAX_CONNS = 4096;
/**
 * Slowest delivery a body held in memory is allowed (bytes per second): Deno writes such a body
 * without telling us about progress, so its connection gets the timeouts plus its size at this
 * rate (64 MiB: about 34 minutes).
 */
export const MIN_STATIC_SEND_RATE = 32 * 1024;
/** Longest pause of the accept loop after an accept error. */
export const MAX_ACCEPT_BACKOFF_MS = 1_000;

/** Limits of one listener; every field has a default. */
export interface ListenerLimits {
  /** Most open connections (see the module doc). Default {@link defaultMaxConns}(). */
  maxConns?: number;
  /** Time allowed for a complete request head, in ms. Default 30 000. */
  headerTimeoutMs?: number;
  /** Time without a byte in either direction while a request is in flight, in ms. Default 60 000. */
  idleTimeoutMs?: number;
}

/** Options of {@link serveLimited}. */
export interface LimitedServeOptions extends ListenerLimits {
  port: number;
  hostname?: string;
  signal?: AbortSignal;
  onListen?: (addr: Deno.NetAddr) => void;
  /** Answers a handler crash (default: a logged 500). */
  onError?: (error: unknown) => Response | Promise<Response>;
  /** Where accept errors and cap events are reported (rate-limited). Default `console.error`. */
  log?: (line: string) => void;
  /** Name in log lines, e.g. `"http"` or `"control"`. */
  name?: string;
  /** Serve HTTPS only, with this certificate and key (PEM). Default: plain HTTP. */
  tls?: TlsKeyPair;
}

/** Counters of a {@link LimitedServer}. */
export interface ListenerStats {
  /** Connections open now. */
  open: number;
  accepted: number;
  /** Connections closed at once because every open one was busy at the cap. */
  refused: number;
  /** Idle connections closed to make room for a new one at the cap. */
  evicted: number;
  /** Connections closed for not sending a complete request head in time. */
  headerTimeouts: number;
  /** Connections closed for moving no byte while a request was in flight. */
  idleTimeouts: number;
  acceptErrors: number;
}

/**
 * Writes the listener's limits and counters into `e` (under its prefix, e.g. `nearcast_http`):
 * `PREFIX_connections_open` and `PREFIX_connections_max` (gauges), and counters
 * `PREFIX_connections_accepted_total`, `..._refused_total`, `..._evicted_total`,
 * `..._header_timeouts_total`, `..._idle_timeouts_total`, `PREFIX_accept_errors_total`.
 */
export function writeListenerMetrics(
  e: Exposition,
  stats: ListenerStats,
  limits: Required<ListenerLimits>,
): void {
  e.gauge("connections_open", "Client connections open.", stats.open);
  e.gauge("connections_max", "Connection cap (--max-conns).", limits.maxConns);
  e.counter("connections_accepted_total", "Connections accepted.", stats.accepted);
  e.counter(
    "connections_refused_total",
    "Connections closed at once: at the cap with every connection busy.",
    stats.refused,
  );
  e.counter(
    "connections_evicted_total",
    "Idle connections closed to make room at the cap or after an accept error.",
    stats.evicted,
  );
  e.counter(
    "connections_header_timeouts_total",
    "Connections closed without a complete request head within --header-timeout.",
    stats.headerTimeouts,
  );
  e.counter(
    "connections_idle_timeouts_total",
    "Connections closed after --idle-timeout without a byte while a request was in flight.",
    stats.idleTimeouts,
  );
  e.counter("accept_errors_total", "Failed accepts (EMFILE...), retried.", stats.acceptErrors);
}

/** A running listener. */
export interface LimitedServer {
  readonly addr: Deno.NetAddr;
  readonly limits: Required<ListenerLimits>;
  readonly stats: ListenerStats;
  /** Settles when the listener and every connection are closed. */
  readonly finished: Promise<void>;
  /** Stops accepting, lets requests in flight finish, closes idle connections. */
  shutdown(): Promise<void>;
  /**
   * Serves new TLS connections with `pair` from now on (connections already open keep theirs).
   * Throws when the listener is not TLS or the pair is refused; the old one then stays.
   */
  setCertificate(pair: TlsKeyPair): void;
}

/** A handler as for `Deno.serve`. */
export type LimitedHandler = (
  req: Request,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
) => Response | Promise<Response>;

/**
 * The soft limit on open files of this process (`RLIMIT_NOFILE`), read from
 * `/proc/self/limits`; null when unknown (not Linux) or unlimited.
 */
export function openFileLimit(): number | null {
  try {
    const text = Deno.readTextFileSync("/proc/self/limits");
    const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
    if (m === null || m[1] === "unlimited") return null;
    return Number(m[1]);
  } catch {
    return null;
  }
}

/**
 * The default connection cap: {@link DEFAULT_MAX_CONNS}, but at most the open-file soft limit
 * minus a reserve of a quarter of it (at least 64) for origin and peer connections, the store
 * and the process's other sockets: 768 under `ulimit -n 1024`. Never below 16.
 */
export function defaultMaxConns(fdLimit: number | null = openFileLimit()): number {
  if (fdLimit === null) return DEFAULT_MAX_CONNS;
  const reserve = Math.max(64, Math.floor(fdLimit / 4));
  return Math.max(16, Math.min(DEFAULT_MAX_CONNS, fdLimit - reserve));
}

/** Checks limits and fills defaults; throws `RangeError` naming the bad field. */
export function resolveLimits(l: ListenerLimits = {}): Required<ListenerLimits> {
  const out = {
    maxConns: l.maxConns ?? defaultMaxConns(),
    headerTimeoutMs: l.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS,
    idleTimeoutMs: l.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
  };
  if (!Number.isInteger(out.maxConns) || out.maxConns < 1) {
    throw new RangeError(`maxConns must be a positive integer: received ${out.maxConns}`);
  }
  for (const k of ["headerTimeoutMs", "idleTimeoutMs"] as const) {
    if (!Number.isFinite(out[k]) || out[k] <= 0) {
      throw new RangeError(`${k} must be positive: received ${out[k]}`);
    }
  }
  return out;
}

interface Conn {
  close(): void;
  /** Requests whose response has not been fully sent. */
  active: number;
  /** Last time a request head arrived, a body chunk moved or a response ended. */
  last: number;
}

function internalError(error: unknown, log: (line: string) => void, name: string): Response {
  log(`${name}: internal error: ${(error as Error)?.stack ?? error}`);
  return new Response("500: internal error\n", {
    status: 500,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

/**
 * Wraps a body so that every chunk that moves marks the connection active; `end` is called once
 * when the body is done, cancelled or failed.
 */
function watched(
  body: ReadableStream<Uint8Array>,
  touch: () => void,
  end: () => void = () => {},
): ReadableStream<Uint8Array> {
  return watchedBytes(body, touch, end) ?? watchedChunks(body, touch, end);
}

/** Methods `new Request` refuses (Fetch standard); a request with one is passed on as it is. */
const FORBIDDEN_METHODS: ReadonlySet<string> = new Set(["CONNECT", "TRACE", "TRACK"]);

/** Size of the buffer a default reader of {@link watchedBytes} gets per read. */
const WATCHED_CHUNK = 64 * 1024;

/** `end`, run at most once. */
function once(end: () => void): () => void {
  let ended = false;
  return () => {
    if (!ended) {
      ended = true;
      end();
    }
  };
}

/** One read of a watched body: the connection is touched before and after; a failed read ends it. */
async function watchedRead<T>(read: () => Promise<T>, touch: () => void, finish: () => void) {
  touch();
  try {
    return await read();
  } catch (e) {
    finish();
    throw e;
  } finally {
    touch();
  }
}

/**
 * {@link watched} for a byte stream (a request body), as a byte stream: a consumer that reads
 * with a BYOB reader into one reused buffer (the upload decoders) has the bytes read straight
 * into it, so a 1 GiB upload does not leave a fresh 64 KiB array per read for V8 to collect
 * (about 25 MiB more resident memory at a node's peak); a default reader gets a 64 KiB array per
 * read as before. Null when `body` is not a byte stream.
 */
function watchedBytes(
  body: ReadableStream<Uint8Array>,
  touch: () => void,
  end: () => void,
): ReadableStream<Uint8Array> | null {
  let reader: ReadableStreamBYOBReader;
  try {
    reader = body.getReader({ mode: "byob" });
  } catch {
    return null;
  }
  const finish = once(end);
  return new ReadableStream({
    type: "bytes",
    autoAllocateChunkSize: WATCHED_CHUNK,
    async pull(c) {
      const req = c.byobRequest!;
      const v = req.view!;
      const into = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      const r = await watchedRead(() => reader.read(into), touch, finish);
      if (r.done) {
        finish();
        c.close();
        // The read moved the buffer into the inner reader: hand it back, empty.
        if (r.value !== undefined) req.respondWithNewView(r.value);
        return;
      }
      req.respondWithNewView(r.value);
    },
    cancel(reason) {
      finish();
      return reader.cancel(reason);
    },
  });
}

function watchedChunks(
  body: ReadableStream<Uint8Array>,
  touch: () => void,
  end: () => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const finish = once(end);
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      const r = await watchedRead(() => reader.read(), touch, finish);
      if (r.done) {
        finish();
        c.close();
      } else c.enqueue(r.value);
    },
    cancel(reason) {
      finish();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** Serves `handler` on a TCP listener with the limits of the module doc. */
export function serveLimited(opts: LimitedServeOptions, handler: LimitedHandler): LimitedServer {
  const limits = resolveLimits(opts);
  const name = opts.name ?? "http";
  const log = opts.log ?? ((line: string) => console.error(line));
  const onError = opts.onError ?? ((e: unknown) => internalError(e, log, name));
  const hostname = opts.hostname ?? "0.0.0.0";
  let listener: Deno.Listener = opts.tls === undefined
    ? Deno.listen({ hostname, port: opts.port })
    : listenTlsSwappable(hostname, opts.port, opts.tls, log);
  const addr = listener.addr as Deno.NetAddr;
  const stats: ListenerStats = {
    open: 0,
    accepted: 0,
    refused: 0,
    evicted: 0,
    headerTimeouts: 0,
    idleTimeouts: 0,
    acceptErrors: 0,
  };
  const conns = new Set<Conn>(); // insertion order: oldest first
  const served = new Set<Promise<void>>();
  let stopping = false;
  let lastLog = -Infinity;
  const rateLog = (line: string) => {
    const t = Date.now();
    if (t - lastLog < 5_000) return;
    lastLog = t;
    log(`${name}: ${line}`);
  };

  const sweep = setInterval(() => {
    const t = Date.now();
    for (const c of conns) {
      if (c.active === 0 && t - c.last > limits.headerTimeoutMs) {
        stats.headerTimeouts++;
        c.close();
      } else if (c.active > 0 && t - c.last > limits.idleTimeoutMs) {
        stats.idleTimeouts++;
        c.close();
      }
    }
  }, Math.max(10, Math.min(1_000, limits.headerTimeoutMs / 4, limits.idleTimeoutMs / 4)));

  /** No request in flight and no body held in memory still being written (`last` ahead). */
  const idle = (c: Conn, t: number) => c.active === 0 && c.last <= t;

  function makeRoom(): boolean {
    const t = Date.now();
    for (const c of conns) {
      if (idle(c, t)) {
        stats.evicted++;
        c.close();
        return true;
      }
    }
    return false;
  }

  function accept(tcp: Deno.TcpConn) {
    stats.accepted++;
    if (conns.size >= limits.maxConns && !makeRoom()) {
      stats.refused++;
      rateLog(`${conns.size} connections open (cap ${limits.maxConns}): refusing new ones`);
      try {
        tcp.close();
      } catch { /* already closed */ }
      return;
    }
    try {
      tcp.setNoDelay(true);
    } catch { /* the peer left already */ }
    const ac = new AbortController();
    let ended = false;
    const conn: Conn = {
      active: 0,
      last: Date.now(),
      close: () => {
        if (conns.delete(conn)) stats.open = conns.size;
        if (!ended) ac.abort();
        ended = true;
      },
    };
    conns.add(conn);
    stats.open = conns.size;
    // Never moves `last` back: a body held in memory may have set it ahead (see settle).
    const touch = () => {
      const t = Date.now();
      if (t > conn.last) conn.last = t;
    };
    // A request is in flight from its head until its response body is handed over whole (a
    // body held in memory: Deno takes it at once) or its stream ends.
    const done = () => {
      conn.active--;
      touch();
    };
    // The response is handed over: one lookup of its body and one clock read per request
    // (the hit path's cost). A body held in memory keeps the connection busy for its size at
    // MIN_STATIC_SEND_RATE past now.
    const settle = (res: Response): Response => {
      const b = innerBody(res);
      if (b?.streamOrStatic instanceof ReadableStream) {
        touch();
        return new Response(watchedChunks(res.body!, touch, done), res);
      }
      conn.active--;
      const t = Date.now();
      const until = b ? t + (b.length ?? 0) * 1000 / MIN_STATIC_SEND_RATE : t;
      if (until > conn.last) conn.last = until;
      return res;
    };
    const failed = (e: unknown): never => {
      done();
      throw e;
    };
    const wrapped: LimitedHandler = (req, info) => {
      conn.active++;
      const m = req.method;
      // CONNECT, TRACE and TRACK cannot be built anew (the Fetch standard forbids them in
      // `new Request`); their bodies are never read (they get 501), so they are not watched.
      if (
        m !== "GET" && m !== "HEAD" && req.body !== null && !FORBIDDEN_METHODS.has(m.toUpperCase())
      ) {
        // Built from the parts, not `new Request(req, ...)`: copying a request reads its signal,
        // and Deno then prints a warning about its legacy abort behaviour on every such request.
        req = new Request(req.url, {
          method: m,
          headers: req.headers,
          body: watched(req.body, touch),
          signal: null,
        });
      }
      let res;
      try {
        res = handler(req, info);
      } catch (e) {
        failed(e);
      }
      if (!(res instanceof Promise)) return settle(negotiateError(req, res!));
      // The head arrived now: the idle timeout runs from here while the handler works. (A
      // synchronous handler needs no such mark: nothing else runs before settle.)
      touch();
      return res.then((r) => settle(negotiateError(req, r)), failed);
    };
    let server;
    try {
      server = serveOnConnection(tcp, ac.signal, wrapped, onError);
    } catch (e) {
      conn.close();
      rateLog(`cannot serve a connection: ${(e as Error).message}`);
      return;
    }
    const p = server.finished.catch(() => {}).finally(() => {
      ended = true;
      conn.close();
      served.delete(p);
    });
    served.add(p);
  }

  const acceptFrom = async (l: Deno.Listener) => {
    let backoff = 10;
    while (!stopping && l === listener) {
      let tcp: Deno.TcpConn;
      try {
        tcp = await l.accept() as Deno.TcpConn;
        backoff = 10;
      } catch (e) {
        if (stopping || l !== listener || e instanceof Deno.errors.BadResource) break;
        stats.acceptErrors++;
        rateLog(`accept failed (${conns.size} open, retrying): ${(e as Error).message}`);
        // Free a descriptor if we hold idle ones: the listen queue is waiting.
        makeRoom();
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(MAX_ACCEPT_BACKOFF_MS, backoff * 2);
        continue;
      }
      accept(tcp);
    }
  };
  let loop = acceptFrom(listener);

  function setCertificate(pair: TlsKeyPair): void {
    if (opts.tls === undefined) throw new Error(`${name}: not a TLS listener`);
    if (stopping) return;
    const old = listener as Deno.TlsListener;
    listener = relistenTls(old, pair, log);
    const before = loop;
    loop = Promise.all([before, acceptFrom(listener)]).then(() => {});
    try {
      old.close();
    } catch { /* closed */ }
  }

  let finishing: Promise<void> | null = null;
  function shutdown(): Promise<void> {
    finishing ??= (async () => {
      stopping = true;
      try {
        listener.close();
      } catch { /* closed */ }
      await loop;
      // Idle connections go now; busy ones when their requests end (the sweep closes them).
      for (const c of conns) if (idle(c, Date.now())) c.close();
      const drain = setInterval(() => {
        const t = Date.now();
        for (const c of conns) if (idle(c, t)) c.close();
      }, 50);
      await Promise.allSettled([...served]);
      clearInterval(drain);
      clearInterval(sweep);
    })();
    return finishing;
  }
  opts.signal?.addEventListener("abort", () => {
    shutdown();
  }, { once: true });
  const onListen = opts.onListen ?? ((a: Deno.NetAddr) => log(`${name}: listening on ${a.port}`));
  onListen(addr);

  return {
    addr,
    limits,
    stats,
    get finished() {
      return (async () => {
        await loop;
        await shutdown();
      })();
    },
    shutdown,
    setCertificate,
  };
}

/**
 * The proxy's HTTP/1.1 client to servers, with keep-alive pooling per host and port. It is its
 * own (over `Deno.connect`) rather than `fetch` because a proxy must pass messages through as
 * they are: `fetch` decompresses bodies while keeping `Content-Encoding` when the client asked
 * for gzip, drops the `Host` header and adds `Accept-Language` and `User-Agent`. Owning the
 * connection also gives the timings the balancer needs (TCP connect, time to response head) and
 * says whether a failure happened before the server sent a byte (then an idempotent request
 * may be retried elsewhere).
 *
 * Limits: connect timeout, time to the response head, idle time between body bytes; response
 * heads are bounded (`_h1.ts`). Bodies stream both ways with back-pressure.
 *
 * @module
 */

import {
  type BodyEnd,
  bodyStream,
  BufReader,
  ProtocolError,
  responseFraming,
  type ResponseHead,
} from "./_h1.ts";
import { openFileLimit } from "../common/http_server.ts";
import { type ByteConn, connectPinnedTls } from "../tls/pinned_conn.ts";

/**
 * Most idle kept-alive connections over all hosts (`--other forward` reaches many): 512, or an
 * eighth of the open-file limit when that is lower, so idle connections never take the
 * descriptors that the listener leaves to server connections (`defaultMaxConns`).
 */
export const MAX_IDLE_TOTAL = Math.min(512, Math.floor((openFileLimit() ?? 4096) / 8));

/** Largest body read whole before the response is handed on (see {@link UpstreamResponse}). */
export const SMALL_BODY_BYTES = 64 * 1024;

/** Limits of an {@link UpstreamPool}. */
export interface PoolOptions {
  /** Longest TCP connect, ms. */
  connectTimeoutMs: number;
  /** Longest wait for a response head once the request head is sent, ms. */
  headTimeoutMs: number;
  /** Longest time without a byte while a body moves (either way), ms. */
  idleTimeoutMs: number;
  /** Idle kept-alive connections kept per host and port. */
  maxIdlePerHost: number;
  /** How long an idle connection is kept, ms (below the servers' own idle timeouts). */
  keepIdleMs: number;
  /** Servers speak TLS, verified against this CA alone (PEM; `--ca`); absent: plain TCP. */
  caPem?: string;
}

/** Defaults of {@link PoolOptions}. */
export const DEFAULT_POOL: PoolOptions = {
  connectTimeoutMs: 2_000,
  headTimeoutMs: 30_000,
  idleTimeoutMs: 60_000,
  maxIdlePerHost: 64,
  keepIdleMs: 15_000,
};

/** Where an exchange failed (`local`: this process could not open a socket). */
export type FailPhase = "connect" | "head" | "local";

/** A request that got no response head: nothing was sent to the client yet. */
export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly phase: FailPhase,
    /** True when it failed on a kept-alive connection before any byte came back. */
    readonly staleReuse = false,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "UpstreamError";
  }
}

/** One request to a server. */
export interface UpstreamRequest {
  method: string;
  /** Origin-form target: path and query. */
  target: string;
  /** Header fields to send (a `host` among them); framing headers are added here. */
  headers: [string, string][];
  body: ReadableStream<Uint8Array> | null;
  /** The body's length when known (sent as Content-Length), else it is sent chunked. */
  bodyLength: number | null;
  /** Called once when the response body ends, however (no body: at once, `reuse` or `end`). */
  onEnd?: (how: BodyEnd) => void;
}

/** A response head from a server, its body streaming. */
export interface UpstreamResponse {
  head: ResponseHead;
  /**
   * The body: bytes read whole when it is at most {@link SMALL_BODY_BYTES} (Deno sends a body
   * held in memory on its fast path, and the connection goes back to the pool at once), else
   * a stream; null when there is none.
   */
  body: Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array> | null;
  /** TCP connect time, ms; null on a kept-alive connection. */
  connectMs: number | null;
  /** From the request head written to the response head read, ms. */
  headMs: number;
}

/** How often head and idle deadlines are checked, ms. */
const WATCHDOG_MS = 100;

/**
 * A server connection. The deadline of the exchange on it lives here too (one exchange at a time
 * per connection), so the watchdog's set holds connections, which live long anyway, and never a
 * per-request object: a per-request watch object in that set kept its whole request (response,
 * headers, closures) alive across young-generation collections: about 700 bytes promoted to the
 * old generation per forwarded hit, and scavenges of 1-3 ms; without it 5-10 bytes, and
 * scavenges of about 0.3 ms (`deno task bench:proxy` prints both).
 */
interface Pooled {
  conn: ByteConn;
  reader: BufReader;
  idleSince: number;
  /** The request head is encoded here (one write at a time per connection). */
  scratch: Uint8Array | null;
  /** When the running exchange times out (`Date.now()` ms), while in the watchdog's set. */
  deadline: number;
  /** What the exchange is waiting for (the error text if the deadline passes). */
  why: string;
  /** Set by the watchdog when the deadline passed (the connection is closed then). */
  timedOut: string | null;
  /** Index in the pool's armed list, -1 when not armed. */
  armedAt: number;
}

/** A new {@link Pooled} for `conn`. */
function pooled(conn: ByteConn): Pooled {
  return {
    conn,
    reader: new BufReader(conn),
    idleSince: 0,
    scratch: null,
    deadline: 0,
    why: "",
    timedOut: null,
    armedAt: -1,
  };
}

/** Size of a connection's request head buffer (a longer head is encoded on its own). */
const SCRATCH_BYTES = 4096;

/** `head` as bytes: in `p.scratch` when it fits (no buffer allocated per request). */
function encodeHead(p: Pooled, head: string): Uint8Array {
  if (head.length > SCRATCH_BYTES) return enc.encode(head);
  const scratch = p.scratch ??= new Uint8Array(SCRATCH_BYTES);
  const r = enc.encodeInto(head, scratch);
  return r.read === head.length ? scratch.subarray(0, r.written) : enc.encode(head);
}

const enc = new TextEncoder();

async function writeAll(conn: ByteConn, bytes: Uint8Array): Promise<void> {
  let off = await conn.write(bytes);
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

const SENT = Promise.resolve(true);

function closeQuietly(conn: ByteConn): void {
  try {
    conn.close();
  } catch { /* closed already */ }
}

/** Kept-alive connections per host and port, and the exchange of one request on them. */
export class UpstreamPool {
  readonly options: PoolOptions;
  #idle = new Map<string, Pooled[]>();
  #idleCount = 0;
  #sweep: ReturnType<typeof setInterval>;
  /**
   * Connections with an exchange whose deadline runs (see {@link Pooled}); each knows its index
   * (`armedAt`), so arming and disarming are a push and a swap-remove. Not a `Set`: V8 rebuilds
   * a hash table whose deleted entries fill it, and a long-lived table's new one goes straight
   * to the old generation; with an add and a delete per request that was about 35 bytes of old
   * generation per forwarded hit, which brings mark-compacts sooner (docs/benchmarks.md).
   */
  #armed: Pooled[] = [];
  #watchdog: ReturnType<typeof setInterval>;
  /** Connections opened (probes' included), and requests sent on a kept-alive one. */
  readonly stats = { connects: 0, reused: 0 };
  /** Why an exchange timed out, by phase (built once). */
  readonly #why: { head: string; idle: string };

  constructor(options: Partial<PoolOptions> = {}) {
    this.options = { ...DEFAULT_POOL, ...options };
    this.#why = {
      head: `no response head within ${this.options.headTimeoutMs} ms`,
      idle: `no byte for ${this.options.idleTimeoutMs} ms`,
    };
    this.#sweep = setInterval(() => this.#expire(), 1_000);
    Deno.unrefTimer(this.#sweep);
    // Head and idle timeouts: checked every WATCHDOG_MS (they are seconds long), so a request
    // costs no timer of its own.
    this.#watchdog = setInterval(() => {
      const now = Date.now();
      for (let i = this.#armed.length - 1; i >= 0; i--) {
        const p = this.#armed[i];
        if (now >= p.deadline) {
          this.#disarm(p);
          p.timedOut = p.why;
          closeQuietly(p.conn);
        }
      }
    }, WATCHDOG_MS);
    Deno.unrefTimer(this.#watchdog);
  }

  /** Closes every idle connection and stops the sweep. */
  close(): void {
    clearInterval(this.#sweep);
    clearInterval(this.#watchdog);
    for (const list of this.#idle.values()) for (const p of list) closeQuietly(p.conn);
    this.#idle.clear();
    this.#idleCount = 0;
  }

  #arm(p: Pooled): void {
    if (p.armedAt < 0) p.armedAt = this.#armed.push(p) - 1;
  }

  #disarm(p: Pooled): void {
    const i = p.armedAt;
    if (i < 0) return;
    const last = this.#armed.pop()!;
    if (last !== p) {
      this.#armed[i] = last;
      last.armedAt = i;
    }
    p.armedAt = -1;
  }

  #expire(): void {
    const old = Date.now() - this.options.keepIdleMs;
    for (const [key, list] of this.#idle) {
      const keep = list.filter((p) => p.idleSince > old);
      for (const p of list) if (p.idleSince <= old) closeQuietly(p.conn);
      this.#idleCount -= list.length - keep.length;
      if (keep.length === 0) this.#idle.delete(key);
      else this.#idle.set(key, keep);
    }
  }

  #release(key: string, p: Pooled): void {
    const list = this.#idle.get(key) ?? [];
    if (list.length >= this.options.maxIdlePerHost || this.#idleCount >= MAX_IDLE_TOTAL) {
      closeQuietly(p.conn);
      return;
    }
    p.idleSince = Date.now();
    list.push(p);
    this.#idleCount++;
    this.#idle.set(key, list);
  }

  /** Opens a TCP connection within the connect timeout; returns it and the time it took. */
  async connect(hostname: string, port: number): Promise<{ conn: ByteConn; ms: number }> {
    const t0 = performance.now();
    const caPem = this.options.caPem;
    const pending: Promise<ByteConn> = caPem === undefined
      ? Deno.connect({ hostname, port })
      : connectPinnedTls(hostname, port, caPem);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        pending.then(closeQuietly, () => {});
        reject(
          new UpstreamError(
            `connect timed out after ${this.options.connectTimeoutMs} ms`,
            "connect",
          ),
        );
      }, this.options.connectTimeoutMs);
    });
    try {
      const conn = await Promise.race([pending, timeout]);
      this.stats.connects++;
      (conn as { setNoDelay?(on: boolean): void }).setNoDelay?.(true);
      return { conn, ms: performance.now() - t0 };
    } catch (e) {
      if (e instanceof UpstreamError) throw e;
      const why = (e as Error).message;
      // Out of descriptors here is this process's trouble, not the server's.
      const phase = /too many open files|os error 2[34]\b/i.test(why) ? "local" : "connect";
      throw new UpstreamError(`cannot connect: ${why}`, phase, false, { cause: e });
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Sends `req` to `hostname:port` on a kept-alive connection when one is idle (once more on a
   * new connection when that one turns out closed and the request has no body), else on a new
   * one. Rejects with {@link UpstreamError} when no response head came. (No abort signal: a
   * client that leaves cancels the response body, which closes the connection; before the
   * head, the head timeout bounds the wait. Deno's `request.signal` also aborts when a
   * response completes, so it cannot tell a client that left.)
   */
  async request(
    hostname: string,
    port: number,
    req: UpstreamRequest,
  ): Promise<UpstreamResponse> {
    const key = `${hostname}:${port}`;
    const list = this.#idle.get(key);
    const p = list?.pop();
    if (p !== undefined) {
      this.#idleCount--;
      this.stats.reused++;
      try {
        return await this.#exchange(key, p, null, req);
      } catch (e) {
        if (!(e instanceof UpstreamError && e.staleReuse && req.body === null)) throw e;
      }
    }
    const { conn, ms } = await this.connect(hostname, port);
    return this.#exchange(
      key,
      pooled(conn),
      ms,
      req,
    );
  }

  /** Sends `req` on `conn`, which is closed after the response (never pooled). */
  requestOn(
    conn: ByteConn,
    req: UpstreamRequest,
  ): Promise<UpstreamResponse> {
    return this.#exchange(
      null,
      pooled(conn),
      null,
      req,
    );
  }

  async #exchange(
    key: string | null,
    p: Pooled,
    connectMs: number | null,
    req: UpstreamRequest,
  ): Promise<UpstreamResponse> {
    const { conn, reader } = p;
    const received = reader.received;
    p.timedOut = null;
    // One deadline checked by the pool's watchdog, not a timer per request (see #watchdog).
    const arm = (ms: number, what: string) => {
      p.deadline = Date.now() + ms;
      p.why = what;
      this.#arm(p);
    };
    const disarm = () => this.#disarm(p);
    const t0 = performance.now();
    let sending: Promise<boolean> = SENT;
    const { head: headWait, idle } = this.#why;
    try {
      arm(this.options.headTimeoutMs, headWait);
      let head = `${req.method} ${req.target} HTTP/1.1\r\n`;
      for (const [n, v] of req.headers) head += `${n}: ${v}\r\n`;
      if (req.body !== null) {
        head += req.bodyLength !== null
          ? `content-length: ${req.bodyLength}\r\n`
          : "transfer-encoding: chunked\r\n";
      }
      await writeAll(conn, encodeHead(p, head + "\r\n"));
      let headed = false;
      if (req.body !== null) {
        // Every chunk sent restarts the timer that runs: the head's before it came, else idle.
        sending = this.#sendBody(
          conn,
          req.body,
          req.bodyLength === null,
          () =>
            headed
              ? arm(this.options.idleTimeoutMs, idle)
              : arm(this.options.headTimeoutMs, headWait),
        );
      }
      const h = await reader.head();
      headed = true;
      if (h === null) {
        throw new UpstreamError(
          "server closed the connection without answering",
          "head",
          connectMs === null && reader.received === received,
        );
      }
      if (h.status === 101) throw new ProtocolError("server switched protocols (not supported)");
      const framing = responseFraming(req.method, h);
      const headMs = performance.now() - t0;
      const reqClose = req.headers.some(([n, v]) => n === "connection" && /close/i.test(v));
      const keep = h.minor === 1 && !reqClose &&
        !h.headers.some(([n, v]) => n === "connection" && /close/i.test(v));
      const finish = async (how: BodyEnd) => {
        disarm();
        req.onEnd?.(how);
        const sent = await sending;
        disarm(); // a request body still sent after the response re-arms it
        if (key !== null && how === "reuse" && keep && sent && p.timedOut === null) {
          this.#release(key, p);
        } else closeQuietly(conn);
      };
      if (framing.kind === "none") {
        finish("reuse");
        return { head: h, body: null, connectMs, headMs };
      }
      arm(this.options.idleTimeoutMs, idle);
      if (framing.kind === "length" && framing.length <= SMALL_BODY_BYTES) {
        // A failure here is still before the client got a byte (retried like one before head).
        const bytes = reader.takeBuffered(framing.length) ?? await reader.exact(framing.length);
        finish("reuse");
        return { head: h, body: bytes, connectMs, headMs };
      }
      const body = bodyStream(reader, framing, finish, () => arm(this.options.idleTimeoutMs, idle));
      return { head: h, body, connectMs, headMs };
    } catch (e) {
      disarm();
      closeQuietly(conn);
      if (e instanceof UpstreamError) throw e;
      const why = p.timedOut ?? (e as Error).message;
      throw new UpstreamError(
        why,
        "head",
        connectMs === null && reader.received === received && p.timedOut === null,
        { cause: e },
      );
    }
  }

  /** Streams a request body; resolves true when it was sent whole. */
  async #sendBody(
    conn: ByteConn,
    body: ReadableStream<Uint8Array>,
    chunked: boolean,
    touch: () => void,
  ): Promise<boolean> {
    try {
      for await (const b of body) {
        if (b.length === 0) continue;
        if (chunked) await writeAll(conn, enc.encode(`${b.length.toString(16)}\r\n`));
        await writeAll(conn, b);
        if (chunked) await writeAll(conn, enc.encode("\r\n"));
        touch();
      }
      if (chunked) await writeAll(conn, enc.encode("0\r\n\r\n"));
      return true;
    } catch {
      closeQuietly(conn);
      return false;
    }
  }
}

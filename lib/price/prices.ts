/**
 * `GET /prices`: the snapshot of every provider, and the ways to follow it (the wire contract
 * is in `client.ts`'s module doc):
 *
 * - `?since=V`: long poll. Answers at once when the global version differs from `V`, else
 *   waits for a change up to `wait` seconds (default {@link DEFAULT_WAIT_S}, at most
 *   {@link MAX_WAIT_S}), then answers 200 with the new snapshot or 304. The wait is also kept
 *   under the listener's idle timeout (at most 80% of it), which would otherwise cut it.
 * - `Accept: text/event-stream`: Server-Sent Events, one `prices` event per version (the
 *   snapshot as data, the version as id) and a comment line every {@link KEEPALIVE_MS} (or
 *   half the idle timeout when shorter). A
 *   `since` or `Last-Event-ID` equal to the current version skips the first event.
 *
 * @module
 */
import { toPrice } from "./db.ts";
import type { PriceDb } from "./db.ts";
import { etag, json, tagMatches, VERSION_HEADER } from "./_respond.ts";
import { DEFAULT_IDLE_TIMEOUT_MS } from "../common/http_server.ts";

/** Default long-poll wait, seconds (under common 30 s proxy and client timeouts). */
export const DEFAULT_WAIT_S = 25;
/** Longest long-poll wait, seconds (the listener's idle timeout is 60 s). */
export const MAX_WAIT_S = 55;
/** Interval of SSE keepalive comments (keeps the stream inside the idle timeout). */
export const KEEPALIVE_MS = 15_000;

/** Wakes waiters when the global version changes; caches the snapshot text per version. */
export class PriceWatch {
  #tick = Promise.withResolvers<void>();
  #cache: { version: number; text: string } | null = null;
  #closed = false;
  /** Longest long-poll wait, ms. */
  readonly maxWaitMs: number;
  /** Interval of event-stream keepalives, ms. */
  readonly keepaliveMs: number;

  /** `idleTimeoutMs`: the listener's; waits and keepalives stay within it. */
  constructor(readonly db: PriceDb, idleTimeoutMs = DEFAULT_IDLE_TIMEOUT_MS) {
    this.maxWaitMs = Math.min(MAX_WAIT_S * 1000, idleTimeoutMs * 0.8);
    this.keepaliveMs = Math.min(KEEPALIVE_MS, idleTimeoutMs / 2);
  }

  /** True after {@link close}. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * At shutdown: wakes every waiter for good (long polls answer 304, event streams end), so
   * the listener's drain does not wait for subscribers.
   */
  close(): void {
    this.#closed = true;
    this.#tick.resolve();
  }

  /** Call after every mutation: wakes every waiter. */
  changed(): void {
    if (this.#closed) return;
    const t = this.#tick;
    this.#tick = Promise.withResolvers<void>();
    t.resolve();
  }

  /** Settles at the next change. */
  next(): Promise<void> {
    return this.#tick.promise;
  }

  /** The snapshot `{"version", "providers"}` as JSON text. */
  snapshot(): string {
    const v = this.db.version;
    if (this.#cache?.version !== v) {
      const providers = this.db.all().map(toPrice);
      this.#cache = { version: v, text: JSON.stringify({ version: String(v), providers }) };
    }
    return this.#cache.text;
  }
}

function snapshotResponse(w: PriceWatch): Response {
  const version = w.db.version;
  return new Response(w.snapshot() + "\n", {
    headers: {
      "content-type": "application/json",
      "cache-control": "no-cache",
      etag: etag(version),
      [VERSION_HEADER]: String(version),
    },
  });
}

/**
 * Waits for the next change, at most `ms` (or until `signal` aborts); true when it changed.
 * Leaves no timer or listener behind.
 */
function waitChange(w: PriceWatch, ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (changed: boolean) => {
      clearTimeout(t);
      signal.removeEventListener("abort", abort);
      resolve(changed);
    };
    const abort = () => done(false);
    const t = setTimeout(abort, ms);
    signal.addEventListener("abort", abort, { once: true });
    w.next().then(() => done(true));
  });
}

const NEVER = new AbortController().signal;

/** Parses `wait`; null when malformed. */
function waitSeconds(url: URL): number | null {
  const w = url.searchParams.get("wait");
  if (w === null) return DEFAULT_WAIT_S;
  if (!/^[0-9]{1,3}(\.[0-9]{1,3})?$/.test(w) || Number(w) > MAX_WAIT_S) return null;
  return Number(w);
}

/** Answers `GET /prices` (see the module doc). */
export async function servePrices(req: Request, url: URL, w: PriceWatch): Promise<Response> {
  const wait = waitSeconds(url);
  if (wait === null) {
    return json(400, {
      error: `wait: must be a number of seconds in 0..${MAX_WAIT_S}`,
      field: "wait",
    }, w.db.version);
  }
  const since = url.searchParams.get("since") ?? req.headers.get("last-event-id");
  if ((req.headers.get("accept") ?? "").includes("text/event-stream")) {
    return events(w, since);
  }
  const inm = req.headers.get("if-none-match");
  if (since === null) {
    if (inm !== null && tagMatches(inm, etag(w.db.version), true)) {
      return json(304, null, w.db.version, { etag: etag(w.db.version) });
    }
    return snapshotResponse(w);
  }
  if (since === String(w.db.version)) {
    // Not req.signal: Deno warns on reading it; a client that leaves costs a timer of at most
    // MAX_WAIT_S (the connection cap bounds how many).
    await waitChange(w, Math.min(wait * 1000, w.maxWaitMs), NEVER);
    if (since === String(w.db.version)) {
      return json(304, null, w.db.version, { etag: etag(w.db.version) });
    }
  }
  return snapshotResponse(w);
}

const encoder = new TextEncoder();

/** The Server-Sent Events stream of snapshots (see the module doc). */
function events(w: PriceWatch, since: string | null): Response {
  let last = since;
  const ac = new AbortController(); // aborted when the client goes (the stream is cancelled)
  let first = true;
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (first) {
        first = false;
        c.enqueue(encoder.encode("retry: 1000\n\n"));
      }
      for (;;) {
        if (ac.signal.aborted || w.closed) return c.close();
        const v = String(w.db.version);
        if (v !== last) {
          last = v;
          c.enqueue(encoder.encode(`id: ${v}\nevent: prices\ndata: ${w.snapshot()}\n\n`));
          return;
        }
        const changed = await waitChange(w, w.keepaliveMs, ac.signal);
        if (!changed && !ac.signal.aborted) {
          c.enqueue(encoder.encode(": keepalive\n\n"));
          return;
        }
      }
    },
    cancel() {
      ac.abort();
    },
  }, { highWaterMark: 0 });
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      [VERSION_HEADER]: String(w.db.version),
    },
  });
}

/**
 * Response building of the replica: its own plain-text answers, responses from cache entries
 * (the HIT fast path, conditional and range requests, bodies kept in the store) and responses
 * relayed from upstream, each with our `Via` and an `X-Cache` status.
 *
 * @module
 */

import type { Bytes, CacheEntry, HttpCache } from "./cache.ts";
import { appendVia } from "./headers.ts";
import { TAG_HEADERS } from "./cache_tags.ts";
import type { Metrics } from "./metrics.ts";
import { withIdleTimeout } from "./origin.ts";
import { serveBody } from "./serve_body.ts";
import { ownError } from "../common/error_body.ts";
import { PEER_HEADER } from "./forwarding.ts";
import { withoutConsumed } from "./targeted_cc.ts";

/** Options of {@link Responder}. */
export interface ResponderOptions {
  /** Our `Via` element, e.g. `1.1 nearcast-a`. */
  via: string;
  cache: HttpCache;
  metrics: Metrics;
  /** Longest pause allowed in a relayed upstream body, ms. */
  idleTimeoutMs: number;
  log: (line: string) => void;
}

/** Builds the replica's responses; counts the body bytes sent in its metrics. */
export class Responder {
  readonly via: string;
  /**
   * Answers a request again from scratch when an entry's stored body turns out missing or
   * corrupt (the entry is gone by then). Set by the dispatcher.
   */
  refetch: (req: Request) => Response | Promise<Response>;
  #cache: HttpCache;
  #metrics: Metrics;
  #idleTimeoutMs: number;
  #log: (line: string) => void;

  constructor(o: ResponderOptions) {
    this.via = o.via;
    this.#cache = o.cache;
    this.#metrics = o.metrics;
    this.#idleTimeoutMs = o.idleTimeoutMs;
    this.#log = o.log;
    this.refetch = () => this.text(502, "stored body lost");
  }

  /** Adds `bytes` to the bytes sent (a callback for {@link serveBody}). */
  readonly countSent = (bytes: number): void => {
    this.#metrics.bytesSent += bytes;
  };

  /** The replica's own plain-text answer `STATUS: message`, never cached. */
  text(status: number, message: string, extra?: [string, string][]): Response {
    const headers: [string, string][] = [
      ["content-type", "text/plain; charset=utf-8"],
      ["cache-control", "no-store"],
      ["via", this.via],
    ];
    if (extra !== undefined) headers.push(...extra);
    return ownError(new Response(`${status}: ${message}\n`, { status, headers }), message);
  }

  /** An entry's response headers with `Age` and `X-Cache`. */
  cacheHeaders(entry: CacheEntry, age: number, xcache: string): [string, string][] {
    const list = entry.outHeaders.slice();
    list.push(["age", String(age)], ["x-cache", xcache]);
    return list;
  }

  /**
   * Serves a stored entry, honouring conditional and range headers. `held` is the body a fill
   * just read, served when the entry no longer holds it (evicted, or kept in a file since).
   */
  entry(
    req: Request,
    entry: CacheEntry,
    xcache: string,
    age: number,
    held: Bytes | null = null,
  ): Response | Promise<Response> {
    const body = entry.body ?? held;
    if (body === null) return this.#stored(req, entry, xcache, age);
    const h = req.headers;
    if (entry.consumed.length > 0 && h.has(PEER_HEADER)) {
      // A peer fills its cache from this answer: it needs our targeted field too.
      const list = this.cacheHeaders(entry, age, xcache).concat(entry.consumed);
      return serveBody(req, entry, list, body, this.countSent);
    }
    if (
      xcache !== "HIT" || h.get("range") !== null || h.get("if-none-match") !== null ||
      h.get("if-modified-since") !== null || entry.status === 204
    ) {
      return serveBody(req, entry, this.cacheHeaders(entry, age, xcache), body, this.countSent);
    }
    this.#metrics.bytesSent += entry.size;
    if (entry.hitAge !== age || entry.hitTemplate === null) {
      entry.hitTemplate = new Response(body, {
        status: entry.status,
        headers: this.cacheHeaders(entry, age, "HIT"),
      });
      entry.hitAge = age;
    }
    return entry.hitTemplate.clone();
  }

  /** Serves an entry whose body is in the store, from its file when it has one. */
  async #stored(req: Request, entry: CacheEntry, xcache: string, age: number) {
    const body = await this.#cache.open(entry);
    if (body === null) {
      this.#log(`cache: stored body of ${entry.key} missing or corrupt; refetching`);
      return this.refetch(req);
    }
    return serveBody(req, entry, this.cacheHeaders(entry, age, xcache), body, this.countSent);
  }

  /**
   * An upstream response's headers as sent to a client: without `Content-Length`, the
   * consumed fields and the surrogate keys, with our `Via` and `xcache` (and `age` if given).
   */
  relayHeaders(headers: [string, string][], xcache = "MISS", age?: number): [string, string][] {
    const list = withoutConsumed(headers).filter(([n]) =>
      n !== "via" && n !== "content-length" && !(n === "age" && age !== undefined) &&
      !TAG_HEADERS.has(n)
    );
    list.push(["via", appendVia(headers.find(([n]) => n === "via")?.[1] ?? null, this.via)]);
    if (age !== undefined) list.push(["age", String(age)]);
    list.push(["x-cache", xcache]);
    return list;
  }

  /** A complete upstream response that was not cached (`X-Cache: MISS`). */
  buffered(status: number, headers: [string, string][], body: Bytes): Response {
    const list = this.relayHeaders(headers);
    this.#metrics.bytesSent += body.byteLength;
    return new Response(status === 204 || status === 304 ? null : body, { status, headers: list });
  }

  /** An upstream response relayed as it streams (`X-Cache: MISS`), stalls bounded. */
  passThrough(
    status: number,
    headers: [string, string][],
    body: ReadableStream<Uint8Array> | null,
  ): Response {
    const list = withoutConsumed(headers).filter(([n]) => n !== "via" && !TAG_HEADERS.has(n));
    list.push(["via", appendVia(headers.find(([n]) => n === "via")?.[1] ?? null, this.via)]);
    list.push(["x-cache", "MISS"]);
    const noBody = status === 204 || status === 304 || (status >= 100 && status < 200);
    if (noBody) body?.cancel().catch(() => {});
    const out = noBody || body === null ? null : withIdleTimeout(body, this.#idleTimeoutMs);
    return new Response(out, { status, headers: list });
  }
}

/**
 * The caching HTTP replica: a request handler serving GET and HEAD from an {@link HttpCache}
 * (RFC 9111), filling misses from peers or the origin with one fetch per key, forwarding
 * other methods and invalidating what they change, plus the `/_cdn/` API.
 *
 * @example
 * ```ts ignore
 * import { createReplica, serveReplica } from "./replica.ts";
 * import { TsLfru } from "../cache/lfru.ts";
 * import { hashKey } from "../cache/hash.ts";
 * const replica = createReplica({
 *   origin: "http://127.0.0.1:8000",
 *   id: "a",
 *   index: new TsLfru(64 * 1024 * 1024),
 *   hashKey,
 * });
 * const server = serveReplica(replica, { port: 8080 });
 * ```
 *
 * @module
 */

import { checkBearer } from "../common/auth.ts";
import { BodyTooLarge, readBodyJson, tooLargeResponse } from "../common/body.ts";
import { type LimitedServer, type ListenerLimits, serveLimited } from "../common/http_server.ts";
import type { CacheIndex } from "../cache/types.ts";
import type { ObjectStore } from "../store/types.ts";
import {
  type Bytes,
  type CacheEntry,
  cacheKey,
  FILE_SERVE_THRESHOLD,
  HttpCache,
  type KeyHasher,
  responseFacts,
  varyNames,
} from "./cache.ts";
import { type CacheControl, EMPTY_CACHE_CONTROL, parseCacheControl } from "./cache_control.ts";
import { Coalescer } from "./coalesce.ts";
import { evaluateFreshness, type FreshnessVerdict, unstorableReason } from "./freshness.ts";
import {
  fillForwarded,
  fillRequestHeaders,
  isServerWideOptions,
  SERVER_ALLOW,
  UNSUPPORTED_METHODS,
} from "./forwarding.ts";
import { appendVia } from "./headers.ts";
import { Metrics } from "./metrics.ts";
import {
  BodyError,
  concatStream,
  FORWARD_DROPPED,
  originRequestHeaders,
  originResponseHeaders,
  readBodyUpTo,
  withIdleTimeout,
} from "./origin.ts";
import { serveBody } from "./serve_body.ts";
import { StreamFill } from "./fill_stream.ts";

/** Header marking a request from another replica: answered from the cache only. */
export const PEER_HEADER = "x-nearcast-peer";
/** Prefix of the replica's own API. */
export const API_PREFIX = "/_cdn/";
/**
 * Longest request target accepted (414 beyond): nginx's default `large_client_header_buffers`
 * line size, and the store's key limit leaves room for the Vary part.
 */
export const MAX_URL_LENGTH = 8192;
/**
 * Largest request header section accepted (431 beyond), counting each field as name, value
 * and 4 bytes of framing: nginx's default `large_client_header_buffers 4 8k`. Deno.serve
 * itself answers 400 to far larger sections or more than 100 fields before we see them.
 */
export const MAX_HEADER_BYTES = 32 * 1024;
/** Largest single header field (431 beyond): one nginx header buffer. */
export const MAX_HEADER_FIELD_BYTES = 8 * 1024;
/** Largest purge request body: a JSON object with one URL or prefix. */
export const MAX_PURGE_BODY = 16 * 1024;
const NO_CACHE_REQUEST: CacheControl = Object.freeze({ ...EMPTY_CACHE_CONTROL, noCache: true });
const NO_STORE_REQUEST: CacheControl = Object.freeze({ ...EMPTY_CACHE_CONTROL, noStore: true });

/** Options of {@link createReplica}. */
export interface ReplicaOptions {
  /** Origin base URL, e.g. `http://127.0.0.1:8000`. */
  origin: string;
  /** Replica id, used in `Via: 1.1 nearcast-ID`. */
  id: string;
  /** The cache index (its budget is the cache size). */
  index: CacheIndex;
  hashKey: KeyHasher;
  /** Durable store for write-through and restart; null for memory only. */
  store?: ObjectStore | null;
  /** Largest body cached (default: the index budget). */
  maxObjectBytes?: number;
  /** Time allowed for an origin response (headers and a cached body), ms. Default 10 s. */
  originTimeoutMs?: number;
  /** How long a miss waits for another request's fetch of the same key, ms. */
  coalesceTimeoutMs?: number;
  /** Peer base URLs asked before the origin on a miss. */
  peers?: string[];
  /** Time allowed for a peer's answer, ms. Default 1 s. */
  peerTimeoutMs?: number;
  /** Token for `/_cdn/purge`; purge is disabled without one. */
  adminToken?: string | null;
  /** Clock in ms since the epoch (default `Date.now`). */
  now?: () => number;
  /** More `/_cdn/` routes (uploads, replication): a response, or null when not one of them. */
  extraApi?: (req: Request, path: string) => Response | Promise<Response> | null;
  /** More `/_cdn/health` fields; `ready: false` makes it answer 503 (still catching up). */
  health?: () => { ready: boolean; [field: string]: unknown };
  /**
   * Asked on a cache miss before peers and origin (uploaded files the index had no room for):
   * a response, or null.
   */
  onMiss?: (req: Request, url: string) => Response | Promise<Response> | null;
  /** Log sink (default `console.error`). */
  log?: (line: string) => void;
}

/** A running replica's handler and state. */
export interface Replica {
  handler(req: Request): Response | Promise<Response>;
  /** Waits for background work, then closes the store. */
  close(): Promise<void>;
  readonly cache: HttpCache;
  readonly metrics: Metrics;
}

type FillResult =
  /** `body`: what the fill read, served even if the entry loses it (evicted) meanwhile. */
  | { kind: "entry"; entry: CacheEntry; xcache: "MISS" | "REVALIDATED"; body: Bytes | null }
  /** Cacheable but not admitted: shareable with followers of the same variant. */
  | {
    kind: "buffered";
    status: number;
    headers: [string, string][];
    body: Bytes;
    /** The response's Vary names and the key it would have had. */
    vary: string[];
    key: string;
  }
  /** For the leader only (uncacheable or too large, streamed). */
  | { kind: "response"; response: Response }
  | { kind: "error"; status: number; message: string }
  | StreamingResult;

/** A cacheable body being written through to the store, readable while it is written. */
interface StreamingResult {
  kind: "streaming";
  status: number;
  headers: [string, string][];
  /** The response's Vary names and the key it is stored under. */
  vary: string[];
  key: string;
  /** The announced length, or null. */
  length: number | null;
  fill: StreamFill;
  /** The entry once stored and admitted, else null. */
  stored: Promise<CacheEntry | null>;
}

/** Builds a replica from options (see {@link ReplicaOptions}). */
export function createReplica(opts: ReplicaOptions): Replica {
  let originUrl: URL;
  try {
    originUrl = new URL(opts.origin);
  } catch {
    throw new TypeError(
      `Cannot create replica: origin must be an absolute URL: received ${opts.origin}`,
    );
  }
  if (originUrl.protocol !== "http:" && originUrl.protocol !== "https:") {
    throw new TypeError(
      `Cannot create replica: origin must be http: or https:: received ${opts.origin}`,
    );
  }
  const originBase = originUrl.origin;
  const originTimeout = opts.originTimeoutMs ?? 10_000;
  if (!(originTimeout > 0)) {
    throw new RangeError(
      `Cannot create replica: originTimeoutMs must be positive: received ${originTimeout}`,
    );
  }
  const peers = (opts.peers ?? []).map((p) => new URL(p).origin);
  const peerTimeout = opts.peerTimeoutMs ?? 1000;
  const now = opts.now ?? Date.now;
  const log = opts.log ?? ((line: string) => console.error(line));
  const via = `1.1 nearcast-${opts.id}`;
  const metrics = new Metrics();
  const cache = new HttpCache({
    index: opts.index,
    hashKey: opts.hashKey,
    store: opts.store,
    maxObjectBytes: opts.maxObjectBytes ?? opts.index.budget,
    via,
    onStoreError: (m) => log(`store: ${m}`),
  });
  /** Bodies being written through, by flight key: later misses join them. */
  const streaming = new Map<string, StreamingResult>();
  const coalescer = new Coalescer<FillResult>(opts.coalesceTimeoutMs ?? originTimeout + 1000, now);
  const background = new Set<Promise<unknown>>();
  const startedAt = now();
  const adminToken = opts.adminToken ?? null;

  // ---- responses -------------------------------------------------------------------------

  function textResponse(status: number, message: string, extra?: [string, string][]): Response {
    const headers: [string, string][] = [
      ["content-type", "text/plain; charset=utf-8"],
      ["cache-control", "no-store"],
      ["via", via],
    ];
    if (extra !== undefined) headers.push(...extra);
    return new Response(`${status}: ${message}\n`, { status, headers });
  }

  function withCacheHeaders(entry: CacheEntry, age: number, xcache: string): [string, string][] {
    const list = entry.outHeaders.slice();
    list.push(["age", String(age)], ["x-cache", xcache]);
    return list;
  }

  /**
   * Serves a stored entry, honouring conditional and range headers. `held` is the body a fill
   * just read, served when the entry no longer holds it (evicted, or kept in a file since).
   */
  function serveEntry(
    req: Request,
    entry: CacheEntry,
    xcache: string,
    age: number,
    held: Bytes | null = null,
  ): Response | Promise<Response> {
    const body = entry.body ?? held;
    if (body === null) return serveStoredBody(req, entry, xcache, age);
    const h = req.headers;
    if (
      xcache !== "HIT" || h.get("range") !== null || h.get("if-none-match") !== null ||
      h.get("if-modified-since") !== null || entry.status === 204
    ) {
      return serveBody(req, entry, withCacheHeaders(entry, age, xcache), body, countSent);
    }
    metrics.bytesSent += entry.size;
    if (entry.hitAge !== age || entry.hitTemplate === null) {
      entry.hitTemplate = new Response(body, {
        status: entry.status,
        headers: withCacheHeaders(entry, age, "HIT"),
      });
      entry.hitAge = age;
    }
    return entry.hitTemplate.clone();
  }

  function countSent(bytes: number): void {
    metrics.bytesSent += bytes;
  }

  /** Serves an entry whose body is in the store, from its file when it has one. */
  async function serveStoredBody(
    req: Request,
    entry: CacheEntry,
    xcache: string,
    age: number,
  ): Promise<Response> {
    const body = await cache.open(entry);
    if (body === null) {
      log(`cache: stored body of ${entry.key} missing or corrupt; refetching`);
      return handle(req);
    }
    return serveBody(req, entry, withCacheHeaders(entry, age, xcache), body, countSent);
  }

  function respondBuffered(status: number, headers: [string, string][], body: Bytes) {
    const list = headers.filter(([n]) => n !== "via" && n !== "content-length");
    list.push(["via", appendVia(headers.find(([n]) => n === "via")?.[1] ?? null, via)]);
    list.push(["x-cache", "MISS"]);
    metrics.bytesSent += body.byteLength;
    return new Response(status === 204 || status === 304 ? null : body, { status, headers: list });
  }

  function passThrough(
    status: number,
    headers: [string, string][],
    body: ReadableStream<Uint8Array> | null,
  ): Response {
    const list = headers.filter(([n]) => n !== "via");
    list.push(["via", appendVia(headers.find(([n]) => n === "via")?.[1] ?? null, via)]);
    list.push(["x-cache", "MISS"]);
    const noBody = status === 204 || status === 304 || (status >= 100 && status < 200);
    if (noBody) body?.cancel().catch(() => {});
    const out = noBody || body === null ? null : withIdleTimeout(body, originTimeout);
    return new Response(out, { status, headers: list });
  }

  // ---- origin and peers ------------------------------------------------------------------

  /** Asks the peers for `url`; the first one answering from its cache wins. */
  async function askPeers(url: string, req: Request, sent: Headers): Promise<Response | null> {
    if (peers.length === 0) return null;
    const headers = fillRequestHeaders(req.headers, sent, via);
    headers.set(PEER_HEADER, "1");
    let won = false;
    const attempts = peers.map(async (peer) => {
      const signal = AbortSignal.timeout(peerTimeout);
      const res = await fetch(peer + url, { headers, signal, redirect: "manual" });
      if (won || res.status === 504 || res.headers.get("x-cache") === null) {
        await res.body?.cancel();
        throw new Error(`peer ${peer} does not hold ${url}`);
      }
      won = true;
      return res;
    });
    try {
      const res = await Promise.any(attempts);
      metrics.peerHits++;
      return res;
    } catch {
      return null;
    }
  }

  /**
   * Fetches `url` to fill the cache (revalidating `stale` when given) and stores the result.
   * Always GET: a HEAD miss fills the cache with the full response. A miss asks the peers
   * first; a peer whose body fails is passed over for the origin.
   */
  async function fill(
    req: Request,
    url: string,
    reqCc: CacheControl,
    stale: CacheEntry | null,
  ): Promise<FillResult> {
    const hasAuth = req.headers.has("authorization");
    // Only these client headers go upstream, and the response is keyed by them.
    const sent = fillForwarded(req.headers, cache.varyOf(url));
    if (stale === null && !hasAuth && peers.length > 0) {
      const requestTime = now();
      const res = await askPeers(url, req, sent);
      if (res !== null) {
        const never = new AbortController().signal;
        const r = await settle(req, sent, url, reqCc, null, res, requestTime, never, true);
        if (r !== null) return r;
      }
    }
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new Error("origin timeout")), originTimeout);
    let res: Response;
    const requestTime = now();
    try {
      const headers = fillRequestHeaders(req.headers, sent, via);
      if (stale !== null) {
        if (stale.etag !== null) headers.set("if-none-match", stale.etag);
        if (stale.lastModified !== null) headers.set("if-modified-since", stale.lastModified);
      }
      metrics.originRequests++;
      res = await fetch(originBase + url, { headers, signal: ac.signal, redirect: "manual" });
      metrics.observeOriginLatency((now() - requestTime) / 1000);
    } catch (e) {
      clearTimeout(timer);
      metrics.originErrors++;
      const timedOut = ac.signal.aborted;
      const message = timedOut
        ? `origin did not answer within ${originTimeout} ms`
        : `origin unreachable: ${(e as Error).message}`;
      return { kind: "error", status: timedOut ? 504 : 502, message };
    }
    try {
      return (await settle(req, sent, url, reqCc, stale, res, requestTime, ac.signal, false))!;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Turns an upstream response into a fill result: freshens `stale` on a 304, stores a
   * cacheable complete body (keyed by `sent`, the client headers forwarded), streams the
   * rest. Returns null only for a peer whose body failed (the caller then asks the origin).
   */
  async function settle(
    req: Request,
    sent: Headers,
    url: string,
    reqCc: CacheControl,
    stale: CacheEntry | null,
    res: Response,
    requestTime: number,
    signal: AbortSignal,
    fromPeer: boolean,
  ): Promise<FillResult | null> {
    const responseTime = now();
    const hasAuth = req.headers.has("authorization");
    const headers = originResponseHeaders(res);
    if (res.status === 304 && stale !== null) {
      await res.body?.cancel();
      if (cache.freshen(stale, headers, requestTime, responseTime)) {
        return { kind: "entry", entry: stale, xcache: "REVALIDATED", body: null };
      }
      // The 304 made the stored response unusable for other requests (e.g. `Vary: *`): it
      // answers this request only, then leaves the cache (an open file stays readable).
      const body = await cache.open(stale);
      cache.remove(stale);
      if (body === null) {
        return { kind: "error", status: 502, message: `stored body of ${url} lost` };
      }
      metrics.notStored++;
      const age = evaluateFreshness(stale, EMPTY_CACHE_CONTROL, now()).age;
      const list = withCacheHeaders(stale, age, "REVALIDATED");
      return { kind: "response", response: serveBody(req, stale, list, body, countSent) };
    }
    if (res.status >= 500 && stale !== null) {
      await res.body?.cancel();
      metrics.originErrors++;
      return { kind: "error", status: res.status, message: `origin answered ${res.status}` };
    }
    if (stale !== null) cache.remove(stale);

    const facts = responseFacts(res.status, headers);
    const why = unstorableReason("GET", reqCc, hasAuth, facts);
    const cl = headers.find(([n]) => n === "content-length")?.[1];
    const length = cl !== undefined && /^[0-9]{1,15}$/.test(cl) ? Number(cl) : null;
    const tooLarge = length !== null && length > cache.maxObjectBytes;
    if (tooLarge && !fromPeer && res.status === 200 && req.headers.has("range")) {
      // Not cacheable here: let the origin answer the range rather than stream it all.
      await res.body?.cancel();
      metrics.notStored++;
      return await forwardRange(req, url, signal);
    }
    if (why !== null || tooLarge) {
      metrics.notStored++;
      return { kind: "response", response: passThrough(res.status, headers, res.body) };
    }
    let read;
    try {
      const streamed = fromPeer || (length !== null && length < FILE_SERVE_THRESHOLD)
        ? null
        : await streamToStore(sent, url, res, headers, length, requestTime, responseTime, signal);
      if (streamed !== null && streamed.kind !== "complete") return streamed;
      read = streamed ?? await readBodyUpTo(res.body, cache.maxObjectBytes, length, signal);
    } catch (e) {
      const source = fromPeer ? "peer" : "origin";
      log(`${source}: ${url}: ${(e as Error).message}`);
      if (fromPeer) return null;
      metrics.originErrors++;
      const timedOut = e instanceof BodyError && e.timedOut;
      return { kind: "error", status: timedOut ? 504 : 502, message: (e as Error).message };
    }
    if (read.kind === "too-large") {
      metrics.notStored++;
      const stream = concatStream(read.head, read.rest);
      return { kind: "response", response: passThrough(res.status, headers, stream) };
    }
    if (!fromPeer) metrics.originBytes += read.body.byteLength;
    const entry = await cache.put(url, sent, {
      status: res.status,
      headers,
      body: read.body,
      requestTime,
      responseTime,
    });
    if (entry === null) {
      metrics.notStored++;
      const vary = varyNames(facts.vary);
      const key = cacheKey(url, vary, sent);
      return { kind: "buffered", status: res.status, headers, body: read.body, vary, key };
    }
    return { kind: "entry", entry, xcache: "MISS", body: read.body };
  }

  /**
   * Starts writing a large (or unknown-length) cacheable body, keyed by `sent` (the client
   * headers forwarded), through to the store while it is served from the store's temporary file (see {@link StreamFill}). An unknown-length body
   * that ends within {@link FILE_SERVE_THRESHOLD} bytes comes back complete for the usual path.
   * Null when the cache has no store or an upload holds the URL.
   */
  async function streamToStore(
    sent: Headers,
    url: string,
    res: Response,
    headers: [string, string][],
    length: number | null,
    requestTime: number,
    responseTime: number,
    signal: AbortSignal,
  ): Promise<StreamingResult | { kind: "complete"; body: Bytes } | null> {
    const parts = { status: res.status, headers, requestTime, responseTime };
    const target = opts.store ? cache.streamTarget(url, sent, parts) : null;
    if (target === null || res.body === null) return null;
    // The fill's timer stops once this returns: from here on only a stalled origin fails it.
    const body = withIdleTimeout(res.body, originTimeout);
    let head: Uint8Array[] = [];
    let rest: ReadableStreamDefaultReader<Uint8Array>;
    if (length === null) {
      const read = await readBodyUpTo(body, FILE_SERVE_THRESHOLD, null, signal);
      if (read.kind === "complete") return read;
      head = read.head;
      rest = read.rest;
    } else rest = body.getReader();
    const fill = new StreamFill(opts.store!, target.key, target.meta, head, rest, {
      expectedSize: length,
      maxSize: cache.maxObjectBytes,
    });
    const stored = cache.putStored(url, sent, parts, fill.done);
    fill.done.then(
      (e) => metrics.originBytes += e.size,
      (e) => {
        metrics.originErrors++;
        log(`origin: ${url}: ${(e as Error).message}`);
      },
    );
    stored.then((entry) => {
      if (entry === null) metrics.notStored++;
    });
    return {
      kind: "streaming",
      status: res.status,
      headers,
      vary: varyNames(responseFacts(res.status, headers).vary),
      key: target.key,
      length,
      fill,
      stored,
    };
  }

  /**
   * Answers from a body being written through: a plain GET or HEAD reads the temporary file
   * as it grows; a conditional or range request waits for the stored entry. When the index
   * refused it, the request is passed through to the origin uncached.
   */
  async function serveStreaming(req: Request, url: string, r: StreamingResult) {
    const h = req.headers;
    const plain = h.get("range") === null && h.get("if-none-match") === null &&
      h.get("if-modified-since") === null;
    const body = plain ? await r.fill.tail() : null;
    if (body !== null) {
      const list = r.headers.filter(([n]) => n !== "via" && n !== "content-length");
      list.push(["via", appendVia(r.headers.find(([n]) => n === "via")?.[1] ?? null, via)]);
      list.push(["x-cache", "MISS"]);
      if (r.length !== null) {
        list.push(["content-length", String(r.length)]);
        metrics.bytesSent += r.length;
      }
      return new Response(body, { status: r.status, headers: list });
    }
    const entry = await r.stored;
    if (entry !== null) {
      const age = evaluateFreshness(entry, EMPTY_CACHE_CONTROL, now()).age;
      return serveEntry(req, entry, "MISS", age);
    }
    try {
      await r.fill.done;
    } catch (e) {
      const timedOut = e instanceof BodyError && e.timedOut;
      return textResponse(timedOut ? 504 : 502, (e as Error).message);
    }
    const res = await fill(req, url, NO_STORE_REQUEST, null);
    return res.kind === "response" ? res.response : textResponse(502, "origin fetch failed");
  }

  /** Sends a GET with the client's Range (and conditionals) to the origin, streamed back. */
  async function forwardRange(req: Request, url: string, signal: AbortSignal): Promise<FillResult> {
    try {
      metrics.originRequests++;
      const res = await fetch(originBase + url, {
        headers: originRequestHeaders(req.headers, FORWARD_DROPPED, via),
        signal,
        redirect: "manual",
      });
      return {
        kind: "response",
        response: passThrough(res.status, originResponseHeaders(res), res.body),
      };
    } catch (e) {
      metrics.originErrors++;
      return signal.aborted
        ? {
          kind: "error",
          status: 504,
          message: `origin did not answer within ${originTimeout} ms`,
        }
        : { kind: "error", status: 502, message: `origin unreachable: ${(e as Error).message}` };
    }
  }

  /** Runs a fill for the key, coalesced with concurrent ones, and answers from its result. */
  async function fillAndServe(
    req: Request,
    url: string,
    key: string,
    reqCc: CacheControl,
    stale: CacheEntry | null,
    verdict: FreshnessVerdict | null,
  ): Promise<Response> {
    const auth = req.headers.get("authorization");
    const flightKey = auth === null ? key : `${key}\nauthorization:${auth}`;
    let result: FillResult;
    const joined = streaming.get(flightKey);
    if (joined !== undefined && !reqCc.noStore) {
      metrics.coalesced++;
      result = joined;
    } else if (reqCc.noStore) {
      result = await fill(req, url, reqCc, stale);
    } else {
      const c = await coalescer.run(flightKey, () => fill(req, url, reqCc, stale));
      if (c.role === "leader") result = c.value;
      else if (c.role === "timeout" || c.value.kind === "response") {
        // The shared fetch is stuck, or its answer was for its own client only.
        result = await fill(req, url, reqCc, c.role === "timeout" ? stale : null);
      } else {
        metrics.coalesced++;
        result = c.value;
      }
    }
    if (
      (result.kind === "entry" && result.entry.key !== cache.keyFor(url, req.headers)) ||
      ((result.kind === "buffered" || result.kind === "streaming") &&
        result.key !== cacheKey(url, result.vary, req.headers))
    ) {
      // Stored under another variant than this request's: the response varies on a header
      // this request's fill did not forward (its `Vary` is known now), or it was a shared
      // fill for another variant. Fetch this request's own.
      result = await fill(req, url, reqCc, null);
    }
    if (result.kind === "streaming" && !streaming.has(flightKey)) {
      // Later misses for the key read the same growing file until it is stored.
      const r = result;
      streaming.set(flightKey, r);
      r.stored.finally(() => {
        if (streaming.get(flightKey) === r) streaming.delete(flightKey);
      });
    }
    switch (result.kind) {
      case "streaming":
        metrics.misses++;
        return serveStreaming(req, url, result);
      case "entry": {
        if (result.xcache === "REVALIDATED") metrics.revalidated++;
        else metrics.misses++;
        const age = evaluateFreshness(result.entry, EMPTY_CACHE_CONTROL, now()).age;
        return serveEntry(req, result.entry, result.xcache, age, result.body);
      }
      case "buffered":
        metrics.misses++;
        return respondBuffered(result.status, result.headers, result.body);
      case "response":
        metrics.misses++;
        return result.response;
      case "error":
        if (stale !== null && verdict !== null && verdict.staleIfError) {
          metrics.stale++;
          const age = evaluateFreshness(stale, EMPTY_CACHE_CONTROL, now()).age;
          return serveEntry(req, stale, "STALE", age);
        }
        return textResponse(result.status, result.message);
    }
  }

  function revalidateInBackground(req: Request, url: string, key: string, entry: CacheEntry) {
    const p = coalescer.run(key, () => fill(req, url, EMPTY_CACHE_CONTROL, entry)).then(
      (c) => {
        if (c.role === "leader" && c.value.kind === "response") {
          return c.value.response.body?.cancel();
        }
      },
      (e) => log(`revalidate ${url}: ${(e as Error).message}`),
    );
    background.add(p);
    p.finally(() => background.delete(p));
  }

  // ---- methods ---------------------------------------------------------------------------

  /** Path and query of an absolute or relative URL of the same origin, else null. */
  function sameOriginPath(value: string | null, req: Request): string | null {
    if (value === null) return null;
    try {
      const base = new URL(req.url);
      const u = new URL(value, base);
      if (u.origin !== base.origin && u.origin !== originBase) return null;
      return u.pathname + u.search;
    } catch {
      return null;
    }
  }

  async function forward(req: Request, url: string): Promise<Response> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new Error("origin timeout")), originTimeout);
    let res: Response;
    try {
      metrics.originRequests++;
      const t0 = now();
      res = await fetch(originBase + url, {
        method: req.method,
        headers: originRequestHeaders(req.headers, FORWARD_DROPPED, via),
        body: req.body,
        redirect: "manual",
        signal: ac.signal,
      });
      metrics.observeOriginLatency((now() - t0) / 1000);
    } catch (e) {
      metrics.originErrors++;
      const timedOut = ac.signal.aborted;
      return textResponse(
        timedOut ? 504 : 502,
        timedOut
          ? `origin did not answer within ${originTimeout} ms`
          : `origin unreachable: ${(e as Error).message}`,
      );
    } finally {
      clearTimeout(timer);
    }
    // RFC 9111 §4.4: a non-error answer to an unsafe method invalidates the target URI and
    // the Location / Content-Location URIs of the same origin.
    if (res.status < 400) {
      let n = cache.invalidate(url);
      for (const name of ["location", "content-location"]) {
        const path = sameOriginPath(res.headers.get(name), req);
        if (path !== null) n += cache.invalidate(path);
      }
      metrics.purged += n;
    }
    return passThrough(res.status, originResponseHeaders(res), res.body);
  }

  // ---- API -------------------------------------------------------------------------------

  async function purge(req: Request): Promise<Response> {
    const denied = checkBearer(
      req,
      adminToken,
      "purge is disabled: start the replica with --admin-token",
    );
    if (denied !== null) return denied;
    if (req.method !== "POST") {
      return textResponse(405, "use POST", [["allow", "POST"]]);
    }
    const q = new URL(req.url).searchParams;
    let target: { url?: unknown; prefix?: unknown } = {
      url: q.get("url") ?? undefined,
      prefix: q.get("prefix") ?? undefined,
    };
    if (target.url === undefined && target.prefix === undefined) {
      try {
        target = await readBodyJson(req, MAX_PURGE_BODY, "purge body") as typeof target;
      } catch (e) {
        if (e instanceof BodyTooLarge) return tooLargeResponse(e);
        return textResponse(
          400,
          'purge body must be JSON: {"url": "/path"} or {"prefix": "/dir/"}',
        );
      }
      if (typeof target !== "object" || target === null) {
        return textResponse(400, 'purge body must be a JSON object: {"url": "/path"}');
      }
    }
    const toPath = (v: unknown): string | null => {
      if (typeof v !== "string" || v === "") return null;
      if (v.startsWith("/")) return v;
      try {
        const u = new URL(v);
        return u.pathname + u.search;
      } catch {
        return null;
      }
    };
    let purged = 0;
    if (target.url !== undefined) {
      const p = toPath(target.url);
      if (p === null) {
        return textResponse(400, `purge url must be a path or URL: received ${target.url}`);
      }
      purged += cache.invalidate(p);
    } else if (target.prefix !== undefined) {
      const p = toPath(target.prefix);
      if (p === null) {
        return textResponse(400, `purge prefix must be a path or URL: received ${target.prefix}`);
      }
      purged += cache.purgePrefix(p);
    } else {
      return textResponse(400, 'purge needs "url" or "prefix"');
    }
    metrics.purged += purged;
    return Response.json({ purged }, { headers: { "cache-control": "no-store", via } });
  }

  function api(req: Request, url: string): Response | Promise<Response> {
    const path = url.split("?")[0];
    const extra = opts.extraApi?.(req, path) ?? null;
    if (extra !== null) return extra;
    if (path === "/_cdn/purge") return purge(req);
    if (req.method !== "GET" && req.method !== "HEAD") {
      if (path === "/_cdn/health" || path === "/_cdn/metrics") {
        return textResponse(405, "use GET", [["allow", "GET, HEAD"]]);
      }
    }
    if (path === "/_cdn/health") {
      const more = opts.health?.() ?? { ready: true };
      return Response.json({
        ...more,
        status: more.ready ? "ok" : "syncing",
        id: opts.id,
        origin: originBase,
        entries: cache.count,
        usedBytes: cache.usedBytes,
        budgetBytes: cache.budget,
        uptimeSeconds: Math.floor((now() - startedAt) / 1000),
      }, { status: more.ready ? 200 : 503, headers: { "cache-control": "no-store", via } });
    }
    if (path === "/_cdn/metrics") {
      metrics.evictions = cache.evictions;
      const text = metrics.render({
        nearcast_http_cache_entries: { help: "Entries in the cache.", value: cache.count },
        nearcast_http_cache_bytes: {
          help: "Bytes held by the cache index.",
          value: cache.usedBytes,
        },
        nearcast_http_cache_budget_bytes: { help: "Cache byte budget.", value: cache.budget },
      });
      return new Response(text, {
        headers: {
          "content-type": "text/plain; version=0.0.4; charset=utf-8",
          "cache-control": "no-store",
          via,
        },
      });
    }
    return textResponse(404, `no such API: ${path} (see /_cdn/health, /_cdn/metrics, /_cdn/purge)`);
  }

  // ---- entry point -----------------------------------------------------------------------

  function handle(req: Request): Response | Promise<Response> {
    metrics.requests++;
    const full = req.url;
    const slash = full.indexOf("/", full.indexOf("//") + 2);
    const url = slash < 0 ? "/" : full.slice(slash);
    if (url.length > MAX_URL_LENGTH) {
      return textResponse(414, `request target longer than ${MAX_URL_LENGTH} bytes`);
    }
    const method = req.method;
    if ((method !== "GET" && method !== "HEAD") || url.startsWith(API_PREFIX)) {
      // Every path but a fresh hit checks the header section (a hit skips it for speed;
      // Deno.serve's own limits still apply there).
      const tooLarge = headerSectionError(req.headers);
      if (tooLarge !== null) return textResponse(431, tooLarge);
      if (UNSUPPORTED_METHODS.has(method)) {
        return textResponse(501, `${method} is not supported by this replica`);
      }
      if (isServerWideOptions(method, url)) {
        return new Response("", {
          headers: { allow: SERVER_ALLOW, "cache-control": "no-store", via },
        });
      }
      if (url.startsWith(API_PREFIX)) return api(req, url);
      return forward(req, url);
    }

    const h = req.headers;
    const isPeer = h.get(PEER_HEADER) !== null;
    const ccHeader = h.get("cache-control");
    let reqCc: CacheControl = EMPTY_CACHE_CONTROL;
    if (ccHeader !== null) reqCc = parseCacheControl(ccHeader);
    else if (h.get("pragma")?.toLowerCase().includes("no-cache")) reqCc = NO_CACHE_REQUEST;

    const key = cache.keyFor(url, h);
    const entry = cache.get(key);
    if (entry !== null) {
      const v = evaluateFreshness(entry, reqCc, now());
      if (v.state === "fresh") {
        metrics.hits++;
        return serveEntry(req, entry, "HIT", v.age);
      }
      if (entry.pinned) {
        // An upload: this node is its origin, so a revalidation succeeds at once.
        metrics.hits++;
        return serveEntry(req, entry, "HIT", v.age);
      }
      const tooLarge = headerSectionError(h);
      if (tooLarge !== null) return textResponse(431, tooLarge);
      if (!isPeer && v.state !== "revalidate") {
        metrics.stale++;
        if (v.state === "stale-while-revalidate") revalidateInBackground(req, url, key, entry);
        return serveEntry(req, entry, "STALE", v.age);
      }
      if (isPeer || reqCc.onlyIfCached) {
        return textResponse(504, "stale in cache and the request allows only cached answers");
      }
      return fillAndServe(req, url, key, reqCc, entry, v);
    }
    const tooLarge = headerSectionError(h);
    if (tooLarge !== null) return textResponse(431, tooLarge);
    if (opts.onMiss !== undefined) {
      const r = opts.onMiss(req, url);
      if (r !== null) return r;
    }
    if (isPeer || reqCc.onlyIfCached) {
      return textResponse(504, "not in cache and the request allows only cached answers");
    }
    return fillAndServe(req, url, key, reqCc, null, null);
  }

  return {
    handler: handle,
    cache,
    metrics,
    async close() {
      await Promise.allSettled([...background]);
      opts.store?.close();
    },
  };
}

/** Why a request's header section is too large (RFC 6585 §5), or null. */
export function headerSectionError(h: Headers): string | null {
  let total = 0;
  for (const [name, value] of h) {
    const n = name.length + value.length + 4;
    if (n > MAX_HEADER_FIELD_BYTES) {
      return `header field ${name} is larger than ${MAX_HEADER_FIELD_BYTES} bytes`;
    }
    total += n;
  }
  return total > MAX_HEADER_BYTES ? `request headers larger than ${MAX_HEADER_BYTES} bytes` : null;
}

/** Options of {@link serveReplica}: where to listen, and the listener's limits. */
export interface ServeOptions extends ListenerLimits {
  port: number;
  hostname?: string;
  signal?: AbortSignal;
  onListen?: (addr: Deno.NetAddr) => void;
}

/**
 * Serves a replica through the limited listener (lib/common/http_server.ts: connection cap
 * below the open-file limit, header and idle timeouts, accept errors never fatal); a handler
 * crash becomes a 500, logged.
 */
export function serveReplica(replica: Replica, opts: ServeOptions): LimitedServer {
  return serveLimited({
    ...opts,
    hostname: opts.hostname ?? "0.0.0.0",
    onListen: opts.onListen ?? (() => {}),
    name: "http",
  }, replica.handler);
}

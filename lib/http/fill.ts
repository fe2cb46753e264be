/**
 * Filling the cache: a miss (or a stale entry's revalidation) asks the peers, then the origin,
 * with only the forwarded request headers (see forwarding.ts); concurrent misses for one key
 * share one fetch (and a large body being written through to the store is read by every
 * request for it while it grows); the result is stored when it may be and answered.
 *
 * @module
 */

import type { ObjectStore } from "../store/types.ts";
import {
  type Bytes,
  type CacheEntry,
  cacheKey,
  FILE_SERVE_THRESHOLD,
  type HttpCache,
  responseFacts,
  varyNames,
} from "./cache.ts";
import { type CacheControl, EMPTY_CACHE_CONTROL } from "./cache_control.ts";
import { Coalescer } from "./coalesce.ts";
import { StreamFill } from "./fill_stream.ts";
import { answerStreaming, type StreamingResult } from "./fill_answer.ts";
import { createSlicer } from "./fill_slice.ts";
import {
  fillForwarded,
  fillRequestHeaders,
  PEER_HEADER,
  PEER_ORIGIN_HEADER,
} from "./forwarding.ts";
import { evaluateFreshness, mayServeStaleOnError, unstorableReason } from "./freshness.ts";
import { fetchFailure, originFetch } from "./origin_fetch.ts";
import type { Metrics } from "./metrics.ts";
import {
  BodyError,
  type BodyRead,
  concatStream,
  FORWARD_DROPPED,
  originRequestHeaders,
  originResponseHeaders,
  readBodyUpTo,
} from "./origin.ts";
import type { Responder } from "./respond.ts";
import { selectPeers } from "./peer_select.ts";
import { COOP_FILL_HEADER, type CoopHooks } from "./coop_hooks.ts";
import { serveBody } from "./serve_body.ts";
import { peerFetch } from "../tls/client.ts";
import { noteUpstream } from "./access_log.ts";

const NO_STORE_REQUEST: CacheControl = Object.freeze({ ...EMPTY_CACHE_CONTROL, noStore: true });

/** Options of {@link createFiller}. */
export interface FillerOptions {
  cache: HttpCache;
  /** The durable store the cache writes through to, or null. */
  store: ObjectStore | null;
  metrics: Metrics;
  respond: Responder;
  /** Origin base URL (scheme, host, port). */
  originBase: string;
  /** Time allowed for an origin response (headers and a cached body), ms. */
  originTimeoutMs: number;
  /** How long a miss waits for another request's fetch of the same key, ms. */
  coalesceTimeoutMs: number;
  /** Peer base URLs always asked before the origin on a miss (`--peers`). */
  peers: string[];
  /**
   * Base URLs of the live members of the membership (not this node): a few of them are asked
   * too (see peer_select.ts).
   */
  members?: () => string[];
  /** With `--coop`: which members a miss asks, and what it keeps (coop_hooks.ts). */
  coop?: CoopHooks;
  /** Time allowed for a peer's answer, ms. */
  peerTimeoutMs: number;
  /**
   * How long past expiry a stale copy stands in for an origin that fails (unreachable, timed
   * out, connection dropped), seconds (default 3600); 0: only with `stale-if-error`.
   */
  staleOnErrorSeconds?: number;
  /** Slice size of range misses, bytes; 0: off (see fill_slice.ts). */
  sliceBytes?: number;
  /** Most slice requests to the origin at once (default 4). */
  sliceFetches?: number;
  /** Our `Via` element. */
  via: string;
  now: () => number;
  log: (line: string) => void;
}

/** Fills the cache and answers from the fill. */
export interface Filler {
  /**
   * Runs a fill for `key` (revalidating `stale` when given), coalesced with concurrent ones,
   * and answers from its result (or from `stale` when the origin fails and it may stand in).
   */
  serve(
    req: Request,
    url: string,
    key: string,
    reqCc: CacheControl,
    stale: CacheEntry | null,
  ): Promise<Response>;
  /** Revalidates `entry` in the background (stale-while-revalidate). */
  revalidateInBackground(req: Request, url: string, key: string, entry: CacheEntry): void;
  /** Waits for background revalidations. */
  settled(): Promise<void>;
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
  /** `answered`: the origin answered (a 5xx), rather than failed to. */
  | { kind: "error"; status: number; message: string; answered?: boolean }
  | StreamingResult;

/** A {@link Filler} over the given cache, peers and origin. */
export function createFiller(o: FillerOptions): Filler {
  const { cache, store, metrics, respond, originBase, peers, via, now, log } = o;
  const originTimeout = o.originTimeoutMs;
  const peerTimeout = o.peerTimeoutMs;
  const staleOnError = o.staleOnErrorSeconds ?? 3600;
  /** Bodies being written through, by flight key: later misses join them. */
  const streaming = new Map<string, StreamingResult>();
  const coalescer = new Coalescer<FillResult>(o.coalesceTimeoutMs, now);
  const background = new Set<Promise<unknown>>();
  const slicer = (o.sliceBytes ?? 0) > 0
    ? createSlicer({
      cache,
      metrics,
      respond,
      originBase,
      via,
      originTimeoutMs: originTimeout,
      sliceBytes: o.sliceBytes!,
      maxFetches: o.sliceFetches ?? 4,
      staleOnErrorSeconds: staleOnError,
      now,
      log,
    })
    : null;

  /**
   * Asks the peers for `url` (with {@link PEER_HEADER}: they answer from their cache only, so
   * a peer never asks further), each bounded by the peer timeout; the first one answering
   * from its cache wins.
   */
  async function askPeers(url: string, req: Request, sent: Headers): Promise<Response | null> {
    const route = o.coop?.route(url, req) ?? null;
    const asked = selectPeers(url, peers, o.members?.() ?? [], undefined, route?.peers ?? null);
    if (asked.length === 0) return null;
    const headers = fillRequestHeaders(req.headers, sent, via);
    headers.set(PEER_HEADER, "1");
    // Members may front other origins: they check ours (a `--peers` peer is the operator's).
    const toMember = new Headers(headers);
    toMember.set(PEER_ORIGIN_HEADER, originBase);
    // A member asked to fill may ask the origin first: it has the origin's time.
    if (route?.fill) toMember.set(COOP_FILL_HEADER, "1");
    const fixed = new Set(peers);
    let won = false;
    const attempts = asked.map(async (peer) => {
      const signal = AbortSignal.timeout(route?.fill ? originTimeout : peerTimeout);
      const res = await peerFetch(peer + url, {
        headers: fixed.has(peer) ? headers : toMember,
        signal,
        redirect: "manual",
      });
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
    if (stale === null && !hasAuth) {
      const requestTime = now();
      const res = await askPeers(url, req, sent);
      if (res !== null) {
        const never = new AbortController().signal;
        let r;
        try {
          r = await settle(req, sent, url, reqCc, null, res, requestTime, never, true);
        } finally {
          o.coop?.copyDone(url);
        }
        if (r !== null) return r;
      }
      if (o.coop?.peersOnly(req)) {
        // For this request only: requests that joined it fill on their own.
        return { kind: "response", response: respond.text(504, "no member holds it") };
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
      res = await originFetch(
        originBase + url,
        { headers, signal: ac.signal, redirect: "manual" },
        (why) => log(`origin: GET ${url}: ${why}; retrying once on a new connection`),
      );
      metrics.observeOriginLatency((now() - requestTime) / 1000);
      noteUpstream(req, (now() - requestTime) / 1000);
    } catch (e) {
      clearTimeout(timer);
      metrics.originErrors++;
      noteUpstream(req, (now() - requestTime) / 1000);
      const timedOut = ac.signal.aborted;
      const message = timedOut
        ? `origin did not answer within ${originTimeout} ms`
        : `origin unreachable: ${fetchFailure(e)}`;
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
      const list = respond.cacheHeaders(stale, age, "REVALIDATED");
      return { kind: "response", response: serveBody(req, stale, list, body, respond.countSent) };
    }
    if (res.status >= 500 && stale !== null) {
      await res.body?.cancel();
      metrics.originErrors++;
      return {
        kind: "error",
        status: res.status,
        message: `origin answered ${res.status}`,
        answered: true,
      };
    }
    // The new response replaces the stale one, which is kept until its body is read, so it
    // can still stand in if the body fails (only one streamed to the store goes first).
    const dropStale = () => {
      if (stale !== null) cache.remove(stale);
    };
    const facts = responseFacts(res.status, headers);
    const why = unstorableReason("GET", reqCc, hasAuth, facts);
    const cl = headers.find(([n]) => n === "content-length")?.[1];
    const length = cl !== undefined && /^[0-9]{1,15}$/.test(cl) ? Number(cl) : null;
    const tooLarge = length !== null && length > cache.maxObjectBytes;
    if (tooLarge && !fromPeer && res.status === 200 && req.headers.has("range")) {
      // Not cacheable here: let the origin answer the range rather than stream it all.
      await res.body?.cancel();
      metrics.notStored++;
      dropStale();
      return await forwardRange(req, url, signal);
    }
    if (why !== null || tooLarge) {
      metrics.notStored++;
      dropStale();
      return { kind: "response", response: respond.passThrough(res.status, headers, res.body) };
    }
    const small = length !== null && length < FILE_SERVE_THRESHOLD;
    // With --coop, a copy filled from a member is kept only when it is hot here (a large one,
    // streamed to the store, always).
    const keep = !fromPeer || (o.coop?.keepCopy(url, req, !small) ?? true);
    let read;
    try {
      // A body streamed into the store replaces `stale` only once stored whole, so `stale`
      // can stand in if the body fails (see streamToStore).
      const streamed = small ? null : await streamToStore(
        sent,
        url,
        res,
        headers,
        length,
        { requestTime, responseTime, signal, fromPeer, stale },
      );
      if (streamed !== null && streamed.kind === "streaming") {
        if (!fromPeer) return streamed;
        // From a peer: answered only once stored whole, so a peer whose body fails is still
        // passed over for the origin (and the body is never held in memory either way).
        try {
          await streamed.fill.done;
        } catch {
          return null; // logged by streamToStore
        }
        const entry = await streamed.stored;
        return entry === null ? null : { kind: "entry", entry, xcache: "MISS", body: null };
      }
      read = streamed ?? await readBodyUpTo(res.body, cache.maxObjectBytes, length, signal);
    } catch (e) {
      const source = fromPeer ? "peer" : "origin";
      log(`${source}: ${url}: ${(e as Error).message}`);
      if (fromPeer) return null;
      metrics.originErrors++;
      const timedOut = e instanceof BodyError && e.timedOut;
      return { kind: "error", status: timedOut ? 504 : 502, message: (e as Error).message };
    }
    dropStale();
    if (read.kind === "too-large") {
      metrics.notStored++;
      const stream = concatStream(read.head, read.rest);
      return { kind: "response", response: respond.passThrough(res.status, headers, stream) };
    }
    if (!fromPeer) metrics.originBytes += read.body.byteLength;
    const entry = keep
      ? await cache.put(url, sent, {
        status: res.status,
        headers,
        body: read.body,
        requestTime,
        responseTime,
      })
      : null;
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
    at: {
      requestTime: number;
      responseTime: number;
      signal: AbortSignal;
      fromPeer: boolean;
      stale: CacheEntry | null;
    },
  ): Promise<StreamingResult | BodyRead | null> {
    const { requestTime, responseTime, signal, fromPeer, stale } = at;
    const parts = { status: res.status, headers, requestTime, responseTime };
    const target = store ? cache.streamTarget(url, sent, parts) : null;
    if (target === null || res.body === null) return null;
    let head: Uint8Array[] = [];
    if (length === null) {
      const limit = Math.min(FILE_SERVE_THRESHOLD, cache.maxObjectBytes);
      const read = await readBodyUpTo(res.body, limit, null, signal);
      // Complete: the usual path stores it. Past --max-object-bytes already: passed through.
      if (read.kind === "complete" || limit === cache.maxObjectBytes) return read;
      head = read.head;
      read.rest.releaseLock();
    }
    // The fill's timer stops once this returns: from here on only a stalled origin fails it.
    const fill = new StreamFill(store!, target.key, target.meta, head, res.body, {
      expectedSize: length,
      maxSize: cache.maxObjectBytes,
      idleMs: originTimeout,
    });
    const stored = cache.putStored(url, sent, parts, fill.done);
    fill.done.then(
      (e) => {
        if (!fromPeer) metrics.originBytes += e.size;
      },
      (e) => {
        if (!fill.tooLarge && !fromPeer) metrics.originErrors++;
        log(`${fromPeer ? "peer" : "origin"}: ${url}: ${(e as Error).message}`);
      },
    );
    stored.then((entry) => {
      if (entry === null) metrics.notStored++;
    });
    // Stored whole: the new response replaces the stale one (same key: already replaced). A
    // failed body leaves the stale entry, and its stored copy, as they were.
    fill.done.then(() => stored).then((entry) => {
      if (stale !== null && entry !== stale && cache.peek(stale.key) === stale) cache.remove(stale);
    }, () => {});
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

  /** Sends a GET with the client's Range (and conditionals) to the origin, streamed back. */
  async function forwardRange(req: Request, url: string, signal: AbortSignal): Promise<FillResult> {
    try {
      metrics.originRequests++;
      const res = await originFetch(originBase + url, {
        headers: originRequestHeaders(req.headers, FORWARD_DROPPED, via),
        signal,
        redirect: "manual",
      }, (why) => log(`origin: GET ${url}: ${why}; retrying once on a new connection`));
      return {
        kind: "response",
        response: respond.passThrough(res.status, originResponseHeaders(res), res.body),
      };
    } catch (e) {
      metrics.originErrors++;
      return signal.aborted
        ? {
          kind: "error",
          status: 504,
          message: `origin did not answer within ${originTimeout} ms`,
        }
        : { kind: "error", status: 502, message: `origin unreachable: ${fetchFailure(e)}` };
    }
  }

  /** Runs a fill for the key, coalesced with concurrent ones, and answers from its result. */
  async function fillAndServe(
    req: Request,
    url: string,
    key: string,
    reqCc: CacheControl,
    stale: CacheEntry | null,
  ): Promise<Response> {
    const auth = req.headers.get("authorization");
    const flightKey = auth === null ? key : `${key}\nauthorization:${auth}`;
    let result: FillResult;
    const joined = streaming.get(flightKey);
    const h = req.headers;
    if (
      slicer !== null && stale === null && joined === undefined && req.method === "GET" &&
      auth === null && !reqCc.noStore && h.has("range") && !h.has("if-none-match") &&
      !h.has("if-modified-since") && !h.has(PEER_HEADER)
    ) {
      // A range that missed the whole object: from slices, unless the normal fill should.
      const res = await slicer.serve(req, url, reqCc);
      if (res !== null) return res;
    }
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
        return answerStreaming(
          {
            cache,
            metrics,
            respond,
            now,
            refetch: async (req, url) => {
              const res = await fill(req, url, NO_STORE_REQUEST, null);
              return res.kind === "response"
                ? res.response
                : respond.text(502, "origin fetch failed");
            },
            staleAnswer: (message) => staleAnswer(req, url, reqCc, stale, message, false),
          },
          req,
          url,
          result,
          stale,
        );
      case "entry": {
        if (result.xcache === "REVALIDATED") metrics.revalidated++;
        else metrics.misses++;
        const age = evaluateFreshness(result.entry, EMPTY_CACHE_CONTROL, now()).age;
        return respond.entry(req, result.entry, result.xcache, age, result.body);
      }
      case "buffered":
        metrics.misses++;
        return respond.buffered(result.status, result.headers, result.body);
      case "response":
        metrics.misses++;
        return result.response;
      case "error":
        return staleAnswer(req, url, reqCc, stale, result.message, result.answered ?? false) ??
          respond.text(result.status, result.message);
    }
  }

  /**
   * The stale copy's answer (logged) when it may stand in for an origin that failed with
   * `message` (`answered`: a 5xx rather than no answer), else null.
   */
  function staleAnswer(
    req: Request,
    url: string,
    reqCc: CacheControl,
    stale: CacheEntry | null,
    message: string,
    answered: boolean,
  ): Response | Promise<Response> | null {
    if (stale === null || !mayServeStaleOnError(stale, reqCc, now(), staleOnError, answered)) {
      return null;
    }
    metrics.stale++;
    const age = evaluateFreshness(stale, EMPTY_CACHE_CONTROL, now()).age;
    log(
      `origin failure: GET ${url}: ${message}; served the stale copy ` +
        `(age ${age} s, ${Math.max(0, age - stale.lifetime)} s past expiry)`,
    );
    return respond.entry(req, stale, "STALE", age);
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

  return {
    serve: fillAndServe,
    revalidateInBackground,
    async settled() {
      await Promise.allSettled([...background]);
    },
  };
}

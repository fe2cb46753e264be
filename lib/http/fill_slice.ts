/**
 * Range misses filled by aligned slices (`--slice-size`, as nginx's slice module does): a
 * GET with a `Range` that misses the whole object asks the origin for the fixed-size slices
 * covering the ranges (`Range: bytes=i*S-(i+1)*S-1`), stores each 206 as its own entry (key:
 * the object's key plus `\nslice:i`), and answers the ranges from the slices (RFC 9111 §3.3,
 * §3.4: partial content is combined only from responses with the same strong validator).
 *
 * Slices are combined only when they share the total length and the validator (a strong
 * `ETag`, else `Last-Modified`); a slice fetched with another validator removes the stored
 * slices of the URL that differ, and the ones a response needs are fetched again once. Slice
 * requests to the origin are bounded (`--slice-fetches`); concurrent requests for a slice
 * share one fetch. A slice body is read whole before it is stored or used: a body that fails
 * is never stored.
 *
 * @module
 */

import type { Bytes, CacheEntry, HttpCache } from "./cache.ts";
import type { CacheControl } from "./cache_control.ts";
import { ifRangeHolds } from "./conditional.ts";
import { fillForwarded, fillRequestHeaders } from "./forwarding.ts";
import { evaluateFreshness, mayServeStaleOnError, unstorableReason } from "./freshness.ts";
import type { Metrics } from "./metrics.ts";
import {
  BodyError,
  FORWARD_DROPPED,
  originRequestHeaders,
  originResponseHeaders,
  readBodyUpTo,
} from "./origin.ts";
import { fetchFailure, originFetch } from "./origin_fetch.ts";
import { type ByteRange, contentRange, multipartParts, parseRange } from "./range.ts";
import type { Responder } from "./respond.ts";
import { fileStream, representationOf, serveBody } from "./serve_body.ts";
import { responseFacts } from "./cache_entry.ts";

/** Options of {@link createSlicer}. */
export interface SlicerOptions {
  cache: HttpCache;
  metrics: Metrics;
  respond: Responder;
  originBase: string;
  /** Our `Via` element. */
  via: string;
  /** Time allowed for a slice (headers and body), ms. */
  originTimeoutMs: number;
  /** Slice size, bytes (> 0). */
  sliceBytes: number;
  /** Most slice requests to the origin at once. */
  maxFetches: number;
  /** `--stale-on-error`, seconds (see `mayServeStaleOnError`). */
  staleOnErrorSeconds: number;
  now: () => number;
  log: (line: string) => void;
}

/** Answers range misses from slices. */
export interface Slicer {
  /**
   * Answers a GET with a `Range` that missed the whole object from slices, or returns null
   * when the normal fill should answer it instead (no usable `Range`, an `If-Range` that does
   * not hold, an origin answering 200 to a slice request, a one-slice object stored whole).
   */
  serve(req: Request, url: string, reqCc: CacheControl): Promise<Response | null>;
}

/** A slice of one representation, stored or just fetched. */
interface Slice {
  index: number;
  /** The representation's length, from `Content-Range`. */
  total: number;
  /** Strong `ETag`, else `Last-Modified`. */
  validator: string;
  /** The 206's headers (lower-case). */
  headers: [string, string][];
  /** The stored entry, or null when not stored. */
  entry: CacheEntry | null;
  /** The body when just fetched (read from the entry otherwise). */
  body: Bytes | null;
  /**
   * Where it came from: fresh from the cache, the origin, the cache after a 304, or the cache
   * stale because the origin failed.
   */
  how: "hit" | "miss" | "revalidated" | "stale";
}

type Got =
  | { kind: "slice"; slice: Slice }
  /** A complete object in one 206 (stored whole as a 200 when it may be): answered. */
  | { kind: "whole"; entry: CacheEntry | null; headers: [string, string][]; body: Bytes }
  /** Not a usable slice (200, no validator, ...): the caller decides. */
  | { kind: "other"; status: number; response: Response | null }
  | { kind: "error"; status: number; message: string };

const CONTENT_RANGE = /^bytes ([0-9]{1,15})-([0-9]{1,15})\/([0-9]{1,15})$/;
/** URLs whose last slice validator is remembered (the oldest is forgotten first). */
const MAX_VALIDATORS = 10_000;
/** Above this a parsed range start comes from a suffix range against an unknown length. */
const UNKNOWN_START = 2 ** 52;

/** Whether the origin vouched for `s` just now (fetched, or a 304). */
const confirmed = (s: Slice) => s.how === "miss" || s.how === "revalidated";

/** The strong validator of a response's headers, or null. */
function validatorOf(headers: readonly [string, string][]): string | null {
  const etag = headers.find(([n]) => n === "etag")?.[1]?.trim();
  if (etag !== undefined && etag.startsWith('"')) return `etag ${etag}`;
  const lm = headers.find(([n]) => n === "last-modified")?.[1];
  return lm === undefined ? null : `lm ${lm}`;
}

/** A counting semaphore. */
class Limiter {
  #free: number;
  #queue: (() => void)[] = [];
  constructor(n: number) {
    this.#free = n;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((r) => this.#queue.push(r));
    try {
      return await fn();
    } finally {
      const next = this.#queue.shift();
      if (next !== undefined) next();
      else this.#free++;
    }
  }
}

/** A {@link Slicer}. */
export function createSlicer(o: SlicerOptions): Slicer {
  const { cache, metrics, respond, sliceBytes: S, now } = o;
  const limiter = new Limiter(o.maxFetches);
  const inflight = new Map<string, Promise<Got>>();
  /**
   * The validator and length of the slice last fetched per URL, at most
   * {@link MAX_VALIDATORS} URLs (the length places a suffix range's first slice).
   */
  const lastSeen = new Map<string, { validator: string; total: number }>();
  /** How many slices a response resolves ahead of the one it sends. */
  const window = Math.max(1, o.maxFetches);

  const sliceKey = (url: string, h: Headers, i: number) => `${cache.keyFor(url, h)}\nslice:${i}`;

  /** The stored slice `i` of `url` (fresh or stale), or null. */
  function lookup(req: Request, url: string, i: number): Slice | null {
    const entry = cache.get(sliceKey(url, req.headers, i));
    return entry === null ? null : storedSlice(entry, i, "hit");
  }

  function storedSlice(entry: CacheEntry, i: number, how: Slice["how"]): Slice | null {
    if (entry.status !== 206) return null;
    const m = CONTENT_RANGE.exec(entry.headers.find(([n]) => n === "content-range")?.[1] ?? "");
    const validator = validatorOf(entry.headers);
    if (m === null || validator === null) return null;
    const total = Number(m[3]);
    return { index: i, total, validator, headers: entry.headers, entry, body: null, how };
  }

  /** `stale` standing in for a failed slice fetch when it may (logged), else `got`. */
  function standIn(
    url: string,
    reqCc: CacheControl,
    stale: Slice | null,
    got: Got,
    answered = false,
  ): Got {
    if (stale === null || stale.entry === null) return got;
    if (!mayServeStaleOnError(stale.entry, reqCc, now(), o.staleOnErrorSeconds, answered)) {
      return got;
    }
    const message = got.kind === "error"
      ? got.message
      : `origin answered ${got.kind === "other" ? got.status : ""}`;
    o.log(`origin failure: GET ${url} (slice ${stale.index}): ${message}; served the stale slice`);
    if (got.kind === "other") got.response?.body?.cancel().catch(() => {});
    return { kind: "slice", slice: { ...stale, how: "stale" } };
  }

  /** Slice `i`: stored and fresh, else fetched (shared with concurrent requests for it). */
  function get(req: Request, url: string, reqCc: CacheControl, i: number): Promise<Got> {
    const stored = lookup(req, url, i);
    if (stored !== null && evaluateFreshness(stored.entry!, reqCc, now()).state === "fresh") {
      return Promise.resolve({ kind: "slice", slice: stored });
    }
    const key = sliceKey(url, req.headers, i);
    const shared = inflight.get(key);
    if (shared !== undefined) {
      // A response passed through belongs to the request that fetched it.
      return shared.then((g) => g.kind === "other" ? { ...g, response: null } : g);
    }
    const p = limiter.run(() => fetchSlice(req, url, reqCc, i, stored));
    inflight.set(key, p);
    p.finally(() => inflight.delete(key)).catch(() => {});
    return p;
  }

  async function fetchSlice(
    req: Request,
    url: string,
    reqCc: CacheControl,
    i: number,
    stale: Slice | null,
  ): Promise<Got> {
    const sent = fillForwarded(req.headers, cache.varyOf(url));
    const headers = fillRequestHeaders(req.headers, sent, o.via);
    const from = i * S;
    headers.set("range", `bytes=${from}-${from + S - 1}`);
    const validators = stale?.entry ?? null;
    if (validators?.etag != null) headers.set("if-none-match", validators.etag);
    if (validators?.lastModified != null) {
      headers.set("if-modified-since", validators.lastModified);
    }
    const signal = AbortSignal.timeout(o.originTimeoutMs);
    const requestTime = now();
    let res: Response;
    metrics.originRequests++;
    try {
      res = await originFetch(
        o.originBase + url,
        { headers, signal, redirect: "manual" },
        (why) =>
          o.log(`origin: GET ${url} (slice ${i}): ${why}; retrying once on a new connection`),
      );
    } catch (e) {
      metrics.originErrors++;
      return standIn(
        url,
        reqCc,
        stale,
        failure(signal, e, `origin unreachable: ${fetchFailure(e)}`),
      );
    }
    metrics.observeOriginLatency((now() - requestTime) / 1000);
    const responseTime = now();
    const list = originResponseHeaders(res);
    if (res.status === 304 && stale?.entry != null) {
      await res.body?.cancel();
      const freshened = cache.freshen(stale.entry, list, requestTime, responseTime);
      const slice = freshened ? storedSlice(stale.entry, i, "revalidated") : null;
      if (slice !== null) return { kind: "slice", slice };
      cache.remove(stale.entry);
      return { kind: "other", status: 304, response: null };
    }
    if (res.status >= 500 && stale !== null) {
      metrics.originErrors++;
      const got: Got = {
        kind: "other",
        status: res.status,
        response: respond.passThrough(res.status, list, res.body),
      };
      return standIn(url, reqCc, stale, got, true);
    }
    const m = res.status === 206
      ? CONTENT_RANGE.exec(list.find(([n]) => n === "content-range")?.[1] ?? "")
      : null;
    const validator = validatorOf(list);
    const total = m === null ? 0 : Number(m[3]);
    const end = Math.min(from + S, total) - 1;
    if (m === null || validator === null || Number(m[1]) !== from || Number(m[2]) !== end) {
      if (res.status === 200 || res.status === 206) {
        // No range support, or a 206 that cannot be combined: the whole object instead.
        await res.body?.cancel();
        return { kind: "other", status: res.status, response: null };
      }
      const response = respond.passThrough(res.status, list, res.body);
      return { kind: "other", status: res.status, response };
    }
    let body: Bytes;
    try {
      const read = await readBodyUpTo(res.body, S, end - from + 1, signal);
      if (read.kind !== "complete" || read.body.byteLength !== end - from + 1) {
        throw new BodyError(`slice ${i} of ${url} is not ${end - from + 1} bytes long`, false);
      }
      body = read.body as Bytes;
    } catch (e) {
      metrics.originErrors++;
      o.log(`origin: ${url} (slice ${i}): ${(e as Error).message}`);
      return standIn(url, reqCc, stale, failure(signal, e, (e as Error).message));
    }
    metrics.originBytes += body.byteLength;
    const storable = unstorableReason("GET", reqCc, false, responseFacts(200, list)) === null;
    if (from === 0 && end === total - 1) {
      // The whole object in one slice: stored and served as the complete 200 it is.
      const whole = list.filter(([n]) => n !== "content-range");
      const entry = storable
        ? await cache.put(url, sent, {
          status: 200,
          headers: whole,
          body,
          requestTime,
          responseTime,
        })
        : null;
      return { kind: "whole", entry, headers: whole, body };
    }
    const parts = { status: 206, headers: list, body, requestTime, responseTime };
    const entry = storable ? await cache.put(url, sent, parts, `\nslice:${i}`) : null;
    // Slices of another representation are never combined with this one: drop them (the
    // URL's entries are looked through when its validator changes, or is first seen here).
    if (lastSeen.get(url)?.validator !== validator) {
      for (const e of cache.variants(url)) {
        if (e.status === 206 && validatorOf(e.headers) !== validator) cache.remove(e);
      }
    }
    lastSeen.delete(url);
    lastSeen.set(url, { validator, total });
    if (lastSeen.size > MAX_VALIDATORS) lastSeen.delete(lastSeen.keys().next().value!);
    const slice: Slice = { index: i, total, validator, headers: list, entry, body, how: "miss" };
    return { kind: "slice", slice };
  }

  function failure(signal: AbortSignal, e: unknown, message: string): Got {
    const timedOut = signal.aborted || (e instanceof BodyError && e.timedOut);
    return timedOut
      ? {
        kind: "error",
        status: 504,
        message: `origin did not answer within ${o.originTimeoutMs} ms`,
      }
      : { kind: "error", status: 502, message };
  }

  /** The client's request passed to the origin as it is (streamed back, not stored). */
  async function forwardAsIs(req: Request, url: string): Promise<Response> {
    const signal = AbortSignal.timeout(o.originTimeoutMs);
    metrics.originRequests++;
    try {
      const res = await originFetch(o.originBase + url, {
        headers: originRequestHeaders(req.headers, FORWARD_DROPPED, o.via),
        signal,
        redirect: "manual",
      });
      return respond.passThrough(res.status, originResponseHeaders(res), res.body);
    } catch (e) {
      metrics.originErrors++;
      const f = failure(signal, e, `origin unreachable: ${fetchFailure(e)}`) as {
        status: number;
        message: string;
      };
      return respond.text(f.status, f.message);
    }
  }

  /** The slice indices covering `ranges`, in the order the answer reads them. */
  function sliceOrder(ranges: readonly ByteRange[]): number[] {
    const out: number[] = [];
    for (const r of ranges) {
      for (let i = Math.floor(r.start / S); i <= Math.floor(r.end / S); i++) out.push(i);
    }
    return out;
  }

  async function serve(req: Request, url: string, reqCc: CacheControl): Promise<Response | null> {
    const header = req.headers.get("range")!;
    const probe = parseRange(header, Number.MAX_SAFE_INTEGER);
    if (probe.kind !== "ranges") return null;
    const first = probe.ranges[0].start;
    // A suffix range starts at an unknown offset: the length last seen places it, else slice 0
    // (which tells the length) comes first.
    const suffix = Number.MAX_SAFE_INTEGER - first;
    const total = lastSeen.get(url)?.total;
    let anchorIndex = first < UNKNOWN_START
      ? Math.floor(first / S)
      : total === undefined
      ? 0
      : Math.floor(Math.max(0, total - suffix) / S);
    for (let attempt = 0; attempt < 2; attempt++) {
      const got = await get(req, url, reqCc, anchorIndex);
      if (got.kind === "other" && got.status === 416 && anchorIndex !== 0) {
        // The first range starts past the end; a later one may not: learn the length first.
        await got.response?.body?.cancel();
        anchorIndex = 0;
        attempt--;
        continue;
      }
      if (got.kind === "whole") {
        metrics.misses++;
        if (got.entry !== null) {
          const age = evaluateFreshness(got.entry, reqCc, now()).age;
          return await respond.entry(req, got.entry, "MISS", age, got.body);
        }
        const rep = representationOf(200, got.headers, got.body.byteLength);
        const list = respond.relayHeaders(got.headers);
        return serveBody(req, rep, list, got.body, respond.countSent);
      }
      if (got.kind === "error") return respond.text(got.status, got.message);
      if (got.kind === "other") return got.response; // null: the normal fill
      const anchor = got.slice;
      const rep = representationOf(200, anchor.headers, anchor.total);
      if (!ifRangeHolds(req.headers.get("if-range"), rep, rep.date)) return null;
      const parsed = parseRange(header, anchor.total);
      if (parsed.kind === "none") return null;
      if (parsed.kind === "unsatisfiable") {
        const list = respond.relayHeaders(anchor.headers).filter(([n]) =>
          n !== "content-type" && n !== "content-range"
        );
        list.push(["content-range", `bytes */${anchor.total}`]);
        return new Response(null, { status: 416, headers: list });
      }
      const order = sliceOrder(parsed.ranges);
      const ahead = [...new Set(order)].slice(0, window);
      const slices = new Map<number, Slice>([[anchor.index, anchor]]);
      const results = await Promise.all(
        ahead.map((i) => slices.has(i) ? got : get(req, url, reqCc, i)),
      );
      let usable = true;
      for (const r of results) {
        if (r.kind === "error") return respond.text(r.status, r.message);
        if (r.kind === "other") await r.response?.body?.cancel();
        if (r.kind !== "slice") usable = false;
        else slices.set(r.slice.index, r.slice);
      }
      if (!usable) return forwardAsIs(req, url);
      const all = [...slices.values()];
      const current = all.find((s) => confirmed(s)) ?? anchor;
      if (all.every((s) => s.validator === current.validator && s.total === current.total)) {
        return answer(req, url, reqCc, parsed.ranges, order, slices, current);
      }
      // Another representation among the stored slices: drop them, fetch again once.
      for (const s of all) if (!confirmed(s) && s.entry !== null) cache.remove(s.entry);
    }
    return forwardAsIs(req, url);
  }

  /** The 206 (one range, or multipart/byteranges) read from the slices. */
  function answer(
    req: Request,
    url: string,
    reqCc: CacheControl,
    ranges: readonly ByteRange[],
    order: readonly number[],
    resolved: Map<number, Slice>,
    base: Slice,
  ): Response {
    const total = base.total;
    const hows = new Set([...resolved.values()].map((s) => s.how));
    const xcache = hows.has("stale")
      ? "STALE"
      : hows.has("miss")
      ? "MISS"
      : hows.has("revalidated")
      ? "REVALIDATED"
      : "HIT";
    if (xcache === "HIT") metrics.hits++;
    else if (xcache === "STALE") metrics.stale++;
    else if (xcache === "REVALIDATED") metrics.revalidated++;
    else metrics.misses++;
    const age = base.entry === null ? 0 : evaluateFreshness(base.entry, reqCc, now()).age;
    let list = respond.relayHeaders(base.headers, xcache, age)
      .filter(([n]) => n !== "content-range");
    let parts: (Uint8Array | ByteRange)[] = ranges.slice();
    if (ranges.length === 1) list.push(["content-range", contentRange(ranges[0], total)]);
    else {
      const boundary = `nearcast-${crypto.randomUUID()}`;
      const type = list.find(([n]) => n === "content-type")?.[1] ?? null;
      parts = multipartParts(ranges, total, type, boundary);
      list = list.filter(([n]) => n !== "content-type");
      list.push(["content-type", `multipart/byteranges; boundary=${boundary}`]);
    }
    // Each slice piece of each range, in order.
    const pieces: (Uint8Array | { index: number; start: number; end: number })[] = [];
    for (const p of parts) {
      if (p instanceof Uint8Array) {
        pieces.push(p);
        continue;
      }
      for (let i = Math.floor(p.start / S); i <= Math.floor(p.end / S); i++) {
        pieces.push({
          index: i,
          start: Math.max(p.start, i * S) - i * S,
          end: Math.min(p.end, i * S + S - 1) - i * S,
        });
      }
    }
    let length = 0;
    for (const p of pieces) length += p instanceof Uint8Array ? p.byteLength : p.end - p.start + 1;
    list.push(["content-length", String(length)]);
    metrics.bytesSent += length;
    // Slices resolve `window` ahead of the one being sent; each is checked against `base`.
    const pending = new Map<number, Promise<Got>>();
    for (const [i, s] of resolved) pending.set(i, Promise.resolve({ kind: "slice", slice: s }));
    let next = 0;
    const ensure = () => {
      for (let k = next; k < order.length && pending.size < window; k++) {
        if (!pending.has(order[k])) pending.set(order[k], get(req, url, reqCc, order[k]));
      }
    };
    let at = 0;
    let current: ReadableStreamDefaultReader<Uint8Array> | null = null;
    const slice = async (index: number): Promise<Slice> => {
      ensure();
      const got = await (pending.get(index) ?? get(req, url, reqCc, index));
      pending.delete(index);
      next++;
      if (got.kind === "other") await got.response?.body?.cancel();
      if (got.kind !== "slice") throw new Error(`slice ${index} of ${url} could not be fetched`);
      const s = got.slice;
      if (s.validator !== base.validator || s.total !== total) {
        if (!confirmed(s) && s.entry !== null) cache.remove(s.entry);
        throw new Error(`${url} changed while its slices were sent; response aborted`);
      }
      ensure(); // only while the answer goes on
      return s;
    };
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          while (true) {
            if (current !== null) {
              const r = await current.read();
              if (!r.done) return controller.enqueue(r.value);
              current = null;
            }
            if (at >= pieces.length) return controller.close();
            const p = pieces[at++];
            if (p instanceof Uint8Array) return controller.enqueue(p);
            const s = await slice(p.index);
            const held = s.body ?? (s.entry === null ? null : await cache.open(s.entry));
            // A stored slice replaced meanwhile (its key now holds another body): never read.
            if (held !== null && s.body === null && cache.peek(s.entry!.key) !== s.entry) {
              if (!(held instanceof Uint8Array)) held.close();
              throw new Error(`slice ${p.index} of ${url} replaced while it was sent`);
            }
            if (held === null) throw new Error(`slice ${p.index} of ${url} lost`);
            if (held instanceof Uint8Array) {
              return controller.enqueue(held.subarray(p.start, p.end + 1));
            }
            current = fileStream(held, [{ start: p.start, end: p.end }]).getReader();
          }
        } catch (e) {
          o.log(`slices: ${(e as Error).message}`);
          controller.error(e);
        }
      },
      cancel(reason) {
        return current?.cancel(reason);
      },
    }, { highWaterMark: 0 });
    return new Response(req.method === "HEAD" ? null : body, { status: 206, headers: list });
  }

  return { serve };
}

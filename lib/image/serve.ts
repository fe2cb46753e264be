/**
 * The replica's image layer (`--images on-the-fly|precompute|both`): in front of the replica's
 * handler, a GET for a `.jpg`, `.jpeg` or `.png` path is served as the ladder rung
 * {@link chooseVariant} picks from `?w=`/`?q=`/`?fmt=`, Client Hints, the client's measured
 * throughput and the RTT the fleet measured to its subnet. The original is fetched through the
 * replica's handler with those parameters removed, so the cache keeps one original per image.
 *
 * Variants are kept in the replica's own cache and store once {@link ImageLayer.attach} is called
 * (`cache_variants.ts`: counted in the cache budget, pinned with an upload, dropped with a cached
 * original), else in a byte-bounded LRU of the layer's own. At most `concurrency` computations
 * run at once, request-driven and background alike, and each first reserves the bytes it is
 * estimated to hold against the layer's memory allowance (`memory.ts`, `--image-memory`): a
 * request whose variant does not fit now (or whose background computation waits for room) is
 * served the original (`w=orig;memory`); background work waits for room (deferred), and a
 * variant larger than the whole allowance is not made; both are logged (at most a line per 10 s).
 *
 * Modes: `on-the-fly` computes a missing variant for the request (one computation per variant
 * key at a time, at most `timeoutMs` before the original is served instead), then stores it;
 * `precompute` never makes a request wait: when an image enters the cache (an origin fill or an
 * upload; without a cache, at its first request) its ladder (`chosenRungs`: the rungs a request
 * without parameters can get, WebP ones too for a JPEG) is computed in the background,
 * one variant at a time within `backgroundShare` of one core, and the original is served
 * (`X-Nearcast-Variant: w=orig;pending`) until the wanted variant is ready; `both` does both.
 *
 * Responses carry `Accept-CH`, `X-Nearcast-Variant`, the `Vary` of what was used and an `ETag`
 * per variant (the original keeps its own); `If-Match`/`If-Unmodified-Since` (412),
 * `If-None-Match`/`If-Modified-Since` (304) and `Range` are answered against the body chosen
 * (`_send.ts`).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { concatBytes } from "../common/bytes.ts";
import type { CacheEntry, CacheEvents, HttpCache } from "../http/cache.ts";
import type { ObjectStore } from "../store/types.ts";
import { Background } from "./_background.ts";
import { sendImage } from "./_send.ts";
import { CacheVariants, DERIVED } from "./cache_variants.ts";
import { ACCEPT_CH, parseClientHints } from "./client_hints.ts";
import { DEFAULT_LADDER, type Ladder, parseImageParams } from "./ladder.ts";
import type { TranscodeOptions } from "./pipeline.ts";
import { TranscodePool } from "./transcode_pool.ts";
import { type ImageFormat, type ImageInfo, probeImage } from "./probe.ts";
import { ThroughputEstimator } from "./throughput.ts";
import { DEFAULT_IMAGE_MEMORY, MemoryAllowance, transcodeBytes } from "./memory.ts";
import { allRungs, chooseVariant, chosenRungs, rungHeader } from "./variant.ts";
import { type Bytes, LruVariants, sourceTag, type VariantStore } from "./variant_store.ts";

const IMAGE_PATH = /\.(jpe?g|png)$/i;
const IMAGE_TYPE = /^image\/(jpeg|png)\s*(;|$)/i;
const CONDITIONAL = [
  "range",
  "if-range",
  "if-none-match",
  "if-modified-since",
  "if-match",
  "if-unmodified-since",
];
/** Changes when the bytes a rung gives for a source may change (it is in every variant ETag). */
const ENCODER_VERSION = "1";

/** Options of {@link ImageLayer}. */
export interface ImageLayerOptions {
  /** Default on-the-fly. */
  mode?: ImageMode;
  ladder?: Ladder;
  /** Largest original transcoded (bytes); larger ones are passed through. Default 32 MiB. */
  maxSourceBytes?: number;
  /** Largest original transcoded (width × height); larger ones are served as they are. Default 25 M. */
  maxPixels?: number;
  /** Byte budget of the layer's own variant LRU (before {@link ImageLayer.attach}). Default 32 MiB. */
  cacheBytes?: number;
  /** Variants computed at once (each holds one full decode). Default 2. */
  concurrency?: number;
  /** Longest wait for a variant before the original is served. Default 5 s. */
  timeoutMs?: number;
  /** Fraction of one core the background ladder work may take. Default 0.5. */
  backgroundShare?: number;
  throughput?: ThroughputEstimator;
  /** The RTT the fleet measured to a client's subnet, ms (see `lib/fleet/replica/probe.ts`). */
  rttMs?: (ip: string) => number | undefined;
  /** Bytes the transcodes may reserve at once (see `memory.ts`). Default 128 MiB. */
  memoryBytes?: number;
  /** An idle transcoding worker is ended after this long, ms. Default 30 s. */
  workerIdleMs?: number;
  /** A transcode without an answer this long ends its worker, ms. Default 60 s. */
  workerDeadlineMs?: number;
  /** Where memory refusals and deferrals are told (at most a line per 10 s). */
  log?: (line: string) => void;
}

/** How variants are made (see the module doc). */
export type ImageMode = "on-the-fly" | "precompute" | "both";

/** Images whose ladder waits for the background worker, at most (holding their bytes). */
const QUEUE_WITH_BYTES = 16;
/** Images entered into the cache whose ladder waits (holding only a reference). */
const QUEUE_FROM_CACHE = 256;

/** Counters for tests, metrics and the experiment. */
export interface ImageStats {
  computed: number;
  /** Variants made by the background worker (also counted in `computed`). */
  precomputed: number;
  /** Requests answered with the original because their variant was not ready (precompute). */
  pending: number;
  cacheHits: number;
  /** Requests that wanted a variant (not the original as it is). */
  variantRequests: number;
  timeouts: number;
  originals: number;
  /** Time spent transcoding, ms, for requests and in the background. */
  onTheFlyMs: number;
  precomputeMs: number;
  /** Bytes of variants made. */
  variantBytes: number;
  /** Requests served the original because their transcode did not fit in the memory allowance. */
  memoryRefused: number;
  /** Background variants that waited for room in the allowance. */
  memoryDeferred: number;
  /** Background variants not made: larger than the whole allowance. */
  memorySkipped: number;
}

type Next = (req: Request) => Response | Promise<Response>;

/** An original being transcoded: where it is cached and what its bytes are. */
interface Source {
  url: string;
  tag: string;
  pinned: boolean;
  bytes: Uint8Array;
  info: ImageInfo;
}

/** A transcode refused for want of memory (see {@link MemoryAllowance}). */
class MemoryRefusal extends Error {}

/** The image layer; {@link handle} wraps the replica's handler. */
export class ImageLayer {
  readonly stats: ImageStats = {
    computed: 0,
    precomputed: 0,
    pending: 0,
    cacheHits: 0,
    variantRequests: 0,
    timeouts: 0,
    originals: 0,
    onTheFlyMs: 0,
    precomputeMs: 0,
    variantBytes: 0,
    memoryRefused: 0,
    memoryDeferred: 0,
    memorySkipped: 0,
  };
  /** The transcodes' memory allowance (reserved bytes, peak, refusals). */
  readonly memory: MemoryAllowance;
  readonly throughput: ThroughputEstimator;
  /** Pass to the replica's cache (`createReplica({ cacheEvents })`), then {@link attach}. */
  readonly cacheEvents: CacheEvents = {
    stored: (e) => this.#stored(e),
    dropped: (e) => this.#dropped(e),
  };
  readonly #ladder: Ladder;
  readonly #maxSource: number;
  readonly #maxPixels: number;
  readonly #timeout: number;
  readonly #rtt: (ip: string) => number | undefined;
  #variants: VariantStore;
  #cache: HttpCache | null = null;
  #dropper: CacheVariants | null = null;
  readonly #inflight = new Map<string, Promise<Bytes>>();
  /** Keys of background computations waiting for room in the memory allowance. */
  readonly #deferred = new Set<string>();
  #slots: number;
  #pool: TranscodePool;
  readonly #waiting: (() => void)[] = [];
  readonly #mode: ImageMode;
  readonly #bg: Background;
  readonly #log: (line: string) => void;
  #loggedAt = -Infinity;
  #unlogged = 0;

  constructor(o: ImageLayerOptions = {}) {
    this.#mode = o.mode ?? "on-the-fly";
    this.#ladder = o.ladder ?? DEFAULT_LADDER;
    this.#maxSource = o.maxSourceBytes ?? 32 * 1024 * 1024;
    this.#maxPixels = o.maxPixels ?? 25_000_000;
    this.#variants = new LruVariants(o.cacheBytes ?? 32 * 1024 * 1024);
    this.#slots = o.concurrency ?? 2;
    // One worker: transcodes run one after another off the event loop. A second worker would
    // cost another V8 heap and codec set (RSS after two 1080p transcodes: +80 MiB with one
    // worker, +132 MiB with two, +60 MiB in the calling thread) for parallelism that the
    // 2-core machines this is sized for do not have to spare.
    this.#pool = new TranscodePool(1, { idleMs: o.workerIdleMs, deadlineMs: o.workerDeadlineMs });
    this.memory = new MemoryAllowance(o.memoryBytes ?? DEFAULT_IMAGE_MEMORY);
    this.#log = o.log ?? (() => {});
    this.#timeout = o.timeoutMs ?? 5000;
    this.#bg = new Background(o.backgroundShare ?? 0.5);
    this.throughput = o.throughput ?? new ThroughputEstimator();
    this.#rtt = o.rttMs ?? (() => undefined);
  }

  /** Workers started, ended when idle, ended at a deadline; workers alive now. */
  get workers(): { started: number; idleEnded: number; deadlineEnded: number; alive: number } {
    return { ...this.#pool.counts, alive: this.#pool.workers };
  }

  /** Ends the transcoding workers (an idle one keeps a `deno run` process alive). */
  close(): void {
    this.#pool.close();
  }

  /** Keeps variants in `cache` (and `store`) from now on; see the module doc. */
  attach(cache: HttpCache, store: ObjectStore | null): void {
    const v = new CacheVariants(cache, store, allRungs(this.#ladder));
    this.#cache = cache;
    this.#variants = this.#dropper = v;
  }

  /** Serves `req` from client address `ip`, fetching originals through `next`. */
  async handle(req: Request, ip: string, next: Next): Promise<Response> {
    if (req.method !== "GET" && req.method !== "HEAD") return next(req);
    const url = new URL(req.url);
    if (!IMAGE_PATH.test(url.pathname)) return next(req);
    const parsed = parseImageParams(url, this.#ladder);
    if (!parsed.ok) {
      return new Response(`Cannot serve image variant: ${parsed.message}\n`, {
        status: 400,
        headers: { "content-type": "text/plain; charset=utf-8", "accept-ch": ACCEPT_CH },
      });
    }
    for (const p of ["w", "q", "fmt"]) url.searchParams.delete(p);
    // The whole original, always: conditionals and ranges apply to the body chosen below.
    const inner = new Headers(req.headers);
    for (const h of CONDITIONAL) inner.delete(h);
    const res = await next(new Request(url, { method: "GET", headers: inner }));
    const type = res.headers.get("content-type") ?? "";
    const declared = res.headers.get("content-length");
    if (
      res.status !== 200 || !IMAGE_TYPE.test(type) || res.body === null ||
      (declared !== null && !(Number(declared) <= this.#maxSource))
    ) {
      return req.method === "HEAD" ? new Response(null, res) : res;
    }
    // A miss streams from the origin without a length: read up to the cap, else pass it on.
    const read = await readCapped(res.body, this.#maxSource);
    if (read instanceof ReadableStream) {
      return new Response(req.method === "HEAD" ? null : read, res);
    }
    const original = read;
    const info = probeImage(original);
    const headers = new Headers(res.headers);
    headers.set("accept-ch", ACCEPT_CH);
    const send = (body: Bytes) =>
      sendImage(req, body, headers, (n, ms) => this.throughput.record(ip, n, ms));
    if (!info) return send(original);
    if (info.width * info.height > this.#maxPixels) {
      headers.set("x-nearcast-variant", "w=orig;too-large");
      return send(original);
    }
    const src: Source = {
      url: `${url.pathname}${url.search}`,
      tag: sourceTag(res.headers.get("etag"), res.headers.get("last-modified"), original.length),
      pinned: false,
      bytes: original,
      info,
    };
    if (this.#mode !== "on-the-fly" && this.#cache === null) {
      this.#schedule(src, info.width, info.format, QUEUE_WITH_BYTES);
    }
    const v = chooseVariant({
      ladder: this.#ladder,
      sourceWidth: info.width,
      sourceFormat: info.format,
      params: parsed.params,
      hints: parseClientHints(req.headers),
      acceptsWebp: /\bimage\/webp\b/i.test(req.headers.get("accept") ?? ""),
      measuredBps: this.throughput.estimate(ip),
      measuredRttMs: this.#rtt(ip),
    });
    const vary = [headers.get("vary"), ...v.vary].filter((x) => x).join(", ");
    if (vary !== "") headers.set("vary", vary);
    if (v.network) headers.set("cache-control", "private");
    if (this.#isOriginal(v.width, v.format, v.quality, info.format)) {
      headers.set("x-nearcast-variant", v.header);
      this.stats.originals++;
      return send(original);
    }
    this.stats.variantRequests++;
    let bytes: Bytes | "memory" | undefined = await this.#variants.get(src.url, v.header, src.tag);
    if (bytes) this.stats.cacheHits++;
    else if (this.#mode === "precompute") {
      this.stats.pending++;
      headers.set("x-nearcast-variant", "w=orig;pending");
      return send(original);
    } else {
      bytes = await this.#compute(src, v.header, {
        width: v.width === "original" ? undefined : v.width,
        format: v.format,
        quality: v.quality,
        maxPixels: this.#maxPixels,
      });
    }
    if (bytes === "memory") {
      this.stats.memoryRefused++;
      headers.set("x-nearcast-variant", "w=orig;memory");
      return send(original);
    }
    if (!bytes) {
      this.stats.timeouts++;
      headers.set("x-nearcast-variant", "w=orig;timeout");
      return send(original);
    }
    headers.set("x-nearcast-variant", v.header);
    headers.set("content-type", `image/${v.format}`);
    headers.set("etag", variantETag(src.tag, v.header));
    // The original's date says nothing about when another rung was chosen for this client.
    headers.delete("last-modified");
    headers.delete("content-range");
    return send(bytes);
  }

  /** True while background work runs or waits (for tests and the experiment). */
  get precomputing(): boolean {
    return this.#bg.busy;
  }

  /** A rung that is the original's own bytes (same width, format, and the normal quality). */
  #isOriginal(w: number | "original", f: string, q: number, source: ImageFormat): boolean {
    return w === "original" && f === source && (f === "png" || q === this.#ladder.qualities[0]);
  }

  /**
   * The variant's bytes (computed once per key at a time), `"memory"` when it did not fit in the
   * allowance, or undefined after the timeout or an error.
   */
  async #compute(
    src: Source,
    rung: string,
    opts: TranscodeOptions,
  ): Promise<Bytes | "memory" | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<undefined>((r) =>
      timer = setTimeout(() => r(undefined), this.#timeout)
    );
    // A background computation of this variant waiting for memory would hold the request until
    // the timeout: the allowance is exhausted, so the original now.
    if (this.#deferred.has(computationKey(src, rung))) {
      clearTimeout(timer);
      return "memory";
    }
    try {
      return await Promise.race([this.#start(src, rung, opts, false), late]);
    } catch (e) {
      if (e instanceof MemoryRefusal) return "memory";
      return undefined; // a variant that cannot be made: serve the original
    } finally {
      clearTimeout(timer);
    }
  }

  /** The computation of a variant: the one in flight, or a new one (stored when done). */
  #start(src: Source, rung: string, opts: TranscodeOptions, background: boolean): Promise<Bytes> {
    const key = computationKey(src, rung);
    let p = this.#inflight.get(key);
    if (!p) {
      const made = this.#run(async () => {
        const need = transcodeBytes(src.info, src.bytes.length, opts.width);
        await this.#reserve(src, rung, need, background);
        // In a worker (the codecs load there with the first variant): the event loop, and every
        // cache hit on it, is not held for the up to ~170 ms a large photo takes. The bytes stay
        // reserved until the worker answers (after a timeout too), or is ended.
        const t0 = performance.now();
        const out = await this.#pool.transcode(src.bytes, opts).finally(() => {
          this.memory.release(need);
        });
        const ms = performance.now() - t0;
        this.stats.computed++;
        this.stats.variantBytes += out.bytes.length;
        if (background) this.stats.precomputeMs += ms;
        else this.stats.onTheFlyMs += ms;
        return out.bytes as Bytes;
      });
      p = made;
      this.#inflight.set(key, made);
      const type = `image/${opts.format}`;
      made
        .then((b) => this.#variants.put(src.url, rung, src.tag, b, type, src.pinned))
        .catch(() => {}) // not stored: made again when asked
        .finally(() => this.#inflight.delete(key));
    }
    return p;
  }

  /**
   * Reserves `need` bytes for a transcode: a request's at once or never (`MemoryRefusal`), a
   * background one waiting for room; logs refusals and deferrals.
   */
  async #reserve(src: Source, rung: string, need: number, background: boolean): Promise<void> {
    const what = `${src.url} ${rung} needs ${need} bytes, ${this.memory.reserved} of ` +
      `${this.memory.limit} reserved`;
    if (!background) {
      if (this.memory.tryReserve(need)) return;
      this.#note(`image memory: serving the original: ${what}`);
      throw new MemoryRefusal(what);
    }
    if (need > this.memory.limit) {
      this.stats.memorySkipped++;
      this.#note(`image memory: not precomputed (over the whole allowance): ${what}`);
      throw new MemoryRefusal(what);
    }
    const waited = this.memory.deferred;
    const p = this.memory.reserve(need);
    if (this.memory.deferred === waited) return await p;
    this.stats.memoryDeferred++;
    this.#note(`image memory: precompute deferred until memory is free: ${what}`);
    const key = computationKey(src, rung);
    this.#deferred.add(key);
    try {
      await p;
    } finally {
      this.#deferred.delete(key);
    }
  }

  /** Logs `line`, at most one line per 10 s (saying how many were left out). */
  #note(line: string): void {
    const now = performance.now();
    if (now - this.#loggedAt < 10_000) {
      this.#unlogged++;
      return;
    }
    const more = this.#unlogged > 0 ? ` (and ${this.#unlogged} more since the last line)` : "";
    this.#loggedAt = now;
    this.#unlogged = 0;
    this.#log(`${line}${more}`);
  }

  /** Queues the whole ladder of an image for the background worker (once per image version). */
  #schedule(src: Source, width: number, format: ImageFormat, limit: number): void {
    this.#bg.add(`${src.url}\u0000${src.tag}`, () => this.#ladderOf(src, width, format), limit);
  }

  /** Makes every rung of `src` not held yet, one at a time within the background share. */
  async #ladderOf(src: Source, width: number, format: ImageFormat): Promise<void> {
    for (const { width: w, quality, format: f } of chosenRungs(this.#ladder, width, format)) {
      const rung = rungHeader(w, quality, f);
      if (this.#isOriginal(w, f, quality, format)) continue;
      if (this.#variants.has(src.url, rung, src.tag)) continue;
      const t0 = performance.now();
      try {
        const opts = { width: w === "original" ? undefined : w, format: f, quality };
        await this.#start(src, rung, { ...opts, maxPixels: this.#maxPixels }, true);
        this.stats.precomputed++;
      } catch { /* an image that cannot be transcoded: nothing to keep */ }
      await this.#bg.pace(performance.now() - t0);
    }
  }

  /** An entry entered the cache (fill or upload): queue its ladder (precompute, both). */
  #stored(entry: CacheEntry): void {
    const cache = this.#cache;
    if (this.#mode === "on-the-fly" || cache === null || !isImageEntry(entry)) return;
    this.#bg.add(`${entry.url}\u0000${entryTag(entry)}`, async () => {
      if (cache.peek(entry.key) !== entry || entry.size > this.#maxSource) return;
      const body = await cache.open(entry);
      if (body === null) return;
      const bytes = body instanceof Uint8Array
        ? body
        : new Uint8Array(await new Response(body.readable).arrayBuffer());
      const info = probeImage(bytes);
      if (!info || info.width * info.height > this.#maxPixels) return;
      const src = { url: entry.url, tag: entryTag(entry), pinned: entry.pinned, bytes, info };
      await this.#ladderOf(src, info.width, info.format);
    }, QUEUE_FROM_CACHE);
  }

  /** An entry left the cache: its variants go too (after the cache's own bookkeeping). */
  #dropped(entry: CacheEntry): void {
    const d = this.#dropper;
    if (d === null || !isImageEntry(entry)) return;
    this.#bg.forget(`${entry.url}\u0000${entryTag(entry)}`);
    queueMicrotask(() => d.dropAll(entry.url));
  }

  /** Runs `f` when one of the `concurrency` slots is free. */
  async #run<T>(f: () => Promise<T>): Promise<T> {
    while (this.#slots === 0) await new Promise<void>((r) => this.#waiting.push(r));
    this.#slots--;
    try {
      return await f();
    } finally {
      this.#slots++;
      this.#waiting.shift()?.();
    }
  }
}

/** The key of a variant computation: the original's URL and bytes, and the rung. */
function computationKey(src: Source, rung: string): string {
  return `${src.url}\u0000${src.tag}\u0000${rung}`;
}

/** An original the layer transcodes (not one of its own variants). */
function isImageEntry(e: CacheEntry): boolean {
  const path = e.url.split("?", 1)[0];
  return e.status === 200 && !e.url.includes(DERIVED) && IMAGE_PATH.test(path) &&
    IMAGE_TYPE.test(e.contentType ?? "");
}

function entryTag(e: CacheEntry): string {
  return sourceTag(e.etag, e.lastModified, e.size);
}

/** The strong ETag of a variant: the same source and rung always give the same bytes. */
function variantETag(tag: string, rung: string): string {
  const h = createHash("sha256").update(`${ENCODER_VERSION}\n${tag}\n${rung}`).digest("hex");
  return `"img-${h.slice(0, 24)}"`;
}

/** The whole body if it has at most `cap` bytes, else a stream replaying what was read, then the rest. */
async function readCapped(
  body: ReadableStream<Uint8Array>,
  cap: number,
): Promise<Bytes | ReadableStream<Uint8Array>> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    n += value.length;
    if (n > cap) {
      return new ReadableStream<Uint8Array>({
        async pull(c) {
          const next = chunks.shift();
          if (next) return c.enqueue(next);
          const r = await reader.read();
          if (r.done) c.close();
          else c.enqueue(r.value);
        },
        cancel: (why) => reader.cancel(why),
      });
    }
  }
  return concatBytes(chunks, n);
}

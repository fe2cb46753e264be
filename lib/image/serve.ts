/**
 * The replica's image layer (`--images on-the-fly|precompute|both`): in front of the replica's
 * handler, a GET
 * for a `.jpg`, `.jpeg` or `.png` path is served as the ladder rung {@link chooseVariant} picks
 * from `?w=`/`?q=`/`?fmt=`, Client Hints and the client's measured throughput. The original is
 * fetched through the replica's handler with those parameters removed, so the cache keeps one
 * original per image; variants are computed on the fly (one computation per variant key at a
 * time, at most `concurrency` at once, at most `timeoutMs` before the original is served
 * instead) and kept in a small byte-bounded LRU of their own. Responses carry `Accept-CH`,
 * `X-Nearcast-Variant` and the `Vary` of what was used.
 *
 * Modes: `on-the-fly` computes a missing variant for the request; `precompute` never makes a
 * request wait: after the first request for an image it computes the image's whole ladder in the
 * background, one variant at a time, and serves the original (`X-Nearcast-Variant:
 * w=orig;pending`) until the wanted one is ready; `both` does both.
 *
 * Not yet: variants in the replica's own cache and store, precomputing when an object enters the
 * store (here it starts at the first request through this layer).
 *
 * @module
 */
import { concatBytes } from "../common/bytes.ts";
import { ACCEPT_CH, parseClientHints } from "./client_hints.ts";
import { DEFAULT_LADDER, type Ladder, parseImageParams } from "./ladder.ts";
import { transcode } from "./pipeline.ts";
import { type ImageFormat, probeImage } from "./probe.ts";
import { ThroughputEstimator } from "./throughput.ts";
import { chooseVariant, variantKey } from "./variant.ts";

const IMAGE_PATH = /\.(jpe?g|png)$/i;
const IMAGE_TYPE = /^image\/(jpeg|png)\s*(;|$)/i;
const CONDITIONAL = ["range", "if-range", "if-none-match", "if-modified-since", "if-match"];

/** Options of {@link ImageLayer}. */
export interface ImageLayerOptions {
  /** Default on-the-fly. */
  mode?: ImageMode;
  ladder?: Ladder;
  /** Largest original transcoded (bytes); larger ones are passed through. Default 32 MiB. */
  maxSourceBytes?: number;
  /** Largest original transcoded (width × height); larger ones are served as they are. Default 25 M. */
  maxPixels?: number;
  /** Byte budget of the variant LRU. Default 32 MiB. */
  cacheBytes?: number;
  /** Variants computed at once (each holds one full decode). Default 2. */
  concurrency?: number;
  /** Longest wait for a variant before the original is served. Default 5 s. */
  timeoutMs?: number;
  throughput?: ThroughputEstimator;
}

/** How variants are made (see the module doc). */
export type ImageMode = "on-the-fly" | "precompute" | "both";

/** Images whose ladder waits for the background worker, at most. */
const PRECOMPUTE_QUEUE = 16;
/** Images remembered as scheduled (the oldest are forgotten first). */
const SCHEDULED_MAX = 10_000;

/** Counters for tests and metrics. */
export interface ImageStats {
  computed: number;
  /** Variants made by the background worker (also counted in `computed`). */
  precomputed: number;
  /** Requests answered with the original because their variant was not ready (precompute). */
  pending: number;
  cacheHits: number;
  timeouts: number;
  originals: number;
}

type Next = (req: Request) => Response | Promise<Response>;

/** The image layer; {@link handle} wraps the replica's handler. */
export class ImageLayer {
  readonly stats: ImageStats = {
    computed: 0,
    precomputed: 0,
    pending: 0,
    cacheHits: 0,
    timeouts: 0,
    originals: 0,
  };
  readonly throughput: ThroughputEstimator;
  readonly #ladder: Ladder;
  readonly #maxSource: number;
  readonly #maxPixels: number;
  readonly #budget: number;
  readonly #timeout: number;
  readonly #lru = new Map<string, Uint8Array<ArrayBuffer>>();
  #lruBytes = 0;
  readonly #inflight = new Map<string, Promise<Uint8Array<ArrayBuffer>>>();
  #slots: number;
  readonly #waiting: (() => void)[] = [];
  readonly #mode: ImageMode;
  readonly #scheduled = new Set<string>();
  readonly #queue: (() => Promise<void>)[] = [];
  #working = false;

  constructor(o: ImageLayerOptions = {}) {
    this.#mode = o.mode ?? "on-the-fly";
    this.#ladder = o.ladder ?? DEFAULT_LADDER;
    this.#maxSource = o.maxSourceBytes ?? 32 * 1024 * 1024;
    this.#maxPixels = o.maxPixels ?? 25_000_000;
    this.#budget = o.cacheBytes ?? 32 * 1024 * 1024;
    this.#slots = o.concurrency ?? 2;
    this.#timeout = o.timeoutMs ?? 5000;
    this.throughput = o.throughput ?? new ThroughputEstimator();
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
    // The whole original, always: a range or a 304 of the original says nothing about a variant
    // (the layer answers 200 with the full variant; conditionals and ranges are not served yet).
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
    const length = original.length;
    const info = probeImage(original);
    const headers = new Headers(res.headers);
    headers.set("accept-ch", ACCEPT_CH);
    if (!info) return this.#send(req, ip, original, headers);
    if (info.width * info.height > this.#maxPixels) {
      headers.set("x-nearcast-variant", "w=orig;too-large");
      return this.#send(req, ip, original, headers);
    }
    const base = `${url.pathname}${url.search}|${res.headers.get("etag") ?? length}`;
    if (this.#mode !== "on-the-fly") this.#schedule(base, original, info.width, info.format);
    const v = chooseVariant({
      ladder: this.#ladder,
      sourceWidth: info.width,
      sourceFormat: info.format,
      params: parsed.params,
      hints: parseClientHints(req.headers),
      acceptsWebp: /\bimage\/webp\b/i.test(req.headers.get("accept") ?? ""),
      measuredBps: this.throughput.estimate(ip),
    });
    const vary = [headers.get("vary"), ...v.vary].filter((x) => x).join(", ");
    if (vary !== "") headers.set("vary", vary);
    if (v.network) headers.set("cache-control", "private");
    const same = v.width === "original" && v.format === info.format &&
      (v.format === "png" || v.quality === this.#ladder.qualities[0]);
    if (same) {
      headers.set("x-nearcast-variant", v.header);
      this.stats.originals++;
      return this.#send(req, ip, original, headers);
    }
    const key = variantKey(base, v);
    let bytes = this.#get(key);
    if (bytes) this.stats.cacheHits++;
    else if (this.#mode === "precompute") {
      this.stats.pending++;
      headers.set("x-nearcast-variant", "w=orig;pending");
      return this.#send(req, ip, original, headers);
    } else {
      bytes = await this.#compute(key, original, {
        width: v.width === "original" ? undefined : v.width,
        format: v.format,
        quality: v.quality,
        maxPixels: this.#maxPixels,
      });
    }
    if (!bytes) {
      this.stats.timeouts++;
      headers.set("x-nearcast-variant", "w=orig;timeout");
      return this.#send(req, ip, original, headers);
    }
    headers.set("x-nearcast-variant", v.header);
    headers.set("content-type", `image/${v.format}`);
    headers.delete("etag"); // a variant is other bytes than the original's validator names
    headers.delete("content-range");
    return this.#send(req, ip, bytes, headers);
  }

  /** The response, with its drain time recorded for the client's throughput estimate. */
  #send(req: Request, ip: string, body: Uint8Array<ArrayBuffer>, headers: Headers): Response {
    headers.set("content-length", String(body.length));
    if (req.method === "HEAD") return new Response(null, { status: 200, headers });
    const est = this.throughput;
    let start = 0, sent = 0;
    const chunk = 64 * 1024;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (start === 0) start = performance.now();
        if (sent >= body.length) {
          est.record(ip, body.length, performance.now() - start);
          c.close();
          return;
        }
        const end = Math.min(body.length, sent + chunk);
        c.enqueue(body.subarray(sent, end));
        sent = end;
      },
    }, { highWaterMark: 0 });
    return new Response(stream, { status: 200, headers });
  }

  #get(key: string): Uint8Array<ArrayBuffer> | undefined {
    const b = this.#lru.get(key);
    if (b) {
      this.#lru.delete(key);
      this.#lru.set(key, b);
    }
    return b;
  }

  #put(key: string, b: Uint8Array<ArrayBuffer>): void {
    if (b.length > this.#budget) return;
    this.#lru.set(key, b);
    this.#lruBytes += b.length;
    while (this.#lruBytes > this.#budget) {
      const [k, old] = this.#lru.entries().next().value!;
      this.#lru.delete(k);
      this.#lruBytes -= old.length;
    }
  }

  /** The variant's bytes (computed once per key at a time), or undefined after the timeout. */
  async #compute(
    key: string,
    original: Uint8Array,
    opts: Parameters<typeof transcode>[1],
  ): Promise<Uint8Array<ArrayBuffer> | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<undefined>((r) =>
      timer = setTimeout(() => r(undefined), this.#timeout)
    );
    try {
      return await Promise.race([this.#start(key, original, opts), late]);
    } catch {
      return undefined; // a variant that cannot be made: serve the original
    } finally {
      clearTimeout(timer);
    }
  }

  /** The computation of `key`: the one in flight, or a new one (stored in the LRU when done). */
  #start(
    key: string,
    original: Uint8Array,
    opts: Parameters<typeof transcode>[1],
  ): Promise<Uint8Array<ArrayBuffer>> {
    let p = this.#inflight.get(key);
    if (!p) {
      p = this.#run(async () => {
        const out = await transcode(original, opts);
        this.stats.computed++;
        return out.bytes as Uint8Array<ArrayBuffer>;
      });
      this.#inflight.set(key, p);
      p.then((b) => this.#put(key, b), () => {}).finally(() => this.#inflight.delete(key));
    }
    return p;
  }

  /** Queues the whole ladder of an image for the background worker (once per image). */
  #schedule(base: string, original: Uint8Array, width: number, format: ImageFormat): void {
    if (this.#scheduled.has(base) || this.#queue.length >= PRECOMPUTE_QUEUE) return;
    this.#scheduled.add(base);
    if (this.#scheduled.size > SCHEDULED_MAX) {
      this.#scheduled.delete(this.#scheduled.values().next().value!);
    }
    this.#queue.push(async () => {
      const widths: (number | "original")[] = this.#ladder.widths.filter((w) => w < width);
      widths.push("original");
      for (const w of widths) {
        for (const quality of this.#ladder.qualities) {
          const v = chooseVariant({
            ladder: this.#ladder,
            sourceWidth: width,
            sourceFormat: format,
            params: { width: w, quality },
            hints: { used: [] },
          });
          const same = w === "original" &&
            (format === "png" || quality === this.#ladder.qualities[0]);
          const key = variantKey(base, v);
          if (same || this.#lru.has(key)) continue;
          try {
            await this.#start(key, original, {
              width: w === "original" ? undefined : w,
              format,
              quality,
              maxPixels: this.#maxPixels,
            });
            this.stats.precomputed++;
          } catch { /* an image that cannot be transcoded: nothing to keep */ }
          await new Promise((r) => setTimeout(r, 0)); // let requests run between variants
        }
      }
    });
    if (!this.#working) this.#work();
  }

  /** The background worker: one image's ladder at a time, one variant at a time. */
  async #work(): Promise<void> {
    this.#working = true;
    try {
      for (let job = this.#queue.shift(); job; job = this.#queue.shift()) await job();
    } finally {
      this.#working = false;
    }
  }

  /** True while the background worker has work (for tests). */
  get precomputing(): boolean {
    return this.#working;
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

/** The whole body if it has at most `cap` bytes, else a stream replaying what was read, then the rest. */
async function readCapped(
  body: ReadableStream<Uint8Array>,
  cap: number,
): Promise<Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array>> {
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

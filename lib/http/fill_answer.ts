/**
 * Answers from a body being written through to the store (see fill_stream.ts), without
 * waiting for the whole object: a plain GET or HEAD, a single range or several
 * (`multipart/byteranges`), an `If-Range` and `If-None-Match`/`If-Modified-Since` are all
 * evaluated against the response being stored and read from its temporary file as it grows.
 * During a revalidation nothing is answered before the new body's first byte arrives, so a
 * body that fails before it lets the stale copy stand in.
 *
 * @module
 */

import type { CacheEntry, HttpCache } from "./cache.ts";
import { EMPTY_CACHE_CONTROL } from "./cache_control.ts";
import { ifRangeHolds } from "./conditional.ts";
import type { StreamFill } from "./fill_stream.ts";
import { evaluateFreshness } from "./freshness.ts";
import type { Metrics } from "./metrics.ts";
import { BodyError } from "./origin.ts";
import { type ByteRange, contentRange, multipartParts, parseRange } from "./range.ts";
import type { Responder } from "./respond.ts";
import { fileStream, notModified, representationOf } from "./serve_body.ts";

/** A cacheable body being written through to the store, readable while it is written. */
export interface StreamingResult {
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

/** What {@link answerStreaming} needs of the filler. */
export interface StreamAnswerContext {
  cache: HttpCache;
  metrics: Metrics;
  respond: Responder;
  now: () => number;
  /** Fetches `url` again for this request only (the index refused the stored body). */
  refetch: (req: Request, url: string) => Promise<Response>;
  /** The stale copy's answer when it may stand in for a failed fill, else null. */
  staleAnswer: (message: string) => Response | Promise<Response> | null;
}

/**
 * Answers `req` from `r`. `stale`: the entry being revalidated, or null. A request with a
 * `Range` on a body of unknown length (or a HEAD with one) waits for the stored entry. When the
 * index refused the body, the request is fetched again uncached.
 */
export async function answerStreaming(
  c: StreamAnswerContext,
  req: Request,
  url: string,
  r: StreamingResult,
  stale: CacheEntry | null,
): Promise<Response> {
  const failed = (e: unknown) => {
    const message = (e as Error).message;
    const standIn = stale === null ? null : c.staleAnswer(message);
    if (standIn !== null) return standIn;
    const timedOut = e instanceof BodyError && e.timedOut;
    return c.respond.text(timedOut ? 504 : 502, message);
  };
  if (stale !== null) {
    try {
      await r.fill.firstByte();
    } catch (e) {
      return failed(e);
    }
  }
  const rep = representationOf(r.status, r.headers, r.length ?? 0);
  const list = c.respond.relayHeaders(r.headers);
  const nm = notModified(req, rep, list);
  if (nm !== null) return nm;
  const h = req.headers;
  let range = r.status === 200 ? h.get("range") : null;
  if (range !== null && !ifRangeHolds(h.get("if-range"), rep, rep.date)) range = null;
  if (range === null) {
    const body = req.method === "HEAD" ? null : await r.fill.tail();
    if (body !== null || req.method === "HEAD") {
      if (r.length !== null) {
        list.push(["content-length", String(r.length)]);
        if (body !== null) c.metrics.bytesSent += r.length;
      }
      return new Response(body, { status: r.status, headers: list });
    }
  } else if (r.length !== null && req.method === "GET") {
    const size = r.length;
    const parsed = parseRange(range, size);
    if (parsed.kind === "unsatisfiable") {
      const out = list.filter(([n]) => n !== "content-type");
      out.push(["content-range", `bytes */${size}`]);
      return new Response(null, { status: 416, headers: out });
    }
    if (parsed.kind === "ranges") {
      const ranges = parsed.ranges;
      let parts: (Uint8Array | ByteRange)[] = ranges;
      let out = list;
      if (ranges.length === 1) out.push(["content-range", contentRange(ranges[0], size)]);
      else {
        const boundary = `nearcast-${crypto.randomUUID()}`;
        parts = multipartParts(ranges, size, rep.contentType, boundary);
        out = list.filter(([n]) => n !== "content-type");
        out.push(["content-type", `multipart/byteranges; boundary=${boundary}`]);
      }
      let length = 0;
      for (const p of parts) length += p instanceof Uint8Array ? p.byteLength : p.end - p.start + 1;
      out.push(["content-length", String(length)]);
      c.metrics.bytesSent += length;
      return new Response(partsStream(c.cache, r, parts), { status: 206, headers: out });
    }
    // No usable Range (bad syntax, another unit): the whole body, as it grows.
    const body = await r.fill.tail();
    if (body !== null) {
      list.push(["content-length", String(size)]);
      c.metrics.bytesSent += size;
      return new Response(body, { status: r.status, headers: list });
    }
  }
  // Already stored (the temporary file is gone), or a case answered from the stored entry.
  const entry = await r.stored;
  if (entry !== null) {
    const age = evaluateFreshness(entry, EMPTY_CACHE_CONTROL, c.now()).age;
    return c.respond.entry(req, entry, "MISS", age);
  }
  try {
    await r.fill.done;
  } catch (e) {
    return failed(e);
  }
  return c.refetch(req, url);
}

/**
 * A stream of `parts` (literal bytes, or ranges of the body) read from the growing temporary
 * file, or, once the body is stored, from the stored entry. Errors if the body fails.
 */
function partsStream(
  cache: HttpCache,
  r: StreamingResult,
  parts: readonly (Uint8Array | ByteRange)[],
): ReadableStream<Uint8Array> {
  let i = 0;
  let current: ReadableStreamDefaultReader<Uint8Array> | null = null;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        while (true) {
          if (current !== null) {
            const got = await current.read();
            if (!got.done) return controller.enqueue(got.value);
            current = null;
          }
          if (i >= parts.length) return controller.close();
          const p = parts[i++];
          if (p instanceof Uint8Array) return controller.enqueue(p);
          const source = await r.fill.tail(p.start, p.end) ?? await storedRange(cache, r, p);
          current = source.getReader();
        }
      } catch (e) {
        controller.error(e);
      }
    },
    cancel(reason) {
      return current?.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** Range `p` of the body once stored (its temporary file is gone). */
async function storedRange(
  cache: HttpCache,
  r: StreamingResult,
  p: ByteRange,
): Promise<ReadableStream<Uint8Array>> {
  await r.fill.done;
  const entry = await r.stored;
  const body = entry === null ? null : await cache.open(entry);
  if (body === null) throw new Error(`stored body of ${r.key} lost`);
  if (body instanceof Uint8Array) {
    const bytes = body.subarray(p.start, p.end + 1);
    return new ReadableStream({
      start(controller) {
        controller.enqueue(bytes);
        controller.close();
      },
    });
  }
  return fileStream(body, [p]);
}

/**
 * Sends an image body the layer chose (a variant or the original) with the validators of that
 * body: `If-None-Match` / `If-Modified-Since` → 304, one `Range` (with `If-Range`) → 206, a
 * range past the end → 416, several → 206 `multipart/byteranges`. The drain time of each body sent is reported for the client's
 * throughput estimate.
 *
 * @module
 */
import { ifRangeHolds, isNotModified } from "../http/conditional.ts";
import { buildMultipart, contentRange, parseRange } from "../http/range.ts";
import type { Bytes } from "./variant_store.ts";

/** Bytes handed to the connection per chunk (the drain time is from the first to the last). */
const CHUNK = 64 * 1024;

/** The response for `req` with `body` and `headers` (which it completes). */
export function sendImage(
  req: Request,
  body: Bytes,
  headers: Headers,
  drained: (bytes: number, ms: number) => void,
): Response {
  headers.set("accept-ranges", "bytes");
  const v = { etag: headers.get("etag"), lastModified: headers.get("last-modified") };
  const h = req.headers;
  if (isNotModified(h.get("if-none-match"), h.get("if-modified-since"), v)) {
    headers.delete("content-length");
    return new Response(null, { status: 304, headers });
  }
  let part = body;
  let status = 200;
  if (h.has("range") && ifRangeHolds(h.get("if-range"), v, headers.get("date"))) {
    const r = parseRange(h.get("range"), body.length);
    if (r.kind === "unsatisfiable") {
      headers.set("content-range", `bytes */${body.length}`);
      headers.delete("content-type");
      headers.set("content-length", "0");
      return new Response(null, { status: 416, headers });
    }
    if (r.kind === "ranges" && r.ranges.length === 1) {
      const { start, end } = r.ranges[0];
      part = body.subarray(start, end + 1);
      status = 206;
      headers.set("content-range", contentRange(r.ranges[0], body.length));
    } else if (r.kind === "ranges") {
      const boundary = crypto.randomUUID().replaceAll("-", "");
      part = buildMultipart(body, r.ranges, headers.get("content-type"), boundary);
      status = 206;
      headers.set("content-type", `multipart/byteranges; boundary=${boundary}`);
    }
  }
  headers.set("content-length", String(part.length));
  if (req.method === "HEAD") return new Response(null, { status, headers });
  let start = 0, sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (start === 0) start = performance.now();
      if (sent >= part.length) {
        drained(part.length, performance.now() - start);
        c.close();
        return;
      }
      const end = Math.min(part.length, sent + CHUNK);
      c.enqueue(part.subarray(sent, end));
      sent = end;
    },
  }, { highWaterMark: 0 });
  return new Response(stream, { status, headers });
}

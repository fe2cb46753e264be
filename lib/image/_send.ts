/**
 * Sends an image body the layer chose (a variant or the original) with the validators of that
 * body, in RFC 9110 §13.2.2's order: `If-Match` / `If-Unmodified-Since` → 412,
 * `If-None-Match` / `If-Modified-Since` → 304, one `Range` (with `If-Range`) → 206, a
 * range past the end → 416, several → 206 `multipart/byteranges`.
 *
 * The body goes out in 16 KiB chunks, each pulled when the connection takes more, and the
 * client's throughput is measured from the steady part of the transfer only: the first chunks
 * are absorbed at once by the socket's send buffer and the link's queue, so the measurement
 * starts at the first pull that waited (more than {@link STALL_MS} after the one before) and
 * ends at the last; a response that never waited says nothing about the link (it fitted in the
 * buffers) and is not reported. Time the replica's own event loop was held (another request's
 * work, a collection, the transcode workers taking the CPU on a small machine) was the CPU's, not
 * the link's: while a measured send runs, a {@link TICK_MS} timer sums how late it fires, and
 * that lateness is taken off the measured time. With Linux's default send buffer autotuning a
 * slow client's buffer can hold a whole image; `net.ipv4.tcp_notsent_lowat` (e.g. 16384) keeps
 * the unsent part small, see docs/experiments/images.md.
 *
 * @module
 */
import { ifRangeHolds, isNotModified, preconditionFails } from "../http/conditional.ts";
import { buildMultipart, contentRange, parseRange } from "../http/range.ts";
import type { Bytes } from "./variant_store.ts";

/** Bytes handed to the connection per chunk. */
const CHUNK = 16 * 1024;
/** A pull this long after the previous one means the connection was full (ms). */
export const STALL_MS = 2;
/** Period of the event-loop lateness timer while measured sends run (ms). */
export const TICK_MS = 5;

/** Event-loop lateness summed while at least one measured send runs (ms). */
let held = 0;
let sends = 0;
let tick: ReturnType<typeof setInterval> | undefined;
let lastTick = 0;

/** Counts a measured send in; the first starts the lateness timer. */
function monitorIn(): void {
  if (sends++ > 0) return;
  lastTick = performance.now();
  tick = setInterval(() => {
    const now = performance.now();
    const late = now - lastTick - TICK_MS;
    if (late > 1) held += late;
    lastTick = now;
  }, TICK_MS);
  Deno.unrefTimer(tick as unknown as number);
}

/** Counts a measured send out; the last stops the timer. */
function monitorOut(): void {
  if (--sends > 0) return;
  clearInterval(tick);
  tick = undefined;
}

/** Measured sends running (the timer runs while this is above 0), for tests. */
export function activeSends(): number {
  return sends;
}

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
  if (preconditionFails(h.get("if-match"), h.get("if-unmodified-since"), v)) {
    const why = h.has("if-match")
      ? `If-Match does not match ${v.etag ?? "(no strong ETag)"}`
      : `modified since ${h.get("if-unmodified-since")}: ${v.lastModified}`;
    headers.set("content-type", "text/plain; charset=utf-8");
    headers.delete("content-range");
    const text = new TextEncoder().encode(`412 Precondition Failed: ${why}\n`);
    headers.set("content-length", String(text.length));
    return new Response(req.method === "HEAD" ? null : text, { status: 412, headers });
  }
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
  let sent = 0, last = 0, steadyAt = 0, steadyBytes = -1, heldAt = 0, open = false;
  const finish = () => {
    if (open) monitorOut();
    open = false;
  };
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (!open && sent === 0) {
        monitorIn();
        open = true;
      }
      const now = performance.now();
      if (steadyBytes < 0 && last > 0 && now - last > STALL_MS) {
        steadyAt = now;
        steadyBytes = sent;
        heldAt = held;
      }
      last = now;
      if (sent >= part.length) {
        if (steadyBytes >= 0) drained(sent - steadyBytes, now - steadyAt - (held - heldAt));
        finish();
        c.close();
        return;
      }
      const end = Math.min(part.length, sent + CHUNK);
      c.enqueue(part.subarray(sent, end));
      sent = end;
    },
    cancel() {
      finish();
    },
  }, { highWaterMark: 0 });
  return new Response(stream, { status, headers });
}

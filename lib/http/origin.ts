/**
 * Fetching from the origin (or a peer) for the replica: request header rewriting, timeouts,
 * and reading a body completely or up to a limit, detecting a body cut short.
 *
 * @module
 */

import type { Bytes } from "./cache.ts";
import { appendVia, endToEnd } from "./headers.ts";

/** Request headers never forwarded on a pass-through (non-GET) request. */
export const FORWARD_DROPPED: ReadonlySet<string> = new Set([
  "host",
  "accept-encoding",
  "x-nearcast-peer",
]);

/** Response headers of an upstream not kept: a peer's cache status is not ours. */
const UPSTREAM_DROPPED: ReadonlySet<string> = new Set(["x-cache"]);

/** Encodings Deno's `fetch` decodes on its own (it keeps the header, so we drop it). */
const DECODED_BY_FETCH: ReadonlySet<string> = new Set(["gzip", "x-gzip", "br"]);

/**
 * Request headers for the origin: end-to-end ones minus `drop`, with our `Via`, and
 * `Accept-Encoding: identity` (Deno's `fetch` would otherwise ask for and silently decode
 * compressed bodies while keeping their `Content-Encoding`).
 */
export function originRequestHeaders(
  req: Headers,
  drop: ReadonlySet<string>,
  via: string,
): Headers {
  const out = new Headers();
  for (const [n, v] of endToEnd(req, drop)) if (n !== "via") out.append(n, v);
  out.set("via", appendVia(req.get("via"), via));
  out.set("accept-encoding", "identity");
  return out;
}

/**
 * End-to-end headers of an origin response. When `fetch` decoded the body itself, the
 * `Content-Encoding` and `Content-Length` no longer describe it and are dropped.
 */
export function originResponseHeaders(res: Response): [string, string][] {
  const list = endToEnd(res.headers, UPSTREAM_DROPPED);
  const ce = res.headers.get("content-encoding");
  if (ce === null || !DECODED_BY_FETCH.has(ce.trim().toLowerCase())) return list;
  return list.filter(([n]) => n !== "content-encoding" && n !== "content-length");
}

/** Why a body could not be read completely. */
export class BodyError extends Error {
  constructor(message: string, readonly timedOut = false) {
    super(message);
    this.name = "BodyError";
  }
}

/** The outcome of {@link readBodyUpTo}. */
export type BodyRead =
  | { kind: "complete"; body: Bytes }
  /** Larger than the limit: what was read so far, and the rest still unread. */
  | { kind: "too-large"; head: Uint8Array[]; rest: ReadableStreamDefaultReader<Uint8Array> };

/**
 * Reads a body completely unless it exceeds `limit` bytes. Throws {@link BodyError} when the
 * stream fails or ends short of `expectedLength` (the origin closed mid-body).
 */
export async function readBodyUpTo(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
  expectedLength: number | null,
  signal: AbortSignal,
): Promise<BodyRead> {
  if (body === null) return { kind: "complete", body: new Uint8Array(0) };
  if (expectedLength !== null && expectedLength <= limit) {
    // Known length within the limit: read it in one go. For a fetch body Deno then reads
    // straight into one buffer of the body's size, instead of a 64 KiB buffer per read.
    let bytes: ArrayBuffer;
    try {
      bytes = await new Response(body).arrayBuffer();
    } catch (e) {
      throw new BodyError(
        signal.aborted
          ? "origin timed out while sending the body"
          : `origin body failed: ${(e as Error).message}`,
        signal.aborted,
      );
    }
    if (bytes.byteLength !== expectedLength) {
      throw new BodyError(
        `origin closed the connection after ${bytes.byteLength} of ${expectedLength} body bytes`,
      );
    }
    return { kind: "complete", body: new Uint8Array(bytes) };
  }
  const reader = body.getReader();
  const chunks: Bytes[] = [];
  let total = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value as Bytes);
      total += value.byteLength;
      if (total > limit) return { kind: "too-large", head: chunks, rest: reader };
    }
  } catch (e) {
    reader.releaseLock();
    throw new BodyError(
      signal.aborted
        ? "origin timed out while sending the body"
        : `origin body failed after ${total} bytes: ${(e as Error).message}`,
      signal.aborted,
    );
  }
  if (expectedLength !== null && total !== expectedLength) {
    throw new BodyError(
      `origin closed the connection after ${total} of ${expectedLength} body bytes`,
    );
  }
  if (chunks.length === 1) {
    // fetch hands out views on 64 KiB read buffers: a small body kept as such a view would
    // pin the whole buffer for as long as it is cached. Copy it unless it spans its buffer.
    const c = chunks[0];
    const whole = c.byteOffset === 0 && c.byteLength === c.buffer.byteLength;
    return { kind: "complete", body: whole ? c : c.slice() };
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return { kind: "complete", body: out };
}

/** A stream of `head` then the rest of `rest`; cancelling it cancels the origin read. */
export function concatStream(
  head: Uint8Array[],
  rest: ReadableStreamDefaultReader<Uint8Array>,
  onDone?: () => void,
): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (i < head.length) {
        controller.enqueue(head[i++]);
        return;
      }
      try {
        const { done, value } = await rest.read();
        if (done) {
          onDone?.();
          controller.close();
        } else controller.enqueue(value);
      } catch (e) {
        onDone?.();
        controller.error(e);
      }
    },
    cancel(reason) {
      onDone?.();
      return rest.cancel(reason);
    },
  });
}

/** Content-Length as a number, or null when absent or malformed. */
export function contentLength(headers: Headers): number | null {
  const v = headers.get("content-length");
  if (v === null || !/^[0-9]{1,15}$/.test(v.trim())) return null;
  return Number(v.trim());
}

/**
 * Passes `body` through, erroring it (and cancelling the upstream) when no chunk arrives for
 * `idleMs`: a streamed response from a stalled origin ends instead of hanging forever.
 */
export function withIdleTimeout(
  body: ReadableStream<Uint8Array>,
  idleMs: number,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const idle = new Promise<"idle">((resolve) => {
        timer = setTimeout(() => resolve("idle"), idleMs);
      });
      try {
        const r = await Promise.race([reader.read(), idle]);
        if (r === "idle") {
          reader.cancel(new Error("origin idle")).catch(() => {});
          controller.error(new BodyError(`origin sent nothing for ${idleMs} ms`, true));
        } else if (r.done) controller.close();
        else controller.enqueue(r.value);
      } catch (e) {
        controller.error(e);
      } finally {
        clearTimeout(timer);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

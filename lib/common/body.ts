/**
 * One bounded reader for request (and response) bodies, shared by every process: it refuses a
 * declared `Content-Length` over the cap before reading a byte, counts while it reads chunked
 * bodies, and cancels the stream as soon as the count passes the cap. Check authorization
 * before calling it: an unauthenticated body is never read.
 *
 * @example
 * ```ts
 * import { BodyTooLarge, readBodyText } from "./body.ts";
 * const req = new Request("http://x/", { method: "PUT", body: "x".repeat(100) });
 * try {
 *   await readBodyText(req, 10);
 * } catch (e) {
 *   console.assert(e instanceof BodyTooLarge && e.limit === 10);
 * }
 * ```
 *
 * @module
 */

import { concatBytes } from "./bytes.ts";

/** Thrown when a body is larger than its cap; {@link tooLargeResponse} answers 413 for it. */
export class BodyTooLarge extends RangeError {
  /** The cap in bytes. */
  readonly limit: number;
  constructor(limit: number, what = "body") {
    super(`${what} larger than ${limit} bytes`);
    this.name = "BodyTooLarge";
    this.limit = limit;
  }
}

/** Where a body comes from: a request or response, or a bare stream (or none). */
export type BodySource = Request | Response | ReadableStream<Uint8Array> | null;

function streamOf(src: BodySource): ReadableStream<Uint8Array> | null {
  if (src === null) return null;
  if (src instanceof ReadableStream) return src;
  return src.body;
}

/**
 * Reads a whole body into memory, at most `limit` bytes. Throws {@link BodyTooLarge} when the
 * declared `Content-Length` or the bytes read exceed `limit` (the stream is cancelled then).
 */
export async function readBodyBytes(
  src: BodySource,
  limit: number,
  what = "body",
): Promise<Uint8Array> {
  if (!(limit >= 0)) {
    throw new RangeError(`Cannot read body: limit must be >= 0: received ${limit}`);
  }
  if (src instanceof Request || src instanceof Response) {
    const declared = src.headers.get("content-length");
    if (declared !== null && Number(declared) > limit) {
      await src.body?.cancel().catch(() => {});
      throw new BodyTooLarge(limit, what);
    }
  }
  const stream = streamOf(src);
  if (stream === null) return new Uint8Array(0);
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > limit) {
        await reader.cancel().catch(() => {});
        throw new BodyTooLarge(limit, what);
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  if (chunks.length === 1) return chunks[0];
  return concatBytes(chunks, total);
}

/** {@link readBodyBytes}, decoded as UTF-8 (invalid sequences become U+FFFD). */
export async function readBodyText(src: BodySource, limit: number, what = "body"): Promise<string> {
  return new TextDecoder().decode(await readBodyBytes(src, limit, what));
}

/**
 * {@link readBodyText}, parsed as JSON. Throws `SyntaxError` (message names `what`) when it is
 * not JSON.
 */
export async function readBodyJson(
  src: BodySource,
  limit: number,
  what = "body",
): Promise<unknown> {
  const text = await readBodyText(src, limit, what);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`${what} is not JSON: ${(e as Error).message}`);
  }
}

/** A plain-text 413 for a {@link BodyTooLarge}; the connection is not kept (body unread). */
export function tooLargeResponse(e: BodyTooLarge): Response {
  return new Response(`413: ${e.message}\n`, {
    status: 413,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "cache-control": "no-store",
      connection: "close",
    },
  });
}

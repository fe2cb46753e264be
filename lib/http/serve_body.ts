/**
 * Serving a stored body, held in memory or read from a file at offsets, with conditional
 * requests (304), byte ranges (206, `multipart/byteranges`, 416) and HEAD. Shared by cached
 * entries and uploads, so both answer the same way. A file body is never read into memory
 * whole: ranges seek to their offsets and every body is streamed in pieces.
 *
 * @module
 */

import type { ObjectStore } from "../store/types.ts";
import { ifRangeHolds, isNotModified } from "./conditional.ts";
import { type ByteRange, contentRange, multipartParts, parseRange } from "./range.ts";

/** Bytes read from a file per stream chunk. */
export const FILE_READ_PIECE = 64 * 1024;

/** Headers a 304 sent to a client carries (RFC 9110 §15.4.5), plus our own two. */
const NOT_MODIFIED_HEADERS: ReadonlySet<string> = new Set([
  "cache-control",
  "content-location",
  "date",
  "etag",
  "expires",
  "vary",
  "last-modified",
  "via",
  "age",
  "x-cache",
]);

/** What serving needs to know of a stored response besides its body. */
export interface Representation {
  status: number;
  /** Body length in bytes. */
  size: number;
  etag: string | null;
  lastModified: string | null;
  date: string | null;
  contentType: string | null;
  /** When it was received (ms), if known: `If-Modified-Since` without `Last-Modified`/`Date`. */
  responseTime?: number;
}

/** A body to serve: bytes in memory, or an open file positioned anywhere (closed when done). */
export type StoredBody = Uint8Array<ArrayBuffer> | Deno.FsFile;

/**
 * The 304 answer to a conditional GET/HEAD when the validators match (RFC 9110 §13.2.2), else
 * null. `headers` are the full response's headers.
 */
export function notModified(
  req: Request,
  rep: Representation,
  headers: readonly [string, string][],
): Response | null {
  const inm = req.headers.get("if-none-match");
  const ims = req.headers.get("if-modified-since");
  if (inm === null && ims === null) return null;
  if (rep.status !== 200 || !isNotModified(inm, ims, rep)) return null;
  return new Response(null, {
    status: 304,
    headers: headers.filter(([n]) => NOT_MODIFIED_HEADERS.has(n)),
  });
}

/**
 * Answers `req` with `body`: 304 when its conditionals match, the requested ranges of a 200
 * (206, or 416 when none overlaps; `If-Range` honoured), else the whole body. `headers` are
 * the response headers without `Content-Length`. A file body is closed once sent, cancelled,
 * or not needed. `onSent` is told the body bytes the answer carries.
 */
export function serveBody(
  req: Request,
  rep: Representation,
  headers: [string, string][],
  body: StoredBody,
  onSent?: (bytes: number) => void,
): Response {
  const isFile = !(body instanceof Uint8Array);
  const size = isFile ? rep.size : body.byteLength;
  const done = (res: Response, sent: number, parts: Part[] | null): Response => {
    onSent?.(sent);
    if (isFile && (parts === null || req.method === "HEAD")) body.close();
    return res;
  };
  const nm = notModified(req, rep, headers);
  if (nm !== null) return done(nm, 0, null);
  const range = rep.status === 200 ? req.headers.get("range") : null;
  const r = range === null || !ifRangeHolds(req.headers.get("if-range"), rep, rep.date)
    ? null
    : parseRange(range, size);
  if (r === null || r.kind === "none") {
    const noBody = rep.status === 204 || rep.status === 304;
    if (!isFile) {
      return done(
        new Response(noBody ? null : body, { status: rep.status, headers }),
        noBody ? 0 : size,
        null,
      );
    }
    const list = headers.slice();
    if (!noBody) list.push(["content-length", String(size)]);
    const parts = noBody ? null : [{ start: 0, end: size - 1 }];
    const stream = parts === null || req.method === "HEAD" ? null : fileStream(body, parts);
    return done(new Response(stream, { status: rep.status, headers: list }), size, parts);
  }
  if (r.kind === "unsatisfiable") {
    const list = headers.filter(([n]) => n !== "content-type");
    list.push(["content-range", `bytes */${size}`]);
    return done(new Response(null, { status: 416, headers: list }), 0, null);
  }
  let parts: Part[];
  let list: [string, string][];
  if (r.ranges.length === 1) {
    parts = r.ranges;
    list = headers.slice();
    list.push(["content-range", contentRange(r.ranges[0], size)]);
  } else {
    const boundary = `nearcast-${crypto.randomUUID()}`;
    parts = multipartParts(r.ranges, size, rep.contentType, boundary);
    list = headers.filter(([n]) => n !== "content-type");
    list.push(["content-type", `multipart/byteranges; boundary=${boundary}`]);
  }
  const length = partsLength(parts);
  list.push(["content-length", String(length)]);
  let stream: ReadableStream<Uint8Array> | Uint8Array<ArrayBuffer> | null = null;
  if (req.method !== "HEAD") stream = isFile ? fileStream(body, parts) : gather(body, parts);
  return done(new Response(stream, { status: 206, headers: list }), length, parts);
}

/** The {@link Representation} of a response with these (lower-case) headers. */
export function representationOf(
  status: number,
  headers: readonly [string, string][],
  size: number,
): Representation {
  const get = (name: string) => headers.find(([n]) => n === name)?.[1] ?? null;
  return {
    status,
    size,
    etag: get("etag"),
    lastModified: get("last-modified"),
    date: get("date"),
    contentType: get("content-type"),
  };
}

/**
 * Answers `req` with the body stored under `key` (see {@link serveBody}); a 304 needs no
 * read. Null when the store has no body of `rep.size` bytes for the key (absent or corrupt).
 */
export async function serveFromStore(
  req: Request,
  store: ObjectStore,
  key: string,
  rep: Representation,
  headers: [string, string][],
): Promise<Response | null> {
  const nm = notModified(req, rep, headers);
  if (nm !== null) return nm;
  const got = await store.open(key);
  if (got === null || got.entry.size !== rep.size) {
    got?.file?.close();
    return null;
  }
  return serveBody(req, rep, headers, got.file ?? got.bytes as Uint8Array<ArrayBuffer>);
}

/** A piece of a response body: literal bytes, or an inclusive byte range of the body. */
type Part = Uint8Array | ByteRange;

function partsLength(parts: readonly Part[]): number {
  let n = 0;
  for (const p of parts) n += p instanceof Uint8Array ? p.byteLength : p.end - p.start + 1;
  return n;
}

/** The parts of an in-memory body, as one buffer (bounded by the body's own size). */
function gather(body: Uint8Array, parts: readonly Part[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(partsLength(parts));
  let at = 0;
  for (const p of parts) {
    const bytes = p instanceof Uint8Array ? p : body.subarray(p.start, p.end + 1);
    out.set(bytes, at);
    at += bytes.byteLength;
  }
  return out;
}

/**
 * A stream of `parts`, reading ranges from `file` in {@link FILE_READ_PIECE} pieces; the file
 * is closed at the end, on error and on cancel. A file shorter than a range errors the stream.
 */
export function fileStream(file: Deno.FsFile, parts: readonly Part[]): ReadableStream<Uint8Array> {
  let i = 0;
  let pos = -1;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      file.close();
    } catch { /* already closed */ }
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        while (i < parts.length) {
          const p = parts[i];
          if (p instanceof Uint8Array) {
            i++;
            controller.enqueue(p);
            return;
          }
          if (pos < 0) {
            pos = p.start;
            await file.seek(pos, Deno.SeekMode.Start);
          }
          if (pos > p.end) {
            i++;
            pos = -1;
            continue;
          }
          const buf = new Uint8Array(Math.min(FILE_READ_PIECE, p.end + 1 - pos));
          const got = await file.read(buf);
          if (got === null || got === 0) {
            throw new Error(`stored body file ended at byte ${pos}, before ${p.end + 1}`);
          }
          pos += got;
          controller.enqueue(got === buf.byteLength ? buf : buf.subarray(0, got));
          return;
        }
        close();
        controller.close();
      } catch (e) {
        close();
        controller.error(e);
      }
    },
    cancel() {
      close();
    },
  }, { highWaterMark: 0 });
}

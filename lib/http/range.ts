/**
 * Byte ranges (RFC 9110 §14): parsing a `Range` header against a full body and building
 * single-part and `multipart/byteranges` bodies.
 *
 * @module
 */

import { concatBytes } from "../common/bytes.ts";

/**
 * Most ranges honoured in one request. Beyond this the header is ignored and the full body
 * served, which RFC 9110 §14.2 allows; it bounds the work a hostile header can cause.
 */
export const MAX_RANGES = 64;
/** Longest `Range` header parsed; longer ones are ignored like a bad syntax (§14.2). */
export const MAX_RANGE_HEADER_LENGTH = 4096;

/** An inclusive byte range. */
export interface ByteRange {
  start: number;
  end: number;
}

/** The outcome of {@link parseRange}. */
export type RangeResult =
  /** No usable `Range` header (absent, another unit, bad syntax, too many ranges): serve 200. */
  | { kind: "none" }
  /** No range overlaps the body: 416 with `Content-Range: bytes * /size`. */
  | { kind: "unsatisfiable" }
  /** Satisfiable ranges, in request order. */
  | { kind: "ranges"; ranges: ByteRange[] };

const NONE: RangeResult = Object.freeze({ kind: "none" });
const UNSATISFIABLE: RangeResult = Object.freeze({ kind: "unsatisfiable" });
const SPEC = /^\s*(?:([0-9]+)\s*-\s*([0-9]*)|-\s*([0-9]+))\s*$/;

/**
 * Parses a `Range` header for a body of `size` bytes.
 *
 * @example
 * ```ts
 * import { parseRange } from "./range.ts";
 * const r = parseRange("bytes=0-9,-5", 100);
 * if (r.kind !== "ranges" || r.ranges[1].start !== 95) throw new Error("unexpected");
 * ```
 */
export function parseRange(header: string | null, size: number): RangeResult {
  if (header === null || header.length > MAX_RANGE_HEADER_LENGTH) return NONE;
  const eq = header.indexOf("=");
  if (eq < 0 || header.slice(0, eq).trim().toLowerCase() !== "bytes") return NONE;
  const specs = header.slice(eq + 1).split(",");
  if (specs.length > MAX_RANGES) return NONE;
  const ranges: ByteRange[] = [];
  let seen = 0;
  for (const spec of specs) {
    if (spec.trim() === "") continue; // RFC 9110 §5.6.1: empty list elements are ignored
    const m = SPEC.exec(spec);
    if (m === null) return NONE;
    seen++;
    if (m[3] !== undefined) {
      const suffix = Number(m[3]);
      if (suffix === 0 || size === 0) continue;
      ranges.push({ start: Math.max(0, size - suffix), end: size - 1 });
      continue;
    }
    const start = Number(m[1]);
    const last = m[2] === "" ? Infinity : Number(m[2]);
    if (last < start) return NONE; // invalid range-spec: the whole header is ignored
    if (start >= size) continue;
    ranges.push({ start, end: Math.min(last, size - 1) });
  }
  if (seen === 0) return NONE;
  return ranges.length === 0 ? UNSATISFIABLE : { kind: "ranges", ranges };
}

/** `Content-Range` value for one range. */
export function contentRange(r: ByteRange, size: number): string {
  return `bytes ${r.start}-${r.end}/${size}`;
}

/**
 * The pieces of a `multipart/byteranges` body (RFC 9110 §14.6) for `ranges` of a body of
 * `size` bytes: encoded part headers and delimiters as bytes, each range as itself, in order.
 * `contentType` is the full body's type, or null.
 */
export function multipartParts(
  ranges: readonly ByteRange[],
  size: number,
  contentType: string | null,
  boundary: string,
): (Uint8Array | ByteRange)[] {
  const enc = new TextEncoder();
  const parts: (Uint8Array | ByteRange)[] = [];
  for (const r of ranges) {
    let head = `--${boundary}\r\n`;
    if (contentType !== null) head += `Content-Type: ${contentType}\r\n`;
    head += `Content-Range: ${contentRange(r, size)}\r\n\r\n`;
    parts.push(enc.encode(head), r, enc.encode("\r\n"));
  }
  parts.push(enc.encode(`--${boundary}--\r\n`));
  return parts;
}

/**
 * Builds a `multipart/byteranges` body (RFC 9110 §14.6) for `ranges` of `body`.
 * `contentType` is the full body's type, or null.
 */
export function buildMultipart(
  body: Uint8Array,
  ranges: readonly ByteRange[],
  contentType: string | null,
  boundary: string,
): Uint8Array<ArrayBuffer> {
  const parts = multipartParts(ranges, body.byteLength, contentType, boundary)
    .map((p) => p instanceof Uint8Array ? p : body.subarray(p.start, p.end + 1));
  return concatBytes(parts);
}

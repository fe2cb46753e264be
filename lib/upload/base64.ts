/**
 * Base64 (RFC 4648, standard alphabet, padded) between byte buffers, without building JS
 * strings: the wire format (`wire.ts`) encodes each chunk straight into its line's bytes and
 * decodes a chunk line in place. A 1 MiB chunk through `btoa`/`Buffer#toString` costs a
 * 1.4 MB string (plus its JSON line) on the V8 heap per chunk and per hop, which V8 collects
 * late; byte buffers do not.
 *
 * Decoding is strict like the wire format always was: the length is a multiple of 4, every
 * character is in the alphabet, `=` only as the last one or two characters. Like `atob` and
 * `Buffer.from(s, "base64")`, unused low bits of the last character are ignored.
 *
 * @example
 * ```ts
 * import { decodeBase64, encodeBase64 } from "./base64.ts";
 * const b64 = encodeBase64(new TextEncoder().encode("hi")); // bytes of "aGk="
 * console.log(new TextDecoder().decode(decodeBase64(b64)!)); // "hi"
 * ```
 *
 * @module
 */

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const PAD = 0x3d; // "="
/** Byte value → 6-bit value, or 255 when not in the alphabet. */
const DECODE = new Uint8Array(256).fill(255);
/** 6-bit value → character code. */
const ENCODE = new Uint8Array(64);
for (let i = 0; i < 64; i++) {
  ENCODE[i] = ALPHABET.charCodeAt(i);
  DECODE[ALPHABET.charCodeAt(i)] = i;
}

/** Length of the base64 text of `n` bytes (padded). */
export function base64EncodedLength(n: number): number {
  return Math.ceil(n / 3) * 4;
}

/**
 * Writes the base64 text of `src` into `dst` at `at`; returns the number of bytes written
 * ({@link base64EncodedLength}). `dst` must have room (a RangeError otherwise).
 */
export function encodeBase64Into(src: Uint8Array, dst: Uint8Array, at = 0): number {
  const n = src.length;
  const len = base64EncodedLength(n);
  if (at < 0 || at + len > dst.length) {
    throw new RangeError(`Cannot encode base64: ${len} bytes do not fit at ${at} of ${dst.length}`);
  }
  const e = ENCODE;
  let o = at;
  let i = 0;
  const whole = n - (n % 3);
  for (; i < whole; i += 3) {
    const v = (src[i] << 16) | (src[i + 1] << 8) | src[i + 2];
    dst[o] = e[v >>> 18];
    dst[o + 1] = e[(v >>> 12) & 63];
    dst[o + 2] = e[(v >>> 6) & 63];
    dst[o + 3] = e[v & 63];
    o += 4;
  }
  if (n - i === 1) {
    const v = src[i] << 16;
    dst[o] = e[v >>> 18];
    dst[o + 1] = e[(v >>> 12) & 63];
    dst[o + 2] = PAD;
    dst[o + 3] = PAD;
    o += 4;
  } else if (n - i === 2) {
    const v = (src[i] << 16) | (src[i + 1] << 8);
    dst[o] = e[v >>> 18];
    dst[o + 1] = e[(v >>> 12) & 63];
    dst[o + 2] = e[(v >>> 6) & 63];
    dst[o + 3] = PAD;
    o += 4;
  }
  return o - at;
}

/** The base64 text of `src`, as ASCII bytes. */
export function encodeBase64(src: Uint8Array): Uint8Array {
  const out = new Uint8Array(base64EncodedLength(src.length));
  encodeBase64Into(src, out, 0);
  return out;
}

/**
 * Number of bytes the base64 text `src[start..end)` decodes to, or -1 when it is not valid
 * (length not a multiple of 4, a character outside the alphabet, `=` other than as the last
 * one or two characters). Reads every character: a full validation pass.
 */
export function base64DecodedLength(src: Uint8Array, start = 0, end = src.length): number {
  const len = end - start;
  if (len < 0 || len % 4 !== 0) return -1;
  if (len === 0) return 0;
  let pad = 0;
  if (src[end - 1] === PAD) pad = src[end - 2] === PAD ? 2 : 1;
  const d = DECODE;
  const stop = end - pad;
  for (let i = start; i < stop; i++) {
    if (d[src[i]] === 255) return -1;
  }
  return (len / 4) * 3 - pad;
}

/**
 * Decodes the base64 text `src[start..end)` into `dst` at `at`; returns the number of bytes
 * written, or -1 when the text is not valid (see {@link base64DecodedLength}; nothing is
 * written then). `dst` may be `src` with `at <= start`: decoding in place is safe, the
 * output never overtakes the input.
 */
export function decodeBase64Into(
  src: Uint8Array,
  start: number,
  end: number,
  dst: Uint8Array,
  at = 0,
): number {
  const n = base64DecodedLength(src, start, end);
  if (n < 0) return -1;
  if (at < 0 || at + n > dst.length) {
    throw new RangeError(`Cannot decode base64: ${n} bytes do not fit at ${at} of ${dst.length}`);
  }
  if (n === 0) return 0;
  const d = DECODE;
  const pad = (end - start) / 4 * 3 - n;
  const lastQuad = end - 4;
  let o = at;
  let i = start;
  for (; i < lastQuad; i += 4) {
    const v = (d[src[i]] << 18) | (d[src[i + 1]] << 12) | (d[src[i + 2]] << 6) | d[src[i + 3]];
    dst[o] = v >>> 16;
    dst[o + 1] = (v >>> 8) & 255;
    dst[o + 2] = v & 255;
    o += 3;
  }
  // The last quad, with its padding.
  const a = d[src[i]], b = d[src[i + 1]];
  const c = pad === 2 ? 0 : d[src[i + 2]];
  const e = pad >= 1 ? 0 : d[src[i + 3]];
  const v = (a << 18) | (b << 12) | (c << 6) | e;
  dst[o++] = v >>> 16;
  if (pad < 2) dst[o++] = (v >>> 8) & 255;
  if (pad < 1) dst[o++] = v & 255;
  return o - at;
}

/** Decodes base64 text (ASCII bytes); null when it is not valid. */
export function decodeBase64(src: Uint8Array): Uint8Array | null {
  const n = base64DecodedLength(src);
  if (n < 0) return null;
  const out = new Uint8Array(n);
  decodeBase64Into(src, 0, src.length, out, 0);
  return out;
}

/**
 * Command-line units: byte sizes (`64MiB`, `500KB`, `1048576`) and durations (`10s`, `500ms`).
 *
 * @module
 */

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
};

const DURATION_UNITS: Record<string, number> = {
  "": 1,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Parses a byte size; throws SyntaxError on a malformed value, RangeError when too large. */
export function parseSize(text: string): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m === null ? undefined : SIZE_UNITS[m[2].toLowerCase()];
  if (m === null || unit === undefined) {
    throw new SyntaxError(`not a size (e.g. 64MiB, 500KB, 1048576): received ${text}`);
  }
  const n = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(n)) throw new RangeError(`size too large: received ${text}`);
  return n;
}

/** Parses a duration in ms (bare numbers are ms); throws SyntaxError or RangeError. */
export function parseDuration(text: string): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m === null ? undefined : DURATION_UNITS[m[2].toLowerCase()];
  if (m === null || unit === undefined) {
    throw new SyntaxError(`not a duration (e.g. 10s, 500ms, 1m, 2h, 1d): received ${text}`);
  }
  const ms = Math.round(Number(m[1]) * unit);
  if (!(ms > 0) || ms > 2 ** 31 - 1) {
    throw new RangeError(`duration must be in 1 ms..24 days: received ${text}`);
  }
  return ms;
}

/**
 * Strict HTTP-date parsing (RFC 9110 §5.6.7): IMF-fixdate and the two obsolete forms a
 * recipient must accept, RFC 850 (two-digit year) and asctime, and nothing else. Unlike
 * `Date.parse`, it refuses `UTC` for `GMT`, a missing comma, doubled spaces, dashes in an
 * IMF-fixdate, one-digit hours, and wrong letter case (HTTP-date is case-sensitive). Every
 * date the replica reads (`Expires`, `Date`, `Last-Modified`, `If-Modified-Since`, `If-Range`)
 * goes through {@link parseHttpDate}.
 *
 * @module
 */

const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

const TIME = "([0-9]{2}):([0-9]{2}):([0-9]{2})";
const MONTH = "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)";
/** `Sun, 06 Nov 1994 08:49:37 GMT` */
const IMF_FIXDATE = new RegExp(
  `^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) ${MONTH} ([0-9]{4}) ${TIME} GMT$`,
);
/** `Sunday, 06-Nov-94 08:49:37 GMT` */
const RFC850 = new RegExp(
  `^(${LONG_DAYS.join("|")}), ([0-9]{2})-${MONTH}-([0-9]{2}) ${TIME} GMT$`,
);
/** `Sun Nov  6 08:49:37 1994` (a one-digit day is padded with a space) */
const ASCTIME = new RegExp(
  `^(${DAYS.join("|")}) ${MONTH} ([0-9]{2}| [0-9]) ${TIME} ([0-9]{4})$`,
);

/** Longest value looked at: an HTTP-date is at most 33 characters. */
const MAX_LENGTH = 64;

/**
 * The full year of an RFC 850 two-digit `yy` seen at `now` (RFC 9110 §5.6.7): the year ending
 * in `yy` at most 50 years ahead, else (more than 50 years ahead) the most recent past one.
 */
export function rfc850Year(yy: number, now: number): number {
  const current = new Date(now).getUTCFullYear();
  let year = current - (current % 100) + yy;
  if (year <= current - 50) year += 100;
  if (year > current + 50) year -= 100;
  return year;
}

function build(
  year: number,
  month: string,
  day: number,
  h: string,
  m: string,
  s: string,
): number | null {
  const mon = MONTHS.indexOf(month);
  const hour = Number(h), min = Number(m), sec = Number(s);
  // A leap second (60) is allowed by the grammar; it is read as the next second.
  if (hour > 23 || min > 59 || sec > 60 || day < 1) return null;
  if (day > new Date(Date.UTC(year, mon + 1, 0)).getUTCDate()) return null;
  const d = new Date(0);
  d.setUTCFullYear(year, mon, day);
  d.setUTCHours(hour, min, sec, 0);
  return d.getTime();
}

/**
 * Parses an HTTP-date (IMF-fixdate, RFC 850 or asctime) into ms since the epoch; null when
 * absent or invalid. Surrounding whitespace is ignored (field values are trimmed anyway).
 * `now` only places RFC 850 two-digit years.
 *
 * @example
 * ```ts
 * import { parseHttpDate } from "./http_date.ts";
 * if (parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT") !== 784111777000) throw new Error();
 * if (parseHttpDate("Sun, 06 Nov 1994 08:49:37 UTC") !== null) throw new Error();
 * ```
 */
export function parseHttpDate(value: string | null, now: number = Date.now()): number | null {
  if (value === null || value.length > MAX_LENGTH) return null;
  const v = value.trim();
  let m = IMF_FIXDATE.exec(v);
  if (m !== null) return build(Number(m[4]), m[3], Number(m[2]), m[5], m[6], m[7]);
  m = RFC850.exec(v);
  if (m !== null) {
    return build(rfc850Year(Number(m[4]), now), m[3], Number(m[2]), m[5], m[6], m[7]);
  }
  m = ASCTIME.exec(v);
  if (m !== null) return build(Number(m[7]), m[2], Number(m[3].trim()), m[4], m[5], m[6]);
  return null;
}

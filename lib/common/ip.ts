/**
 * IP addresses: parsing IPv4 and IPv6 text (RFC 4291 §2.2), CIDR prefixes, IPv4-mapped client
 * addresses, and the canonical text form (RFC 5952). The one place addresses are parsed and
 * printed: the DNS server, the fleet and the batched UDP transport all use it.
 *
 * @module
 */

/** An IP address as bytes: `bytes` has 16 entries, an IPv4 address uses the first 4. */
export interface IpAddr {
  family: 4 | 6;
  bytes: Uint8Array;
}

/** A parsed CIDR prefix; the bits after `prefix` are zero. */
export interface Cidr extends IpAddr {
  prefix: number;
}

/** Address bits per family. */
export function familyBits(family: 4 | 6): number {
  return family === 4 ? 32 : 128;
}

const DEC_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;

/** Parses dotted-quad IPv4 into `out[at..at+4]`; false when `text` is not one (no leading zeros). */
function parseIPv4Into(text: string, out: Uint8Array, at: number): boolean {
  const parts = text.split(".");
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    if (!DEC_OCTET.test(parts[i])) return false;
    const v = Number(parts[i]);
    if (v > 255) return false;
    out[at + i] = v;
  }
  return true;
}

const HEXTET = /^[0-9a-fA-F]{1,4}$/;

/** Colon-separated 16-bit groups, or null when one is not 1..4 hex digits. */
function hextets(part: string): number[] | null {
  if (part === "") return [];
  const out: number[] = [];
  for (const g of part.split(":")) {
    if (!HEXTET.test(g)) return null;
    out.push(parseInt(g, 16));
  }
  return out;
}

/** Parses RFC 4291 §2.2 text (with `::` and a trailing dotted quad) into 16 bytes. */
function parseIPv6Into(text: string, out: Uint8Array): boolean {
  let s = text;
  let quad = false;
  const lastColon = s.lastIndexOf(":");
  if (s.slice(lastColon + 1).includes(".")) {
    // A trailing dotted quad stands for the last two groups; parse it after the groups.
    if (!parseIPv4Into(s.slice(lastColon + 1), out, 12)) return false;
    quad = true;
    s = s.slice(0, lastColon + 1) + "0:0";
  }
  const saved = quad ? out.slice(12, 16) : null;
  const dbl = s.indexOf("::");
  let groups: number[] | null;
  if (dbl === -1) {
    groups = hextets(s);
    if (groups === null || groups.length !== 8) return false;
  } else {
    if (s.lastIndexOf("::") !== dbl) return false;
    const h = hextets(s.slice(0, dbl)), t = hextets(s.slice(dbl + 2));
    if (h === null || t === null || h.length + t.length > 7) return false;
    groups = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  }
  for (let i = 0; i < 8; i++) {
    out[2 * i] = groups[i] >> 8;
    out[2 * i + 1] = groups[i] & 0xff;
  }
  if (saved) out.set(saved, 12);
  return true;
}

/**
 * Parses an IPv4 or IPv6 address in text form (an IPv6 zone suffix `%eth0` is ignored; use
 * {@link hasZone} to refuse one). Returns null when it is neither.
 */
export function parseIp(text: string): IpAddr | null {
  const bytes = new Uint8Array(16);
  if (!text.includes(":")) return parseIPv4Into(text, bytes, 0) ? { family: 4, bytes } : null;
  const pct = text.indexOf("%");
  return parseIPv6Into(pct === -1 ? text : text.slice(0, pct), bytes) ? { family: 6, bytes } : null;
}

/** True when the text carries an IPv6 zone id (`fe80::1%eth0`). */
export function hasZone(text: string): boolean {
  return text.includes("%");
}

/** `[::1]` → `::1`: the brackets URLs and HOST:PORT forms put around IPv6. */
export function unbracket(text: string): string {
  return text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
}

/** True for `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2), the form a dual-stack socket reports IPv4 in. */
export function isV4Mapped(a: IpAddr): boolean {
  if (a.family !== 6) return false;
  for (let i = 0; i < 10; i++) if (a.bytes[i] !== 0) return false;
  return a.bytes[10] === 0xff && a.bytes[11] === 0xff;
}

/** True for `0.0.0.0` and `::` (bind to every address; never an address to answer with). */
export function isUnspecified(a: IpAddr): boolean {
  const n = a.family === 4 ? 4 : 16;
  for (let i = 0; i < n; i++) if (a.bytes[i] !== 0) return false;
  return true;
}

/** True for `127.0.0.0/8` and `::1` (RFC 1122 §3.2.1.3, RFC 4291 §2.5.3). */
export function isLoopback(a: IpAddr): boolean {
  if (a.family === 4) return a.bytes[0] === 127;
  for (let i = 0; i < 15; i++) if (a.bytes[i] !== 0) return false;
  return a.bytes[15] === 1;
}

/** The address of a client as the server sees it: IPv4-mapped IPv6 becomes IPv4. */
export function parseClientIp(text: string): IpAddr | null {
  const a = parseIp(text);
  if (a === null || !isV4Mapped(a)) return a;
  const bytes = new Uint8Array(16);
  bytes.set(a.bytes.subarray(12, 16), 0);
  return { family: 4, bytes };
}

/** Bit `i` (0 = most significant of byte 0) of an address. */
export function bitAt(bytes: Uint8Array, i: number): number {
  return (bytes[i >> 3] >> (7 - (i & 7))) & 1;
}

/** Parses `ADDR/LEN`; throws a `SyntaxError` or `RangeError` saying what is wrong. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf("/");
  if (slash === -1) throw new SyntaxError(`must be ADDRESS/PREFIX: received "${text}"`);
  const addr = parseIp(text.slice(0, slash));
  if (addr === null || hasZone(text.slice(0, slash))) {
    throw new SyntaxError(`is not an IPv4 or IPv6 address: received "${text.slice(0, slash)}"`);
  }
  const lenText = text.slice(slash + 1);
  const max = familyBits(addr.family);
  if (!DEC_OCTET.test(lenText) || Number(lenText) > max) {
    throw new RangeError(`prefix length must be an integer from 0 to ${max}: received "${text}"`);
  }
  const prefix = Number(lenText);
  for (let i = prefix; i < max; i++) {
    if (bitAt(addr.bytes, i)) {
      throw new RangeError(`has bits set after the /${prefix} prefix: received "${text}"`);
    }
  }
  return { family: addr.family, bytes: addr.bytes, prefix };
}

/**
 * The canonical text form (RFC 5952 §4): IPv4 dotted quad; IPv6 in lower case without leading
 * zeros, the longest run of two or more zero groups (the first of equal runs) as `::`.
 */
export function formatIp(a: IpAddr): string {
  const b = a.bytes;
  if (a.family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && b[2 * j] === 0 && b[2 * j + 1] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const group = (i: number) => ((b[2 * i] << 8) | b[2 * i + 1]).toString(16);
  const part = (from: number, to: number) => {
    const g: string[] = [];
    for (let i = from; i < to; i++) g.push(group(i));
    return g.join(":");
  };
  if (best === -1) return part(0, 8);
  return `${part(0, best)}::${part(best + bestLen, 8)}`;
}

/** The first `bits` bits of an address, the rest zero (a new address). */
export function maskIp(a: IpAddr, bits: number): IpAddr {
  const bytes = new Uint8Array(16);
  const n = familyBits(a.family) >> 3;
  for (let i = 0; i < n; i++) {
    const keep = bits - 8 * i;
    bytes[i] = keep >= 8 ? a.bytes[i] : keep <= 0 ? 0 : a.bytes[i] & (0xff << (8 - keep));
  }
  return { family: a.family, bytes };
}

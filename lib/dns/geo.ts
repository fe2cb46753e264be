/**
 * IP addresses, CIDR prefixes, a longest-prefix-match geo table (IPv4 and IPv6) that also
 * computes the ECS scope of its answer, and great-circle distance.
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

/** Mean Earth radius in km (IUGG), for {@link haversineKm}. */
export const EARTH_RADIUS_KM = 6371.0088;

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
 * Parses an IPv4 or IPv6 address in text form (an IPv6 zone suffix `%eth0` is ignored).
 * Returns null when it is neither.
 */
export function parseIp(text: string): IpAddr | null {
  const bytes = new Uint8Array(16);
  if (!text.includes(":")) return parseIPv4Into(text, bytes, 0) ? { family: 4, bytes } : null;
  const pct = text.indexOf("%");
  return parseIPv6Into(pct === -1 ? text : text.slice(0, pct), bytes) ? { family: 6, bytes } : null;
}

/** True for `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2), the form a dual-stack socket reports IPv4 in. */
export function isV4Mapped(a: IpAddr): boolean {
  if (a.family !== 6) return false;
  for (let i = 0; i < 10; i++) if (a.bytes[i] !== 0) return false;
  return a.bytes[10] === 0xff && a.bytes[11] === 0xff;
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
function bit(bytes: Uint8Array, i: number): number {
  return (bytes[i >> 3] >> (7 - (i & 7))) & 1;
}

/** Parses `ADDR/LEN`; throws a `SyntaxError` or `RangeError` saying what is wrong. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf("/");
  if (slash === -1) throw new SyntaxError(`must be ADDRESS/PREFIX: received "${text}"`);
  const addr = parseIp(text.slice(0, slash));
  if (addr === null || text.slice(0, slash).includes("%")) {
    throw new SyntaxError(`is not an IPv4 or IPv6 address: received "${text.slice(0, slash)}"`);
  }
  const lenText = text.slice(slash + 1);
  const max = familyBits(addr.family);
  if (!/^(?:0|[1-9][0-9]{0,2})$/.test(lenText) || Number(lenText) > max) {
    throw new RangeError(`prefix length must be an integer from 0 to ${max}: received "${text}"`);
  }
  const prefix = Number(lenText);
  for (let i = prefix; i < max; i++) {
    if (bit(addr.bytes, i)) {
      throw new RangeError(`has bits set after the /${prefix} prefix: received "${text}"`);
    }
  }
  return { family: addr.family, bytes: addr.bytes, prefix };
}

/** Text form of an address (IPv6 without `::` shortening; for messages and explanations). */
export function formatIp(a: IpAddr): string {
  if (a.family === 4) return Array.from(a.bytes.subarray(0, 4)).join(".");
  const w: string[] = [];
  for (let i = 0; i < 16; i += 2) w.push(((a.bytes[i] << 8) | a.bytes[i + 1]).toString(16));
  return w.join(":");
}

/** Great-circle distance in km between two points given in degrees (haversine formula). */
export function haversineKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const rad = Math.PI / 180;
  const dLat = (lat2 - lat1) * rad;
  const dLon = (lon2 - lon1) * rad;
  const s = Math.sin(dLat / 2) ** 2 +
    Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(s)));
}

/** One geo table row: a prefix and the location of the clients in it. */
export interface GeoEntry {
  cidr: Cidr;
  lat: number;
  lon: number;
}

/** Result of {@link GeoTable.lookup}, reused across calls. */
export interface GeoMatch {
  /** Index of the matching entry in the table, or -1 when no prefix covers the address. */
  entry: number;
  /**
   * Leading address bits the result depends on (RFC 7871 SCOPE PREFIX-LENGTH): every address
   * sharing them gets the same `entry`. More than the bits given when the table holds a more
   * specific prefix inside them.
   */
  scope: number;
}

/** A fresh {@link GeoMatch}. */
export function newGeoMatch(): GeoMatch {
  return { entry: -1, scope: 0 };
}

/** A binary trie over prefix bits in flat typed arrays; node 0 is the root. */
class Trie {
  child0 = new Int32Array(64).fill(-1);
  child1 = new Int32Array(64).fill(-1);
  entry = new Int32Array(64).fill(-1);
  nodes = 1;

  #grow(): void {
    const n = this.child0.length * 2;
    const grow = (a: Int32Array) => {
      const b = new Int32Array(n).fill(-1);
      b.set(a);
      return b;
    };
    this.child0 = grow(this.child0);
    this.child1 = grow(this.child1);
    this.entry = grow(this.entry);
  }

  /** Inserts a prefix; returns the entry already there (a duplicate) or -1. */
  insert(bytes: Uint8Array, prefix: number, index: number): number {
    let node = 0;
    for (let i = 0; i < prefix; i++) {
      const kids = bit(bytes, i) ? this.child1 : this.child0;
      let next = kids[node];
      if (next === -1) {
        if (this.nodes === this.child0.length) this.#grow();
        next = this.nodes++;
        (bit(bytes, i) ? this.child1 : this.child0)[node] = next;
      }
      node = next;
    }
    const old = this.entry[node];
    if (old === -1) this.entry[node] = index;
    return old;
  }

  /**
   * Longest-prefix match over the first `bits` bits (later bits count as zero, as in an ECS
   * address), with the scope; allocates nothing. The walk goes on past `bits` along the zero
   * bits so that entries inside the given prefix raise the scope above `bits`: the answer
   * then needs more bits than were given (RFC 7871 §7.2.1).
   */
  lookup(bytes: Uint8Array, bits: number, max: number, out: GeoMatch): void {
    const c0 = this.child0, c1 = this.child1, ent = this.entry;
    let node = 0, best = ent[0], bestLen = 0, scope = 0;
    for (let i = 0; i < max; i++) {
      const b = i < bits ? bit(bytes, i) : 0;
      // An entry in the other subtree shares exactly i bits with us: the answer depends on bit i.
      if ((b ? c0[node] : c1[node]) !== -1) scope = i + 1;
      const next = b ? c1[node] : c0[node];
      if (next === -1) break;
      node = next;
      if (ent[node] !== -1) {
        if (i < bits) {
          best = ent[node];
          bestLen = i + 1;
        } else {
          scope = i + 1; // a more specific entry inside the given prefix
        }
      }
    }
    out.entry = best;
    out.scope = bestLen > scope ? bestLen : scope;
  }
}

/** Most geo rows a config may hold: bounds the trie (up to 128 nodes per IPv6 row). */
export const MAX_GEO_ENTRIES = 100_000;

/** A longest-prefix-match table from client prefixes to locations. */
export class GeoTable {
  readonly entries: readonly GeoEntry[];
  #v4 = new Trie();
  #v6 = new Trie();

  /** Builds the table; throws a `RangeError` on a duplicate prefix or too many rows. */
  constructor(entries: readonly GeoEntry[]) {
    if (entries.length > MAX_GEO_ENTRIES) {
      throw new RangeError(
        `Cannot build geo table: at most ${MAX_GEO_ENTRIES} entries: received ${entries.length}`,
      );
    }
    this.entries = entries;
    entries.forEach((e, i) => {
      const trie = e.cidr.family === 4 ? this.#v4 : this.#v6;
      const old = trie.insert(e.cidr.bytes, e.cidr.prefix, i);
      if (old !== -1) {
        throw new RangeError(
          `Cannot build geo table: entry ${i} repeats the prefix of entry ${old}: ${
            formatIp(e.cidr)
          }/${e.cidr.prefix}`,
        );
      }
    });
  }

  /**
   * Finds the most specific entry covering the first `bits` bits of `addr` (the rest are
   * ignored, as for an ECS SOURCE PREFIX-LENGTH) and the scope of that answer.
   */
  lookup(family: 4 | 6, bytes: Uint8Array, bits: number, out: GeoMatch): void {
    const max = familyBits(family);
    (family === 4 ? this.#v4 : this.#v6).lookup(bytes, bits > max ? max : bits, max, out);
  }
}

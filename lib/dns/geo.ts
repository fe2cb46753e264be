/**
 * A longest-prefix-match geo table (IPv4 and IPv6) that also computes the ECS scope of its
 * answer, and great-circle distance. Addresses and prefixes come from `lib/common/ip.ts`.
 *
 * @module
 */
import { bitAt as bit, type Cidr, familyBits, formatIp } from "../common/ip.ts";

/** Mean Earth radius in km (IUGG), for {@link haversineKm}. */
export const EARTH_RADIUS_KM = 6371.0088;

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

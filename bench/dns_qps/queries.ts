/**
 * The dnsperf query file of the DNS throughput benchmark, in dnsperf's binary input format
 * (`-B`: each packet preceded by its 16-bit big-endian length; dnsperf overwrites the ID). The
 * binary form lets one file mix queries with and without EDNS and with EDNS Client Subnet, which
 * dnsperf's `-e`/`-E` flags can only switch on for every query. Generated from a seed, so a file
 * is the same on every run.
 *
 * @module
 */

/** The share of each kind of query, in percent (they add up to 100). */
export const MIX = {
  /** Apex A with EDNS (payload 1232), no ECS: what most resolvers send. */
  apexEdns: 50,
  /** Apex A with EDNS and an ECS option (RFC 7871), a /24 out of a few test networks. */
  apexEcs: 25,
  /** Apex A without EDNS. */
  apexPlain: 10,
  /** A random name under the zone: NXDOMAIN with the SOA. */
  nxdomain: 8,
  /** Apex SOA. */
  soa: 7,
} as const;

/** Queries in the file; dnsperf cycles through it. */
export const QUERY_COUNT = 1000;
/** EDNS UDP payload size the queries advertise (DNS flag day 2020). */
const EDNS_SIZE = 1232;
const TYPE_A = 1, TYPE_SOA = 6, TYPE_OPT = 41, CLASS_IN = 1, OPTION_ECS = 8;
/** /24 networks the ECS queries come from (documentation and test ranges). */
export const ECS_NETWORKS = [
  [192, 0, 2],
  [198, 51, 100],
  [203, 0, 113],
  [10, 1, 2],
  [172, 16, 5],
  [100, 64, 7],
];

/** Deterministic PRNG (mulberry32): the same seed gives the same file. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A name in wire form. */
function wireName(name: string): number[] {
  const out: number[] = [];
  for (const label of name.replace(/\.$/, "").split(".")) {
    if (label.length === 0 || label.length > 63) {
      throw new SyntaxError(`Cannot build queries: bad label in "${name}"`);
    }
    out.push(label.length, ...new TextEncoder().encode(label));
  }
  out.push(0);
  return out;
}

/** One query: header, question, and an OPT record (with ECS when `ecs` is given) when `edns`. */
export function query(name: string, qtype: number, edns: boolean, ecs?: number[]): Uint8Array {
  const b: number[] = [0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, edns ? 1 : 0];
  b.push(...wireName(name), qtype >> 8, qtype & 0xff, 0, CLASS_IN);
  if (edns) {
    const opt: number[] = [];
    if (ecs) {
      // FAMILY 1 (IPv4), SOURCE PREFIX-LENGTH 24, SCOPE 0, then ceil(24/8) address octets.
      opt.push(0, OPTION_ECS, 0, 4 + ecs.length, 0, 1, 24, 0, ...ecs);
    }
    b.push(0, 0, TYPE_OPT, EDNS_SIZE >> 8, EDNS_SIZE & 0xff, 0, 0, 0, 0);
    b.push(opt.length >> 8, opt.length & 0xff, ...opt);
  }
  return new Uint8Array(b);
}

/** The query file for `zone` and how many queries of each kind it holds. */
export function buildQueryFile(
  zone: string,
  count = QUERY_COUNT,
  seed = 1,
): { bytes: Uint8Array; kinds: Record<keyof typeof MIX, number> } {
  const rand = rng(seed);
  const kinds = { apexEdns: 0, apexEcs: 0, apexPlain: 0, nxdomain: 0, soa: 0 };
  const packets: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    // Deal the kinds in proportion (not at random), so even a short file has the exact mix.
    let slot = (i * 37) % 100;
    let kind: keyof typeof MIX = "apexEdns";
    for (const k of Object.keys(MIX) as (keyof typeof MIX)[]) {
      if (slot < MIX[k]) {
        kind = k;
        break;
      }
      slot -= MIX[k];
    }
    kinds[kind]++;
    switch (kind) {
      case "apexEdns":
        packets.push(query(zone, TYPE_A, true));
        break;
      case "apexEcs":
        packets.push(
          query(zone, TYPE_A, true, ECS_NETWORKS[Math.floor(rand() * ECS_NETWORKS.length)]),
        );
        break;
      case "apexPlain":
        packets.push(query(zone, TYPE_A, false));
        break;
      case "nxdomain": {
        const label = `nx${Math.floor(rand() * 1e9).toString(36)}`;
        packets.push(query(`${label}.${zone}`, TYPE_A, true));
        break;
      }
      case "soa":
        packets.push(query(zone, TYPE_SOA, true));
        break;
    }
  }
  const total = packets.reduce((n, p) => n + 2 + p.length, 0);
  const bytes = new Uint8Array(total);
  let o = 0;
  for (const p of packets) {
    bytes[o] = p.length >> 8;
    bytes[o + 1] = p.length & 0xff;
    bytes.set(p, o + 2);
    o += 2 + p.length;
  }
  return { bytes, kinds };
}

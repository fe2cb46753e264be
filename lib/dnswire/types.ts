/**
 * The contract shared by the two DNS wire codecs: the pure TypeScript reference
 * (`reference.ts`) and the AssemblyScript one behind `wasm.ts`. One conformance suite and a
 * seeded differential test run both; the server only ever talks to this interface.
 *
 * The model is "parse, then answer in place": a query sits at `ptr` in the codec's own memory
 * (`codec.memory`); `parse` fills a reusable {@link Query}; `begin` rewrites the header in place
 * and keeps the question bytes as the client sent them (so the letter case is echoed); `add*`
 * append records after the question, with name compression; `finish` appends the OPT record
 * when the query had one and returns the response length. The encoder owns the size cap: a
 * record that would not fit under `limit` (leaving room for the OPT record) is dropped and TC
 * is set. No call allocates.
 *
 * @module
 */

/** RFC 1035 §4.1.1 and RFC 6891 response codes used by the server. */
export const Rcode = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  /** RFC 8945 §5.2: a TSIG-signed query for a key the server does not have. */
  NOTAUTH: 9,
  /** Extended RCODE 16 (RFC 6891 §6.1.3): upper 8 bits go in the OPT record. */
  BADVERS: 16,
} as const;

/** What `parse` concluded. */
export const ParseStatus = {
  /** A well-formed QUERY: answer it. */
  OK: 0,
  /**
   * Header readable, rest malformed: answer FORMERR, with the question when it parsed and the
   * OPT record when the query's was well-formed (RFC 6891 §7); else header only, QDCOUNT 0.
   */
  FORMERR: 1,
  /** Opcode other than QUERY: answer NOTIMP (question echoed when it parsed). */
  NOTIMP: 2,
  /** EDNS version above 0: answer BADVERS (RFC 6891 §6.1.3). */
  BADVERS: 3,
  /** Shorter than a header, or a response (QR=1): send nothing. */
  DROP: 4,
  /**
   * A well-formed query signed with TSIG (RFC 8945): we hold no keys, so answer NOTAUTH with a
   * TSIG RR carrying error BADKEY (§5.2), unsigned.
   */
  NOTAUTH: 5,
} as const;

/** Sections a record can be added to. */
export const Section = { ANSWER: 0, AUTHORITY: 1, ADDITIONAL: 2 } as const;

/** Owner name of an added address record. */
export const Owner = {
  /** The question name (a pointer to offset 12). */
  QNAME: 0,
  /**
   * The name server host `NSLABEL.ZONE` (a pointer to where it was last written); `NSHOST + i`
   * is the i-th of `moreNsLabels` after it (i from 1).
   */
  NSHOST: 1,
} as const;

/** RR types the server deals in. */
export const Type = {
  A: 1,
  NS: 2,
  SOA: 6,
  AAAA: 28,
  OPT: 41,
  TSIG: 250,
  IXFR: 251,
  AXFR: 252,
  ANY: 255,
} as const;

/** Wire limits, with the reason for each. */
export const Limits = {
  /** RFC 1035 §2.3.4: a label is at most 63 octets. */
  LABEL: 63,
  /** RFC 1035 §2.3.4: a name is at most 255 octets on the wire. */
  NAME: 255,
  /** Compression pointers followed per name before we call it a loop. */
  POINTER_HOPS: 64,
  /** RFC 1035 §4.2.1: UDP payload without EDNS. */
  UDP_PLAIN: 512,
  /** DNS flag day 2020: the EDNS UDP payload size we advertise and send at most. */
  UDP_EDNS: 1232,
  /** RFC 1035 §4.2.2: TCP messages carry a 16-bit length. */
  TCP: 65535,
} as const;

/** Most name server hosts a zone may have (`nsLabel` and `moreNsLabels`). */
export const MAX_NS_HOSTS = 8;

/** Zone data the codec writes (SOA, NS). Set once with `configure`. */
export interface ZoneConfig {
  /** Zone apex, e.g. `cdn.test` (no trailing dot needed; matched case-insensitively). */
  zone: string;
  /** First label of the name server host, e.g. `ns1` for `ns1.cdn.test` (the SOA MNAME). */
  nsLabel: string;
  /**
   * First labels of further name server hosts of the zone (`ns2` for `ns2.cdn.test`), at most
   * `MAX_NS_HOSTS - 1`: `addNS(section, i)` and `Owner.NSHOST + i` name the i-th (from 1).
   */
  moreNsLabels?: readonly string[];
  /** First label of the SOA RNAME mailbox, e.g. `hostmaster`. */
  mailLabel: string;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  /** SOA MINIMUM: negative-caching TTL (RFC 2308). */
  minimum: number;
  /** TTL of the SOA and NS records themselves. */
  soaTtl: number;
}

/**
 * The parsed fields of one query; `parse` overwrites every field. Offsets are relative to the
 * packet start (`ptr`).
 */
export interface Query {
  status: number;
  id: number;
  opcode: number;
  /** RD flag, copied into the response. */
  rd: boolean;
  /** CD flag, copied into the response (RFC 4035 §3.2.2). */
  cd: boolean;
  qtype: number;
  qclass: number;
  /** Offset just past the question (where answers start), 12 when there is none. */
  questionEnd: number;
  /** Length of the question name on the wire, 0 when there is none. */
  qnameLength: number;
  /** Offset of the zone suffix inside the question name, or -1 when out of zone. */
  zoneOffset: number;
  /** Number of labels before the zone suffix (0 at the apex, -1 out of zone). */
  labelsBeforeZone: number;
  /** The query carried an OPT record. */
  edns: boolean;
  /** Requestor's UDP payload size from OPT (raw value; 0 without EDNS). */
  udpSize: number;
  ednsVersion: number;
  /** DO bit (RFC 3225), copied into the response OPT. */
  dnssecOk: boolean;
  /** ECS (RFC 7871): 0 none, 1 IPv4, 2 IPv6. */
  ecsFamily: number;
  ecsSourcePrefix: number;
  /** ECS address bytes, zero-padded to 16; only the first 4 matter for IPv4. */
  ecsAddress: Uint8Array;
  /** The query's OPT carried a Padding option (RFC 7830): the response is padded. */
  padding: boolean;
  /**
   * Offset of the query's TSIG RR (the last additional record; RFC 8945), -1 without one or
   * when the status is not NOTAUTH. Its key and algorithm names are never compressed.
   */
  tsigOffset: number;
  /** Offset of that TSIG RR's RDATA (its algorithm name); -1 without one. */
  tsigRdata: number;
  /** Offset just past that TSIG RR's Fudge field; -1 without one. */
  tsigEnd: number;
}

/** A fresh, zeroed {@link Query} to reuse across calls. */
export function newQuery(): Query {
  return {
    status: ParseStatus.DROP,
    id: 0,
    opcode: 0,
    rd: false,
    cd: false,
    qtype: 0,
    qclass: 0,
    questionEnd: 12,
    qnameLength: 0,
    zoneOffset: -1,
    labelsBeforeZone: -1,
    edns: false,
    udpSize: 0,
    ednsVersion: 0,
    dnssecOk: false,
    ecsFamily: 0,
    ecsSourcePrefix: 0,
    ecsAddress: new Uint8Array(16),
    padding: false,
    tsigOffset: -1,
    tsigRdata: -1,
    tsigEnd: -1,
  };
}

/** A DNS wire codec working in place on its own memory. */
export interface DnsCodec {
  /** Whole codec memory; stable for the codec's life (never grows, never detaches). */
  readonly memory: Uint8Array;
  /** Offset of the first free scratch byte; `slotSize`-sized packet slots start there. */
  readonly scratchBase: number;
  /** Bytes of scratch memory from `scratchBase` (at least 64 × 4096 + 2 × 65536). */
  readonly scratchSize: number;
  /** Sets the zone and its SOA/NS data. */
  configure(zone: ZoneConfig): void;
  /** Parses the query of `len` bytes at `ptr` into `q`. */
  parse(ptr: number, len: number, q: Query): void;
  /**
   * Starts the response to the query last parsed at `ptr`, in place: keeps ID and OPCODE, sets
   * QR, AA (when `aa`), copies RD and CD (RFC 4035 §3.2.2; cleared for NOTIMP), clears RA/Z/AD
   * and TC, sets RCODE (low 4 bits of `rcode`; the upper 8 go in the OPT record), keeps the
   * question when `q.status` is not DROP and it parsed (QDCOUNT 1, else 0 and records start at
   * 12), zeroes AN/NS/AR counts. `limit` is the most bytes the whole response may take; it is
   * clamped to [12, 65535]. Header, question and OPT are always written (TC is set if even they
   * do not fit). Reads these fields of `q`: status, opcode, rd, cd, questionEnd, qnameLength,
   * zoneOffset, edns, dnssecOk and the ECS fields; throws TypeError if they are inconsistent.
   */
  begin(ptr: number, q: Query, rcode: number, aa: boolean, limit: number): void;
  /** Appends an A record (`ipv4` as a big-endian u32) unless it does not fit (then sets TC). */
  addA(section: number, owner: number, ttl: number, ipv4: number): void;
  /** Appends an AAAA record from four big-endian u32 words. */
  addAAAA(
    section: number,
    owner: number,
    ttl: number,
    w0: number,
    w1: number,
    w2: number,
    w3: number,
  ): void;
  /** Appends the zone's SOA record; in AUTHORITY its TTL is min(soaTtl, minimum) (RFC 2308 §5). */
  addSOA(section: number): void;
  /**
   * Appends an NS record of the zone (`NSLABEL.ZONE`, compressed against the question): host 0
   * is `nsLabel`, host i the i-th of `moreNsLabels`.
   */
  addNS(section: number, host?: number): void;
  /**
   * Appends the OPT record when the query had one (payload 1232, version 0, DO copied,
   * extended RCODE for BADVERS, ECS echoed with `ecsScope` as SCOPE PREFIX-LENGTH) and
   * returns the length of the finished response. When the query's OPT carried a Padding option,
   * the response's OPT gets one that brings the response to a multiple of 468 bytes (RFC 8467
   * §4.1), or to `limit` when that is closer. To a NOTAUTH query it then appends the
   * query's TSIG RR (same key name, algorithm and time signed) with MAC size 0, the original
   * ID, error BADKEY (17) and other length 0 (RFC 8945 §5.2), unsigned.
   */
  finish(ecsScope: number): number;
}

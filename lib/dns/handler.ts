/**
 * The DNS handler: one query in, one response out, in place in the codec's memory. Every
 * transport (portable UDP, batched UDP, TCP) calls {@link DnsHandler.respond}; it never writes
 * wire bytes itself (the codec does), and it is the server's edge: an exception while answering
 * becomes SERVFAIL (or silence when even the header cannot be trusted) and a counted error.
 *
 * @module
 */
import {
  type DnsCodec,
  Limits,
  newQuery,
  Owner,
  ParseStatus,
  type Query,
  Rcode,
  Section,
  Type,
} from "../dnswire/types.ts";
import type { DnsConfig } from "./config.ts";
import { familyBits, type IpAddr } from "../common/ip.ts";
import { newSelection, type Selection, type SteeringPolicy } from "./steering.ts";
import { type RateLimiter, responseKind, RrlAction } from "./rrl.ts";

/** A client's address: `bytes` has 16 entries, an IPv4 address uses the first 4. */
export interface ClientAddr {
  family: 4 | 6;
  bytes: Uint8Array;
}

/** RR CLASS IN (RFC 1035 §3.2.4); other classes are REFUSED. */
const CLASS_IN = 1;
/** RFC 1035 §4.1.1: the TC flag is bit 1 of the third header octet. */
const TC_BYTE = 2, TC_BIT = 0x02, AA_BIT = 0x04;
/** RFC 7871 §6: ECS FAMILY 1 is IPv4, 2 is IPv6. */
const ECS_IPV4 = 1;

/** What the handler counts, for metrics. Plain fields: read them, do not write them. */
export class DnsCounters {
  /** Messages handed to `respond`. */
  queries = 0;
  /** Messages answered with nothing (too short, a response, or unreadable after an error). */
  dropped = 0;
  /** Exceptions caught while answering. */
  errors = 0;
  /** Responses with TC set (answers trimmed to the client's UDP size). */
  truncated = 0;
  /** UDP datagrams longer than a packet slot (cut on receipt), answered FORMERR. */
  oversized = 0;
  /** Responses by RCODE (index = extended RCODE, 0..23). */
  readonly rcodes = new Array<number>(24).fill(0);
  /** Parsed questions by QTYPE (index = QTYPE, 0..65535). */
  readonly qtypes = new Uint32Array(65536);

  /** A plain-object copy with RCODE names, for logs and the control API. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {
      queries: this.queries,
      dropped: this.dropped,
      errors: this.errors,
      truncated: this.truncated,
      oversized: this.oversized,
    };
    for (const [name, code] of Object.entries(Rcode)) out[name] = this.rcodes[code];
    return out;
  }
}

/** Options of {@link DnsHandler}. */
export interface HandlerOptions {
  /** A codec; the handler configures it with the zone. */
  codec: DnsCodec;
  /** Zone apex, e.g. `cdn.test`. */
  zone: string;
  config: DnsConfig;
  policy: SteeringPolicy;
  /** Addresses of the name server host when the config gives none (the bound address). */
  serverIpv4?: IpAddr | null;
  serverIpv6?: IpAddr | null;
  /** Called with each caught exception (after counting it). */
  onError?: (error: unknown) => void;
  /** Response rate limiting of UDP answers (`rrl.ts`); absent or null: none. */
  rrl?: RateLimiter | null;
}

/** Big-endian u32 from 4 bytes at `at`. */
function word(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

/** Answers DNS queries for one zone; see the module doc. */
export class DnsHandler {
  readonly codec: DnsCodec;
  readonly counters = new DnsCounters();
  readonly #policy: SteeringPolicy;
  readonly #ttl: number;
  readonly #answers: number;
  readonly #nsTtl: number;
  /** The name server host labels, lower case, as char codes (index = the codec's host). */
  readonly #nsLabels: Uint8Array[];
  /** Per host, its IPv4 address as a u32, or -1. */
  readonly #nsV4: number[];
  /** Per host, its IPv6 address as four u32 words, or null. */
  readonly #nsV6: (Uint32Array | null)[];
  readonly #onError: (error: unknown) => void;
  /** UDP response rate limiting, or null. */
  readonly rrl: RateLimiter | null;
  // Reused per query, so answering allocates nothing.
  readonly #q: Query = newQuery();
  readonly #sel: Selection = newSelection();
  readonly #client = { family: 4 as 4 | 6, bytes: new Uint8Array(16), bits: 0 };

  constructor(opts: HandlerOptions) {
    const { codec, config } = opts;
    this.codec = codec;
    codec.configure({
      zone: opts.zone,
      nsLabel: config.ns[0].label,
      moreNsLabels: config.ns.slice(1).map((n) => n.label),
      mailLabel: config.soa.mailbox,
      serial: config.soa.serial,
      refresh: config.soa.refresh,
      retry: config.soa.retry,
      expire: config.soa.expire,
      minimum: config.soa.minimum,
      soaTtl: config.soa.ttl,
    });
    this.#policy = opts.policy;
    this.#ttl = config.ttl;
    this.#answers = config.answers;
    this.#nsTtl = config.soa.ttl;
    this.#nsLabels = config.ns.map((n) =>
      Uint8Array.from(n.label.toLowerCase(), (c) => c.charCodeAt(0))
    );
    // The first host defaults to this server's own addresses; the others have only theirs.
    this.#nsV4 = config.ns.map((n, i) => {
      const v4 = n.ipv4 ?? (i === 0 ? opts.serverIpv4 ?? null : null);
      return v4 && v4.family === 4 ? word(v4.bytes, 0) : -1;
    });
    this.#nsV6 = config.ns.map((n, i) => {
      const v6 = n.ipv6 ?? (i === 0 ? opts.serverIpv6 ?? null : null);
      return v6 && v6.family === 6
        ? Uint32Array.of(
          word(v6.bytes, 0),
          word(v6.bytes, 4),
          word(v6.bytes, 8),
          word(v6.bytes, 12),
        )
        : null;
    });
    this.#onError = opts.onError ?? (() => {});
    this.rrl = opts.rrl ?? null;
  }

  /**
   * Answers the query of `len` bytes at `ptr` in `codec.memory` in place; returns the response
   * length, 0 to send nothing. `tcp` lifts the size limit to 65535. `cut`: the datagram was
   * longer than its slot and these are its first `len` bytes; it is answered FORMERR (with the
   * question when that parsed). Never throws.
   */
  respond(ptr: number, len: number, client: ClientAddr, tcp: boolean, cut = false): number {
    const c = this.counters;
    c.queries++;
    const q = this.#q;
    let parsed = false;
    try {
      this.codec.parse(ptr, len, q);
      parsed = true;
      if (cut) {
        c.oversized++;
        if (q.status !== ParseStatus.DROP) q.status = ParseStatus.FORMERR;
      }
      const n = this.#answer(ptr, q, client, tcp);
      if (n === 0) c.dropped++;
      else if (!tcp && this.rrl !== null) return this.#rateLimit(ptr, n, q, client);
      return n;
    } catch (e) {
      c.errors++;
      try {
        this.#onError(e);
      } catch { /* a failing logger must not kill the server */ }
      return this.#servfail(ptr, q, tcp, parsed);
    }
  }

  /**
   * Charges the finished UDP response of `n` bytes at `ptr` to its client's bucket: the
   * response as it is, the same truncated to header, question and OPT with TC set (a slip), or
   * nothing.
   */
  #rateLimit(ptr: number, n: number, q: Query, client: ClientAddr): number {
    const m = this.codec.memory;
    const kind = responseKind(m[ptr + 3] & 0x0f, (m[ptr + 6] << 8) | m[ptr + 7]);
    const action = this.rrl!.decide(client, kind);
    if (action === RrlAction.SEND) return n;
    if (action === RrlAction.DROP) return 0;
    // The question is still in place at offset 12: begin() rebuilds the header around it. The
    // query's TSIG is not (the response overwrote it): a slipped NOTAUTH goes without one.
    q.tsigOffset = q.tsigRdata = q.tsigEnd = -1;
    const aa = (m[ptr + TC_BYTE] & AA_BIT) !== 0;
    const rcode = q.status === ParseStatus.BADVERS ? Rcode.BADVERS : m[ptr + 3] & 0x0f;
    this.codec.begin(ptr, q, rcode, aa, this.#limit(q, false));
    const len = this.codec.finish(0);
    m[ptr + TC_BYTE] |= TC_BIT;
    return len;
  }

  /** SERVFAIL after an exception, when the parsed query can be trusted; else nothing. */
  #servfail(ptr: number, q: Query, tcp: boolean, parsed: boolean): number {
    if (!parsed || q.status === ParseStatus.DROP) {
      this.counters.dropped++;
      return 0;
    }
    try {
      this.codec.begin(ptr, q, Rcode.SERVFAIL, false, this.#limit(q, tcp));
      const n = this.codec.finish(0);
      this.counters.rcodes[Rcode.SERVFAIL]++;
      return n;
    } catch {
      this.counters.dropped++;
      return 0;
    }
  }

  /** Largest response: 65535 on TCP; UDP 512 without EDNS, else min(max(size, 512), 1232). */
  #limit(q: Query, tcp: boolean): number {
    if (tcp) return Limits.TCP;
    if (!q.edns) return Limits.UDP_PLAIN;
    const size = q.udpSize < Limits.UDP_PLAIN ? Limits.UDP_PLAIN : q.udpSize;
    return size > Limits.UDP_EDNS ? Limits.UDP_EDNS : size;
  }

  /** Ends the response: finishes it, counts its rcode and truncation, returns its length. */
  #finish(ptr: number, rcode: number, scope: number): number {
    const n = this.codec.finish(scope);
    const c = this.counters;
    c.rcodes[rcode]++;
    if ((this.codec.memory[ptr + TC_BYTE] & TC_BIT) !== 0) c.truncated++;
    return n;
  }

  #answer(ptr: number, q: Query, client: ClientAddr, tcp: boolean): number {
    const codec = this.codec;
    const limit = this.#limit(q, tcp);
    switch (q.status) {
      case ParseStatus.DROP:
        return 0;
      case ParseStatus.FORMERR:
        codec.begin(ptr, q, Rcode.FORMERR, false, limit);
        return this.#finish(ptr, Rcode.FORMERR, 0);
      case ParseStatus.NOTIMP:
        codec.begin(ptr, q, Rcode.NOTIMP, false, limit);
        return this.#finish(ptr, Rcode.NOTIMP, 0);
      case ParseStatus.BADVERS:
        codec.begin(ptr, q, Rcode.BADVERS, false, limit);
        return this.#finish(ptr, Rcode.BADVERS, 0);
      case ParseStatus.NOTAUTH:
        codec.begin(ptr, q, Rcode.NOTAUTH, false, limit);
        return this.#finish(ptr, Rcode.NOTAUTH, 0);
      case ParseStatus.OK:
        this.counters.qtypes[q.qtype]++;
        break;
      default:
        throw new RangeError(`Cannot answer: unknown parse status ${q.status}`);
    }
    // Not ours: another class, or a name outside the zone. AXFR/IXFR: the answers are
    // computed per client, so there is no zone to transfer; RFC 5936 §2.2.1 lets a server
    // refuse a transfer with REFUSED (NOTIMP would claim we do not know the QTYPE).
    if (
      q.qclass !== CLASS_IN || q.zoneOffset < 0 || q.qtype === Type.AXFR ||
      q.qtype === Type.IXFR
    ) {
      codec.begin(ptr, q, Rcode.REFUSED, false, limit);
      return this.#finish(ptr, Rcode.REFUSED, 0);
    }
    if (q.labelsBeforeZone === 0) return this.#apex(ptr, q, client, limit);
    const host = q.labelsBeforeZone === 1 ? this.#nsHostOf(ptr, q) : -1;
    if (host >= 0) return this.#nsHost(ptr, q, limit, host);
    // RFC 1034 §4.3.2: a name that does not exist in our zone; the SOA lets resolvers cache it.
    codec.begin(ptr, q, Rcode.NXDOMAIN, true, limit);
    codec.addSOA(Section.AUTHORITY);
    return this.#finish(ptr, Rcode.NXDOMAIN, 0);
  }

  /**
   * The name server host whose label is the one label before the zone (ASCII
   * case-insensitive), or -1.
   */
  #nsHostOf(ptr: number, q: Query): number {
    const m = this.codec.memory;
    // The question name starts at offset 12 (RFC 1035 §4.1.1) with the label's length octet.
    const at = ptr + 12;
    next: for (let h = 0; h < this.#nsLabels.length; h++) {
      const label = this.#nsLabels[h];
      if (m[at] !== label.length || q.zoneOffset !== 12 + 1 + label.length) continue;
      for (let i = 0; i < label.length; i++) {
        const c = m[at + 1 + i];
        if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== label[i]) continue next;
      }
      return h;
    }
    return -1;
  }

  /** NOERROR with no answers and the SOA in authority (RFC 2308 §2.2). */
  #nodata(ptr: number, q: Query, limit: number, scope: number): number {
    this.codec.begin(ptr, q, Rcode.NOERROR, true, limit);
    this.codec.addSOA(Section.AUTHORITY);
    return this.#finish(ptr, Rcode.NOERROR, scope);
  }

  #apex(ptr: number, q: Query, client: ClientAddr, limit: number): number {
    const codec = this.codec;
    switch (q.qtype) {
      case Type.A:
      case Type.AAAA:
        return this.#steer(ptr, q, client, limit);
      case Type.SOA:
      // RFC 8482 §4.2: answer ANY with one RRset of our choosing; the SOA is always there.
      // falls through
      case Type.ANY:
        codec.begin(ptr, q, Rcode.NOERROR, true, limit);
        codec.addSOA(Section.ANSWER);
        return this.#finish(ptr, Rcode.NOERROR, 0);
      case Type.NS: {
        // Every name server, then the glue of each (all are in the zone).
        codec.begin(ptr, q, Rcode.NOERROR, true, limit);
        const hosts = this.#nsLabels.length;
        for (let h = 0; h < hosts; h++) codec.addNS(Section.ANSWER, h);
        for (let h = 0; h < hosts; h++) this.#nsAddresses(Section.ADDITIONAL, h, true, true);
        return this.#finish(ptr, Rcode.NOERROR, 0);
      }
      default:
        return this.#nodata(ptr, q, limit, 0);
    }
  }

  /**
   * Adds name server host `host`'s addresses, owned by its name (glue) or, with `asQname`, by
   * the question name.
   */
  #nsAddresses(section: number, host: number, v4: boolean, v6: boolean, asQname = false): void {
    const owner = asQname ? Owner.QNAME : Owner.NSHOST + host;
    const a = this.#nsV4[host];
    if (v4 && a !== -1) this.codec.addA(section, owner, this.#nsTtl, a);
    const w = this.#nsV6[host];
    if (v6 && w !== null) this.codec.addAAAA(section, owner, this.#nsTtl, w[0], w[1], w[2], w[3]);
  }

  #nsHost(ptr: number, q: Query, limit: number, host: number): number {
    const t = q.qtype;
    const v4 = t === Type.A || t === Type.ANY, v6 = t === Type.AAAA || t === Type.ANY;
    const has = (v4 && this.#nsV4[host] !== -1) || (v6 && this.#nsV6[host] !== null);
    if (!has) return this.#nodata(ptr, q, limit, 0);
    this.codec.begin(ptr, q, Rcode.NOERROR, true, limit);
    this.#nsAddresses(Section.ANSWER, host, v4, v6, true);
    return this.#finish(ptr, Rcode.NOERROR, 0);
  }

  /** A/AAAA at the apex: the replicas the policy picks for the client. */
  #steer(ptr: number, q: Query, client: ClientAddr, limit: number): number {
    const who = this.#client;
    const ecs = q.ecsFamily !== 0 && q.ecsSourcePrefix > 0;
    if (ecs) {
      // RFC 7871 §7.2.1: steer by the subnet the resolver sent, using SOURCE PREFIX-LENGTH bits.
      who.family = q.ecsFamily === ECS_IPV4 ? 4 : 6;
      who.bytes.set(q.ecsAddress);
      who.bits = q.ecsSourcePrefix;
    } else {
      // No ECS, or SOURCE PREFIX-LENGTH 0 (RFC 7871 §7.1.2: the client asked that its address
      // not be used): the answer is for the sender, valid for everyone (SCOPE 0).
      who.family = client.family;
      who.bytes.set(client.bytes);
      who.bits = familyBits(client.family);
    }
    const family = q.qtype === Type.A ? 4 : 6;
    const sel = this.#sel;
    sel.ttl = -1;
    this.#policy.select(who, family, this.#answers, sel);
    // A policy may shorten the TTL of an answer it is unsure of (no measurement yet).
    const ttl = sel.ttl >= 0 && sel.ttl < this.#ttl ? sel.ttl : this.#ttl;
    const scope = ecs ? sel.scope : 0;
    if (sel.count === 0) return this.#nodata(ptr, q, limit, 0);
    const codec = this.codec;
    codec.begin(ptr, q, Rcode.NOERROR, true, limit);
    for (let i = 0; i < sel.count; i++) {
      const r = sel.replicas[i];
      if (family === 4) {
        codec.addA(Section.ANSWER, Owner.QNAME, ttl, r.ipv4);
      } else {
        const w = r.ipv6!;
        codec.addAAAA(Section.ANSWER, Owner.QNAME, ttl, w[0], w[1], w[2], w[3]);
      }
    }
    return this.#finish(ptr, Rcode.NOERROR, scope);
  }
}

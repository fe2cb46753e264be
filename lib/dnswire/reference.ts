/**
 * The pure TypeScript DNS wire codec: the oracle the WASM codec is tested against and the
 * baseline it is benchmarked against. Its memory has the size and layout of the WASM module's,
 * so a packet at `scratchBase + k` means the same in both.
 *
 * @example Answer a query for the apex A record
 * ```ts
 * import { ReferenceCodec } from "./reference.ts";
 * import { newQuery, ParseStatus, Rcode, Section, Owner } from "./types.ts";
 *
 * const codec = new ReferenceCodec();
 * codec.configure({
 *   zone: "cdn.test", nsLabel: "ns1", mailLabel: "hostmaster",
 *   serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 60, soaTtl: 300,
 * });
 * const query = Uint8Array.from([
 *   0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
 *   3, 0x63, 0x64, 0x6e, 4, 0x74, 0x65, 0x73, 0x74, 0, 0, 1, 0, 1,
 * ]);
 * const ptr = codec.scratchBase;
 * codec.memory.set(query, ptr);
 * const q = newQuery();
 * codec.parse(ptr, query.length, q);
 * if (q.status !== ParseStatus.OK) throw new Error("expected OK");
 * codec.begin(ptr, q, Rcode.NOERROR, true, 512);
 * codec.addA(Section.ANSWER, Owner.QNAME, 30, 0x7f00000b);
 * const len = codec.finish(0);
 * if (len !== query.length + 16) throw new Error(`unexpected length ${len}`);
 * ```
 *
 * @module
 */
import {
  checkBegin,
  checkNsHost,
  checkParse,
  checkRecord,
  checkScope,
  checkSection,
  checkWord,
  clampLimit,
  ECS_FIXED,
  ecsAddressLength,
  encodeConfig,
  HEADER,
  MEMORY_BYTES,
  OPT_FIXED,
  OPTION_ECS,
  OPTION_PADDING,
  paddingLength,
  POINTER_LIMIT,
  SCRATCH_BASE,
  SCRATCH_SIZE,
  stateError,
  TSIG_BADKEY,
  TSIG_TAIL,
  type WireConfig,
} from "./_common.ts";
import {
  type DnsCodec,
  Limits,
  MAX_NS_HOSTS,
  Owner,
  ParseStatus,
  type Query,
  Section,
  Type,
  type ZoneConfig,
} from "./types.ts";

/** RR CLASS IN (RFC 1035 §3.2.4). */
const CLASS_IN = 1;
/** RR CLASS ANY (RFC 1035 §3.2.5), the class of a TSIG RR (RFC 8945 §4.2). */
const CLASS_ANY = 255;

/** Resets every field of `q` after the header ones to its {@link newQuery} default. */
function resetBody(q: Query): void {
  q.qtype = 0;
  q.qclass = 0;
  q.questionEnd = HEADER;
  q.qnameLength = 0;
  q.zoneOffset = -1;
  q.labelsBeforeZone = -1;
  resetEdns(q);
  resetTsig(q);
}

/** Resets the TSIG fields of `q`. */
function resetTsig(q: Query): void {
  q.tsigOffset = -1;
  q.tsigRdata = -1;
  q.tsigEnd = -1;
}

/** Resets the EDNS fields of `q`. */
function resetEdns(q: Query): void {
  q.edns = false;
  q.udpSize = 0;
  q.ednsVersion = 0;
  q.dnssecOk = false;
  q.padding = false;
  resetEcs(q);
}

/** Resets the ECS fields of `q`. */
function resetEcs(q: Query): void {
  q.ecsFamily = 0;
  q.ecsSourcePrefix = 0;
  q.ecsAddress.fill(0);
}

/** The reference {@link DnsCodec}: straightforward TypeScript over a `Uint8Array`. */
export class ReferenceCodec implements DnsCodec {
  readonly memory: Uint8Array = new Uint8Array(MEMORY_BYTES);
  readonly scratchBase: number = SCRATCH_BASE;
  readonly scratchSize: number = SCRATCH_SIZE;

  #cfg: WireConfig | null = null;
  /** Expanded length of the name last skipped by `#skipName`. */
  #nameLength = 0;
  // Encoder state between begin and finish. Offsets are relative to #ptr.
  #building = false;
  #ptr = 0;
  #pos = 0;
  #limit = 0;
  #reserve = 0;
  #tc = false;
  #hasQuestion = false;
  #counts = [0, 0, 0];
  #zonePtr = -1;
  /** Per name server host, where its name was last written (-1: not yet). */
  #nsHostPtrs: number[] = new Array(MAX_NS_HOSTS).fill(-1);
  #willOpt = false;
  #padding = false;
  #echoEcs = false;
  #dnssecOk = false;
  #extRcode = 0;
  #ecsFamily = 0;
  #ecsSource = 0;
  #ecsAddress = new Uint8Array(16);
  /** The query's TSIG RR to answer BADKEY to (-1: none), its RDATA and the end of its Fudge. */
  #tsigOffset = -1;
  #tsigRdata = -1;
  #tsigEnd = -1;

  configure(zone: ZoneConfig): void {
    this.#cfg = encodeConfig(zone);
  }

  /** Name server hosts configured (1 before `configure`: the checks then say to configure). */
  get #hosts(): number {
    return this.#cfg?.nsLabels.length ?? 1;
  }

  parse(ptr: number, len: number, q: Query): void {
    checkParse(ptr, len);
    const m = this.memory;
    q.status = ParseStatus.DROP;
    q.id = 0;
    q.opcode = 0;
    q.rd = false;
    q.cd = false;
    resetBody(q);
    if (len < HEADER) return;
    q.id = (m[ptr] << 8) | m[ptr + 1];
    const flags = (m[ptr + 2] << 8) | m[ptr + 3];
    q.opcode = (flags >> 11) & 15;
    q.rd = (flags & 0x100) !== 0;
    q.cd = (flags & 0x10) !== 0;
    if ((flags & 0x8000) !== 0) return; // a response: never answer it
    const qd = (m[ptr + 4] << 8) | m[ptr + 5];
    const an = (m[ptr + 6] << 8) | m[ptr + 7];
    const ns = (m[ptr + 8] << 8) | m[ptr + 9];
    const ar = (m[ptr + 10] << 8) | m[ptr + 11];
    if (q.opcode !== 0) {
      q.status = ParseStatus.NOTIMP;
      if (qd === 1 && this.#question(ptr, len, q) && !this.#records(ptr, len, q, an, ns, ar)) {
        resetEdns(q);
      }
      resetTsig(q);
      return;
    }
    if (qd === 0) {
      // No question (e.g. dig +header-only): FORMERR, with the OPT record if it is well-formed.
      q.status = ParseStatus.FORMERR;
      this.#records(ptr, len, q, an, ns, ar);
      resetEcs(q);
      resetTsig(q);
      return;
    }
    if (qd !== 1 || !this.#question(ptr, len, q)) {
      q.status = ParseStatus.FORMERR;
      resetBody(q);
      this.#ednsPastQuestions(ptr, len, q, qd, an, ns, ar);
      return;
    }
    if (!this.#records(ptr, len, q, an, ns, ar)) {
      // RFC 6891 §7: the question is echoed, and the OPT record kept when the query's was
      // well-formed (only what follows it, or an option inside it, was not).
      q.status = ParseStatus.FORMERR;
      resetEcs(q);
      resetTsig(q);
      return;
    }
    // RFC 8945 §5.2: a signed query is checked before anything else; we hold no key.
    if (q.tsigOffset >= 0) q.status = ParseStatus.NOTAUTH;
    else q.status = q.edns && q.ednsVersion > 0 ? ParseStatus.BADVERS : ParseStatus.OK;
  }

  /**
   * For a FORMERR whose question is not echoed (QDCOUNT ≥ 2, or one that does not parse as a
   * question we answer): when the `qd` questions can be skipped as names, takes the OPT record
   * from the records after them, so the FORMERR keeps it if it is well-formed (RFC 6891 §7).
   */
  #ednsPastQuestions(
    ptr: number,
    len: number,
    q: Query,
    qd: number,
    an: number,
    ns: number,
    ar: number,
  ): void {
    let p = HEADER;
    for (let i = 0; i < qd; i++) {
      const e = this.#skipName(ptr, len, p);
      if (e < 0 || e + 4 > len) return;
      p = e + 4;
    }
    q.questionEnd = p;
    this.#records(ptr, len, q, an, ns, ar);
    q.questionEnd = HEADER;
    resetEcs(q);
    resetTsig(q);
  }

  /** Validates the question at offset 12; fills the question fields only when it is valid. */
  #question(ptr: number, len: number, q: Query): boolean {
    const m = this.memory;
    let p = HEADER;
    for (;;) {
      if (p >= len) return false;
      const b = m[ptr + p];
      if (b === 0) break;
      if ((b & 0xc0) !== 0) return false; // pointer or reserved label type
      p += b + 1;
      if (p + 1 - HEADER > Limits.NAME) return false;
    }
    p++; // the root byte
    if (p + 4 > len) return false;
    q.qnameLength = p - HEADER;
    q.qtype = (m[ptr + p] << 8) | m[ptr + p + 1];
    q.qclass = (m[ptr + p + 2] << 8) | m[ptr + p + 3];
    q.questionEnd = p + 4;
    // Zone match: the suffix of zone.length bytes must start on a label boundary and be equal.
    const cfg = this.#cfg;
    if (cfg === null) return true;
    const zone = cfg.zone;
    const start = p - zone.length;
    if (start < HEADER) return true;
    let s = HEADER, labels = 0;
    while (s < start) {
      s += m[ptr + s] + 1;
      labels++;
    }
    if (s !== start) return true;
    for (let i = 0; i < zone.length; i++) {
      let c = m[ptr + start + i];
      if (c >= 0x41 && c <= 0x5a) c |= 0x20;
      if (c !== zone[i]) return true;
    }
    q.zoneOffset = start;
    q.labelsBeforeZone = labels;
    return true;
  }

  /**
   * Skips the name at offset `o` (compression allowed, pointers strictly backwards, at most
   * POINTER_HOPS hops, expanded length ≤ 255); returns the offset after it or -1.
   */
  #skipName(ptr: number, len: number, o: number): number {
    const m = this.memory;
    let p = o, end = -1, hops = 0, total = 1;
    for (;;) {
      if (p >= len) return -1;
      const b = m[ptr + p];
      if (b === 0) break;
      const kind = b & 0xc0;
      if (kind === 0xc0) {
        if (p + 1 >= len) return -1;
        const target = ((b & 0x3f) << 8) | m[ptr + p + 1];
        if (target >= p || ++hops > Limits.POINTER_HOPS) return -1;
        if (end < 0) end = p + 2;
        p = target;
        continue;
      }
      if (kind !== 0) return -1; // 0x40 and 0x80 are reserved (RFC 6891 §5)
      total += b + 1;
      if (total > Limits.NAME) return -1;
      p += b + 1;
    }
    this.#nameLength = total;
    return end < 0 ? p + 1 : end;
  }

  /** Walks the answer, authority and additional records; takes EDNS from the OPT record. */
  #records(ptr: number, len: number, q: Query, an: number, ns: number, ar: number): boolean {
    const m = this.memory;
    const total = an + ns + ar;
    let p = q.questionEnd;
    for (let i = 0; i < total; i++) {
      const e = this.#skipName(ptr, len, p);
      if (e < 0 || e + 10 > len) return false;
      const type = (m[ptr + e] << 8) | m[ptr + e + 1];
      const rdata = e + 10;
      const end = rdata + ((m[ptr + e + 8] << 8) | m[ptr + e + 9]);
      if (end > len) return false;
      if (type === Type.OPT) {
        // RFC 6891 §6.1.1: one OPT, root owner, in the additional section.
        if (i < an + ns || q.edns || this.#nameLength !== 1) return false;
        q.edns = true;
        q.udpSize = (m[ptr + e + 2] << 8) | m[ptr + e + 3];
        q.ednsVersion = m[ptr + e + 5];
        q.dnssecOk = (m[ptr + e + 6] & 0x80) !== 0;
        // Options of a version we do not speak are not interpreted (the answer is BADVERS).
        if (q.ednsVersion === 0 && !this.#options(ptr, rdata, end, q)) return false;
      } else if (type === Type.TSIG) {
        // RFC 8945 §5.1: the last additional record; names uncompressed (we copy them).
        if (i !== total - 1 || i < an + ns || this.#nameLength !== e - p) return false;
        const a = this.#skipName(ptr, len, rdata);
        if (a < 0 || this.#nameLength !== a - rdata || a + 10 > end) return false;
        const other = a + 10 + ((m[ptr + a + 8] << 8) | m[ptr + a + 9]);
        if (
          other + 6 > end || other + 6 + ((m[ptr + other + 4] << 8) | m[ptr + other + 5]) !== end
        ) {
          return false;
        }
        q.tsigOffset = p;
        q.tsigRdata = rdata;
        q.tsigEnd = a + 8;
      }
      p = end;
    }
    return p === len; // anything after the last record is garbage
  }

  /** Checks the option framing of an OPT RDATA in [o, end) and takes the ECS option. */
  #options(ptr: number, o: number, end: number, q: Query): boolean {
    const m = this.memory;
    while (o < end) {
      if (o + 4 > end) return false;
      const code = (m[ptr + o] << 8) | m[ptr + o + 1];
      const olen = (m[ptr + o + 2] << 8) | m[ptr + o + 3];
      const d = o + 4;
      if (d + olen > end) return false;
      if (code === OPTION_ECS) {
        if (q.ecsFamily !== 0 || olen < 4) return false;
        const family = (m[ptr + d] << 8) | m[ptr + d + 1];
        const source = m[ptr + d + 2];
        const max = family === 1 ? 32 : family === 2 ? 128 : -1;
        // RFC 7871 §6: SCOPE is 0 in queries; ADDRESS is exactly ceil(SOURCE / 8) bytes with
        // no bits set past SOURCE.
        if (max < 0 || source > max || m[ptr + d + 3] !== 0) return false;
        const alen = ecsAddressLength(source);
        if (olen - 4 !== alen) return false;
        if ((source & 7) !== 0 && (m[ptr + d + 3 + alen] & (0xff >> (source & 7))) !== 0) {
          return false;
        }
        q.ecsFamily = family;
        q.ecsSourcePrefix = source;
        for (let i = 0; i < alen; i++) q.ecsAddress[i] = m[ptr + d + 4 + i];
      } else if (code === OPTION_PADDING) {
        q.padding = true; // RFC 7830 §4: the content is ignored
      }
      o = d + olen;
    }
    return true;
  }

  begin(ptr: number, q: Query, rcode: number, aa: boolean, limit: number): void {
    checkBegin(ptr, q, rcode, limit);
    const m = this.memory;
    const s = q.status;
    const answerable = s === ParseStatus.OK || s === ParseStatus.NOTIMP ||
      s === ParseStatus.BADVERS || s === ParseStatus.FORMERR || s === ParseStatus.NOTAUTH;
    const keep = answerable && q.qnameLength > 0;
    // RD and CD are copied, except to NOTIMP: an opcode we do not know may give them no meaning.
    const copy = s !== ParseStatus.NOTIMP;
    const flags = 0x8000 | (q.opcode << 11) | (aa ? 0x400 : 0) | (copy && q.rd ? 0x100 : 0) |
      (copy && q.cd ? 0x10 : 0) | (rcode & 15);
    m[ptr + 2] = flags >> 8;
    m[ptr + 3] = flags & 0xff;
    m[ptr + 4] = 0;
    m[ptr + 5] = keep ? 1 : 0;
    m.fill(0, ptr + 6, ptr + HEADER);
    this.#building = true;
    this.#ptr = ptr;
    this.#pos = keep ? q.questionEnd : HEADER;
    this.#limit = clampLimit(ptr, limit);
    this.#hasQuestion = keep;
    this.#counts[0] = this.#counts[1] = this.#counts[2] = 0;
    this.#zonePtr = keep && q.zoneOffset >= 0 ? q.zoneOffset : -1;
    this.#nsHostPtrs.fill(-1);
    this.#willOpt = answerable && q.edns;
    this.#echoEcs = this.#willOpt && s === ParseStatus.OK && q.ecsFamily !== 0;
    this.#padding = this.#willOpt && q.padding;
    this.#dnssecOk = q.dnssecOk;
    this.#extRcode = rcode >> 4;
    this.#ecsFamily = q.ecsFamily;
    this.#ecsSource = q.ecsSourcePrefix;
    this.#ecsAddress.set(q.ecsAddress);
    this.#tsigOffset = s === ParseStatus.NOTAUTH ? q.tsigOffset : -1;
    this.#tsigRdata = q.tsigRdata;
    this.#tsigEnd = q.tsigEnd;
    this.#reserve =
      (this.#willOpt
        ? OPT_FIXED + (this.#echoEcs ? ECS_FIXED + ecsAddressLength(q.ecsSourcePrefix) : 0)
        : 0) + (this.#tsigOffset >= 0 ? q.tsigEnd - q.tsigOffset + TSIG_TAIL : 0);
    // Header, question and OPT are always written; if even they exceed the limit, say so.
    this.#tc = this.#pos + this.#reserve > this.#limit;
  }

  /** Throws unless a response is being built (and, for zone data, the zone is configured). */
  #check(what: string, needZone: boolean): WireConfig {
    if (!this.#building) throw stateError(`${what}: call begin first`);
    if (needZone && this.#cfg === null) throw stateError(`${what}: call configure first`);
    return this.#cfg as WireConfig;
  }

  /** Whether `size` more bytes fit under the limit (keeping the OPT reserve); sets TC if not. */
  #fits(size: number): boolean {
    if (this.#tc) return false;
    if (this.#pos + size + this.#reserve > this.#limit) {
      this.#tc = true;
      return false;
    }
    return true;
  }

  #u8(v: number): void {
    this.memory[this.#ptr + this.#pos++] = v;
  }
  #u16(v: number): void {
    const m = this.memory, a = this.#ptr + this.#pos;
    m[a] = v >>> 8;
    m[a + 1] = v;
    this.#pos += 2;
  }
  #u32(v: number): void {
    const m = this.memory, a = this.#ptr + this.#pos;
    m[a] = v >>> 24;
    m[a + 1] = v >>> 16;
    m[a + 2] = v >>> 8;
    m[a + 3] = v;
    this.#pos += 4;
  }
  #bytes(b: Uint8Array): void {
    this.memory.set(b, this.#ptr + this.#pos);
    this.#pos += b.length;
  }

  /** Size of a reference to the zone name now, and where the zone will be after one is written. */
  #zoneRefSize(cfg: WireConfig): number {
    return this.#zonePtr >= 0 ? 2 : cfg.zone.length;
  }
  /** Whether, after one more zone reference written at the current position, a pointer exists. */
  #zonePointableAfter(): boolean {
    return this.#zonePtr >= 0 || this.#pos < POINTER_LIMIT;
  }
  #nsHostRefSize(cfg: WireConfig, host: number, zoneKnown: boolean): number {
    if (this.#nsHostPtrs[host] >= 0) return 2;
    return cfg.nsLabels[host].length + (zoneKnown ? 2 : cfg.zone.length);
  }

  #zoneRef(cfg: WireConfig): void {
    if (this.#zonePtr >= 0) return this.#u16(0xc000 | this.#zonePtr);
    const at = this.#pos;
    this.#bytes(cfg.zone);
    if (at < POINTER_LIMIT) this.#zonePtr = at;
  }
  #nsHostRef(cfg: WireConfig, host: number): void {
    if (this.#nsHostPtrs[host] >= 0) return this.#u16(0xc000 | this.#nsHostPtrs[host]);
    const at = this.#pos;
    this.#bytes(cfg.nsLabels[host]);
    this.#zoneRef(cfg);
    if (at < POINTER_LIMIT) this.#nsHostPtrs[host] = at;
  }

  /** Writes owner, TYPE, CLASS, TTL and RDLENGTH of an address record. */
  #addressHead(cfg: WireConfig, owner: number, type: number, ttl: number, rdlen: number): void {
    if (owner === Owner.QNAME) this.#u16(0xc000 | HEADER);
    else this.#nsHostRef(cfg, owner - Owner.NSHOST);
    this.#u16(type);
    this.#u16(CLASS_IN);
    this.#u32(ttl);
    this.#u16(rdlen);
  }

  /** Checks an address record's owner (state included) and returns its size on the wire. */
  #ownerSize(what: string, owner: number): number {
    const cfg = this.#check(what, owner >= Owner.NSHOST);
    if (owner === Owner.QNAME) {
      if (!this.#hasQuestion) {
        throw stateError(`${what}: the response has no question for an Owner.QNAME record`);
      }
      return 2;
    }
    return this.#nsHostRefSize(cfg, owner - Owner.NSHOST, this.#zonePtr >= 0);
  }

  addA(section: number, owner: number, ttl: number, ipv4: number): void {
    checkRecord(section, owner, ttl, this.#hosts);
    checkWord("ipv4", ipv4);
    if (!this.#fits(this.#ownerSize("add A record", owner) + 10 + 4)) return;
    this.#addressHead(this.#cfg as WireConfig, owner, Type.A, ttl, 4);
    this.#u32(ipv4);
    this.#counts[section]++;
  }

  addAAAA(
    section: number,
    owner: number,
    ttl: number,
    w0: number,
    w1: number,
    w2: number,
    w3: number,
  ): void {
    checkRecord(section, owner, ttl, this.#hosts);
    checkWord("w0", w0);
    checkWord("w1", w1);
    checkWord("w2", w2);
    checkWord("w3", w3);
    if (!this.#fits(this.#ownerSize("add AAAA record", owner) + 10 + 16)) return;
    this.#addressHead(this.#cfg as WireConfig, owner, Type.AAAA, ttl, 16);
    this.#u32(w0);
    this.#u32(w1);
    this.#u32(w2);
    this.#u32(w3);
    this.#counts[section]++;
  }

  addSOA(section: number): void {
    checkSection(section);
    const cfg = this.#check("add SOA record", true);
    const known = this.#zonePointableAfter();
    const zoneLater = known ? 2 : cfg.zone.length;
    const mname = this.#nsHostRefSize(cfg, 0, known);
    const rname = cfg.mailLabel.length + zoneLater;
    if (!this.#fits(this.#zoneRefSize(cfg) + 10 + mname + rname + 20)) return;
    this.#zoneRef(cfg);
    this.#u16(Type.SOA);
    this.#u16(CLASS_IN);
    this.#u32(section === Section.AUTHORITY ? Math.min(cfg.soaTtl, cfg.minimum) : cfg.soaTtl);
    this.#u16(mname + rname + 20);
    this.#nsHostRef(cfg, 0);
    this.#bytes(cfg.mailLabel);
    this.#zoneRef(cfg);
    this.#u32(cfg.serial);
    this.#u32(cfg.refresh);
    this.#u32(cfg.retry);
    this.#u32(cfg.expire);
    this.#u32(cfg.minimum);
    this.#counts[section]++;
  }

  addNS(section: number, host = 0): void {
    checkSection(section);
    checkNsHost(host, this.#hosts);
    const cfg = this.#check("add NS record", true);
    const rdlen = this.#nsHostRefSize(cfg, host, this.#zonePointableAfter());
    if (!this.#fits(this.#zoneRefSize(cfg) + 10 + rdlen)) return;
    this.#zoneRef(cfg);
    this.#u16(Type.NS);
    this.#u16(CLASS_IN);
    this.#u32(cfg.soaTtl);
    this.#u16(rdlen);
    this.#nsHostRef(cfg, host);
    this.#counts[section]++;
  }

  /**
   * Appends the query's TSIG RR (key name, algorithm, time signed and fudge copied; they lie at
   * or after the write position, so the copy moves them back) with the BADKEY tail.
   */
  #tsigBadkey(at: number): void {
    const m = this.memory, ptr = this.#ptr, o = this.#tsigOffset;
    const pos = this.#pos;
    m.copyWithin(ptr + at, ptr + o, ptr + this.#tsigEnd);
    const rdlenAt = at + this.#tsigRdata - o - 2;
    this.#pos = rdlenAt - 6;
    this.#u16(CLASS_ANY);
    this.#u32(0);
    this.#u16(this.#tsigEnd - this.#tsigRdata + TSIG_TAIL);
    this.#pos = at + this.#tsigEnd - o;
    this.#u16(0); // MAC size
    this.#u16((m[ptr] << 8) | m[ptr + 1]); // original ID
    this.#u16(TSIG_BADKEY);
    this.#u16(0); // other len
    this.#counts[Section.ADDITIONAL]++;
    this.#pos = pos;
  }

  finish(ecsScope: number): number {
    checkScope(ecsScope);
    this.#check("finish DNS response", false);
    if (this.#echoEcs && this.#ecsFamily === 1 && ecsScope > 32) {
      throw new RangeError(
        `Cannot finish DNS response: ecsScope must be at most 32 for IPv4: received ${ecsScope}`,
      );
    }
    const alen = this.#echoEcs ? ecsAddressLength(this.#ecsSource) : 0;
    const ecsBytes = this.#echoEcs ? ECS_FIXED + alen : 0;
    const tsigBytes = this.#tsigOffset >= 0 ? this.#tsigEnd - this.#tsigOffset + TSIG_TAIL : 0;
    const pad = this.#padding
      ? paddingLength(this.#pos + OPT_FIXED + ecsBytes + tsigBytes, this.#limit)
      : -1;
    const optBytes = this.#willOpt ? OPT_FIXED + ecsBytes + (pad >= 0 ? 4 + pad : 0) : 0;
    // The TSIG goes last; it is moved first, as padding may reach over where the query held it.
    if (this.#tsigOffset >= 0) this.#tsigBadkey(this.#pos + optBytes);
    if (this.#willOpt) {
      this.#u8(0);
      this.#u16(Type.OPT);
      this.#u16(Limits.UDP_EDNS);
      this.#u32(((this.#extRcode << 24) | (this.#dnssecOk ? 0x8000 : 0)) >>> 0);
      this.#u16(optBytes - OPT_FIXED);
      if (this.#echoEcs) {
        this.#u16(OPTION_ECS);
        this.#u16(4 + alen);
        this.#u16(this.#ecsFamily);
        this.#u8(this.#ecsSource);
        this.#u8(ecsScope);
        this.#bytes(this.#ecsAddress.subarray(0, alen));
      }
      if (pad >= 0) {
        this.#u16(OPTION_PADDING);
        this.#u16(pad);
        this.memory.fill(0, this.#ptr + this.#pos, this.#ptr + this.#pos + pad);
        this.#pos += pad;
      }
      this.#counts[Section.ADDITIONAL]++;
    }
    this.#pos += tsigBytes;
    const m = this.memory, ptr = this.#ptr;
    if (this.#tc) m[ptr + 2] |= 0x02;
    for (let i = 0; i < 3; i++) {
      m[ptr + 6 + 2 * i] = this.#counts[i] >> 8;
      m[ptr + 7 + 2 * i] = this.#counts[i] & 0xff;
    }
    this.#building = false;
    return this.#pos;
  }
}

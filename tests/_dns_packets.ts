/**
 * Seeded DNS packet generators for tests and for feeding a live server: well-formed queries and
 * hostile mutations of them. Deterministic for a seed (splitmix32), no `Math.random`.
 *
 * ```ts
 * import { mutatedPackets, validQueries } from "./_dns_packets.ts";
 * const good = validQueries(1, 100, "cdn.test");
 * const bad = mutatedPackets(2, 1000, "cdn.test");
 * ```
 *
 * @module
 */

/** A small seeded PRNG (splitmix32): deterministic, fast, good enough for test data. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed | 0;
  }
  /** A uniform u32. */
  next(): number {
    this.#s = (this.#s + 0x9e3779b9) | 0;
    let z = this.#s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return this.next() % n;
  }
  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p * 0x100000000;
  }
  /** One element of `xs`. */
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.next() & 0xff;
    return b;
  }
}

/** A growable byte writer with big-endian helpers. */
export class Writer {
  #buf = new Uint8Array(512);
  length = 0;
  #room(n: number): void {
    if (this.length + n <= this.#buf.length) return;
    const b = new Uint8Array(Math.max(this.#buf.length * 2, this.length + n));
    b.set(this.#buf.subarray(0, this.length));
    this.#buf = b;
  }
  u8(v: number): this {
    this.#room(1);
    this.#buf[this.length++] = v & 0xff;
    return this;
  }
  u16(v: number): this {
    return this.u8(v >>> 8).u8(v);
  }
  u32(v: number): this {
    return this.u16(v >>> 16).u16(v & 0xffff);
  }
  bytes(b: ArrayLike<number>): this {
    this.#room(b.length);
    this.#buf.set(b, this.length);
    this.length += b.length;
    return this;
  }
  /** Overwrites a u16 at `at`. */
  set16(at: number, v: number): this {
    this.#buf[at] = (v >>> 8) & 0xff;
    this.#buf[at + 1] = v & 0xff;
    return this;
  }
  done(): Uint8Array {
    return this.#buf.slice(0, this.length);
  }
}

/** Wire form of a dotted name (no compression, no checks: tests build bad names too). */
export function nameWire(name: string): Uint8Array {
  const w = new Writer();
  for (const label of name.split(".")) {
    if (label === "") continue;
    const bytes = new TextEncoder().encode(label);
    w.u8(bytes.length).bytes(bytes);
  }
  return w.u8(0).done();
}

/** An EDNS option (code, data). */
export interface EdnsOption {
  code: number;
  data: Uint8Array;
}

/** ECS option data (RFC 7871): family, source, scope, address bytes as given. */
export function ecsOption(
  family: number,
  source: number,
  scope: number,
  address: ArrayLike<number>,
): EdnsOption {
  const w = new Writer().u16(family).u8(source).u8(scope).bytes(address);
  return { code: 8, data: w.done() };
}

/** An OPT record's parts; `owner` is raw wire bytes (the root is `[0]`). */
export interface OptSpec {
  owner?: ArrayLike<number>;
  udpSize?: number;
  extRcode?: number;
  version?: number;
  dnssecOk?: boolean;
  /** Extra flag bits (below DO). */
  zBits?: number;
  options?: EdnsOption[];
  /** Raw RDATA instead of `options`. */
  rdata?: Uint8Array;
}

/** Wire bytes of an OPT record. */
export function optRecord(o: OptSpec): Uint8Array {
  const w = new Writer().bytes(o.owner ?? [0]).u16(41).u16(o.udpSize ?? 1232);
  w.u8(o.extRcode ?? 0).u8(o.version ?? 0).u16((o.dnssecOk ? 0x8000 : 0) | (o.zBits ?? 0));
  let rdata = o.rdata;
  if (rdata === undefined) {
    const r = new Writer();
    for (const opt of o.options ?? []) r.u16(opt.code).u16(opt.data.length).bytes(opt.data);
    rdata = r.done();
  }
  return w.u16(rdata.length).bytes(rdata).done();
}

/** A generic resource record with raw owner bytes. */
export function record(
  owner: ArrayLike<number>,
  type: number,
  cls: number,
  ttl: number,
  rdata: ArrayLike<number>,
): Uint8Array {
  return new Writer().bytes(owner).u16(type).u16(cls).u32(ttl).u16(rdata.length).bytes(rdata)
    .done();
}

/** What {@link buildQuery} assembles. Counts default to the number of parts given. */
export interface QuerySpec {
  id?: number;
  /** Whole flags word; default RD only. */
  flags?: number;
  /** Raw question name bytes (or a dotted name). */
  qname?: Uint8Array | string;
  qtype?: number;
  qclass?: number;
  answers?: Uint8Array[];
  authorities?: Uint8Array[];
  additionals?: Uint8Array[];
  qdcount?: number;
  ancount?: number;
  nscount?: number;
  arcount?: number;
  /** Leave the question out (with `qdcount` to lie about it). */
  noQuestion?: boolean;
  trailing?: Uint8Array;
}

/** Assembles a DNS message from parts. */
export function buildQuery(s: QuerySpec): Uint8Array {
  const answers = s.answers ?? [], authorities = s.authorities ?? [];
  const additionals = s.additionals ?? [];
  const w = new Writer().u16(s.id ?? 0x1234).u16(s.flags ?? 0x0100);
  w.u16(s.qdcount ?? (s.noQuestion ? 0 : 1)).u16(s.ancount ?? answers.length);
  w.u16(s.nscount ?? authorities.length).u16(s.arcount ?? additionals.length);
  if (!s.noQuestion) {
    const qname = typeof s.qname === "string" ? nameWire(s.qname) : s.qname ?? nameWire("cdn.test");
    w.bytes(qname).u16(s.qtype ?? 1).u16(s.qclass ?? 1);
  }
  for (const r of [...answers, ...authorities, ...additionals]) w.bytes(r);
  if (s.trailing) w.bytes(s.trailing);
  return w.done();
}

const LABEL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
const QTYPES = [1, 1, 1, 28, 28, 2, 6, 255, 252, 251, 15, 16, 33, 65, 0, 41, 65535];

function randomLabel(r: Rng, max = 63): string {
  const n = r.chance(0.1) ? max : r.range(1, r.chance(0.8) ? 12 : max);
  let s = "";
  for (let i = 0; i < n; i++) s += LABEL_CHARS[r.int(LABEL_CHARS.length)];
  return s;
}

/** Random letter case for ASCII letters. */
function scramble(r: Rng, s: string): string {
  if (!r.chance(0.3)) return s;
  let out = "";
  for (const c of s) out += r.chance(0.5) ? c.toUpperCase() : c.toLowerCase();
  return out;
}

/** A question name: apex, in zone, out of zone, look-alike, root, or exactly 255 octets. */
function randomName(r: Rng, zone: string): string {
  const z = zone.replace(/\.$/, "");
  switch (r.int(10)) {
    case 0:
    case 1:
      return scramble(r, z);
    case 2:
    case 3:
    case 4: {
      const labels = [];
      for (let i = r.range(1, 3); i > 0; i--) labels.push(randomLabel(r));
      return scramble(r, [...labels, z].join("."));
    }
    case 5:
      return `${randomLabel(r, 10)}.${r.pick(["example", "org", "test", "arpa"])}`;
    case 6:
      return `x${z}`; // shares the tail bytes but not the label boundary
    case 7:
      return r.chance(0.5) ? "" : z.split(".").slice(1).join("."); // root or the parent
    case 8: {
      // A name of exactly 255 octets (the longest legal) ending in the zone.
      const zoneLen = nameWire(z).length;
      let room = 255 - zoneLen, labels: string[] = [];
      while (room > 0) {
        const n = Math.min(63, room - 1);
        if (n < 1) {
          labels = labels.slice(1);
          room = 255 - zoneLen - labels.reduce((a, l) => a + l.length + 1, 0);
          continue;
        }
        labels.push("a".repeat(n));
        room -= n + 1;
      }
      return [...labels, z].join(".");
    }
    default:
      return `${randomLabel(r, 20)}.${randomLabel(r, 20)}.${z}`;
  }
}

/** A masked address for an ECS option of this family and prefix. */
function ecsAddress(r: Rng, family: number, source: number): Uint8Array {
  const n = (source + 7) >> 3;
  const a = r.bytes(n);
  if ((source & 7) !== 0) a[n - 1] &= 0xff << (8 - (source & 7));
  void family;
  return a;
}

function randomEcs(r: Rng): EdnsOption {
  const family = r.chance(0.6) ? 1 : 2;
  const max = family === 1 ? 32 : 128;
  const source = r.chance(0.3) ? r.pick([0, max, family === 1 ? 24 : 56]) : r.range(0, max);
  return ecsOption(family, source, 0, ecsAddress(r, family, source));
}

function randomUnknownOption(r: Rng): EdnsOption {
  const code = r.pick([3, 10, 12, 15, 65001, r.int(65536)]);
  return { code: code === 8 ? 9 : code, data: r.bytes(r.pick([0, 0, 8, 16, r.int(40)])) };
}

/** An OPT record as a well-behaved resolver sends it (version 0, at most one ECS). */
function randomOpt(r: Rng): Uint8Array {
  const options: EdnsOption[] = [];
  if (r.chance(0.3)) options.push(randomUnknownOption(r));
  if (r.chance(0.6)) options.push(randomEcs(r));
  if (r.chance(0.3)) options.push(randomUnknownOption(r));
  return optRecord({
    udpSize: r.pick([512, 1232, 1232, 4096, 0, r.int(65536)]),
    dnssecOk: r.chance(0.4),
    zBits: r.chance(0.1) ? r.int(0x8000) : 0,
    extRcode: r.chance(0.05) ? r.int(256) : 0,
    options,
  });
}

/** Flags of a plain query: QR 0, opcode 0, random RD/CD and now and then other bits. */
function queryFlags(r: Rng): number {
  let f = (r.chance(0.7) ? 0x0100 : 0) | (r.chance(0.2) ? 0x0010 : 0);
  if (r.chance(0.1)) f |= r.int(0x10000) & 0x06ef; // AA, TC, RA, Z, AD, RCODE bits
  return f;
}

/** One well-formed query as a QuerySpec (so mutations can start from parts). */
function randomQuerySpec(r: Rng, zone: string): QuerySpec {
  const spec: QuerySpec = {
    id: r.int(65536),
    flags: queryFlags(r),
    qname: scramble(r, randomName(r, zone)),
    qtype: r.pick(QTYPES),
    qclass: r.chance(0.9) ? 1 : r.pick([3, 255, 254, r.int(65536)]),
  };
  const extras: Uint8Array[] = [];
  if (r.chance(0.05)) {
    // A record whose owner is compressed against the question (legal in any section).
    extras.push(record([0xc0, 12], r.pick([1, 16, 99]), 1, r.next(), r.bytes(r.int(20))));
  }
  if (r.chance(0.75)) extras.push(randomOpt(r));
  // A record of a type we do not know (TSIG, type 250, is answered NOTAUTH: not generated here).
  if (r.chance(0.05)) extras.push(record([0], 65280, 255, 0, r.bytes(r.int(30))));
  spec.additionals = r.chance(0.5) ? extras : extras.reverse();
  if (r.chance(0.03)) spec.answers = [record([0xc0, 12], 1, 1, 60, [127, 0, 0, 1])];
  if (r.chance(0.03)) spec.authorities = [record(nameWire("x.example"), 2, 1, 60, [0xc0, 12])];
  return spec;
}

/** `count` well-formed queries (OK status under the rules; a few land out of zone). */
export function validQueries(seed: number, count: number, zone: string): Uint8Array[] {
  const r = new Rng(seed);
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) out.push(buildQuery(randomQuerySpec(r, zone)));
  return out;
}

/** A chain of `n` compression pointers each pointing at the one before, as opaque RDATA. */
function pointerChain(start: number, n: number): Uint8Array {
  const w = new Writer().u8(0); // the chain ends at a root byte at `start`
  for (let i = 0; i < n; i++) {
    const target = i === 0 ? start : start + 1 + 2 * (i - 1);
    w.u16(0xc000 | target);
  }
  return w.done();
}

/** Hostile OPT variations. */
function badOpt(r: Rng): Uint8Array[] {
  switch (r.int(8)) {
    case 0:
      return [randomOpt(r), randomOpt(r)]; // two OPTs
    case 1:
      return [optRecord({ owner: nameWire(r.pick(["a", "cdn.test", "x.y"])) })]; // owner not root
    case 2:
      return [optRecord({ owner: [0xc0, 12] })]; // owner = the qname
    case 3:
      return [optRecord({ version: r.range(1, 255), options: [randomEcs(r)] })]; // BADVERS
    case 4: {
      const o = optRecord({ options: [randomUnknownOption(r)] });
      const cut = new Uint8Array(o.length + 2);
      cut.set(o);
      cut[10] = (o.length - 11 + r.pick([1, 2, 3])) & 0xff; // RDLENGTH beyond the options
      return [cut.slice(0, o.length + 1)];
    }
    case 5:
      return [optRecord({ rdata: r.bytes(r.range(1, 3)) })]; // option header does not fit
    case 6:
      return [optRecord({ rdata: new Writer().u16(12).u16(r.range(1, 30)).done() })];
    default:
      return [optRecord({ udpSize: r.int(65536), extRcode: r.int(256), zBits: r.int(0x8000) })];
  }
}

/** Hostile ECS variations (each alone in an otherwise good OPT, unless two ECS). */
function badEcs(r: Rng): EdnsOption[] {
  const family = r.chance(0.5) ? 1 : 2;
  const max = family === 1 ? 32 : 128;
  const good = () => ecsOption(family, 24, 0, [10, 0, 0]);
  switch (r.int(9)) {
    case 0:
      return [ecsOption(r.pick([0, 3, 0xffff, r.int(65536)]), 24, 0, [10, 0, 0])];
    case 1: {
      const source = r.range(max + 1, 255);
      return [ecsOption(family, source, 0, r.bytes((source + 7) >> 3))];
    }
    case 2:
      return [ecsOption(family, 24, r.range(1, 255), [10, 0, 0])]; // scope non-zero
    case 3: {
      const source = r.range(0, max);
      const n = (source + 7) >> 3;
      const wrong = r.chance(0.5) ? n + r.range(1, 3) : Math.max(0, n - r.range(1, 2));
      return [ecsOption(family, source, 0, new Uint8Array(wrong === n ? n + 1 : wrong))];
    }
    case 4: {
      const source = r.pick([1, 7, 9, 23, 25, 31, 33 % (max + 1), 127 % (max + 1)]) || 3;
      const a = new Uint8Array((source + 7) >> 3);
      a[a.length - 1] = 0xff; // bits set past the prefix
      return [ecsOption(family, source, 0, a)];
    }
    case 5:
      return [good(), good()]; // two ECS options
    case 6:
      return [{ code: 8, data: r.bytes(r.int(4)) }]; // shorter than its fixed part
    case 7: {
      const source = r.range(0, max);
      return [ecsOption(family, source, 0, ecsAddress(r, family, source))]; // good, in variety
    }
    default: {
      const e = randomEcs(r);
      return [e, randomUnknownOption(r)];
    }
  }
}

/** Pointer games in names: loops, forward pointers, long chains, reserved types. */
function badPointers(r: Rng, spec: QuerySpec): Uint8Array {
  const q = buildQuery({ ...spec, additionals: [], answers: [], authorities: [] });
  const end = q.length; // first record starts here
  switch (r.int(8)) {
    case 0: // pointer in the question
      return buildQuery({ ...spec, qname: new Uint8Array([3, 0x77, 0x77, 0x77, 0xc0, 12]) });
    case 1: // a record owner pointing at itself
      return buildQuery({
        ...spec,
        answers: [record([0xc0 | (end >> 8), end & 0xff], 1, 1, 0, [])],
      });
    case 2: // forward pointer
      return buildQuery({
        ...spec,
        answers: [record([0xc0 | ((end + 20) >> 8), (end + 20) & 0xff], 1, 1, 0, r.bytes(20))],
      });
    case 3: { // a loop of backward pointers: RDATA "a" + pointer to itself, owner points in
      const rd = end + 11; // RDATA of a record with a root owner
      const loop = new Writer().u8(1).u8(0x61).u16(0xc000 | rd).done();
      return buildQuery({
        ...spec,
        answers: [record([0], 16, 1, 0, loop)],
        additionals: [record([0xc0 | (rd >> 8), rd & 0xff], 1, 1, 0, [])],
      });
    }
    case 4: { // a chain of pointers near the hop limit, referenced from a later owner
      const n = r.range(60, 70);
      const start = end + 11; // RDATA of the first answer (root owner + 10)
      const chain = pointerChain(start, n);
      const last = start + 1 + 2 * (n - 1);
      return buildQuery({
        ...spec,
        answers: [record([0], 16, 1, 0, chain)],
        additionals: [record([0xc0 | (last >> 8), last & 0xff], 1, 1, 0, [])],
      });
    }
    case 5: { // reserved label types and long labels in a record owner
      const b = r.pick([0x40, 0x80, 0x41, 0xbf, 64 - 1 + r.range(1, 2)]);
      return buildQuery({ ...spec, additionals: [record([b, 0x61, 0], 1, 1, 0, [])] });
    }
    case 6: { // expanded name over 255 through repeated pointers to long labels
      const label = new Writer().u8(63).bytes(new Uint8Array(63).fill(0x61)).done();
      const w = new Writer().bytes(label).u8(0);
      let prev = end + 11;
      const parts: Uint8Array[] = [record([0], 16, 1, 0, w.done())];
      let at = end + 11 + 65;
      for (let i = 0; i < 5; i++) {
        const o = new Writer().bytes(label).u16(0xc000 | prev).done();
        parts.push(record(o, 1, 1, 0, []));
        prev = at;
        at += o.length + 10;
      }
      return buildQuery({ ...spec, answers: parts });
    }
    default: // pointer into the header
      return buildQuery({ ...spec, additionals: [record([0xc0, r.int(12)], 1, 1, 0, [])] });
  }
}

/** Applies one byte-level mutation. */
function mutateBytes(r: Rng, p: Uint8Array): Uint8Array {
  switch (r.int(6)) {
    case 0: { // bit flips
      const b = p.slice();
      for (let i = r.range(1, 4); i > 0 && b.length > 0; i--) b[r.int(b.length)] ^= 1 << r.int(8);
      return b;
    }
    case 1: // truncation
      return p.slice(0, r.int(p.length + 1));
    case 2: { // inserted bytes
      const at = r.int(p.length + 1);
      const ins = r.bytes(r.range(1, 8));
      const b = new Uint8Array(p.length + ins.length);
      b.set(p.subarray(0, at));
      b.set(ins, at);
      b.set(p.subarray(at), at + ins.length);
      return b;
    }
    case 3: { // removed bytes
      const at = r.int(p.length + 1);
      const n = r.range(1, 8);
      const b = new Uint8Array(Math.max(0, p.length - Math.min(n, p.length - at)));
      b.set(p.subarray(0, at));
      b.set(p.subarray(Math.min(p.length, at + n)), at);
      return b;
    }
    case 4: { // a random byte value somewhere in the first 40
      const b = p.slice();
      if (b.length > 0) b[r.int(Math.min(40, b.length))] = r.int(256);
      return b;
    }
    default: { // random counts
      const b = p.slice();
      if (b.length >= 12) {
        const at = 4 + 2 * r.int(4);
        const v = r.pick([0, 1, 2, 3, 0xffff, r.int(65536)]);
        b[at] = v >> 8;
        b[at + 1] = v & 0xff;
      }
      return b;
    }
  }
}

/**
 * `count` hostile packets: byte-level mutations of good queries, bad names (labels over 63,
 * names over 255), compression loops and forward pointers, OPT and ECS violations, other
 * opcodes, responses, trailing garbage, short and purely random packets.
 */
export function mutatedPackets(seed: number, count: number, zone: string): Uint8Array[] {
  const r = new Rng(seed);
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const spec = randomQuerySpec(r, zone);
    let p: Uint8Array;
    switch (r.int(14)) {
      case 0:
      case 1:
      case 2:
        p = mutateBytes(r, buildQuery(spec));
        break;
      case 3: { // label length over 63 in the question
        const w = new Writer().u8(r.range(64, 0xbf));
        w.bytes(new Uint8Array(r.int(80)).fill(0x61)).u8(0);
        p = buildQuery({ ...spec, qname: w.done() });
        break;
      }
      case 4: { // a name of 256 octets or more, labels legal
        const labels = [];
        for (let n = 0; n < 4; n++) labels.push("b".repeat(63));
        labels.push("c".repeat(r.range(1, 3)));
        p = buildQuery({ ...spec, qname: labels.join(".") });
        break;
      }
      case 5:
        p = badPointers(r, spec);
        break;
      case 6:
        p = buildQuery({ ...spec, additionals: badOpt(r) });
        break;
      case 7:
        p = buildQuery({
          ...spec,
          additionals: [optRecord({ dnssecOk: r.chance(0.5), options: badEcs(r) })],
        });
        break;
      case 8: // trailing garbage
        p = buildQuery({ ...spec, trailing: r.bytes(r.range(1, 16)) });
        break;
      case 9: // other opcodes, sometimes with a broken tail or no question
        p = buildQuery({
          ...spec,
          flags: (spec.flags ?? 0) | (r.range(1, 15) << 11),
          qdcount: r.chance(0.2) ? r.pick([0, 2]) : undefined,
          trailing: r.chance(0.3) ? r.bytes(3) : undefined,
        });
        if (r.chance(0.3)) p = mutateBytes(r, p);
        break;
      case 10: // responses
        p = buildQuery({ ...spec, flags: (spec.flags ?? 0) | 0x8000 });
        break;
      case 11: // QDCOUNT 0 or 2, OPT in the wrong section
        p = r.chance(0.5)
          ? buildQuery({ ...spec, qdcount: r.pick([0, 2, 2, 0xffff]) })
          : buildQuery({ ...spec, answers: [optRecord({})], additionals: [] });
        break;
      case 12: // short packets
        p = r.bytes(r.int(13));
        break;
      default: // pure random bytes, sometimes with a plausible header
        p = r.bytes(r.int(600));
        if (p.length >= 12 && r.chance(0.5)) {
          p[2] &= 0x7f;
          p[4] = 0;
          p[5] = 1;
        }
    }
    out.push(p);
  }
  return out;
}

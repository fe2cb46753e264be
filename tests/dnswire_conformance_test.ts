/**
 * One conformance suite for both DNS wire codecs (reference and WASM): golden parse and
 * response tables, hostile inputs, truncation at every offset, the size cap, and API misuse.
 * A case a codec cannot pass is listed in SKIPS by name with the reason.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import dnsPacket from "dns-packet";
import { ReferenceCodec } from "../lib/dnswire/reference.ts";
import { createWasmCodec, createWasmCodecFrom } from "../lib/dnswire/wasm.ts";
import {
  type DnsCodec,
  newQuery,
  Owner,
  ParseStatus,
  type Query,
  Rcode,
  Section,
  type ZoneConfig,
} from "../lib/dnswire/types.ts";
import { buildQuery, ecsOption, nameWire, optRecord, record, Writer } from "./_dns_packets.ts";
import { CODECS, testZone } from "./_dns_codecs.ts";

const ZONE: ZoneConfig = testZone({ serial: 2024010101, expire: 1209600 });

/** codec name → case name → why it is skipped. Empty: both codecs pass every case. */
const SKIPS: Record<string, Record<string, string>> = { reference: {}, wasm: {} };

function codecTest(codec: string, name: string, fn: (c: DnsCodec) => void): void {
  const reason = SKIPS[codec]?.[name];
  const factory = CODECS.find(([n]) => n === codec)![1];
  Deno.test({
    name: `dnswire ${codec}: ${name}${reason ? ` (skipped: ${reason})` : ""}`,
    ignore: reason !== undefined,
    fn: () => {
      const c = factory();
      c.configure(ZONE);
      fn(c);
    },
  });
}

/** Copies `p` to a scratch slot and parses it. */
function parseAt(c: DnsCodec, p: Uint8Array, slot = 0): [Query, number] {
  const ptr = c.scratchBase + slot * 4096;
  c.memory.set(p, ptr);
  const q = newQuery();
  c.parse(ptr, p.length, q);
  return [q, ptr];
}

/** A query encoded by npm:dns-packet (an encoder independent of ours). */
function dpQuery(
  name: string,
  type: string,
  opts: { flags?: number; id?: number; opt?: Record<string, unknown> } = {},
): Uint8Array {
  const additionals = opts.opt ? [{ type: "OPT", name: ".", ...opts.opt }] : [];
  const packet = {
    type: "query",
    id: opts.id ?? 0x4242,
    flags: opts.flags ?? 0x100,
    questions: [{ type, name }],
    additionals,
  };
  // deno-lint-ignore no-explicit-any
  return new Uint8Array(dnsPacket.encode(packet as any));
}

function hex(s: string): Uint8Array {
  const clean = s.replace(/#[^\n]*/g, "").replace(/\s+/g, "");
  return Uint8Array.from(clean.match(/../g) ?? [], (b) => parseInt(b, 16));
}

// ---- Golden parse table ----------------------------------------------------------------------

interface ParseCase {
  name: string;
  packet: Uint8Array;
  expect: Partial<Omit<Query, "ecsAddress">> & { ecsAddress?: number[] };
}

const ECS_V4 = { code: "CLIENT_SUBNET", family: 1, sourcePrefixLength: 24, scopePrefixLength: 0 };

const PARSE_CASES: ParseCase[] = [
  {
    name: "apex A, no EDNS",
    packet: dpQuery("cdn.test", "A", { id: 0xbeef }),
    expect: {
      status: ParseStatus.OK,
      id: 0xbeef,
      opcode: 0,
      rd: true,
      cd: false,
      qtype: 1,
      qclass: 1,
      questionEnd: 26,
      qnameLength: 10,
      zoneOffset: 12,
      labelsBeforeZone: 0,
      edns: false,
      udpSize: 0,
      ecsFamily: 0,
    },
  },
  {
    name: "subdomain AAAA, mixed case, CD, EDNS DO, ECS v4/24",
    packet: dpQuery("Www.Img.CDN.TeSt", "AAAA", {
      flags: 0x0110,
      opt: {
        udpPayloadSize: 4096,
        flags: dnsPacket.DNSSEC_OK,
        options: [{ ...ECS_V4, ip: "192.0.2.0" }],
      },
    }),
    expect: {
      status: ParseStatus.OK,
      rd: true,
      cd: true,
      qtype: 28,
      qnameLength: 18,
      zoneOffset: 20,
      labelsBeforeZone: 2,
      edns: true,
      udpSize: 4096,
      ednsVersion: 0,
      dnssecOk: true,
      ecsFamily: 1,
      ecsSourcePrefix: 24,
      ecsAddress: [192, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    },
  },
  {
    name: "ECS v6/56 with an unknown option (cookie) before it",
    packet: buildQuery({
      qname: "a.cdn.test",
      additionals: [optRecord({
        options: [
          { code: 10, data: new Uint8Array(8).fill(7) },
          ecsOption(2, 56, 0, [
            0x20,
            0x01,
            0x0d,
            0xb8,
            0,
            1,
            2,
          ]),
        ],
      })],
    }),
    expect: {
      status: ParseStatus.OK,
      edns: true,
      ecsFamily: 2,
      ecsSourcePrefix: 56,
      ecsAddress: [0x20, 1, 0x0d, 0xb8, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    },
  },
  {
    name: "ECS source 0 (no address bytes)",
    packet: buildQuery({ additionals: [optRecord({ options: [ecsOption(1, 0, 0, [])] })] }),
    expect: { status: ParseStatus.OK, ecsFamily: 1, ecsSourcePrefix: 0 },
  },
  {
    name: "ECS source 23 with the last bit inside the prefix set",
    packet: buildQuery({
      additionals: [optRecord({ options: [ecsOption(1, 23, 0, [10, 1, 0xfe])] })],
    }),
    expect: {
      status: ParseStatus.OK,
      ecsSourcePrefix: 23,
      ecsAddress: [10, 1, 0xfe, ...zeros(13)],
    },
  },
  {
    name: "out of zone",
    packet: dpQuery("example.org", "A"),
    expect: { status: ParseStatus.OK, zoneOffset: -1, labelsBeforeZone: -1, qnameLength: 13 },
  },
  {
    name: "look-alike suffix xcdn.test is out of zone",
    packet: dpQuery("xcdn.test", "A"),
    expect: { status: ParseStatus.OK, zoneOffset: -1, labelsBeforeZone: -1 },
  },
  {
    name: "parent of the zone is out of zone",
    packet: dpQuery("test", "NS"),
    expect: { status: ParseStatus.OK, zoneOffset: -1, qtype: 2 },
  },
  {
    name: "root name",
    packet: buildQuery({ qname: new Uint8Array([0]), qtype: 2 }),
    expect: { status: ParseStatus.OK, qnameLength: 1, questionEnd: 17, zoneOffset: -1 },
  },
  {
    name: "a 255-octet name is legal",
    packet: buildQuery({
      qname: `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(52)}.cdn.test`,
    }),
    expect: { status: ParseStatus.OK, qnameLength: 255, labelsBeforeZone: 4, zoneOffset: 12 + 245 },
  },
  {
    name: "a 63-octet label is legal",
    packet: buildQuery({ qname: `${"x".repeat(63)}.cdn.test` }),
    expect: { status: ParseStatus.OK, labelsBeforeZone: 1 },
  },
  {
    name: "EDNS version 1 is BADVERS, options not interpreted",
    packet: buildQuery({
      additionals: [optRecord({ version: 1, dnssecOk: true, rdata: new Uint8Array([1, 2, 3]) })],
    }),
    expect: {
      status: ParseStatus.BADVERS,
      edns: true,
      ednsVersion: 1,
      dnssecOk: true,
      ecsFamily: 0,
    },
  },
  {
    name: "opcode NOTIFY is NOTIMP with the question",
    packet: buildQuery({ flags: 4 << 11, qname: "cdn.test", qtype: 6 }),
    expect: { status: ParseStatus.NOTIMP, opcode: 4, qtype: 6, qnameLength: 10, zoneOffset: 12 },
  },
  {
    name: "opcode UPDATE with QDCOUNT 0 is NOTIMP without a question",
    packet: buildQuery({ flags: 5 << 11, noQuestion: true }),
    expect: { status: ParseStatus.NOTIMP, opcode: 5, qnameLength: 0, questionEnd: 12 },
  },
  {
    name: "opcode 2 with EDNS keeps the EDNS fields",
    packet: buildQuery({ flags: 2 << 11, additionals: [optRecord({ dnssecOk: true })] }),
    expect: { status: ParseStatus.NOTIMP, edns: true, dnssecOk: true, udpSize: 1232 },
  },
  {
    name: "opcode 2 with a broken tail keeps the question, drops EDNS",
    packet: buildQuery({
      flags: 2 << 11,
      additionals: [optRecord({ dnssecOk: true })],
      trailing: new Uint8Array([1]),
    }),
    expect: { status: ParseStatus.NOTIMP, edns: false, qnameLength: 10 },
  },
  {
    name: "a response (QR=1) is dropped",
    packet: buildQuery({ flags: 0x8100 }),
    expect: { status: ParseStatus.DROP, id: 0x1234, rd: true },
  },
  {
    name: "11 bytes are dropped",
    packet: new Uint8Array(11),
    expect: { status: ParseStatus.DROP, id: 0, questionEnd: 12 },
  },
  {
    name: "a compressed record owner pointing at the question is legal",
    packet: buildQuery({ additionals: [record([0xc0, 12], 1, 1, 0, [1, 2, 3, 4])] }),
    expect: { status: ParseStatus.OK },
  },
  {
    name: "a pointer chain of exactly 64 hops is legal",
    packet: chainQuery(64),
    expect: { status: ParseStatus.OK },
  },
];

function zeros(n: number): number[] {
  return new Array(n).fill(0);
}

/** A query whose additional record's owner follows a chain of `hops` pointers. */
function chainQuery(hops: number): Uint8Array {
  const end = buildQuery({}).length;
  const start = end + 11; // RDATA of an answer with a root owner
  const chain = new Writer().u8(0);
  for (let i = 0; i < hops - 1; i++) {
    chain.u16(0xc000 | (i === 0 ? start : start + 1 + 2 * (i - 1)));
  }
  const last = hops === 1 ? start : start + 1 + 2 * (hops - 2);
  return buildQuery({
    answers: [record([0], 16, 1, 0, chain.done())],
    additionals: [record([0xc0 | (last >> 8), last & 0xff], 1, 1, 0, [])],
  });
}

// ---- Hostile table: each is FORMERR unless said otherwise -------------------------------------

/** Hostile cases whose question does not parse: their FORMERR is a bare header. */
const BAD_QUESTION = new Set([
  "QDCOUNT 0",
  "QDCOUNT 0 with an OPT record (dig +header-only)",
  "QDCOUNT 2",
  "QDCOUNT 2 with two questions",
  "QDCOUNT 2 with two questions and an OPT record",
  "pointer in the question",
  "pointer in the question, with an OPT record",
  "label of 64 octets",
  "reserved label type 0x40",
  "reserved label type 0x80",
  "name of 256 octets",
  "question without QTYPE/QCLASS",
]);
/** Hostile cases with a well-formed OPT record (an option in it, or what follows, is bad). */
const WELL_FORMED_OPT = new Set([
  "QDCOUNT 0 with an OPT record (dig +header-only)",
  "QDCOUNT 2 with two questions and an OPT record",
  "pointer in the question, with an OPT record",
  "ARCOUNT larger than the records",
  "two OPT records",
  "OPT options not filling RDLENGTH",
  "OPT option header cut",
  "ECS family 3",
  "ECS family 0",
  "ECS IPv4 prefix 33",
  "ECS IPv6 prefix 129",
  "ECS scope not 0",
  "ECS address too long",
  "ECS address too short",
  "ECS non-zero bits past the prefix",
  "ECS option shorter than 4",
  "two ECS options",
  "trailing garbage after OPT",
]);

const FORMERR_CASES: [string, Uint8Array][] = [
  ["QDCOUNT 0", buildQuery({ noQuestion: true })],
  [
    "QDCOUNT 0 with an OPT record (dig +header-only)",
    buildQuery({ noQuestion: true, additionals: [optRecord({})] }),
  ],
  ["QDCOUNT 2", buildQuery({ qdcount: 2 })],
  [
    "QDCOUNT 2 with two questions",
    (() => {
      const one = buildQuery({});
      const w = new Writer().bytes(one).bytes(one.subarray(12));
      return w.set16(4, 2).done();
    })(),
  ],
  [
    "QDCOUNT 2 with two questions and an OPT record",
    (() => {
      const one = buildQuery({});
      const w = new Writer().bytes(one).bytes(one.subarray(12)).bytes(optRecord({}));
      return w.set16(4, 2).set16(10, 1).done();
    })(),
  ],
  ["pointer in the question", buildQuery({ qname: new Uint8Array([1, 0x61, 0xc0, 12]) })],
  [
    "pointer in the question, with an OPT record",
    // "a" then a pointer to offset 4, QDCOUNT's zero high byte: a name, but not one we answer.
    buildQuery({ qname: new Uint8Array([1, 0x61, 0xc0, 4]), additionals: [optRecord({})] }),
  ],
  ["label of 64 octets", buildQuery({ qname: `${"x".repeat(64)}.cdn.test` })],
  ["reserved label type 0x40", buildQuery({ qname: new Uint8Array([0x41, 0x61, 0]) })],
  ["reserved label type 0x80", buildQuery({ qname: new Uint8Array([0x81, 0x61, 0]) })],
  [
    "name of 256 octets",
    buildQuery({
      qname: `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(53)}.cdn.test`,
    }),
  ],
  ["question without QTYPE/QCLASS", buildQuery({}).slice(0, 24)],
  [
    "record owner pointing at itself",
    (() => {
      const end = buildQuery({}).length;
      return buildQuery({ answers: [record([0xc0, end], 1, 1, 0, [])] });
    })(),
  ],
  [
    "forward pointer",
    (() => {
      const end = buildQuery({}).length;
      return buildQuery({ answers: [record([0xc0, end + 2], 1, 1, 0, [0, 0])] });
    })(),
  ],
  [
    "pointer loop through backward pointers",
    (() => {
      const end = buildQuery({}).length;
      const rd = end + 11;
      return buildQuery({
        answers: [record([0], 16, 1, 0, [1, 0x61, 0xc0 | (rd >> 8), rd & 0xff])],
        additionals: [record([0xc0 | (rd >> 8), rd & 0xff], 1, 1, 0, [])],
      });
    })(),
  ],
  ["pointer chain of 65 hops", chainQuery(65)],
  [
    "expanded record owner over 255 octets",
    (() => {
      const end = buildQuery({}).length;
      const label = [63, ...new Array(63).fill(0x61)];
      const first = end + 11;
      const parts = [record([0], 16, 1, 0, [...label, 0])];
      let prev = first, at = first + 65;
      for (let i = 0; i < 4; i++) {
        parts.push(record([...label, 0xc0 | (prev >> 8), prev & 0xff], 1, 1, 0, []));
        prev = at;
        at += 66 + 10;
      }
      return buildQuery({ answers: parts });
    })(),
  ],
  [
    "reserved label type in a record owner",
    buildQuery({
      additionals: [record([0x80, 0], 1, 1, 0, [])],
    }),
  ],
  [
    "RDLENGTH past the end",
    (() => {
      const p = buildQuery({ additionals: [record([0], 16, 1, 0, [1, 2, 3])] });
      p[p.length - 4] = 9;
      return p;
    })(),
  ],
  ["ARCOUNT larger than the records", buildQuery({ arcount: 2, additionals: [optRecord({})] })],
  ["two OPT records", buildQuery({ additionals: [optRecord({}), optRecord({})] })],
  ["OPT with a non-root owner", buildQuery({ additionals: [optRecord({ owner: nameWire("a") })] })],
  ["OPT in the answer section", buildQuery({ answers: [optRecord({})] })],
  [
    "OPT options not filling RDLENGTH",
    buildQuery({
      additionals: [optRecord({ rdata: new Uint8Array([0, 10, 0, 4, 1, 2]) })],
    }),
  ],
  [
    "OPT option header cut",
    buildQuery({ additionals: [optRecord({ rdata: new Uint8Array([0, 10]) })] }),
  ],
  ["ECS family 3", buildQuery({ additionals: [optRecord({ options: [ecsOption(3, 0, 0, [])] })] })],
  ["ECS family 0", buildQuery({ additionals: [optRecord({ options: [ecsOption(0, 0, 0, [])] })] })],
  [
    "ECS IPv4 prefix 33",
    buildQuery({
      additionals: [optRecord({ options: [ecsOption(1, 33, 0, [1, 2, 3, 4, 0])] })],
    }),
  ],
  [
    "ECS IPv6 prefix 129",
    buildQuery({
      additionals: [optRecord({ options: [ecsOption(2, 129, 0, zeros(17))] })],
    }),
  ],
  [
    "ECS scope not 0",
    buildQuery({
      additionals: [optRecord({ options: [ecsOption(1, 24, 24, [10, 0, 0])] })],
    }),
  ],
  [
    "ECS address too long",
    buildQuery({
      additionals: [optRecord({ options: [ecsOption(1, 24, 0, [10, 0, 0, 0])] })],
    }),
  ],
  [
    "ECS address too short",
    buildQuery({
      additionals: [optRecord({ options: [ecsOption(1, 24, 0, [10, 0])] })],
    }),
  ],
  [
    "ECS non-zero bits past the prefix",
    buildQuery({
      additionals: [optRecord({ options: [ecsOption(1, 23, 0, [10, 0, 1])] })],
    }),
  ],
  [
    "ECS option shorter than 4",
    buildQuery({
      additionals: [optRecord({ options: [{ code: 8, data: new Uint8Array([0, 1, 0]) }] })],
    }),
  ],
  [
    "two ECS options",
    buildQuery({
      additionals: [optRecord({ options: [ecsOption(1, 8, 0, [10]), ecsOption(1, 8, 0, [10])] })],
    }),
  ],
  ["trailing garbage", buildQuery({ trailing: new Uint8Array([0]) })],
  [
    "trailing garbage after OPT",
    buildQuery({
      additionals: [optRecord({})],
      trailing: new Uint8Array([0xde, 0xad]),
    }),
  ],
];

// ---- Golden responses (bytes written out by hand from RFC 1035 §4.1) ---------------------------

/** `dig cdn.test A +dnssec +subnet=192.0.2.0/24` with RD and CD, id 0xbeef, payload 4096. */
const APEX_QUERY = hex(`
  beef 0110 0001 0000 0000 0001                  # id, RD+CD, QD 1, AR 1
  03 63646e 04 74657374 00 0001 0001             # cdn.test A IN (offset 12)
  00 0029 1000 00 00 8000 000b                   # OPT, 4096, v0, DO, rdlen 11
  0008 0007 0001 18 00 c00002                    # ECS v4 /24 scope 0 192.0.2
`);

/** Expected bytes of the apex answer: A, NS in AUTHORITY, NS glue, SOA in AUTHORITY, OPT. */
const APEX_EXPECTED = hex(`
  beef 8510 0001 0001 0002 0002                  # QR AA RD CD NOERROR; AN 1 NS 2 AR 2
  03 63646e 04 74657374 00 0001 0001             # question, as sent
  c00c 0001 0001 0000001e 0004 7f00000b          # cdn.test 30 IN A 127.0.0.11 (offset 26)
  c00c 0002 0001 0000012c 0006 03 6e7331 c00c    # cdn.test 300 IN NS ns1.cdn.test (ns1 at 54)
  c00c 0006 0001 0000003c 0023                   # cdn.test 60 IN SOA (RFC 2308 min), rdlen 35
    c036                                         #   MNAME: pointer to ns1.cdn.test
    0a 686f73746d6173746572 c00c                 #   RNAME hostmaster.cdn.test
    78a3f175 00000e10 00000258 00127500 0000003c #   serial refresh retry expire minimum
  c036 0001 0001 0000012c 0004 7f000001          # ns1.cdn.test 300 IN A 127.0.0.1
  00 0029 04d0 00 00 8000 000b                   # OPT 1232, ext 0, v0, DO, rdlen 11
  0008 0007 0001 18 18 c00002                    # ECS echoed, scope 24
`);

/** An out-of-zone REFUSED with SOA and NS written in full, then compressed against each other. */
const OUT_QUERY = hex(`
  0007 0000 0001 0000 0000 0000
  07 6578616d706c65 03 6f7267 00 0001 0001       # example.org A IN
`);
const OUT_EXPECTED = hex(`
  0007 8005 0001 0000 0002 0001                  # QR REFUSED; NS 2 AR 1, no OPT
  07 6578616d706c65 03 6f7267 00 0001 0001
  03 63646e 04 74657374 00 0006 0001 0000003c 0027   # cdn.test (full, at 29) SOA, rdlen 39
    03 6e7331 c01d                               #   ns1.cdn.test (ns1 at 49)
    0a 686f73746d6173746572 c01d                 #   hostmaster.cdn.test
    78a3f175 00000e10 00000258 00127500 0000003c
  c01d 0002 0001 0000012c 0002 c031              # cdn.test NS -> ns1 (pointer)
  c031 001c 0001 00000005 0010 20010db8000000000000000000000001  # ns1 AAAA 2001:db8::1
`);

for (const [codec] of CODECS) {
  for (const c of PARSE_CASES) {
    codecTest(codec, `parse: ${c.name}`, (dc) => {
      const [q] = parseAt(dc, c.packet, 3);
      const got = { ...q, ecsAddress: [...q.ecsAddress] };
      for (const [k, v] of Object.entries(c.expect)) {
        assert.deepEqual(got[k as keyof typeof got], v, `field ${k}`);
      }
    });
  }

  for (const [name, packet] of FORMERR_CASES) {
    codecTest(codec, `hostile: ${name} → FORMERR`, (dc) => {
      const [q, ptr] = parseAt(dc, packet, 1);
      assert.equal(q.status, ParseStatus.FORMERR);
      // RFC 6891 §7: the question is echoed when it parsed, and the OPT record kept when the
      // query's was well-formed (only an option in it, or what follows, was not).
      const question = !BAD_QUESTION.has(name);
      assert.equal(q.qnameLength > 0, question, "question parsed");
      assert.equal(q.edns, WELL_FORMED_OPT.has(name), "OPT kept");
      assert.equal(q.ecsFamily, 0);
      dc.begin(ptr, q, Rcode.FORMERR, false, 512);
      const n = dc.finish(0);
      assert.equal(n, q.questionEnd + (q.edns ? 11 : 0));
      const m = dc.memory.subarray(ptr, ptr + n);
      assert.deepEqual([...m.subarray(0, 2)], [...packet.subarray(0, 2)]);
      assert.equal(m[2] & 0x80, 0x80);
      assert.equal(m[3] & 15, Rcode.FORMERR);
      assert.deepEqual([...m.subarray(4, 12)], [
        0,
        question ? 1 : 0,
        0,
        0,
        0,
        0,
        0,
        q.edns ? 1 : 0,
      ]);
      assert.deepEqual([...m.subarray(12, q.questionEnd)], [...packet.subarray(12, q.questionEnd)]);
      if (q.edns) {
        // Root owner, TYPE OPT, our payload size, extended RCODE 0, version 0, no options.
        assert.deepEqual([...m.subarray(q.questionEnd, q.questionEnd + 5)], [0, 0, 41, 4, 0xd0]);
      }
    });
  }

  codecTest(codec, "hostile: truncated at every offset of a valid EDNS+ECS query", (dc) => {
    for (let n = 0; n < APEX_QUERY.length; n++) {
      const [q] = parseAt(dc, APEX_QUERY.subarray(0, n), 2);
      assert.equal(q.status, n < 12 ? ParseStatus.DROP : ParseStatus.FORMERR, `length ${n}`);
    }
    const [q] = parseAt(dc, APEX_QUERY, 2);
    assert.equal(q.status, ParseStatus.OK);
  });

  codecTest(codec, "golden response: apex A with NS, SOA, glue and ECS echo", (dc) => {
    const [q, ptr] = parseAt(dc, APEX_QUERY, 5);
    dc.begin(ptr, q, Rcode.NOERROR, true, 1232);
    dc.addA(Section.ANSWER, Owner.QNAME, 30, 0x7f00000b);
    dc.addNS(Section.AUTHORITY);
    dc.addSOA(Section.AUTHORITY);
    dc.addA(Section.ADDITIONAL, Owner.NSHOST, 300, 0x7f000001);
    const len = dc.finish(24);
    assert.deepEqual([...dc.memory.subarray(ptr, ptr + len)], [...APEX_EXPECTED]);
  });

  codecTest(codec, "golden response: out of zone REFUSED writes the zone once", (dc) => {
    const [q, ptr] = parseAt(dc, OUT_QUERY, 6);
    assert.equal(q.zoneOffset, -1);
    dc.begin(ptr, q, Rcode.REFUSED, false, 512);
    dc.addSOA(Section.AUTHORITY);
    dc.addNS(Section.AUTHORITY);
    dc.addAAAA(Section.ADDITIONAL, Owner.NSHOST, 5, 0x20010db8, 0, 0, 1);
    const len = dc.finish(0);
    assert.deepEqual([...dc.memory.subarray(ptr, ptr + len)], [...OUT_EXPECTED]);
  });

  codecTest(codec, "golden response: dns-packet decodes a NODATA with SOA", (dc) => {
    const p = dpQuery("Img.cdn.test", "MX", { opt: { udpPayloadSize: 1400 } });
    const [q, ptr] = parseAt(dc, p, 7);
    dc.begin(ptr, q, Rcode.NOERROR, true, 1232);
    dc.addSOA(Section.AUTHORITY);
    const d = dnsPacket.decode(Buffer.from(dc.memory.subarray(ptr, ptr + dc.finish(0))));
    assert.equal(d.type, "response");
    assert.equal(d.flag_aa, true);
    assert.equal(d.questions?.[0].name, "Img.cdn.test");
    assert.equal(d.answers?.length, 0);
    // deno-lint-ignore no-explicit-any
    const soa = d.authorities?.[0] as any;
    assert.equal(soa.name, "cdn.test");
    assert.equal(soa.ttl, 60);
    assert.deepEqual(soa.data, {
      mname: "ns1.cdn.test",
      rname: "hostmaster.cdn.test",
      serial: ZONE.serial,
      refresh: ZONE.refresh,
      retry: ZONE.retry,
      expire: ZONE.expire,
      minimum: ZONE.minimum,
    });
    // deno-lint-ignore no-explicit-any
    const opt = d.additionals?.[0] as any;
    assert.equal(opt.type, "OPT");
    assert.equal(opt.udpPayloadSize, 1232);
    assert.equal(opt.flag_do, false);
    assert.deepEqual(opt.options, []);
  });

  codecTest(codec, "golden response: BADVERS puts extended RCODE 1 in OPT", (dc) => {
    const p = buildQuery({ id: 9, additionals: [optRecord({ version: 3, dnssecOk: true })] });
    const [q, ptr] = parseAt(dc, p, 8);
    assert.equal(q.status, ParseStatus.BADVERS);
    dc.begin(ptr, q, Rcode.BADVERS, false, 512);
    const len = dc.finish(0);
    const expect = new Writer().u16(9).u16(0x8100).u16(1).u16(0).u16(0).u16(1)
      .bytes(p.subarray(12, 26)).bytes(hex("00 0029 04d0 01 00 8000 0000")).done();
    assert.deepEqual([...dc.memory.subarray(ptr, ptr + len)], [...expect]);
  });

  codecTest(
    codec,
    "golden response: NOTIMP echoes the question and OPT without ECS, RD and CD clear",
    (dc) => {
      const p = buildQuery({
        flags: (4 << 11) | 0x100 | 0x10, // NOTIFY with RD and CD
        additionals: [optRecord({ options: [ecsOption(1, 8, 0, [10])] })],
      });
      const [q, ptr] = parseAt(dc, p, 9);
      assert.equal(q.status, ParseStatus.NOTIMP);
      dc.begin(ptr, q, Rcode.NOTIMP, false, 512);
      const len = dc.finish(8);
      // genreport's opcodeflg: RD and CD are not copied into NOTIMP.
      assert.deepEqual([dc.memory[ptr + 2] & 0x01, dc.memory[ptr + 3] & 0x10], [0, 0]);
      const d = dnsPacket.decode(Buffer.from(dc.memory.subarray(ptr, ptr + len)));
      assert.equal(d.opcode, "NOTIFY");
      assert.equal(d.rcode, "NOTIMP");
      assert.equal(d.questions?.length, 1);
      // deno-lint-ignore no-explicit-any
      assert.deepEqual((d.additionals?.[0] as any).options, []);
    },
  );

  codecTest(codec, "size cap: a record past the limit sets TC and drops every later one", (dc) => {
    const [q, ptr] = parseAt(dc, APEX_QUERY, 10);
    // Header+question 26, OPT reserve 11+8+3 = 22; an A record takes 16, an AAAA 28.
    const limit = 26 + 22 + 16 * 3 + 16;
    dc.begin(ptr, q, Rcode.NOERROR, true, limit);
    for (let i = 0; i < 3; i++) dc.addA(Section.ANSWER, Owner.QNAME, 30, i);
    dc.addAAAA(Section.ANSWER, Owner.QNAME, 30, 1, 2, 3, 4); // does not fit: TC
    dc.addA(Section.ADDITIONAL, Owner.QNAME, 30, 9); // would fit, dropped all the same
    const len = dc.finish(0);
    assert.equal(len, 26 + 16 * 3 + 22);
    const d = dnsPacket.decode(Buffer.from(dc.memory.subarray(ptr, ptr + len)));
    assert.equal(d.flag_tc, true);
    assert.equal(d.answers?.length, 3);
    assert.equal(d.additionals?.length, 1);
    assert.equal(d.additionals?.[0].type, "OPT");
  });

  codecTest(codec, "regression: names written past 0x4000 are written in full", (dc) => {
    // Found by coverage of the differential test: past 16 KiB a name cannot be pointed to.
    const [q, ptr] = parseAt(dc, OUT_QUERY, 17);
    dc.begin(ptr, q, Rcode.NOERROR, false, 65535);
    for (let i = 0; i < 600; i++) dc.addAAAA(Section.ANSWER, Owner.QNAME, 1, i, 0, 0, 1);
    dc.addSOA(Section.AUTHORITY); // at 29 + 600 * 28 = 16829 > 0x4000
    dc.addNS(Section.AUTHORITY);
    dc.addA(Section.ADDITIONAL, Owner.NSHOST, 5, 0x7f000001);
    const len = dc.finish(0);
    const soaAt = OUT_QUERY.length + 600 * 28;
    // SOA: zone, MNAME and RNAME all in full (10 + 10 + 4 + 10 + 11 + 10 + 20 octets).
    assert.equal(len, soaAt + (10 + 10 + 14 + 21 + 20) + (10 + 10 + 14) + (14 + 10 + 4));
    const m = dc.memory.subarray(ptr, ptr + len);
    for (let i = soaAt; i < len - 1; i++) {
      if ((m[i] & 0xc0) === 0xc0 && ((m[i] & 0x3f) << 8 | m[i + 1]) >= 0x4000) {
        // Only a length byte or data could look like this; there are no such bytes here.
        assert.fail(`pointer-like bytes at ${i}`);
      }
    }
    const d = dnsPacket.decode(Buffer.from(m));
    // deno-lint-ignore no-explicit-any
    const soa = d.authorities?.[0] as any;
    assert.equal(soa.name, "cdn.test");
    assert.equal(soa.data.mname, "ns1.cdn.test");
    assert.equal(soa.data.rname, "h.cdn.test".replace("h.", "hostmaster."));
    assert.equal(d.authorities?.[1].name, "cdn.test");
    assert.equal(d.additionals?.[0].name, "ns1.cdn.test");
  });

  codecTest(codec, "size cap: limit is clamped to [12, 65535]", (dc) => {
    const [q, ptr] = parseAt(dc, OUT_QUERY, 11);
    dc.begin(ptr, q, Rcode.NOERROR, false, 0); // clamped to 12: the question alone exceeds it
    dc.addA(Section.ANSWER, Owner.QNAME, 1, 1);
    const len = dc.finish(0);
    assert.equal(len, OUT_QUERY.length); // header and question are always written
    assert.equal(dc.memory[ptr + 2] & 0x02, 0x02);
    const [q2, ptr2] = parseAt(dc, OUT_QUERY, 12);
    dc.begin(ptr2, q2, Rcode.NOERROR, false, 1e9);
    for (let i = 0; i < 5000; i++) dc.addA(Section.ANSWER, Owner.QNAME, 1, i);
    const len2 = dc.finish(0);
    assert.ok(len2 <= 65535 && len2 > 65535 - 16, `length ${len2}`);
    assert.equal(dc.memory[ptr2 + 2] & 0x02, 0x02);
  });

  codecTest(codec, "API: bad arguments throw clear errors and change nothing", (dc) => {
    const q = newQuery();
    assert.throws(() => dc.parse(0, 12, q), RangeError);
    assert.throws(() => dc.parse(dc.scratchBase, 70000, q), RangeError);
    assert.throws(() => dc.parse(dc.memory.length - 4, 12, q), RangeError);
    assert.throws(() => dc.addA(0, 0, 1, 1), /call begin first/);
    assert.throws(() => dc.finish(0), /call begin first/);
    const [qq, ptr] = parseAt(dc, OUT_QUERY, 13);
    assert.throws(() => dc.begin(ptr, qq, 5000, false, 512), RangeError);
    assert.throws(() => dc.begin(ptr, { ...qq, questionEnd: 9999 }, 0, false, 512), TypeError);
    assert.throws(() => dc.begin(dc.memory.length - 40, qq, 0, false, 512), /end of codec memory/);
    dc.begin(ptr, qq, 0, false, 512);
    assert.throws(() => dc.addA(3, 0, 1, 1), RangeError);
    assert.throws(() => dc.addA(0, 0, -1, 1), RangeError);
    assert.throws(() => dc.addA(0, 0, 1, 2 ** 33), RangeError);
    assert.throws(() => dc.addSOA(7), RangeError);
    // One name server host configured: host 1 and owner NSHOST + 1 do not exist.
    assert.throws(() => dc.addNS(0, 1), /host must be 0\.\.0/);
    assert.throws(() => dc.addA(0, Owner.NSHOST + 1, 1, 1), /owner 0\.\.1/);
    assert.throws(() => dc.finish(129), RangeError);
    assert.equal(dc.finish(0), OUT_QUERY.length); // nothing was written by the failed calls
  });

  codecTest(codec, "API: Owner.QNAME without a question and IPv4 scope > 32 are refused", (dc) => {
    const [q, ptr] = parseAt(dc, buildQuery({ noQuestion: true }), 14);
    dc.begin(ptr, q, Rcode.FORMERR, false, 512);
    assert.throws(() => dc.addA(0, Owner.QNAME, 1, 1), /no question/);
    dc.addNS(Section.AUTHORITY); // the zone is then written in full
    assert.equal(dc.finish(0), 12 + 10 + 10 + 6);
    const [q2, ptr2] = parseAt(dc, APEX_QUERY, 15);
    dc.begin(ptr2, q2, 0, false, 512);
    assert.throws(() => dc.finish(33), /at most 32/);
    assert.ok(dc.finish(32) > 0);
  });

  codecTest(codec, "API: configure validates the zone", (dc) => {
    assert.throws(() => dc.configure({ ...ZONE, zone: "a..b" }), RangeError);
    assert.throws(() => dc.configure({ ...ZONE, zone: `${"a".repeat(64)}.test` }), RangeError);
    assert.throws(() => dc.configure({ ...ZONE, nsLabel: "ns 1" }), SyntaxError);
    assert.throws(() => dc.configure({ ...ZONE, moreNsLabels: ["ns2", "a.b"] }), SyntaxError);
    assert.throws(() => dc.configure({ ...ZONE, moreNsLabels: Array(8).fill("n") }), RangeError);
    assert.throws(() => dc.configure({ ...ZONE, serial: -1 }), RangeError);
    assert.throws(() => dc.configure({ ...ZONE, zone: `${"a.".repeat(126)}test` }), RangeError);
    dc.configure({ ...ZONE, zone: "CDN.Test." }); // case and trailing dot are fine
    const [q] = parseAt(dc, APEX_QUERY, 16);
    assert.equal(q.zoneOffset, 12);
  });

  codecTest(
    codec,
    "several name server hosts: each NS and glue name compressed on its own",
    (dc) => {
      dc.configure({ ...ZONE, moreNsLabels: ["ns2"] });
      const [q, ptr] = parseAt(dc, APEX_QUERY, 17);
      dc.begin(ptr, q, 0, true, 512);
      dc.addNS(Section.ANSWER, 0);
      dc.addNS(Section.ANSWER, 1);
      dc.addA(Section.ADDITIONAL, Owner.NSHOST + 1, 5, 0x7f000002);
      dc.addA(Section.ADDITIONAL, Owner.NSHOST, 5, 0x7f000001);
      const n = dc.finish(0);
      const m = dc.memory.subarray(ptr, ptr + n);
      const end = q.questionEnd;
      // NS 1: owner -> zone (12), rdata "ns1" + pointer to the zone; NS 2 likewise with "ns2".
      const ns = (at: number, label: string) =>
        [0xc0, 12, 0, 2, 0, 1, 0, 0, 1, 44, 0, 6, 3, ...new TextEncoder().encode(label), 0xc0, 12]
          .every((b, i) => m[at + i] === b);
      assert.ok(ns(end, "ns1") && ns(end + 18, "ns2"), `${[...m.subarray(end)]}`);
      // Glue: owners point at each host's name in its NS rdata (offsets end+12 and end+30).
      assert.deepEqual([...m.subarray(end + 36, end + 38)], [0xc0, end + 30]);
      assert.deepEqual([...m.subarray(end + 52, end + 54)], [0xc0, end + 12]);
      assert.deepEqual([m[6], m[7], m[10], m[11]], [0, 2, 0, 3], "2 NS; 2 glue and the OPT");
    },
  );

  codecTest(codec, "memory never grows or detaches", (dc) => {
    const before = dc.memory.buffer;
    const len = dc.memory.length;
    const [q, ptr] = parseAt(dc, APEX_QUERY, 63);
    dc.begin(ptr, q, 0, true, 65535);
    for (let i = 0; i < 5000; i++) dc.addAAAA(0, 0, 1, i, i, i, i);
    dc.finish(0);
    assert.equal(dc.memory.buffer, before);
    assert.equal(dc.memory.length, len);
    assert.ok(dc.scratchSize >= 64 * 4096 + 2 * 65536);
    assert.ok(dc.scratchBase + dc.scratchSize <= dc.memory.length);
  });
}

Deno.test("dnswire: the two codecs have the same memory size and scratch layout", () => {
  const a = new ReferenceCodec(), b = createWasmCodec();
  assert.equal(a.memory.length, b.memory.length);
  assert.equal(a.scratchBase, b.scratchBase);
  assert.equal(a.scratchSize, b.scratchSize);
});

Deno.test("dnswire: a missing WASM module names the build task", () => {
  const missing = new URL("./no-such-dir/dnswire.wasm", import.meta.url);
  assert.throws(() => createWasmCodecFrom(missing), /deno task build:wasm/);
});

// ---- TSIG (RFC 8945 §5.1–5.2): no keys are held, so a signed query gets NOTAUTH + BADKEY ------

/** TSIG RDATA: algorithm, time signed (48 bits), fudge, a 32-byte MAC, original ID, error, other. */
function tsigRdata(alg: Uint8Array | string, id: number, other: number[] = []): Uint8Array {
  const w = new Writer().bytes(typeof alg === "string" ? nameWire(alg) : alg);
  w.u16(0).u32(0x5f5e1000).u16(300).u16(32).bytes(new Uint8Array(32).fill(0xaa));
  return w.u16(id).u16(0).u16(other.length).bytes(other).done();
}

/** A TSIG RR of key `somekey` (class ANY, TTL 0). */
function tsig(id = 0x1234, owner: Uint8Array = nameWire("somekey")): Uint8Array {
  return record(owner, 250, 255, 0, tsigRdata("hmac-sha256", id));
}

function runTsig(c: DnsCodec, packet: Uint8Array, rcode: number): [Query, number[]] {
  const ptr = c.scratchBase + 4096;
  c.memory.set(packet, ptr);
  const q = newQuery();
  c.parse(ptr, packet.length, q);
  c.begin(ptr, q, rcode, false, 1232);
  const len = c.finish(0);
  return [q, [...c.memory.subarray(ptr, ptr + len)]];
}

/** The BADKEY TSIG RR we expect back for {@link tsig}. */
function badkey(id: number): number[] {
  const alg = nameWire("hmac-sha256");
  const rdata = new Writer().bytes(alg).u16(0).u32(0x5f5e1000).u16(300).u16(0).u16(id).u16(17)
    .u16(0).done();
  return [...record(nameWire("somekey"), 250, 255, 0, rdata)];
}

for (const [codec] of CODECS) {
  codecTest(codec, "TSIG-signed query → NOTAUTH with a BADKEY TSIG, with EDNS", (c) => {
    const packet = buildQuery({ id: 0xbeef, additionals: [optRecord({}), tsig(0xbeef)] });
    const [q, out] = runTsig(c, packet, Rcode.NOTAUTH);
    assert.equal(q.status, ParseStatus.NOTAUTH);
    const question = [...packet.subarray(12, 26)];
    const expected = [
      ...[0xbe, 0xef, 0x81, 0x09, 0, 1, 0, 0, 0, 0, 0, 2],
      ...question,
      ...optRecord({}),
      ...badkey(0xbeef),
    ];
    assert.deepEqual(out, expected);
  });

  codecTest(codec, "TSIG-signed query → NOTAUTH with a BADKEY TSIG, no EDNS", (c) => {
    // The answer's Original ID is its own message ID, whatever the signed query's TSIG held.
    const packet = buildQuery({ id: 0x0102, additionals: [tsig(0x0a0b)] });
    const [q, out] = runTsig(c, packet, Rcode.NOTAUTH);
    assert.equal(q.status, ParseStatus.NOTAUTH);
    const expected = [
      ...[0x01, 0x02, 0x81, 0x09, 0, 1, 0, 0, 0, 0, 0, 1],
      ...packet.subarray(12, 26),
      ...badkey(0x0102),
    ];
    assert.deepEqual(out, expected);
  });

  codecTest(codec, "a TSIG that is not the last record, or malformed, is FORMERR", (c) => {
    const cases: [string, Uint8Array][] = [
      ["TSIG before OPT", buildQuery({ additionals: [tsig(), optRecord({})] })],
      ["TSIG in the answer section", buildQuery({ answers: [tsig()] })],
      ["two TSIGs", buildQuery({ additionals: [tsig(), tsig()] })],
      ["compressed key name", buildQuery({ additionals: [tsig(0x1234, Uint8Array.of(0xc0, 12))] })],
      [
        "other data overrunning RDLENGTH",
        buildQuery({
          additionals: [record(nameWire("k"), 250, 255, 0, tsigRdata("a", 1, [1]).slice(0, -1))],
        }),
      ],
      [
        "RDATA cut inside the algorithm name",
        buildQuery({ additionals: [record(nameWire("k"), 250, 255, 0, [5, 0x61])] }),
      ],
    ];
    for (const [what, packet] of cases) {
      const [q, out] = runTsig(c, packet, Rcode.FORMERR);
      assert.equal(q.status, ParseStatus.FORMERR, what);
      assert.equal(q.tsigOffset, -1, what);
      assert.equal(out[11] + (out[10] << 8), q.edns ? 1 : 0, `${what}: no TSIG in a FORMERR`);
    }
  });
}

// ---- EDNS Padding (RFC 7830; RFC 8467 §4.1: responses padded to a multiple of 468) ------------

/** Offset of the OPT record's RDATA in a response whose OPT follows `after` bytes. */
function paddingOption(out: number[], optAt: number): [number, number] {
  const rdlen = (out[optAt + 9] << 8) | out[optAt + 10];
  let o = optAt + 11;
  const end = o + rdlen;
  while (o < end) {
    const code = (out[o] << 8) | out[o + 1], len = (out[o + 2] << 8) | out[o + 3];
    if (code === 12) return [o, len];
    o += 4 + len;
  }
  return [-1, 0];
}

for (const [codec] of CODECS) {
  const padded = (content: number[]) =>
    buildQuery({
      additionals: [optRecord({ options: [{ code: 12, data: Uint8Array.from(content) }] })],
    });

  codecTest(codec, "Padding: an answer to a padded query is a multiple of 468 bytes", (c) => {
    // The query's padding content is ignored (RFC 7830 §4: it SHOULD be zeros, MAY not be).
    const ptr = c.scratchBase;
    for (const content of [[], [0, 0, 0, 0], [0xff, 1, 2]]) {
      const packet = padded(content);
      c.memory.set(packet, ptr);
      const q = newQuery();
      c.parse(ptr, packet.length, q);
      assert.equal(q.status, ParseStatus.OK);
      assert.equal(q.padding, true);
      c.begin(ptr, q, Rcode.NOERROR, true, 1232);
      c.addA(Section.ANSWER, Owner.QNAME, 30, 0x7f00000b);
      const len = c.finish(0);
      assert.equal(len, 468);
      const out = [...c.memory.subarray(ptr, ptr + len)];
      const optAt = q.questionEnd + 16;
      assert.deepEqual(out.slice(optAt, optAt + 3), [0, 0, 41]);
      const [at, plen] = paddingOption(out, optAt);
      assert.equal(at + 4 + plen, len, "the Padding option ends the response");
      assert.ok(out.slice(at + 4, at + 4 + plen).every((b) => b === 0), "padding is zeros");
    }
  });

  codecTest(codec, "Padding: never past the limit; none without the query option", (c) => {
    const ptr = c.scratchBase + 8192;
    const packet = padded([]);
    c.memory.set(packet, ptr);
    const q = newQuery();
    c.parse(ptr, packet.length, q);
    c.begin(ptr, q, Rcode.NOERROR, true, 300);
    assert.equal(c.finish(0), 300, "padded up to the limit when 468 does not fit");
    c.memory.set(packet, ptr);
    c.parse(ptr, packet.length, q);
    c.begin(ptr, q, Rcode.NOERROR, true, packet.length - 3);
    // Header, question and a bare OPT are the query less its 4-byte Padding option.
    assert.equal(c.finish(0), packet.length - 4, "no room for the option: not padded");
    const plain = buildQuery({ additionals: [optRecord({})] });
    c.memory.set(plain, ptr);
    c.parse(ptr, plain.length, q);
    assert.equal(q.padding, false);
    c.begin(ptr, q, Rcode.NOERROR, true, 1232);
    assert.equal(c.finish(0), plain.length);
  });

  codecTest(codec, "Padding: a NOTAUTH to a padded TSIG query keeps its TSIG last", (c) => {
    const packet = buildQuery({
      id: 0xbeef,
      additionals: [optRecord({ options: [{ code: 12, data: new Uint8Array(0) }] }), tsig(0xbeef)],
    });
    const [q, out] = runTsig(c, packet, Rcode.NOTAUTH);
    assert.equal(q.status, ParseStatus.NOTAUTH);
    assert.equal(out.length, 468);
    assert.deepEqual(out.slice(out.length - badkey(0xbeef).length), badkey(0xbeef));
    assert.deepEqual(out.slice(10, 12), [0, 2]);
  });
}

/**
 * Seeded differential test: the WASM codec and the reference codec must produce identical
 * Query fields and identical response bytes for 24,000 valid and hostile packets, under an
 * answer script chosen per packet; neither may throw. Every response is also parsed back
 * (QR cleared) to prove the encoder's compression pointers and lengths are well formed.
 *
 * Reproduce one failure with its seed and index: the message prints both, and the packet.
 */
import assert from "node:assert/strict";
import { ReferenceCodec } from "../lib/dnswire/reference.ts";
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
import { mutatedPackets, Rng, validQueries } from "./_dns_packets.ts";
import { codecPair, statusRcode, testZone } from "./_dns_codecs.ts";

/** Seeds are fixed so a failure reproduces; change them to explore. */
const SEED = 20240601;
const VALID = 8_000;
const MUTATED = 16_000;
/** Records added by the bulk step: 600 AAAA records (28 octets each) take past 16 KiB (the pointer limit). */
const BULK = 600;

const ZONES: ZoneConfig[] = [
  testZone(),
  {
    zone: "Deep.Sub.Example.",
    nsLabel: "a".repeat(63),
    mailLabel: "dns-admin",
    serial: 0xffffffff,
    refresh: 0,
    retry: 1,
    expire: 2,
    minimum: 900,
    soaTtl: 30,
  },
  {
    // Several name server hosts: each compressed on its own, the first is the SOA MNAME.
    zone: "multi.test",
    nsLabel: "ns1",
    moreNsLabels: ["ns2", "b".repeat(63), "NS4", "n5", "n6", "n7", "n8"],
    mailLabel: "hostmaster",
    serial: 7,
    refresh: 3600,
    retry: 600,
    expire: 86400,
    minimum: 60,
    soaTtl: 300,
  },
];

function show(q: Query): string {
  return JSON.stringify({ ...q, ecsAddress: [...q.ecsAddress] });
}

function hexOf(p: Uint8Array): string {
  return Array.from(p, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The response script for one packet, drawn from `r` (the same draws for both codecs). */
interface Script {
  rcode: number;
  aa: boolean;
  limit: number;
  steps: number[];
  /** Per step, the name server host of NS records and NSHOST owners (modulo those configured). */
  hosts: number[];
  scope: number;
}

function drawScript(r: Rng, q: Query): Script {
  const rcode = statusRcode(q.status) ??
    r.pick([Rcode.NOERROR, Rcode.NOERROR, Rcode.NXDOMAIN, Rcode.REFUSED, Rcode.SERVFAIL]);
  const limit = r.pick([512, 1232, 1232, 65535, 12, 60, 100, 200, r.range(12, 1500)]);
  const steps: number[] = [];
  for (let n = r.int(12); n > 0; n--) {
    const step = r.int(10);
    steps.push(step === 9 && steps.includes(9) ? 8 : step); // one bulk step at most
  }
  const hosts = steps.map(() => r.int(8));
  const max = q.ecsFamily === 1 ? 32 : 128;
  return {
    rcode,
    aa: r.chance(0.8),
    limit,
    steps,
    hosts,
    scope: r.chance(0.5) ? 0 : r.range(0, max),
  };
}

/** Runs a script; returns the response bytes. Owner.QNAME steps are skipped without a question. */
function respond(
  c: DnsCodec,
  ptr: number,
  q: Query,
  s: Script,
  nsHosts: number,
): Uint8Array {
  const hasQuestion = q.qnameLength > 0 && q.status !== ParseStatus.FORMERR;
  c.begin(ptr, q, s.rcode, s.aa, s.limit);
  for (const [i, step] of s.steps.entries()) {
    const host = s.hosts[i] % nsHosts;
    const owner = (step % 2 === 0 || step === 9) && hasQuestion ? Owner.QNAME : Owner.NSHOST + host;
    switch (step) {
      case 0:
      case 1:
        c.addA(Section.ANSWER, owner, 30 + step, 0x7f00000b + step);
        break;
      case 2:
      case 3:
        c.addAAAA(Section.ANSWER, owner, 0xffffffff, 0x20010db8, -1, step, 1);
        break;
      case 4:
        c.addSOA(Section.AUTHORITY);
        break;
      case 5:
        c.addSOA(Section.ANSWER);
        break;
      case 6:
        c.addNS(Section.AUTHORITY, host);
        break;
      case 7:
        c.addNS(Section.ANSWER, host);
        break;
      case 8:
        c.addA(Section.ADDITIONAL, owner, 300, 0xc0000201);
        break;
      default:
        // Bulk: push the response past 0x4000, where names can no longer be pointed to.
        for (let k = 0; k < BULK; k++) c.addAAAA(Section.ADDITIONAL, owner, k, k, 0, 0, 1);
    }
  }
  const len = c.finish(s.scope);
  return c.memory.slice(ptr, ptr + len);
}

/** Parses our own response as a query (QR cleared) with the reference: it must be well formed. */
function reparse(ref: ReferenceCodec, resp: Uint8Array): Query {
  const p = resp.slice();
  p[2] &= 0x7f;
  const q = newQuery();
  ref.memory.set(p, ref.scratchBase + 128 * 1024);
  ref.parse(ref.scratchBase + 128 * 1024, p.length, q);
  return q;
}

for (const [zi, zone] of ZONES.entries()) {
  Deno.test(`dnswire differential: ${VALID + MUTATED} packets agree (zone ${zone.zone})`, () => {
    const { ref, wasm } = codecPair(zone);
    const qr = newQuery(), qw = newQuery();
    const seed = SEED + zi;
    const packets = [
      ...validQueries(seed, VALID, zone.zone),
      ...mutatedPackets(seed + 1000, MUTATED, zone.zone),
    ];
    const statuses = [0, 0, 0, 0, 0];
    let inZone = 0, truncated = 0, ecs = 0, big = 0;
    for (const [i, p] of packets.entries()) {
      // Vary the slot and alignment; both codecs see the packet at the same offset.
      const ptr = ref.scratchBase + (i % 64) * 4096 + (i % 7);
      ref.memory.set(p, ptr);
      wasm.memory.set(p, ptr);
      const where = `seed ${seed}, packet ${i}: ${hexOf(p)}`;
      ref.parse(ptr, p.length, qr);
      wasm.parse(ptr, p.length, qw);
      if (show(qr) !== show(qw)) {
        assert.fail(`parse differs at ${where}\nreference ${show(qr)}\nwasm      ${show(qw)}`);
      }
      statuses[qr.status]++;
      if (qr.zoneOffset >= 0) inZone++;
      if (qr.ecsFamily !== 0) ecs++;
      if (qr.status === ParseStatus.DROP) continue;
      const script = drawScript(new Rng(seed * 31 + i), qr);
      const hosts = 1 + (zone.moreNsLabels?.length ?? 0);
      const a = respond(ref, ptr, qr, script, hosts);
      const b = respond(wasm, ptr, qw, script, hosts);
      if (hexOf(a) !== hexOf(b)) {
        assert.fail(
          `response differs at ${where}\nscript ${JSON.stringify(script)}\nreference ${
            hexOf(a)
          }\nwasm      ${hexOf(b)}`,
        );
      }
      const tc = (a[2] & 0x02) !== 0;
      if (tc) truncated++;
      if (a.length > 0x4000) big++;
      // The limit holds unless header, question and OPT alone exceed it.
      const floor = qr.questionEnd + 11 + 8 + 16;
      if (a.length > Math.max(script.limit, 12) && a.length > floor) {
        assert.fail(`response of ${a.length} over limit ${script.limit} at ${where}`);
      }
      const back = reparse(ref, a);
      // An echoed ECS with a non-zero scope is a valid response but not a valid query.
      const scoped = qr.ecsFamily !== 0 && script.scope !== 0;
      if ((qr.status === ParseStatus.OK && !scoped) || qr.status === ParseStatus.BADVERS) {
        assert.equal(back.status, ParseStatus.OK, `our response does not parse back at ${where}`);
        assert.equal(back.qnameLength, qr.qnameLength);
      } else if (qr.status === ParseStatus.FORMERR) {
        // RFC 6891 §7: the question is echoed when it parsed.
        assert.equal(a[5], qr.qnameLength > 0 ? 1 : 0, `FORMERR question count at ${where}`);
      }
    }
    // The generators must reach every outcome, or the comparison proves little.
    for (const [s, n] of statuses.entries()) assert.ok(n > 50, `status ${s} seen only ${n} times`);
    assert.ok(
      inZone > 2000 && ecs > 1000 && truncated > 200 && big > 100,
      `${inZone} ${ecs} ${truncated} ${big}`,
    );
  });
}

Deno.test("dnswire generators: deterministic per seed, and every valid query parses OK", () => {
  const a = validQueries(7, 2000, "cdn.test"), b = validQueries(7, 2000, "cdn.test");
  assert.deepEqual(a, b);
  assert.deepEqual(mutatedPackets(8, 500, "cdn.test"), mutatedPackets(8, 500, "cdn.test"));
  assert.notDeepEqual(validQueries(9, 50, "cdn.test"), validQueries(10, 50, "cdn.test"));
  const ref = new ReferenceCodec();
  ref.configure(ZONES[0]);
  const q = newQuery();
  let apex = 0, longest = 0;
  for (const [i, p] of a.entries()) {
    ref.memory.set(p, ref.scratchBase);
    ref.parse(ref.scratchBase, p.length, q);
    assert.equal(q.status, ParseStatus.OK, `valid query ${i} is ${q.status}: ${hexOf(p)}`);
    if (q.labelsBeforeZone === 0) apex++;
    longest = Math.max(longest, q.qnameLength);
  }
  assert.ok(apex > 100 && longest === 255, `apex ${apex}, longest ${longest}`);
});

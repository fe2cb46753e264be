/**
 * FORMERR on a real server process, both UDP paths: a datagram over the 4096-byte slot is
 * answered FORMERR with the question echoed and counted (the batched path used to drop it), and a
 * query whose OPT record is well-formed but whose ECS option is not gets FORMERR with the question
 * and an OPT record (RFC 6891 §7), so a client does not conclude the server lacks EDNS.
 */
import assert from "node:assert/strict";
import { dig, readHeader, startServer, udpClient } from "../lib/dns/_testing.ts";

const ZONE = "cdn.test";
const CONFIG = { replicas: [{ id: "a", ipv4: "192.0.2.1", lat: 10, lon: 10 }] };
const QNAME = [3, 0x63, 0x64, 0x6e, 4, 0x74, 0x65, 0x73, 0x74, 0]; // cdn.test

/** A query for cdn.test A with one OPT record carrying `options` (raw bytes). */
function queryWithOpt(id: number, options: number[]): Uint8Array {
  const head = [id >> 8, id & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1];
  const opt = [0, 0, 41, 4, 0xd0, 0, 0, 0, 0, options.length >> 8, options.length & 0xff];
  return Uint8Array.from([...head, ...QNAME, 0, 1, 0, 1, ...opt, ...options]);
}

for (const io of ["portable", "mmsg"]) {
  Deno.test(`FORMERR (${io}): an oversized datagram and a malformed ECS option`, async () => {
    const server = await startServer(ZONE, CONFIG, ["--io", io]);
    const udp = udpClient(server.port);
    try {
      // 5,000 bytes: a well-formed query padded (RFC 7830 option 12) past the 4096-byte slot.
      const pad = 5000 - queryWithOpt(0, []).length - 4;
      const big = queryWithOpt(0x0b16, [0, 12, pad >> 8, pad & 0xff, ...new Array(pad).fill(0)]);
      assert.equal(big.length, 5000);
      await udp.send(big);
      const a = await udp.receive(5000);
      const h = readHeader(a);
      assert.deepEqual([h.id, h.qr, h.rcode, h.qdcount, h.ancount], [0x0b16, true, 1, 1, 0]);
      assert.deepEqual([...a.subarray(12, 12 + QNAME.length)], QNAME, "question echoed");

      // ECS with family 3: the OPT record is well-formed, the option is not.
      await udp.send(queryWithOpt(0x0ec5, [0, 8, 0, 4, 0, 3, 0, 0]));
      const b = await udp.receive(5000);
      const hb = readHeader(b);
      assert.deepEqual([hb.id, hb.rcode, hb.qdcount, hb.arcount], [0x0ec5, 1, 1, 1]);
      const opt = 12 + QNAME.length + 4;
      assert.deepEqual([...b.subarray(opt, opt + 3)], [0, 0, 41], "an OPT record");

      // Two questions (QDCOUNT 2) and a well-formed OPT: FORMERR, no question, the OPT kept.
      const one = queryWithOpt(0x0d02, []);
      const question = one.subarray(12, 12 + QNAME.length + 4);
      const two = Uint8Array.from([
        ...one.subarray(0, 12 + question.length),
        ...question,
        ...one.subarray(12 + question.length),
      ]);
      two[5] = 2;
      await udp.send(two);
      const c = await udp.receive(5000);
      const hc = readHeader(c);
      assert.deepEqual([hc.id, hc.rcode, hc.qdcount, hc.arcount], [0x0d02, 1, 0, 1]);
      assert.deepEqual([...c.subarray(12, 15)], [0, 0, 41], "an OPT record");
    } finally {
      udp.close();
      await server.close();
    }
    const m = /dns: stopped (\{.*\})/.exec(server.output());
    assert.ok(m, server.output());
    assert.equal(JSON.parse(m[1]).oversized, 1, m[1]);
  });
}

Deno.test("FORMERR: dig +header-only (no question, EDNS) sees the OPT record", async () => {
  const server = await startServer(ZONE, CONFIG);
  try {
    const r = await dig(server.port, "+header-only");
    assert.equal(r.status, "FORMERR");
    assert.equal(r.udpSize, 1232, r.raw);
  } finally {
    await server.close();
  }
});

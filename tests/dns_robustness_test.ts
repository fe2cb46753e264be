/**
 * Hostile input: malformed packets from a raw UDP socket get FORMERR or nothing, and thousands
 * of mutated packets (tests/_dns_packets.ts) over UDP and TCP leave a server that still answers
 * dig and counted no exception.
 */
import assert from "node:assert/strict";
import {
  buildQuery,
  dig,
  frame,
  type Header,
  kdig,
  readFramed,
  readHeader,
  type ServerProcess,
  startServer,
  udpClient,
  within,
} from "../lib/dns/_testing.ts";
import { mutatedPackets, validQueries } from "./_dns_packets.ts";

const ZONE = "cdn.test";
const CONFIG = {
  replicas: [
    { id: "a", ipv4: "192.0.2.1", ipv6: "2001:db8::1", lat: 10, lon: 10 },
    { id: "b", ipv4: "192.0.2.2", lat: 50, lon: 50 },
  ],
  geo: [{ cidr: "198.51.100.0/24", lat: 50, lon: 49 }],
};
/** Mutated packets per transport and codec. */
const FUZZ_COUNT = 3000;
/** Packets sent between two sentinels (keeps the socket buffers from overflowing). */
const BATCH = 100;
/** The sentinel query's ID; it asks for a name that does not exist (NXDOMAIN). */
const SENTINEL_ID = 0xbeef;
const SENTINEL = buildQuery("sentinel.cdn.test", { id: SENTINEL_ID });
const READ_MS = 10_000;
/** The fuzz floods from one address: response rate limiting would drop most replies. */
const NO_RRL = ["--rrl-rate", "0"];

function isSentinel(h: Header): boolean {
  return h.id === SENTINEL_ID && h.rcode === 3 && h.qdcount === 1 && h.qr;
}

/** The counters the server printed when it stopped. */
function finalStats(server: ServerProcess): Record<string, number> {
  const m = /dns: stopped (\{.*\})/.exec(server.output());
  assert.ok(m, `no final stats in:\n${server.output()}`);
  return JSON.parse(m[1]);
}

/** The server still answers real clients over both transports. */
async function stillAnswers(port: number): Promise<void> {
  const u = await dig(port, "cdn.test", "A", "+subnet=198.51.100.0/24");
  assert.deepEqual(u.answer.map((a) => a.data), ["192.0.2.2"], u.raw);
  const t = await kdig(port, "+tcp", "cdn.test", "SOA");
  assert.equal(t.status, "NOERROR", t.raw);
}

/** Sends `packets` over UDP in batches, each closed by a sentinel; returns every reply header. */
async function fuzzUdp(port: number, packets: Uint8Array[]): Promise<Header[]> {
  const udp = udpClient(port);
  const replies: Header[] = [];
  try {
    for (let i = 0; i < packets.length; i += BATCH) {
      for (const p of packets.slice(i, i + BATCH)) await udp.send(p);
      await udp.send(SENTINEL);
      for (;;) {
        const h = readHeader(await udp.receive(READ_MS));
        if (isSentinel(h)) break;
        replies.push(h);
      }
    }
  } finally {
    udp.close();
  }
  return replies;
}

/** Sends `packets` framed over a few TCP connections, each closed by a sentinel. */
async function fuzzTcp(port: number, packets: Uint8Array[]): Promise<Header[]> {
  const replies: Header[] = [];
  for (let i = 0; i < packets.length; i += 10 * BATCH) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      const chunk = packets.slice(i, i + 10 * BATCH).concat([SENTINEL]);
      const writing = (async () => {
        for (const p of chunk) await conn.write(frame(p));
      })();
      for (;;) {
        const m = await within(readFramed(conn), READ_MS, "fuzz reply over TCP");
        assert.ok(m, "server closed the connection during fuzzing");
        const h = readHeader(m);
        if (isSentinel(h)) break;
        replies.push(h);
      }
      await writing;
    } finally {
      conn.close();
    }
  }
  return replies;
}

Deno.test("malformed UDP packets get FORMERR or nothing", async (t) => {
  const server = await startServer(ZONE, CONFIG, NO_RRL);
  const udp = udpClient(server.port);
  try {
    /** Sends `bad`, then a good query: the first reply must be the good one's. */
    const expectSilence = async (bad: Uint8Array, id: number) => {
      await udp.send(bad);
      await udp.send(buildQuery("cdn.test", { id, type: 6 }));
      const h = readHeader(await udp.receive());
      assert.deepEqual([h.id, h.rcode], [id, 0], "a reply to the bad packet came first");
    };
    const expectFormerr = async (bad: Uint8Array, id: number) => {
      await udp.send(bad);
      const h = readHeader(await udp.receive());
      assert.deepEqual([h.id, h.qr, h.rcode, h.ancount], [id, true, 1, 0]);
    };
    await t.step("shorter than a header: dropped", async () => {
      await expectSilence(new Uint8Array([1, 2, 3, 4, 5]), 1);
      await expectSilence(new Uint8Array(0), 2);
    });
    await t.step("a response (QR set): dropped", async () => {
      await expectSilence(buildQuery("cdn.test", { id: 9, flags: 0x8100 }), 3);
    });
    await t.step("question cut short: FORMERR", async () => {
      await expectFormerr(buildQuery("cdn.test", { id: 41 }).subarray(0, 16), 41);
    });
    await t.step("label longer than 63: FORMERR", async () => {
      const q = buildQuery("cdn.test", { id: 42 });
      q[12] = 64; // first label length
      await expectFormerr(q, 42);
    });
    await t.step("compression pointer loop in the question: FORMERR", async () => {
      const q = Uint8Array.from([0, 43, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]);
      await expectFormerr(q, 43);
    });
    await t.step("two questions: FORMERR", async () => {
      const q = buildQuery("cdn.test", { id: 44 });
      q[5] = 2;
      await expectFormerr(q, 44);
    });
  } finally {
    udp.close();
    await server.close();
  }
});

// Both codecs, and both UDP paths (mmsg is the default on Linux).
for (
  const [codec, io, seed] of [["wasm", "mmsg", 7], ["wasm", "portable", 9], [
    "ts",
    "portable",
    8,
  ]] as const
) {
  Deno.test(`${codec} codec, ${io} UDP: ${FUZZ_COUNT} mutated packets over UDP and TCP`, async () => {
    const server = await startServer(ZONE, CONFIG, ["--codec", codec, "--io", io, ...NO_RRL]);
    try {
      const udpReplies = await fuzzUdp(server.port, mutatedPackets(seed, FUZZ_COUNT, ZONE));
      const tcpReplies = await fuzzTcp(server.port, mutatedPackets(seed + 100, FUZZ_COUNT, ZONE));
      for (const h of [...udpReplies, ...tcpReplies]) {
        assert.ok(h.qr, "every reply is a response");
        assert.ok(!h.ra, "RA is never set");
        assert.notEqual(h.rcode, 2, "no SERVFAIL: nothing threw");
      }
      // Many mutations still parse: the server answered a good share and dropped the rest.
      assert.ok(udpReplies.length > FUZZ_COUNT / 10, `only ${udpReplies.length} UDP replies`);
      assert.ok(tcpReplies.length > FUZZ_COUNT / 10, `only ${tcpReplies.length} TCP replies`);
      await stillAnswers(server.port);
    } finally {
      await server.close();
    }
    const stats = finalStats(server);
    assert.equal(stats.errors, 0, JSON.stringify(stats));
    assert.ok(stats.queries >= 2 * FUZZ_COUNT, JSON.stringify(stats));
    assert.ok(stats.FORMERR > 0 && stats.dropped > 0, JSON.stringify(stats));
  });
}

Deno.test("valid queries: the wasm and ts servers answer byte for byte alike", async () => {
  const wasm = await startServer(ZONE, CONFIG, ["--codec", "wasm", ...NO_RRL]);
  const ts = await startServer(ZONE, CONFIG, ["--codec", "ts", ...NO_RRL]);
  const a = udpClient(wasm.port), b = udpClient(ts.port);
  try {
    const queries = validQueries(11, 1000, ZONE);
    const rcodes = new Map<number, number>();
    for (const [i, q] of queries.entries()) {
      await a.send(q);
      await b.send(q);
      const [ra, rb] = await Promise.all([a.receive(READ_MS), b.receive(READ_MS)]);
      assert.deepEqual(ra, rb, `query ${i}: the two servers differ`);
      const h = readHeader(ra);
      assert.equal(h.id, (q[0] << 8) | q[1], `query ${i}`);
      assert.ok(h.qr && !h.ra, `query ${i}`);
      rcodes.set(h.rcode, (rcodes.get(h.rcode) ?? 0) + 1);
    }
    // Well-formed queries are never FORMERR or SERVFAIL; the mix covers the main outcomes.
    assert.equal(rcodes.get(1), undefined, `FORMERR for a valid query: ${[...rcodes]}`);
    assert.equal(rcodes.get(2), undefined, `SERVFAIL: ${[...rcodes]}`);
    for (const rcode of [0, 3, 5]) {
      assert.ok(rcodes.get(rcode), `no rcode ${rcode}: ${[...rcodes]}`);
    }
  } finally {
    a.close();
    b.close();
    await wasm.close();
    await ts.close();
  }
});

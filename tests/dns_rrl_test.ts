/**
 * Response rate limiting on UDP, end to end on a real server process: a flood of identical
 * queries from one address gets about the configured rate of full answers plus slipped TC
 * answers and is otherwise dropped, its amplification in bytes stays low, a client in another
 * /24 and an exempt client are answered throughout, TCP is never limited, and dig retries over
 * TCP after a slipped TC answer. Bounds are functional (generous); the goal figures come from
 * `deno task bench:rrl`.
 */
import assert from "node:assert/strict";
import {
  buildQuery,
  dig,
  frame,
  readFramed,
  readHeader,
  type ServerProcess,
  startServer,
  within,
} from "../lib/dns/_testing.ts";

const ZONE = "cdn.test";
/** 64 replicas, all answered: a 37-byte query draws a 1,061-byte reply. */
const CONFIG = {
  answers: 64,
  replicas: Array.from({ length: 64 }, (_, i) => ({
    id: `r${i}`,
    ipv4: `192.0.2.${i + 1}`,
    lat: 10,
    lon: 10,
  })),
};
const RATE = 50;
const FLOOD = 2000;
const QUERY = buildQuery(ZONE, { ednsSize: 1232 });
/** Silence after the last reply that ends a collection. */
const QUIET_MS = 500;
/** Flood pacing: a pause after each burst, so no socket buffer overflows (about 10k/s). */
const BURST = 20, PAUSE_MS = 2;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A UDP socket bound to `source` talking to the server on 127.0.0.1. */
function socketFrom(source: string, port: number) {
  const sock = Deno.listenDatagram({ hostname: source, port: 0, transport: "udp" });
  const server: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
  return { sock, server };
}

interface Tally {
  full: number;
  tc: number;
  other: number;
  bytesIn: number;
  bytesOut: number;
  ms: number;
}

/** Sends `count` copies of `query` from `source` as fast as it can; counts every reply. */
async function flood(port: number, source: string, count: number): Promise<Tally> {
  const { sock, server } = socketFrom(source, port);
  const t: Tally = { full: 0, tc: 0, other: 0, bytesIn: 0, bytesOut: 0, ms: 0 };
  let last = performance.now();
  const reader = (async () => {
    try {
      for (;;) {
        const [m] = await sock.receive();
        last = performance.now();
        t.bytesIn += m.length;
        const h = readHeader(m);
        if (h.tc && h.ancount === 0) t.tc++;
        else if (!h.tc && h.ancount === 64) t.full++;
        else t.other++;
      }
    } catch { /* closed */ }
  })();
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    await sock.send(QUERY, server);
    t.bytesOut += QUERY.length;
    if (i % BURST === BURST - 1) await sleep(PAUSE_MS);
  }
  t.ms = performance.now() - start;
  last = performance.now();
  while (performance.now() - last < QUIET_MS) await sleep(50);
  sock.close();
  await reader;
  return t;
}

/**
 * One query from `source` as a resolver sends it: up to 3 tries of 1 s each (dig's default
 * `+tries=3`), since a datagram can be lost in a socket buffer the flood fills on a loaded
 * machine; its reply's header and how many tries it took (throws after the third).
 */
async function ask(
  port: number,
  source: string,
): Promise<{ header: ReturnType<typeof readHeader>; tries: number }> {
  const { sock, server } = socketFrom(source, port);
  try {
    const reply = sock.receive();
    reply.catch(() => {}); // rejected by the close below when no try was answered
    for (let tries = 1;; tries++) {
      await sock.send(QUERY, server);
      try {
        const [m] = await within(reply, 1000, `reply to ${source} (try ${tries} of 3)`);
        return { header: readHeader(m), tries };
      } catch (e) {
        if (tries === 3) throw e;
      }
    }
  } finally {
    sock.close();
  }
}

/** The JSON stats the server prints when it stops. */
async function stoppedStats(server: ServerProcess): Promise<Record<string, number>> {
  await server.close();
  const m = /dns: stopped (\{.*\})/.exec(server.output());
  assert.ok(m, `no stats line in:\n${server.output()}`);
  return JSON.parse(m[1]);
}

for (const io of ["portable", "mmsg"]) {
  Deno.test(`rrl (${io}): a flood from one /24 is limited, others are not`, async () => {
    const server = await startServer(ZONE, CONFIG, [
      "--io",
      io,
      "--rrl-rate",
      String(RATE),
      "--rrl-exempt",
      "127.0.2.0/24",
    ]);
    let stats: Record<string, number>;
    try {
      // Another /24 asks during the flood: every answer is full.
      let otherAnswers = 0, otherBad = 0, otherRetries = 0;
      let flooding = true;
      const other = (async () => {
        while (flooding) {
          // A limited /24 would get slipped TC answers (one in two): counted as bad.
          const { header: h, tries } = await ask(server.port, "127.0.1.2");
          otherRetries += tries - 1;
          if (h.ancount === 64 && !h.tc) otherAnswers++;
          else otherBad++;
          await sleep(20);
        }
      })();
      const t = await flood(server.port, "127.0.0.1", FLOOD);
      flooding = false;
      await other;
      const allowed = RATE * (1 + (t.ms + QUIET_MS) / 1000) + 10;
      const info = JSON.stringify({ ...t, allowed, otherAnswers, otherBad, otherRetries });
      assert.ok(t.full > 0 && t.full <= allowed, `full answers: ${info}`);
      assert.ok(t.tc > 0, `slipped TC answers: ${info}`);
      assert.equal(t.other, 0, info);
      // slip 2: about one limited response in two slips; the rest is dropped.
      assert.ok(t.full + t.tc < FLOOD * 0.75, `most limited responses dropped: ${info}`);
      assert.ok(t.bytesIn < 3 * t.bytesOut, `amplification under 3x: ${info}`);
      assert.ok(otherAnswers >= 3 && otherBad === 0, `the other /24 is answered: ${info}`);

      // An exempt /24 is never limited.
      const exempt = await flood(server.port, "127.0.2.1", 500);
      assert.equal(exempt.tc, 0, JSON.stringify(exempt));
      assert.ok(exempt.full >= 450, `exempt answers: ${JSON.stringify(exempt)}`);

      // TCP from the flooded address is never limited.
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      try {
        for (let i = 0; i < 3 * RATE; i++) {
          await conn.write(frame(QUERY));
          const h = readHeader((await readFramed(conn))!);
          assert.deepEqual([h.tc, h.ancount], [false, 64], `TCP answer ${i}`);
        }
      } finally {
        conn.close();
      }
    } finally {
      stats = await stoppedStats(server);
    }
    assert.ok(stats.rrl_limited > 0, JSON.stringify(stats));
    assert.equal(stats.rrl_limited, stats.rrl_slipped + stats.rrl_dropped, JSON.stringify(stats));
  });
}

Deno.test("rrl: dig gets a slipped TC answer and retries over TCP", async () => {
  const server = await startServer(ZONE, CONFIG, ["--rrl-rate", "1", "--rrl-slip", "1"]);
  try {
    const t = await flood(server.port, "127.0.0.1", 20);
    assert.ok(t.tc >= 15, JSON.stringify(t));
    const r = await dig(server.port, ZONE, "A", "+bufsize=1232");
    assert.match(r.raw, /Truncated, retrying in TCP mode/);
    assert.equal(r.status, "NOERROR");
    assert.equal(r.answer.length, 64);
  } finally {
    await server.close();
  }
});

Deno.test("rrl: --rrl-rate 0 turns it off", async () => {
  const server = await startServer(ZONE, CONFIG, ["--rrl-rate", "0"]);
  try {
    const t = await flood(server.port, "127.0.0.1", 300);
    assert.equal(t.tc, 0, JSON.stringify(t));
    assert.ok(t.full > 0, JSON.stringify(t));
  } finally {
    await server.close();
  }
  // Counted by the server, so datagrams lost in a loaded machine's socket buffers do not
  // matter: nothing was limited.
  assert.match(server.output(), /dns: stopped .*"rrl_limited":0,/);
});

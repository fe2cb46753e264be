/**
 * DNS over TCP (RFC 7766) and truncation: real server processes, dig/kdig and a raw Deno TCP
 * client that pipelines, splits messages and holds connections open.
 */
import assert from "node:assert/strict";
import {
  buildQuery,
  dig,
  frame,
  kdig,
  readFramed,
  readHeader,
  startServer,
  within,
} from "../lib/dns/_testing.ts";

const ZONE = "cdn.test";
/** Upper bound on waiting for the server to close a connection (the idle timeout is 300 ms). */
const CLOSE_WAIT_MS = 10_000;

/** 64 replicas, every one in the answer: 64 A records need 1 KiB, 64 AAAA ~1.8 KiB. */
const MANY = {
  answers: 64,
  replicas: Array.from({ length: 64 }, (_, i) => ({
    id: `r${i}`,
    ipv4: `198.18.0.${i + 1}`,
    ipv6: `2001:db8:1::${(i + 1).toString(16)}`,
    lat: 0,
    lon: i,
  })),
  tcp: { idleTimeoutMs: 300, maxConnections: 16 },
};

async function connect(port: number): Promise<Deno.TcpConn> {
  return await Deno.connect({ hostname: "127.0.0.1", port });
}

/** Reads until the server closes the connection; true when it did (EOF or reset). */
async function closedByServer(conn: Deno.Conn): Promise<boolean> {
  const buf = new Uint8Array(512);
  try {
    return await within(
      (async () => {
        while ((await conn.read(buf)) !== null) { /* discard */ }
        return true;
      })(),
      CLOSE_WAIT_MS,
      "server closing the connection",
    );
  } catch (e) {
    if (e instanceof Deno.errors.ConnectionReset) return true;
    throw e;
  }
}

Deno.test("TC over UDP, then the whole answer over TCP", async (t) => {
  const server = await startServer(ZONE, MANY);
  const port = server.port;
  try {
    await t.step(
      "512-byte limit without EDNS and with +bufsize=512: TC, fewer answers",
      async () => {
        for (const args of [["+noedns"], ["+bufsize=512"]]) {
          const r = await dig(port, "+ignore", ...args, "cdn.test", "A");
          assert.equal(r.status, "NOERROR", r.raw);
          assert.ok(r.flags.has("tc"), `tc expected\n${r.raw}`);
          assert.ok(r.answer.length > 0 && r.answer.length < 64, r.raw);
        }
      },
    );
    await t.step("EDNS 4096 is served as 1232: A fits, AAAA is truncated", async () => {
      const a = await dig(port, "+ignore", "+bufsize=4096", "cdn.test", "A");
      assert.ok(!a.flags.has("tc"), a.raw);
      assert.equal(a.answer.length, 64, a.raw);
      const aaaa = await kdig(port, "+ignore", "+bufsize=4096", "cdn.test", "AAAA");
      assert.ok(aaaa.flags.has("tc"), aaaa.raw);
      assert.ok(aaaa.answer.length < 64, aaaa.raw);
    });
    await t.step("dig and kdig retry over TCP on TC and get all 64", async () => {
      const d = await dig(port, "+bufsize=1232", "cdn.test", "AAAA");
      assert.match(d.raw, /Truncated, retrying in TCP mode/, d.raw);
      assert.ok(!d.flags.has("tc"), d.raw);
      assert.equal(d.answer.length, 64, d.raw);
      const k = await kdig(port, "+noedns", "cdn.test", "A");
      assert.equal(k.answer.length, 64, k.raw);
      const tcp = await kdig(port, "+tcp", "cdn.test", "AAAA");
      assert.equal(new Set(tcp.answer.map((a) => a.data)).size, 64, tcp.raw);
    });
  } finally {
    await server.close();
  }
});

Deno.test("TCP: pipelining, split messages, idle timeout", async (t) => {
  const server = await startServer(ZONE, MANY);
  const port = server.port;
  try {
    await t.step("three pipelined queries in one write, answered in order", async () => {
      const conn = await connect(port);
      try {
        const queries = [
          buildQuery("cdn.test", { id: 1, type: 1 }),
          buildQuery("cdn.test", { id: 2, type: 6 }),
          buildQuery("www.cdn.test", { id: 3, type: 1 }),
        ];
        const all = new Uint8Array(queries.reduce((n, q) => n + q.length + 2, 0));
        let o = 0;
        for (const q of queries) {
          all.set(frame(q), o);
          o += q.length + 2;
        }
        await conn.write(all);
        const got = [];
        for (let i = 0; i < 3; i++) {
          const m = await within(readFramed(conn), CLOSE_WAIT_MS, "pipelined answer");
          assert.ok(m, "connection closed early");
          got.push(readHeader(m));
        }
        assert.deepEqual(got.map((h) => [h.id, h.rcode, h.ancount, h.nscount]), [
          [1, 0, 64, 0],
          [2, 0, 1, 0],
          [3, 3, 0, 1],
        ]);
        assert.ok(got.every((h) => h.qr && h.aa && h.rd && !h.ra && !h.tc));
      } finally {
        conn.close();
      }
    });

    await t.step("a query split byte by byte (the prefix too), then an empty message", async () => {
      const conn = await connect(port);
      try {
        await conn.setNoDelay(true);
        const bytes = frame(buildQuery("ns1.cdn.test", { id: 77, type: 1 }));
        for (let i = 0; i < bytes.length; i++) await conn.write(bytes.subarray(i, i + 1));
        const m = await within(readFramed(conn), CLOSE_WAIT_MS, "split query answer");
        assert.ok(m);
        const h = readHeader(m);
        assert.deepEqual([h.id, h.rcode, h.ancount], [77, 0, 1]);
        // A zero-length message is dropped; the connection goes on.
        await conn.write(frame(new Uint8Array(0)));
        await conn.write(frame(buildQuery("cdn.test", { id: 78, type: 2 })));
        const next = await within(readFramed(conn), CLOSE_WAIT_MS, "answer after empty");
        assert.ok(next);
        assert.deepEqual([readHeader(next).id, readHeader(next).ancount], [78, 1]);
      } finally {
        conn.close();
      }
    });

    await t.step("an idle connection is closed by the server", async () => {
      const silent = await connect(port);
      const used = await connect(port);
      try {
        await used.write(frame(buildQuery("cdn.test", { id: 9, type: 6 })));
        const m = await within(readFramed(used), CLOSE_WAIT_MS, "answer");
        assert.equal(readHeader(m!).id, 9);
        assert.equal(await closedByServer(silent), true);
        assert.equal(await closedByServer(used), true);
      } finally {
        silent.close();
        used.close();
      }
    });
  } finally {
    await server.close();
  }
});

Deno.test("TCP: connections over the cap are closed, the others keep working", async () => {
  const server = await startServer(ZONE, {
    replicas: MANY.replicas.slice(0, 1),
    tcp: { idleTimeoutMs: 60_000, maxConnections: 2 },
  });
  const conns: Deno.TcpConn[] = [];
  try {
    const ask = async (c: Deno.Conn, id: number) => {
      await c.write(frame(buildQuery("cdn.test", { id, type: 1 })));
      const m = await within(readFramed(c), CLOSE_WAIT_MS, "answer");
      return m === null ? null : readHeader(m).id;
    };
    for (let i = 0; i < 2; i++) {
      conns.push(await connect(server.port));
      assert.equal(await ask(conns[i], 100 + i), 100 + i);
    }
    const extra = await connect(server.port);
    conns.push(extra);
    assert.equal(await closedByServer(extra), true);
    // The first two are still served.
    assert.equal(await ask(conns[0], 200), 200);
    assert.equal(await ask(conns[1], 201), 201);
  } finally {
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await server.close();
  }
});

/**
 * Tests of the batched UDP path (`lib/dns/udp_mmsg.ts`) with real datagrams over loopback and,
 * for floods, a real sender process. Needs `--allow-ffi --allow-net --allow-run` (`-A`).
 */
import assert from "node:assert/strict";
import { type BatchedUdpServer, type ClientAddr, serveUdpBatched } from "../lib/dns/udp_mmsg.ts";

/** Longest any single wait in these tests may take before the test fails. */
const WAIT_MS = 5000;

type Addr = Deno.NetAddr;

/** A client socket on `hostname` port 0. */
function client(hostname: string): Deno.DatagramConn {
  return Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
}

/**
 * Receives datagrams until `count` arrived or `ms` passed; on timeout the socket is closed
 * (that is the only way to cancel a pending receive), so pass a socket the caller no longer needs.
 */
async function receiveN(sock: Deno.DatagramConn, count: number, ms = WAIT_MS) {
  const got: Uint8Array[] = [];
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    sock.close();
  }, ms);
  try {
    while (got.length < count) {
      const [data] = await sock.receive();
      got.push(data);
    }
  } catch (e) {
    if (!timedOut) throw e;
  } finally {
    clearTimeout(timer);
  }
  return got;
}

/**
 * The test handler: a transforming echo. The response is the payload with every byte XOR 0x5a,
 * then the client's family and its 16 address bytes, so a test sees both the transform and
 * the decoded source address.
 */
function xorEcho(memory: Uint8Array) {
  return (ptr: number, len: number, c: ClientAddr): number => {
    for (let i = 0; i < len; i++) memory[ptr + i] ^= 0x5a;
    memory[ptr + len] = c.family;
    memory.set(c.bytes, ptr + len + 1);
    return len + 17;
  };
}

function expected(payload: Uint8Array, family: number, addr: number[]): Uint8Array {
  const out = new Uint8Array(payload.length + 17);
  for (let i = 0; i < payload.length; i++) out[i] = payload[i] ^ 0x5a;
  out[payload.length] = family;
  out.set(addr, payload.length + 1);
  return out;
}

/** A batched server on port 0 (by default on 127.0.0.1, slots from 0, the {@link xorEcho} handler). */
function serve(
  o:
    & { memory: Uint8Array; slotSize: number; slots: number }
    & Partial<
      Pick<Parameters<typeof serveUdpBatched>[0], "handle" | "hostname" | "slotBase">
    >,
): BatchedUdpServer {
  return serveUdpBatched({
    hostname: "127.0.0.1",
    port: 0,
    slotBase: 0,
    handle: xorEcho(o.memory),
    ...o,
  });
}

const V4_LOOPBACK = [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const V6_LOOPBACK = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/** Sends `perClient` distinct datagrams from each of `clients` sockets at once; checks every answer. */
async function manyClients(
  server: BatchedUdpServer,
  hostname: string,
  family: number,
  addr: number[],
  clients: number,
  perClient: number,
) {
  const socks = Array.from({ length: clients }, () => client(hostname));
  try {
    await Promise.all(socks.map(async (sock, c) => {
      const sent: Uint8Array[] = [];
      const to: Addr = { transport: "udp", hostname, port: server.port };
      for (let k = 0; k < perClient; k++) {
        const payload = new TextEncoder().encode(`client ${c} datagram ${k} ${"x".repeat(k % 40)}`);
        sent.push(payload);
        await sock.send(payload, to);
      }
      const got = await receiveN(sock, perClient);
      assert.equal(got.length, perClient, `client ${c} got ${got.length} of ${perClient} answers`);
      const want = new Set(sent.map((p) => expected(p, family, addr).join(",")));
      for (const g of got) assert.ok(want.delete(g.join(",")), `client ${c}: unexpected answer`);
    }));
  } finally {
    for (const s of socks) {
      try {
        s.close();
      } catch { /* closed by a timeout */ }
    }
  }
}

/** True when a plain socket can take the port, i.e. no socket holds it any more. */
function portIsFree(hostname: string, port: number): boolean {
  try {
    Deno.listenDatagram({ transport: "udp", hostname, port }).close();
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) return false;
    throw e;
  }
}

/**
 * Starts a process that floods `port` with small datagrams until it is killed (or 10 s pass,
 * which bounds a failing run), and waits until the server has seen the first of them.
 */
async function startFlood(hostname: string, port: number, server: BatchedUdpServer) {
  const host = JSON.stringify(hostname);
  const code = `
    const s = Deno.listenDatagram({ transport: "udp", hostname: ${host}, port: 0 });
    const to = { transport: "udp", hostname: ${host}, port: ${port} };
    const msg = new Uint8Array(40);
    const end = Date.now() + 10000;
    while (Date.now() < end) { for (let i = 0; i < 64; i++) s.send(msg, to); await s.send(msg, to); }
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--unstable-net", code],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const start = server.stats.received;
  const deadline = Date.now() + WAIT_MS * 2;
  while (server.stats.received === start) {
    if (Date.now() > deadline) {
      child.kill();
      await child.status;
      throw new Error("the flood process never reached the server");
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    async stop() {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
    },
  };
}

Deno.test("batched UDP: transforming echo to 20 IPv4 clients at once (plain Uint8Array)", async () => {
  const memory = new Uint8Array(64 * 2048);
  const server = serve({ memory, slotSize: 2048, slots: 64 });
  try {
    assert.ok(server.port > 0);
    await manyClients(server, "127.0.0.1", 4, V4_LOOPBACK, 20, 50);
    assert.equal(server.stats.received, 1000);
    assert.equal(server.stats.sent, 1000);
    assert.ok(server.stats.batches >= 1 && server.stats.batches <= 1000);
    assert.equal(server.stats.truncated, 0);
  } finally {
    await server.close();
  }
});

Deno.test("batched UDP: IPv6 clients, slots in a real WebAssembly.Memory at an offset", async () => {
  const wasm = new WebAssembly.Memory({ initial: 4, maximum: 4 });
  const memory = new Uint8Array(wasm.buffer);
  const server = serve({ memory, slotSize: 1024, slots: 16, hostname: "::1", slotBase: 65536 });
  try {
    await manyClients(server, "::1", 6, V6_LOOPBACK, 8, 30);
    assert.equal(server.stats.sent, 240);
    // Nothing was written outside the slots.
    assert.ok(memory.subarray(0, 65536).every((b) => b === 0));
    assert.ok(memory.subarray(65536 + 16 * 1024).every((b) => b === 0));
  } finally {
    await server.close();
  }
});

Deno.test("batched UDP: an IPv4 client of a dual-stack [::] socket is reported as family 4", async () => {
  const memory = new Uint8Array(4 * 1024);
  const server = serve({ memory, slotSize: 1024, slots: 4, hostname: "[::]" });
  const sock = client("127.0.0.1");
  try {
    const payload = new Uint8Array([1, 2, 3]);
    await sock.send(payload, { transport: "udp", hostname: "127.0.0.1", port: server.port });
    const [got] = await receiveN(sock, 1);
    assert.deepEqual(got, expected(payload, 4, V4_LOOPBACK));
  } finally {
    sock.close();
    await server.close();
  }
});

Deno.test("batched UDP: datagrams larger than a slot are handed cut to handle, counted", async () => {
  const memory = new Uint8Array(9 * 512); // 8 slots, then a guard area that must stay zero
  const echo = xorEcho(memory);
  const cuts: number[] = [];
  const server = serve({
    memory,
    slotSize: 512,
    slots: 8,
    handle: (ptr, len, client, cut) => {
      if (!cut) return echo(ptr, len, client);
      cuts.push(len, memory[ptr]);
      return 0;
    },
  });
  const sock = client("127.0.0.1");
  try {
    const to: Addr = { transport: "udp", hostname: "127.0.0.1", port: server.port };
    await sock.send(new Uint8Array(600).fill(7), to);
    await sock.send(new Uint8Array(513).fill(8), to);
    const small = new Uint8Array([9, 9]);
    await sock.send(small, to);
    // Loopback keeps the order of one socket's datagrams: once the small one is answered,
    // both big ones have been read.
    const got = await receiveN(sock, 1);
    assert.deepEqual(got[0], expected(small, 4, V4_LOOPBACK));
    assert.equal(server.stats.truncated, 2);
    assert.deepEqual(cuts, [512, 7, 512, 8]);
    assert.equal(server.stats.received, 3);
    assert.equal(server.stats.sent, 1);
    // The big ones filled their slots and nothing past the last one.
    assert.ok(memory.subarray(8 * 512).every((b) => b === 0));
  } finally {
    sock.close();
    await server.close();
  }
});

Deno.test("batched UDP: a handler that throws or returns a bad length loses only that datagram", async () => {
  const memory = new Uint8Array(4 * 1024);
  const echo = xorEcho(memory);
  const server = serve({
    memory,
    slotSize: 1024,
    slots: 4,
    handle(ptr, len, c) {
      if (memory[ptr] === 1) throw new Error("handler bug");
      if (memory[ptr] === 2) return 5000; // longer than the slot
      if (memory[ptr] === 3) return 0; // send nothing
      return echo(ptr, len, c);
    },
  });
  const sock = client("127.0.0.1");
  try {
    const to: Addr = { transport: "udp", hostname: "127.0.0.1", port: server.port };
    for (const b of [1, 2, 3]) await sock.send(new Uint8Array([b]), to);
    await sock.send(new Uint8Array([4]), to);
    const got = await receiveN(sock, 1);
    assert.deepEqual(got[0], expected(new Uint8Array([4]), 4, V4_LOOPBACK));
    assert.equal(server.stats.handlerErrors, 2);
    assert.equal(server.stats.received, 4);
    assert.equal(server.stats.sent, 1);
  } finally {
    sock.close();
    await server.close();
  }
});

Deno.test("batched UDP: memory that grew (detached) stops the server with a reported error", async () => {
  const wasm = new WebAssembly.Memory({ initial: 1, maximum: 2 });
  const memory = new Uint8Array(wasm.buffer);
  const errors: unknown[] = [];
  const onError = (e: ErrorEvent) => {
    e.preventDefault();
    errors.push(e.error);
  };
  globalThis.addEventListener("error", onError);
  const server = serve({ memory, slotSize: 1024, slots: 4 });
  const sock = client("127.0.0.1");
  try {
    wasm.grow(1); // detaches `memory`: its old address must never be written again
    await sock.send(new Uint8Array([1]), {
      transport: "udp",
      hostname: "127.0.0.1",
      port: server.port,
    });
    const t0 = Date.now();
    while (errors.length === 0) {
      assert.ok(Date.now() - t0 < WAIT_MS, "no error was reported");
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.match(String(errors[0]), /codec memory was detached/);
    await server.close();
    assert.equal(server.stats.received, 0);
    assert.equal(portIsFree("127.0.0.1", server.port), true);
  } finally {
    globalThis.removeEventListener("error", onError);
    sock.close();
    await server.close();
  }
});

Deno.test("batched UDP: close() while idle frees the port and is idempotent", async () => {
  const memory = new Uint8Array(1024);
  const server = serve({ memory, slotSize: 1024, slots: 1, handle: () => 0 });
  assert.equal(portIsFree("127.0.0.1", server.port), false);
  await Promise.all([server.close(), server.close()]);
  assert.equal(portIsFree("127.0.0.1", server.port), true);
});

Deno.test("batched UDP: close() during a flood stops the loop and frees the port", async () => {
  const memory = new Uint8Array(64 * 512);
  const server = serve({ memory, slotSize: 512, slots: 64, handle: (_p, len) => len });
  let flood: { stop(): Promise<void> } | undefined;
  try {
    flood = await startFlood("127.0.0.1", server.port, server);
    await server.close();
    const after = server.stats.received;
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(server.stats.received, after, "the loop kept reading after close()");
    assert.equal(portIsFree("127.0.0.1", server.port), true);
  } finally {
    await flood?.stop();
    await server.close();
  }
});

Deno.test("batched UDP: a flood does not starve timers or another socket in the process", async () => {
  // A slow handler (~50 µs a datagram) keeps the loop saturated by the flood, so without its
  // yields the timer below would never fire.
  const memory = new Uint8Array(64 * 512);
  const server = serve({
    memory,
    slotSize: 512,
    slots: 64,
    handle: () => {
      const end = performance.now() + 0.05;
      while (performance.now() < end) { /* busy */ }
      return 0;
    },
  });
  const other = client("127.0.0.1");
  const pinger = client("127.0.0.1");
  let flood: { stop(): Promise<void> } | undefined;
  let ticks = 0;
  const interval = setInterval(() => ticks++, 10);
  try {
    const echoLoop = (async () => {
      for (;;) {
        const [data, from] = await other.receive();
        await other.send(data, from);
      }
    })().catch(() => {/* ends when `other` closes */});
    flood = await startFlood("127.0.0.1", server.port, server);
    const startTicks = ticks, startBatches = server.stats.batches;
    const to = {
      transport: "udp",
      hostname: "127.0.0.1",
      port: (other.addr as Addr).port,
    } as const;
    // Under the flood the kernel's loopback backlog (net.core.netdev_max_backlog) can drop a
    // ping, which is the network's doing, not starvation: a ping unanswered for 250 ms is sent
    // again; a starved socket answers none of them within WAIT_MS.
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      let pending = pinger.receive();
      pending.catch(() => {/* rejected when `pinger` closes */});
      for (;;) {
        assert.ok(performance.now() - t0 < WAIT_MS, `the other socket stopped answering ping ${i}`);
        await pinger.send(new Uint8Array([i]), to);
        const r = await Promise.race([
          pending,
          new Promise<undefined>((res) => setTimeout(() => res(undefined), 250)),
        ]);
        if (r === undefined) continue;
        if (r[0].length === 1 && r[0][0] === i) break;
        pending = pinger.receive(); // the late echo of an earlier ping
        pending.catch(() => {});
      }
    }
    const t0 = performance.now();
    while (ticks - startTicks < 10) {
      assert.ok(performance.now() - t0 < WAIT_MS, "the timer was starved");
      await new Promise((r) => setTimeout(r, 1));
    }
    // The flood really kept the loop busy meanwhile: whole slices of batches ran.
    const batches = server.stats.batches - startBatches;
    assert.ok(batches > 10, `only ${batches} batches ran during the flood`);
    other.close();
    await echoLoop;
  } finally {
    clearInterval(interval);
    await flood?.stop();
    try {
      other.close();
    } catch { /* closed above */ }
    try {
      pinger.close();
    } catch { /* closed by a timeout */ }
    await server.close();
  }
});

Deno.test("batched UDP: SO_REUSEPORT lets two servers share a port", async () => {
  const memA = new Uint8Array(1024), memB = new Uint8Array(1024);
  const opts = { hostname: "127.0.0.1", slotBase: 0, slotSize: 1024, slots: 1 };
  const a = serveUdpBatched({ ...opts, port: 0, memory: memA, handle: xorEcho(memA) });
  let b: BatchedUdpServer | undefined;
  try {
    b = serveUdpBatched({ ...opts, port: a.port, memory: memB, handle: xorEcho(memB) });
    assert.equal(b.port, a.port);
  } finally {
    await a.close();
    await b?.close();
  }
});

Deno.test("batched UDP: bad options and a taken port give clear errors", () => {
  const memory = new Uint8Array(4096);
  const good = {
    hostname: "127.0.0.1",
    port: 0,
    memory,
    slotBase: 0,
    slotSize: 1024,
    slots: 4,
    handle: () => 0,
  };
  const cases: [Record<string, unknown>, ErrorConstructor, RegExp][] = [
    [{ hostname: "localhost" }, SyntaxError, /hostname must be an IPv4 or IPv6 literal/],
    [{ hostname: "256.0.0.1" }, SyntaxError, /received "256.0.0.1"/],
    [{ hostname: "::1::2" }, SyntaxError, /IPv6 literal/],
    [{ hostname: "fe80::1%lo" }, SyntaxError, /zone ids/],
    [{ hostname: 7 }, TypeError, /hostname must be a string/],
    [{ port: 65536 }, RangeError, /port must be an integer in 0..65535: received 65536/],
    [{ port: 1.5 }, RangeError, /port/],
    [{ memory: [1, 2] }, TypeError, /memory must be a Uint8Array/],
    [{ slotSize: 100 }, RangeError, /slotSize must be an integer in 512..65536: received 100/],
    [{ slots: 0 }, RangeError, /slots must be an integer in 1..1024/],
    [{ slots: 5 }, RangeError, /do not fit in memory of 4096 bytes/],
    [{ slotBase: -1 }, RangeError, /slotBase/],
    [{ handle: "no" }, TypeError, /handle must be a function/],
  ];
  for (const [patch, cls, re] of cases) {
    assert.throws(
      () => serveUdpBatched({ ...good, ...patch } as typeof good),
      (e: unknown) => e instanceof cls && re.test((e as Error).message),
      JSON.stringify(patch),
    );
  }
  const taken = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const port = (taken.addr as Addr).port;
    assert.throws(
      () => serveUdpBatched({ ...good, port }),
      (e: unknown) =>
        e instanceof Deno.errors.AddrInUse &&
        /^bind failed \(IPv4 port \d+\): errno 98 \(Address already in use\)$/.test(
          (e as Error).message,
        ),
    );
  } finally {
    taken.close();
  }
});

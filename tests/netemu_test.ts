/**
 * The user-space link emulator (tests/tools/): its queue logic with a fake clock, then a real
 * topology of network namespaces (a client and three replicas behind a router whose TUN device
 * feeds the emulator) where TCP connects (accepted and refused), UDP echoes and ICMP echoes
 * from each replica to the client must take the configured round trip, before and after the
 * delays change. Needs root, iproute2 and /dev/net/tun; without them the test fails, saying so.
 */
import assert from "node:assert/strict";
import { DelayQueue, LinkEmulator, packetAddresses } from "./tools/link_emulator.ts";
import { echoRequest, internetChecksum, isEchoReply } from "./tools/icmp.ts";
import { median, type ProbeReport } from "./tools/probe.ts";
import {
  addNamespace,
  checkEnvironment,
  execIn,
  listNamespaces,
  removeNamespacesByPrefix,
} from "./tools/netns.ts";
import { createTopology, denoRun, type Topology, waitForLine } from "./tools/topology.ts";

const PREFIX = "nc-emu-";
const PROBE = new URL("./tools/probe.ts", import.meta.url).pathname;
const DENO_FLAGS = ["--no-config", "--unstable-net"];
/** Scheduling slack on a loaded 2-core machine: measured RTT must lie in [rtt, rtt + SLACK]. */
const SLACK_MS = 30;
const TCP_OPEN = 7000, TCP_CLOSED = 7999, UDP_ECHO = 7001, BULK = 7002;

/** A minimal IPv4 header (20 bytes) from `src` to `dst`. */
function ipv4(src: number[], dst: number[], protocol = 17): Uint8Array {
  const p = new Uint8Array(28);
  p[0] = 0x45;
  p[9] = protocol;
  p.set(src, 12);
  p.set(dst, 16);
  return p;
}

Deno.test("DelayQueue releases by time and keeps each key in FIFO order", () => {
  const q = new DelayQueue<string>();
  q.push("a>b", "a1", 0, 40);
  q.push("c>d", "c1", 0, 10);
  // a>b's delay shrinks mid-flight: a2 must still wait for a1.
  q.push("a>b", "a2", 5, 5);
  assert.equal(q.size, 3);
  assert.equal(q.nextDue(), 10);
  assert.deepEqual(q.popDue(9.9), []);
  assert.deepEqual(q.popDue(10), ["c1"]);
  assert.deepEqual(q.popDue(39), []);
  assert.deepEqual(q.popDue(40), ["a1", "a2"]);
  assert.equal(q.nextDue(), undefined);
});

Deno.test("DelayQueue orders many random items by release time", () => {
  const q = new DelayQueue<number>();
  const dues: number[] = [];
  for (let i = 0; i < 500; i++) dues.push(q.push(`k${i}`, i, 0, Math.random() * 100));
  const out = q.popDue(Infinity);
  assert.equal(out.length, 500);
  for (let i = 1; i < out.length; i++) assert.ok(dues[out[i - 1]] <= dues[out[i]]);
});

Deno.test("LinkEmulator holds each packet for its pair's one-way delay", () => {
  let now = 1000;
  let nextTimer = 1;
  const timers = new Map<number, { fn: () => void; at: number }>();
  const sent: Uint8Array[] = [];
  const emu = new LinkEmulator({
    send: (p) => sent.push(p),
    now: () => now,
    setTimer: (fn, ms) => {
      timers.set(nextTimer, { fn, at: now + ms });
      return nextTimer++;
    },
    clearTimer: (id) => timers.delete(id as number),
  });
  emu.setDelay("10.77.1.2", "10.77.2.2", 20);
  emu.setOneWayDelay("10.77.3.2", "10.77.1.2", 7);
  assert.equal(emu.oneWayDelay("10.77.2.2", "10.77.1.2"), 10);
  const fire = (t: number) => {
    now = t;
    for (const [id, timer] of [...timers]) {
      if (timer.at > now) continue;
      timers.delete(id);
      timer.fn();
    }
  };
  const buf = ipv4([10, 77, 1, 2], [10, 77, 2, 2]);
  emu.handle(buf);
  buf[19] = 99; // the emulator copied the packet: reusing the read buffer is safe
  emu.handle(ipv4([10, 77, 3, 2], [10, 77, 1, 2]));
  emu.handle(ipv4([10, 77, 9, 2], [10, 77, 1, 2])); // no delay configured: forwarded at once
  emu.handle(new Uint8Array([0x10, 1, 2])); // not IP: dropped
  assert.equal(sent.length, 1);
  fire(1006.9);
  assert.equal(sent.length, 1);
  fire(1007);
  assert.equal(sent.length, 2);
  assert.deepEqual(packetAddresses(sent[1])?.src, "10.77.3.2");
  fire(1010);
  assert.equal(sent.length, 3);
  assert.equal(packetAddresses(sent[2])?.dst, "10.77.2.2");
  assert.equal(timers.size, 0);
  const s = emu.stats();
  assert.deepEqual(
    [s.received, s.forwarded, s.dropped, s.queueDepth, s.maxQueueDepth],
    [4, 3, 1, 0, 3], // the zero-delay packet passes through the queue too,
  );
  assert.equal(s.pairs["10.77.1.2>10.77.2.2"], 1);
  assert.throws(() => emu.setDelay("a", "b", -1), RangeError);
});

Deno.test("LinkEmulator drops packets at the configured loss rate, per direction", () => {
  const draws = [0.05, 0.5, 0.95, 0.2];
  const sent: Uint8Array[] = [];
  const emu = new LinkEmulator({ send: (p) => sent.push(p), random: () => draws.shift() ?? 0.99 });
  emu.setOneWayLoss("10.77.1.2", "10.77.2.2", 0.3);
  for (let i = 0; i < 4; i++) emu.handle(ipv4([10, 77, 1, 2], [10, 77, 2, 2]));
  emu.handle(ipv4([10, 77, 2, 2], [10, 77, 1, 2])); // the other direction is lossless
  assert.equal(sent.length, 3); // 0.05 and 0.2 are below 0.3: two of four dropped
  assert.deepEqual([emu.stats().lost, emu.stats().dropped], [2, 2]);
  emu.setLoss("10.77.1.2", "10.77.2.2", 1); // a partition: even a draw of 0.99 is lost
  emu.handle(ipv4([10, 77, 2, 2], [10, 77, 1, 2]));
  assert.equal(sent.length, 3);
  emu.setLoss("10.77.1.2", "10.77.2.2", 0);
  assert.deepEqual(emu.stats().loss, {});
  assert.throws(() => emu.setLoss("a", "b", 1.5), RangeError);
});

Deno.test("packetAddresses reads IPv4 and IPv6 headers", () => {
  assert.deepEqual(packetAddresses(ipv4([10, 77, 1, 2], [10, 77, 2, 2], 6)), {
    src: "10.77.1.2",
    dst: "10.77.2.2",
    protocol: 6,
  });
  const v6 = new Uint8Array(40);
  v6[0] = 0x60;
  v6[6] = 58;
  v6.set([0x20, 0x01, 0x0d, 0xb8], 8);
  v6[23] = 1;
  v6.set([0xfe, 0x80], 24);
  v6[39] = 0x0a;
  assert.deepEqual(packetAddresses(v6), { src: "2001:db8::1", dst: "fe80::a", protocol: 58 });
  assert.equal(packetAddresses(new Uint8Array(10)), null);
});

Deno.test("ICMP echo request carries a valid checksum and matches its reply", () => {
  // RFC 1071 section 3 example: the one's complement sum of these words is 0xddf2.
  assert.equal(internetChecksum(new Uint8Array([0, 1, 0xf2, 3, 0xf4, 0xf5, 0xf6, 0xf7])), 0x220d);
  const req = echoRequest(0x1234, 7);
  assert.equal(internetChecksum(req), 0);
  const reply = new Uint8Array(20 + req.length);
  reply.set([0x45], 0);
  reply[9] = 1;
  reply.set([10, 77, 1, 2], 12);
  reply.set(req, 20);
  reply[20] = 0;
  assert.ok(isEchoReply(reply, new Uint8Array([10, 77, 1, 2]), 0x1234, 7));
  assert.ok(!isEchoReply(reply, new Uint8Array([10, 77, 1, 2]), 0x1234, 8));
  assert.ok(!isEchoReply(reply, new Uint8Array([10, 77, 1, 3]), 0x1234, 7));
});

Deno.test("waitForLine matches complete lines and keeps draining", async () => {
  const stream = (chunks: string[]) =>
    ReadableStream.from(chunks.map((c) => new TextEncoder().encode(c)));
  const w = await waitForLine(stream(["boot\nserv", "ing on 53\n", "more\n"]), /^serving/);
  assert.equal(w.line, "serving on 53");
  assert.equal(await w.drained, "boot\nserving on 53\nmore\n");
  const last = await waitForLine(stream(["a\nready"]), /^ready$/);
  assert.equal(last.line, "ready");
  await assert.rejects(waitForLine(stream(["a\n", "b\n"]), /ready/), /ended before a line matched/);
});

Deno.test("checkEnvironment names what is missing", async () => {
  await assert.rejects(
    checkEnvironment({ tunPath: "/nonexistent/net/tun" }),
    /netemu needs \/nonexistent\/net\/tun \(the TUN driver\)/,
  );
  // This machine must have it all: the scenario tests below fail, not skip, without it.
  await checkEnvironment();
});

/** Runs `probe.ts measure` from `host` to the client; returns the report. */
async function probe(topo: Topology, host: string, args: string[]): Promise<ProbeReport> {
  const r = await topo.run(
    host,
    denoRun(...DENO_FLAGS, PROBE, "measure", "--host", topo.address("client"), ...args),
  );
  assert.equal(r.code, 0, `probe from ${host} failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

interface Row {
  host: string;
  rtt: number;
  tcpOpen: number;
  tcpClosed: number;
  udp: number;
  icmp: number;
}

/** Probes every replica at once; checks each median against its configured RTT. */
async function measureAll(topo: Topology, expected: Record<string, number>): Promise<Row[]> {
  const hosts = Object.keys(expected);
  const args = [
    "--tcp-open",
    `${TCP_OPEN}`,
    "--tcp-closed",
    `${TCP_CLOSED}`,
    "--udp",
    `${UDP_ECHO}`,
  ];
  const reports = await Promise.all(hosts.map((h) => probe(topo, h, [...args, "--icmp"])));
  const rows = hosts.map((host, i): Row => ({
    host,
    rtt: expected[host],
    tcpOpen: median(reports[i].tcpOpen),
    tcpClosed: median(reports[i].tcpClosed),
    udp: median(reports[i].udp),
    icmp: median(reports[i].icmp),
  }));
  console.table(rows.map((r) => ({
    ...r,
    tcpOpen: r.tcpOpen.toFixed(1),
    tcpClosed: r.tcpClosed.toFixed(1),
    udp: r.udp.toFixed(1),
    icmp: r.icmp.toFixed(1),
  })));
  for (const r of rows) {
    for (const kind of ["tcpOpen", "tcpClosed", "udp", "icmp"] as const) {
      const v = r[kind];
      assert.ok(
        v >= r.rtt && v <= r.rtt + SLACK_MS,
        `${kind} RTT from ${r.host}: ${v.toFixed(1)} ms, configured ${r.rtt} ms ` +
          `(allowed ${r.rtt}-${r.rtt + SLACK_MS})`,
      );
    }
  }
  return rows;
}

/** Starts `probe.ts serve` in the client namespace and waits until it listens. */
async function startServer(topo: Topology): Promise<Server> {
  const server = topo.exec(
    "client",
    denoRun(
      ...DENO_FLAGS,
      PROBE,
      "serve",
      "--tcp",
      `${TCP_OPEN}`,
      "--udp",
      `${UDP_ECHO}`,
      "--bulk",
      `${BULK}`,
    ),
    { stdout: "piped" },
  );
  try {
    const { line, drained } = await waitForLine(server.stdout, /"ready":true/);
    assert.match(line, /"pid":\d+/);
    return { child: server, drained };
  } catch (e) {
    await stop({ child: server, drained: Promise.resolve("") });
    throw e;
  }
}

/** A child process whose stdout is being drained. */
interface Server {
  child: Deno.ChildProcess;
  drained: Promise<string>;
}

async function stop(server: Server | undefined): Promise<void> {
  if (!server) return;
  try {
    server.child.kill("SIGKILL");
  } catch { /* exited */ }
  await server.child.status;
  await server.drained.catch(() => {});
}

function fastest(rows: Row[]): string {
  return rows.reduce((a, b) => (b.tcpClosed < a.tcpClosed ? b : a)).host;
}

Deno.test({
  name: "client and three replicas: measured RTT follows the configured and changed delays",
  sanitizeResources: true,
  sanitizeOps: true,
  async fn() {
    // Fails (does not skip) with a clear message when the machine lacks a requirement.
    await checkEnvironment();
    let topo: Topology | undefined;
    let server: Server | undefined;
    try {
      topo = await createTopology({
        prefix: PREFIX,
        cleanupPrefix: true,
        hosts: [{ name: "client" }, { name: "r1" }, { name: "r2" }, { name: "r3" }],
        delays: { client: { r1: 10, r2: 40, r3: 80 } },
      });
      const names = (await listNamespaces()).filter((n) => n.startsWith(PREFIX)).sort();
      assert.deepEqual(names, ["client", "r1", "r2", "r3", "router"].map((n) => PREFIX + n));

      server = await startServer(topo);

      const before = await measureAll(topo, { r1: 10, r2: 40, r3: 80 });
      assert.equal(fastest(before), "r1");

      // Flip the choice: r3 becomes the nearest, r1 the farthest; r2 gets an asymmetric path
      // (30 ms towards the client, nothing back), which still adds up to a 30 ms round trip.
      await topo.setDelay("client", "r1", 80);
      await topo.setDelay("client", "r3", 10);
      await topo.setOneWayDelay("r2", "client", 30);
      await topo.setOneWayDelay("client", "r2", 0);
      const after = await measureAll(topo, { r1: 80, r2: 30, r3: 10 });
      assert.equal(fastest(after), "r3");

      const stats = await topo.stats();
      const c = topo.address("client"), r1 = topo.address("r1");
      assert.ok(
        stats.forwarded > 0 && stats.pairs[`${r1}>${c}`] > 0 && stats.pairs[`${c}>${r1}`] > 0,
      );
      assert.equal(stats.delays[`${c}>${r1}`], 40);
      assert.ok(stats.forwarded <= stats.received);
    } finally {
      await stop(server);
      await topo?.destroy();
      await removeNamespacesByPrefix(PREFIX);
    }
    const left = (await listNamespaces()).filter((n) => n.startsWith(PREFIX));
    assert.deepEqual(left, [], "namespaces left behind");
  },
});

Deno.test({
  name: "a partition drops all traffic until lifted; bandwidth limits follow tbf",
  async fn() {
    await checkEnvironment();
    let topo: Topology | undefined;
    let server: Server | undefined;
    let stale: Server | undefined;
    try {
      // Leftovers of a crashed run: one of our namespaces with a process still inside.
      await removeNamespacesByPrefix(PREFIX);
      await addNamespace(`${PREFIX}r1`);
      stale = { child: execIn(`${PREFIX}r1`, ["sleep", "600"]), drained: Promise.resolve("") };
      topo = await createTopology({
        prefix: PREFIX,
        hosts: [{ name: "client" }, { name: "r1" }],
        delays: { client: { r1: 10 } },
      });
      assert.equal((await stale.child.status).signal, "SIGKILL");
      server = await startServer(topo);
      const echo = ["--udp", `${UDP_ECHO}`, "--icmp", "--timeout", "500", "--count"];

      await topo.setLoss("client", "r1", 1);
      const cut = await probe(topo, "r1", [...echo, "2"]);
      assert.deepEqual([cut.udp, cut.icmp], [[null, null], [null, null]]);
      const lost = (await topo.stats()).lost;
      assert.ok(lost >= 4, `expected the partition to drop the echoes: lost ${lost}`);

      await topo.setLoss("client", "r1", 0);
      const healed = await probe(topo, "r1", [...echo, "3"]);
      for (const kind of ["udp", "icmp"] as const) {
        const v = healed[kind];
        assert.ok(v.every((x) => x !== null), `${kind} echoes lost after healing: ${v}`);
        const m = median(v);
        assert.ok(m >= 10 && m <= 10 + SLACK_MS, `${kind} echo after healing: ${v} ms`);
      }

      // 256 KiB at 2 Mbit/s takes about 1 s; unshaped, it is far faster.
      const RATE = 2000;
      const bulk = ["--bulk", `${BULK}`, "--bytes", "262144", "--count", "1"];
      const [free] = (await probe(topo, "r1", bulk)).bulkKbit;
      await topo.setBandwidth("r1", RATE);
      const [shaped] = (await probe(topo, "r1", bulk)).bulkKbit;
      console.log(
        `bulk download client->r1: unshaped ${free.toFixed(0)} kbit/s, ` +
          `shaped to ${RATE}: ${shaped.toFixed(0)} kbit/s`,
      );
      assert.ok(free > 3 * RATE, `unshaped throughput ${free.toFixed(0)} kbit/s`);
      assert.ok(
        shaped >= 0.6 * RATE && shaped <= 1.15 * RATE,
        `shaped throughput ${shaped.toFixed(0)} kbit/s, configured ${RATE}`,
      );
    } finally {
      await stop(server);
      await stop(stale);
      await topo?.destroy();
      await removeNamespacesByPrefix(PREFIX);
    }
    assert.deepEqual((await listNamespaces()).filter((n) => n.startsWith(PREFIX)), []);
  },
});

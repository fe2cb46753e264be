/**
 * Per-client TCP limits on a real server process: idle connections from one address never lock
 * other clients out of DNS over TCP. Each address may hold `--tcp-per-client` connections, and
 * connections that have not sent a complete query only get the slots left after a reserved share
 * (the oldest of them is closed to make room), while connections that have sent one are kept.
 */
import assert from "node:assert/strict";
import { buildQuery, frame, readFramed, readHeader, within } from "../lib/dns/_testing.ts";
import { startServer } from "../lib/dns/_testing.ts";
import { closeAll, openIdle, sleep } from "./_limits.ts";

const ZONE = "cdn.test";
const CONFIG = { replicas: [{ id: "a", ipv4: "192.0.2.1", lat: 10, lon: 10 }] };

/** `dig +tcp` from `source` (dig -b): whether it got a NOERROR answer. */
async function digTcpFrom(source: string, port: number): Promise<boolean> {
  const out = await new Deno.Command("dig", {
    args: ["-b", source, "+tcp", "+tries=1", "+time=3", "@127.0.0.1", "-p", String(port), ZONE],
    stdout: "piped",
    stderr: "null",
  }).output();
  return /status: NOERROR/.test(new TextDecoder().decode(out.stdout));
}

/** The JSON stats line printed at stop. */
function stoppedStats(output: string): Record<string, number> {
  const m = /dns: stopped (\{.*\})/.exec(output);
  assert.ok(m, output);
  return JSON.parse(m[1]);
}

Deno.test("tcp: 256 idle connections from 127.0.0.1 do not lock out 127.0.0.2", async () => {
  const server = await startServer(ZONE, CONFIG); // tcp.maxConnections 256, --tcp-per-client 16
  let conns: Deno.TcpConn[] = [];
  try {
    conns = await openIdle(server.port, 256);
    await sleep(200);
    for (let i = 0; i < 3; i++) {
      assert.ok(await digTcpFrom("127.0.0.2", server.port), `TCP query ${i} from 127.0.0.2`);
    }
  } finally {
    closeAll(conns);
    await server.close();
  }
  const stats = stoppedStats(server.output());
  assert.ok(stats.tcp_perClientRejected >= 256 - 16, JSON.stringify(stats));
});

Deno.test("tcp: idle newcomers give way; connections that sent a query are kept", async () => {
  // 32 slots, 8 reserved for connections that have sent a query; no per-address cap to speak of.
  const server = await startServer(ZONE, { ...CONFIG, tcp: { maxConnections: 32 } }, [
    "--tcp-per-client",
    "1000",
  ]);
  const ask = async (c: Deno.Conn, id: number) => {
    await c.write(frame(buildQuery(ZONE, { id })));
    const m = await within(readFramed(c), 3000, `answer ${id}`);
    return m === null ? null : readHeader(m).id;
  };
  const used: Deno.TcpConn[] = [];
  let idle: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 24; i++) {
      used.push(await Deno.connect({ hostname: "127.0.0.1", port: server.port }));
      assert.equal(await ask(used[i], i), i);
    }
    idle = await openIdle(server.port, 40);
    await sleep(200);
    assert.ok(await digTcpFrom("127.0.0.2", server.port), "a newcomer is answered");
    for (const [i, c] of used.entries()) assert.equal(await ask(c, 100 + i), 100 + i);
  } finally {
    closeAll([...used, ...idle]);
    await server.close();
  }
  const stats = stoppedStats(server.output());
  assert.ok(stats.tcp_evicted >= 1, JSON.stringify(stats));
});

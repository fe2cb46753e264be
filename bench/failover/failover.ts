/**
 * The failover measurement: a DNS server and three replicas on loopback (127.0.0.31-33), the
 * replicas registered through `--announce`. The client (this process, source 127.0.0.1) is
 * steered to r1 (nearest by geography). Each round kills r1 with SIGKILL and times how long
 * until no answer names it, querying the DNS server over UDP every {@link POLL_MS}; then r1 is
 * restarted and the time until it is answered again is recorded too. Used by `run.ts` (20
 * kills) and `tests/fleet_failover_test.ts` (a few).
 *
 * @module
 */

import { type DnsProc, type Proc, spawnDeno, startDns } from "../../lib/fleet/_testing.ts";

/** Interval between DNS queries while waiting: the resolution of the measurement. */
export const POLL_MS = 10;
/** Longest wait for a change (failover or return) before the round counts as failed. */
export const ROUND_TIMEOUT_MS = 30_000;

const ZONE = "cdn.test";
/** r1 near the client (Amsterdam), r2 London, r3 Tokyo; the client is 127.0.0.0/8 in Amsterdam. */
const REPLICAS = [
  { id: "r1", host: "127.0.0.31", lat: 52.37, lon: 4.9 },
  { id: "r2", host: "127.0.0.32", lat: 51.51, lon: -0.13 },
  { id: "r3", host: "127.0.0.33", lat: 35.68, lon: 139.69 },
];
const CONFIG = { ttl: 5, geo: [{ cidr: "127.0.0.0/8", lat: 52.37, lon: 4.9 }] };
/**
 * Shared by the DNS server and the replicas: a restarted replica (no `--data`, so a new node
 * key) is admitted again by the token, as an operator would restart one.
 */
const ADMIN_TOKEN = "failover-bench-token";

/** Results of {@link measureFailover}, in ms. */
export interface FailoverResult {
  /** Per kill: SIGKILL until the first answer without the killed replica. */
  failover: number[];
  /** Per restart: spawn until the restarted replica is answered again (includes Deno start-up). */
  recovery: number[];
  /** The answer after each failover (the next best). */
  nextBest: string[];
}

/** min, median, p95, max of a list (nearest-rank percentiles). */
export function summary(
  xs: number[],
): { n: number; min: number; median: number; p95: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const rank = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  const r = (x: number) => Math.round(x);
  return {
    n: s.length,
    min: r(s[0]),
    median: r(rank(0.5)),
    p95: r(rank(0.95)),
    max: r(s[s.length - 1]),
  };
}

function query(id: number): Uint8Array {
  const q = [id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
  for (const label of ZONE.split(".")) q.push(label.length, ...new TextEncoder().encode(label));
  q.push(0, 0, 1, 0, 1); // root, QTYPE A, QCLASS IN
  return new Uint8Array(q);
}

/** The A answer's address (one answer, no EDNS: the last 4 bytes), "" for none, null on timeout. */
async function resolve(sock: Deno.DatagramConn, port: number, id: number): Promise<string | null> {
  await sock.send(query(id), { transport: "udp", hostname: "127.0.0.1", port });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((r) => timer = setTimeout(() => r(null), 500));
  try {
    for (;;) {
      const got = await Promise.race([sock.receive(), timeout]);
      if (got === null) return null;
      const m = got[0];
      if (m.length < 12 || ((m[0] << 8) | m[1]) !== id) continue; // a late reply to an old query
      const ancount = (m[6] << 8) | m[7];
      return ancount === 0 ? "" : Array.from(m.subarray(m.length - 4)).join(".");
    }
  } finally {
    clearTimeout(timer);
  }
}

/** Measures `kills` failovers; `log` gets a line per round. Stops everything it started. */
export async function measureFailover(
  kills: number,
  log: (line: string) => void = () => {},
): Promise<FailoverResult> {
  const dir = await Deno.makeTempDir({ prefix: "nearcast_failover_" });
  const procs = new Map<string, Proc>();
  let dns: DnsProc | undefined;
  const sock = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  try {
    await Deno.writeTextFile(`${dir}/cdn.json`, JSON.stringify(CONFIG));
    dns = await startDns([
      "-n",
      ZONE,
      "--config",
      `${dir}/cdn.json`,
      "--data",
      dir,
      // Steer by geography: on loopback every measured RTT is ~0.1 ms, so latency would pick
      // by noise and the replica to kill would not be known.
      "--policy",
      "geo",
      "--admin-token",
      ADMIN_TOKEN,
    ]);
    const dnsPort = dns.port, control = dns.control;
    const start = (r: (typeof REPLICAS)[number]) => {
      procs.set(
        r.id,
        spawnDeno([
          "main_http.ts",
          "-p",
          "0",
          "--host",
          r.host,
          "-o",
          "http://127.0.0.1:9",
          "--id",
          r.id,
          "--announce",
          `127.0.0.1:${control}`,
          `--lat=${r.lat}`, // "=": parseArgs would take "-0.13" for a flag
          `--lon=${r.lon}`,
          "--admin-token",
          ADMIN_TOKEN,
        ]),
      );
    };
    let qid = 1;
    const answer = () => resolve(sock, dnsPort, qid = (qid + 1) & 0xffff);
    /** Polls until `ok(answer)`; returns the ms taken and the answer. */
    const until = async (ok: (a: string) => boolean, what: string) => {
      const begin = performance.now();
      for (;;) {
        const a = await answer();
        if (a !== null && ok(a)) return { ms: performance.now() - begin, a };
        if (performance.now() - begin > ROUND_TIMEOUT_MS) {
          const r1 = procs.get(REPLICAS[0].id)?.output().slice(-3000) ?? "";
          throw new Error(
            `timed out waiting for ${what}\n--- dns:\n${dns!.output().slice(-3000)}` +
              `\n--- r1:\n${r1}`,
          );
        }
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    };
    for (const r of REPLICAS) start(r);
    const r1 = REPLICAS[0];
    await until((a) => a === r1.host, "r1 to be answered first");
    const out: FailoverResult = { failover: [], recovery: [], nextBest: [] };
    for (let k = 1; k <= kills; k++) {
      // Kill between heartbeats at a varying phase, as a real crash would.
      await new Promise((r) => setTimeout(r, 200 + Math.random() * 1000));
      const victim = procs.get(r1.id)!;
      const killedAt = performance.now();
      victim.child.kill("SIGKILL");
      const gone = await until((a) => a !== r1.host, "an answer without r1");
      const failover = performance.now() - killedAt;
      await victim.done;
      out.failover.push(failover);
      out.nextBest.push(gone.a);
      const restartAt = performance.now();
      start(r1);
      await until((a) => a === r1.host, "r1 to be answered again");
      out.recovery.push(performance.now() - restartAt);
      log(
        `kill ${k}/${kills}: no answer named r1 after ${
          failover.toFixed(0)
        } ms (next: ${gone.a});` +
          ` restarted r1 answered again after ${out.recovery.at(-1)!.toFixed(0)} ms`,
      );
    }
    return out;
  } finally {
    sock.close();
    await Promise.all([...procs.values()].map((p) => p.stop()));
    await dns?.stop("SIGTERM");
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

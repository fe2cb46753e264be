/**
 * RTT probes for scenario tests, run inside a namespace with `ip netns exec`:
 *
 * - `serve`: a TCP listener that accepts and closes, and a UDP echo, on a target host;
 * - `measure`: from another host, times TCP connects to a listening port and to a closed port
 *   (the RST comes back after one round trip too), UDP echoes and ICMP echoes; prints JSON.
 *
 * ```sh
 * ip netns exec nc-client deno run -A tests/tools/probe.ts serve --tcp 7000 --udp 7001
 * ip netns exec nc-r1 deno run -A tests/tools/probe.ts measure --host 10.77.1.2 \
 *   --tcp-open 7000 --tcp-closed 7999 --udp 7001 --icmp --count 5
 * ```
 */
import { parseArgs } from "node:util";
import { ping } from "./icmp.ts";

/** Times one TCP connect in ms; a refused connection counts (it measures the round trip too). */
export async function tcpConnectRtt(
  host: string,
  port: number,
): Promise<{ ms: number; refused: boolean }> {
  const start = performance.now();
  try {
    const conn = await Deno.connect({ hostname: host, port });
    const ms = performance.now() - start;
    conn.close();
    return { ms, refused: false };
  } catch (e) {
    if (e instanceof Deno.errors.ConnectionRefused) {
      return { ms: performance.now() - start, refused: true };
    }
    throw e;
  }
}

type Datagram = [Uint8Array, Deno.Addr] | null;
/** One outstanding receive per socket, kept across calls so a late echo is never lost. */
const pendingReceive = new WeakMap<Deno.DatagramConn, Promise<Datagram>>();

function receive(sock: Deno.DatagramConn): Promise<Datagram> {
  let p = pendingReceive.get(sock);
  if (!p) {
    // A closed socket resolves null instead of rejecting with nobody listening.
    p = sock.receive().catch(() => null);
    pendingReceive.set(sock, p);
  }
  return p;
}

/** Times one UDP echo in ms, or null when no echo came within `timeoutMs`. */
export async function udpEchoRtt(
  sock: Deno.DatagramConn,
  host: string,
  port: number,
  timeoutMs = 2000,
): Promise<number | null> {
  const token = crypto.getRandomValues(new Uint8Array(8));
  const start = performance.now();
  await sock.send(token, { transport: "udp", hostname: host, port });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), timeoutMs));
  try {
    for (;;) {
      const got = await Promise.race([receive(sock), timeout]);
      if (got === "timeout") return null;
      pendingReceive.delete(sock);
      if (got === null) return null;
      const [data] = got;
      if (data.length === token.length && data.every((b, i) => b === token[i])) {
        return performance.now() - start;
      }
    }
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Downloads `bytes` from a `serve --bulk` port; resolves with the throughput in kbit/s,
 * timed from the first byte received to the last (so the handshake RTT is not counted).
 */
export async function bulkDownloadKbit(host: string, port: number, bytes: number): Promise<number> {
  const conn = await Deno.connect({ hostname: host, port });
  try {
    const req = new Uint8Array(4);
    new DataView(req.buffer).setUint32(0, bytes);
    await conn.write(req);
    const buf = new Uint8Array(65536);
    let got = 0, first = 0;
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      if (got === 0) first = performance.now();
      got += n;
    }
    const ms = performance.now() - first;
    if (got !== bytes) throw new Error(`Bulk download from ${host}: got ${got} of ${bytes} bytes`);
    return ((bytes - Math.min(bytes, 1500)) * 8) / ms; // bits per ms = kbit/s
  } finally {
    conn.close();
  }
}

/** Measurements in ms, one per attempt (bulk: kbit/s). */
export interface ProbeReport {
  tcpOpen: number[];
  tcpClosed: number[];
  udp: (number | null)[];
  icmp: (number | null)[];
  bulkKbit: number[];
}

/** The median of the non-null values (NaN when there are none). */
export function median(values: (number | null)[]): number {
  const v = values.filter((x): x is number => x !== null).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** Runs the probes of `measure` against `host`. */
export async function measure(
  host: string,
  o: {
    tcpOpen?: number;
    tcpClosed?: number;
    udp?: number;
    icmp?: boolean;
    bulk?: number;
    bytes?: number;
    /** Timeout of each UDP and ICMP echo in ms; default 2000. */
    timeoutMs?: number;
    count: number;
  },
): Promise<ProbeReport> {
  const report: ProbeReport = { tcpOpen: [], tcpClosed: [], udp: [], icmp: [], bulkKbit: [] };
  const sock = o.udp
    ? Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 })
    : undefined;
  try {
    for (let i = 0; i < o.count; i++) {
      if (o.tcpOpen) {
        const r = await tcpConnectRtt(host, o.tcpOpen);
        if (r.refused) throw new Error(`Expected ${host}:${o.tcpOpen} to accept: refused`);
        report.tcpOpen.push(r.ms);
      }
      if (o.tcpClosed) {
        const r = await tcpConnectRtt(host, o.tcpClosed);
        if (!r.refused) throw new Error(`Expected ${host}:${o.tcpClosed} to refuse: accepted`);
        report.tcpClosed.push(r.ms);
      }
      if (sock && o.udp) report.udp.push(await udpEchoRtt(sock, host, o.udp, o.timeoutMs));
      if (o.icmp) report.icmp.push(await ping(host, { timeoutMs: o.timeoutMs }));
      if (o.bulk) report.bulkKbit.push(await bulkDownloadKbit(host, o.bulk, o.bytes ?? 262144));
    }
  } finally {
    sock?.close();
  }
  return report;
}

/**
 * Accepts and closes TCP connections on `tcp`; echoes UDP datagrams on `udp`; on `bulk`, reads
 * a 4-byte big-endian length from each connection, sends that many bytes and closes.
 */
export function serve(tcp?: number, udp?: number, bulk?: number): Promise<void>[] {
  const tasks: Promise<void>[] = [];
  if (bulk) {
    const listener = Deno.listen({ hostname: "0.0.0.0", port: bulk });
    const send = async (conn: Deno.Conn) => {
      try {
        const head = new Uint8Array(4);
        let got = 0;
        while (got < 4) {
          const n = await conn.read(head.subarray(got));
          if (n === null) return;
          got += n;
        }
        let left = Math.min(new DataView(head.buffer).getUint32(0), 64 << 20);
        const chunk = new Uint8Array(16384).fill(0x6e);
        while (left > 0) left -= await conn.write(chunk.subarray(0, Math.min(left, chunk.length)));
      } catch {
        /* the client went away */
      } finally {
        conn.close();
      }
    };
    tasks.push((async () => {
      for await (const conn of listener) send(conn);
    })());
  }
  if (tcp) {
    const listener = Deno.listen({ hostname: "0.0.0.0", port: tcp });
    tasks.push((async () => {
      for await (const conn of listener) conn.close();
    })());
  }
  if (udp) {
    const sock = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: udp });
    tasks.push((async () => {
      for await (const [data, addr] of sock) await sock.send(data, addr);
    })());
  }
  return tasks;
}

const HELP = `Usage:
  deno run -A tests/tools/probe.ts serve [--tcp PORT] [--udp PORT] [--bulk PORT]
  deno run -A tests/tools/probe.ts measure --host IP [--tcp-open PORT] [--tcp-closed PORT]
                              [--udp PORT] [--icmp] [--bulk PORT --bytes N] [--count N]

serve    accept-and-close TCP listener and UDP echo; prints {"ready":true} when listening
measure  prints a JSON report of round-trip times in ms, one value per attempt

Options:
  --tcp PORT         (serve) TCP port to accept on
  --bulk PORT        (serve) TCP port sending the requested byte count; (measure) its port
  --bytes N          (measure) bytes per bulk download [262144]
  --udp PORT         (serve) UDP port to echo on; (measure) UDP echo port to time
  --host IP          (measure) IPv4 address to probe
  --tcp-open PORT    (measure) a listening TCP port: time connect() until accepted
  --tcp-closed PORT  (measure) a closed TCP port: time connect() until refused (RST)
  --icmp             (measure) also time ICMP echoes (raw socket, needs root)
  --count N          (measure) attempts per probe kind [5]
  --timeout MS       (measure) timeout of each UDP and ICMP echo (null on timeout) [2000]
  -h, --help         show this help`;

/** The CLI. */
export async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      tcp: { type: "string" },
      bulk: { type: "string" },
      bytes: { type: "string", default: "262144" },
      udp: { type: "string" },
      host: { type: "string" },
      "tcp-open": { type: "string" },
      "tcp-closed": { type: "string" },
      icmp: { type: "boolean", default: false },
      count: { type: "string", default: "5" },
      timeout: { type: "string", default: "2000" },
      help: { type: "boolean", short: "h" },
    },
  });
  const int = (name: string, s: string, min: number, max: number) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new RangeError(`Cannot probe: --${name} must be ${min}-${max}: received ${s}`);
    }
    return n;
  };
  const port = (s: string | undefined) => (s === undefined ? undefined : int("port", s, 1, 65535));
  if (values.help || positionals.length !== 1) {
    console.log(HELP);
    if (!values.help) Deno.exit(2);
    return;
  }
  if (positionals[0] === "serve") {
    const tasks = serve(port(values.tcp), port(values.udp), port(values.bulk));
    console.log(JSON.stringify({ ready: true, pid: Deno.pid }));
    await Promise.all(tasks);
  } else if (positionals[0] === "measure") {
    if (!values.host) throw new TypeError("Cannot measure: --host is required");
    const report = await measure(values.host, {
      tcpOpen: port(values["tcp-open"]),
      tcpClosed: port(values["tcp-closed"]),
      udp: port(values.udp),
      icmp: values.icmp,
      bulk: port(values.bulk),
      bytes: int("bytes", values.bytes, 1, 64 << 20),
      timeoutMs: int("timeout", values.timeout, 1, 60_000),
      count: int("count", values.count, 1, 10_000),
    });
    console.log(JSON.stringify(report));
  } else {
    console.log(HELP);
    Deno.exit(2);
  }
}

if (import.meta.main) await main(Deno.args);

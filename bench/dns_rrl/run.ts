/**
 * Response rate limiting under a flood: our DNS server (64 answers per A query, default RRL
 * unless `--rrl-rate` says otherwise) gets a flood of identical queries from 127.0.0.1 while
 * dnsperf asks from 127.0.1.1 (another /24) at a rate under the limit. Prints, for the flood: the
 * full answers per second against the configured rate, the slipped TC answers, the amplification
 * in bytes (replies / queries); for dnsperf: completed, lost and average latency, alone and
 * during the flood. Goal: full answers at most the rate, amplification under 3x, dnsperf
 * unaffected (0 lost).
 *
 * `deno task bench:rrl [--seconds 5] [--rrl-rate 200] [--io mmsg] [--other-qps 150]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { spawnDenoLines, startedLine } from "../../tests/_proc.ts";

const HELP = `Usage: deno task bench:rrl [options]

  --seconds N      flood (and dnsperf) duration (default 5)
  --rrl-rate N     the server's --rrl-rate (default 200)
  --rrl-slip K     the server's --rrl-slip (default 2)
  --io MODE        mmsg (default) or portable
  --other-qps N    dnsperf rate from 127.0.1.1 (default 150, under the limit)
  --burst N        flood: queries sent between 1 ms pauses (default 50)
  -h, --help       show this help`;

const root = new URL("../../", import.meta.url).pathname;
const ZONE = "cdn.test";
const ANSWERS = 64;

/** cdn.test A with an OPT record of payload 1232 (37 bytes). */
function query(id: number): Uint8Array {
  return Uint8Array.from([
    id >> 8,
    id & 0xff,
    1,
    0,
    0,
    1,
    0,
    0,
    0,
    0,
    0,
    1,
    3,
    0x63,
    0x64,
    0x6e,
    4,
    0x74,
    0x65,
    0x73,
    0x74,
    0,
    0,
    1,
    0,
    1,
    0,
    0,
    41,
    4,
    0xd0,
    0,
    0,
    0,
    0,
    0,
    0,
  ]); // deno-fmt-ignore
}

interface Perf {
  sent: number;
  completed: number;
  lost: number;
  latencyMs: number;
}

async function dnsperf(port: number, seconds: number, qps: number, file: string): Promise<Perf> {
  const out = await new Deno.Command("dnsperf", {
    args: [
      ...["-s", "127.0.0.1", "-a", "127.0.1.1", "-p", String(port), "-d", file, "-e"],
      ...["-l", String(seconds), "-Q", String(qps), "-t", "2"],
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  return {
    sent: num(/Queries sent:\s+(\d+)/),
    completed: num(/Queries completed:\s+(\d+)/),
    lost: num(/Queries lost:\s+(\d+)/),
    latencyMs: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
  };
}

interface Flood {
  sent: number;
  full: number;
  tc: number;
  other: number;
  bytesOut: number;
  bytesIn: number;
  seconds: number;
}

/** Sends queries from 127.0.0.1 for `seconds`, `burst` at a time; counts every reply. */
async function flood(port: number, seconds: number, burst: number): Promise<Flood> {
  const sock = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
  const f: Flood = { sent: 0, full: 0, tc: 0, other: 0, bytesOut: 0, bytesIn: 0, seconds: 0 };
  const reader = (async () => {
    try {
      for (;;) {
        const [m] = await sock.receive();
        f.bytesIn += m.length;
        const tc = (m[2] & 2) !== 0, an = (m[6] << 8) | m[7];
        if (tc && an === 0) f.tc++;
        else if (!tc && an === ANSWERS) f.full++;
        else f.other++;
      }
    } catch { /* closed */ }
  })();
  const q = query(0xf100);
  const start = performance.now(), end = start + seconds * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < burst; i++) {
      await sock.send(q, to);
      f.sent++;
      f.bytesOut += q.length;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  f.seconds = (performance.now() - start) / 1000;
  await new Promise((r) => setTimeout(r, 500)); // the last replies
  sock.close();
  await reader;
  return f;
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    args: Deno.args,
    options: {
      seconds: { type: "string", default: "5" },
      "rrl-rate": { type: "string", default: "200" },
      "rrl-slip": { type: "string", default: "2" },
      io: { type: "string", default: "mmsg" },
      "other-qps": { type: "string", default: "150" },
      burst: { type: "string", default: "50" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (v.help) return console.log(HELP);
  const seconds = Number(v.seconds), rate = Number(v["rrl-rate"]);
  const dir = await Deno.makeTempDir({ prefix: "nearcast_bench_rrl_" });
  const config = `${dir}/cdn.json`;
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      answers: ANSWERS,
      replicas: Array.from({ length: ANSWERS }, (_, i) => ({
        id: `r${i}`,
        ipv4: `192.0.2.${i + 1}`,
        lat: 10,
        lon: 10,
      })),
    }),
  );
  const file = `${dir}/queries.txt`;
  await Deno.writeTextFile(file, `${ZONE} A\n`);
  const server = spawnDenoLines([
    ...[`${root}main_dns.ts`, "-p", "0", "-n", ZONE, "--config", config],
    ...["--control", "off", "--io", v.io!, "--rrl-rate", String(rate)],
    ...["--rrl-slip", v["rrl-slip"]!],
  ], { stderr: "inherit", name: "the DNS server" });
  const port = Number((await startedLine(server, /port (\d+) \(udp\+tcp/))[1]);
  try {
    const qps = Number(v["other-qps"]);
    const alone = await dnsperf(port, seconds, qps, file);
    const [f, during] = await Promise.all([
      flood(port, seconds, Number(v.burst)),
      dnsperf(port, seconds, qps, file),
    ]);
    const fullPerS = f.full / f.seconds;
    const amp = f.bytesIn / f.bytesOut;
    console.log(
      `server: --io ${v.io} --rrl-rate ${rate} --rrl-slip ${v["rrl-slip"]}, ` +
        `${ANSWERS} answers per A query`,
    );
    console.log(
      `flood from 127.0.0.1: ${f.sent} queries in ${f.seconds.toFixed(1)} s ` +
        `(${Math.round(f.sent / f.seconds)}/s); ${f.full} full answers ` +
        `(${fullPerS.toFixed(0)}/s, rate ${rate}/s), ${f.tc} slipped TC, ${f.other} other, ` +
        `${f.sent - f.full - f.tc - f.other} unanswered; amplification ${amp.toFixed(2)}x ` +
        `(${f.bytesIn} reply bytes / ${f.bytesOut} query bytes)`,
    );
    const show = (p: Perf) =>
      `${p.completed}/${p.sent} completed, ${p.lost} lost, avg latency ${
        p.latencyMs.toFixed(2)
      } ms`;
    console.log(`dnsperf from 127.0.1.1 at ${qps}/s alone:       ${show(alone)}`);
    console.log(`dnsperf from 127.0.1.1 at ${qps}/s during flood: ${show(during)}`);
    // The bucket starts full: one second's burst on top of the rate.
    const limitOk = f.full <= rate * (f.seconds + 1.5);
    const verdict = limitOk && amp < 3 && during.lost === 0 ? "met" : "NOT met";
    console.log(
      `goal (full answers <= rate, amplification < 3x, other client 0 lost): ${verdict}`,
    );
  } finally {
    await server.stop("SIGTERM");
    console.log(/dns: stopped (.*) \(SIGTERM\)/.exec(server.output())?.[1] ?? "");
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main();

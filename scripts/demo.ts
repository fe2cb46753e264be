/**
 * `deno task demo`: starts the CDN on loopback as real processes, prints what to try, and stops
 * them all on Ctrl-C or SIGTERM. The processes are one list ({@link PROCESSES}): later parts of
 * the CDN (replicas, origin, pricing, proxy) are added there.
 *
 * @module
 */
import { parseArgs } from "node:util";

/** Longest wait for a process to say it is ready. */
const READY_TIMEOUT_MS = 30_000;
/** Longest wait for a process to exit after SIGTERM before SIGKILL. */
const STOP_TIMEOUT_MS = 5_000;

const root = new URL("../", import.meta.url).pathname;

/** A process of the demo: how to start it and the output line that says it is ready. */
export interface DemoProcess {
  name: string;
  args: string[];
  ready: RegExp;
}

/** Every process of the demo, started in this order and stopped in reverse. */
export function demoProcesses(dnsPort: number): DemoProcess[] {
  return [
    {
      name: "dns",
      args: [
        "run",
        "-A",
        `${root}main_dns.ts`,
        "-p",
        String(dnsPort),
        "-n",
        "cdn.test",
        "--host",
        "127.0.0.1",
        "--config",
        `${root}scripts/demo/cdn.json`,
      ],
      ready: /dns: serving/,
    },
  ];
}

/** The commands printed once everything is up. */
export function tryThis(dnsPort: number): string {
  const d = `dig @127.0.0.1 -p ${dnsPort}`;
  return `
Nearcast demo is up. Try:

  ${d} cdn.test                                 # from 127.0.0.1 (Amsterdam in the geo table): London, 127.0.0.12
  ${d} +tcp cdn.test                            # the same over TCP: London, 127.0.0.12
  ${d} cdn.test +subnet=192.0.2.0/24            # Chicago  -> New York, 127.0.0.11 (ECS echoed with its scope)
  ${d} cdn.test +subnet=198.51.100.0/24         # Paris    -> London,   127.0.0.12
  ${d} cdn.test +subnet=203.0.113.0/24          # Osaka    -> Tokyo,    127.0.0.13
  ${d} cdn.test +subnet=2001:db8:2::/48         # Sydney   -> Tokyo,    127.0.0.13
  ${d} cdn.test +subnet=10.0.0.0/8              # unknown location: the replicas in rotation
  ${d} -b 127.0.0.13 cdn.test                   # source 127.0.0.13 is in Tokyo: 127.0.0.13
  ${d} www.cdn.test                             # NXDOMAIN, SOA in authority
  ${d} cdn.test SOA                             # the zone's SOA
  ${d} cdn.test NS                              # ns1.cdn.test, with its address
  ${d} cdn.test AAAA                            # NODATA: no demo replica has IPv6
  ${d} example.com                              # REFUSED: not our zone

Ctrl-C stops everything.
`;
}

interface Running {
  spec: DemoProcess;
  child: Deno.ChildProcess;
  exited: Promise<Deno.CommandStatus>;
}

/** Copies a child's output to ours, line by line with its name, until `ready` matches. */
function pipeOutput(
  name: string,
  stream: ReadableStream<Uint8Array>,
  to: (line: string) => void,
  onLine: (line: string) => void,
): Promise<void> {
  return (async () => {
    let rest = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + text).split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        to(`[${name}] ${line}`);
        onLine(line);
      }
    }
    if (rest) to(`[${name}] ${rest}`);
  })();
}

async function start(spec: DemoProcess): Promise<Running> {
  const child = new Deno.Command(Deno.execPath(), {
    args: spec.args,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  let ready: () => void = () => {};
  const isReady = new Promise<void>((resolve) => (ready = resolve));
  const check = (line: string) => spec.ready.test(line) && ready();
  pipeOutput(spec.name, child.stdout, console.log, check);
  pipeOutput(spec.name, child.stderr, console.error, check);
  const exited = child.status;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      isReady,
      exited.then((s) => {
        throw new Error(`${spec.name} exited with code ${s.code} before it was ready`);
      }),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${spec.name} not ready after ${READY_TIMEOUT_MS} ms`)),
          READY_TIMEOUT_MS,
        );
      }),
    ]);
  } catch (e) {
    await stop({ spec, child, exited });
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return { spec, child, exited };
}

async function stop(r: Running): Promise<void> {
  try {
    r.child.kill("SIGTERM");
  } catch { /* already exited */ }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      try {
        r.child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
      resolve();
    }, STOP_TIMEOUT_MS);
  });
  await Promise.race([r.exited, killed]);
  await r.exited;
  clearTimeout(timer);
}

/** Starts every process; resolves when the demo has been stopped. */
export async function runDemo(dnsPort: number): Promise<number> {
  const running: Running[] = [];
  const stopAll = async () => {
    for (const r of running.reverse()) await stop(r);
    running.length = 0;
  };
  let stopping = false;
  const done = new Promise<number>((resolve) => {
    const onSignal = () => {
      if (stopping) return;
      stopping = true;
      console.log("\nstopping...");
      stopAll().then(() => resolve(0));
    };
    Deno.addSignalListener("SIGINT", onSignal);
    Deno.addSignalListener("SIGTERM", onSignal);
  });
  try {
    for (const spec of demoProcesses(dnsPort)) running.push(await start(spec));
  } catch (e) {
    console.error(`demo: ${(e as Error).message}`);
    await stopAll();
    return 1;
  }
  console.log(tryThis(dnsPort));
  // A child that dies on its own takes the demo down with it.
  const died = Promise.race(running.map((r) => r.exited.then(() => r.spec.name))).then(
    async (name) => {
      if (stopping) return 0;
      stopping = true;
      console.error(`demo: ${name} exited; stopping the rest`);
      await stopAll();
      return 1;
    },
  );
  return await Promise.race([done, died]);
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "dns-port": { type: "string", default: "5300" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(`Usage: deno task demo [--dns-port PORT]

Starts the CDN on loopback (the DNS server on 127.0.0.1, UDP and TCP) and prints commands to try.
  --dns-port PORT  DNS server port (default 5300)
  -h, --help       show this help`);
    Deno.exit(0);
  }
  const port = Number(values["dns-port"]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    console.error(`demo: --dns-port must be 1..65535: received ${values["dns-port"]}`);
    Deno.exit(2);
  }
  Deno.exit(await runDemo(port));
}

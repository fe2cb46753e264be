/**
 * `deno task demo`: starts the CDN on loopback as real processes, prints what to try, and stops
 * them all on Ctrl-C or SIGTERM. A process that dies on its own (a `kill -9` to watch failover)
 * is reported with the command that restarts it; the others keep running. The processes are one list ({@link PROCESSES}): later parts of
 * the CDN (replicas, origin, pricing, proxy) are added there.
 *
 * @module
 */
import { type FlagTable, parseFlags, runMain, usage, UsageError } from "../lib/common/cli.ts";

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

/** Ports and directories of one demo run. */
export interface DemoOptions {
  dnsPort: number;
  /** The DNS server's control API (HTTP) and heartbeat (UDP) port. */
  controlPort: number;
  httpPort: number;
  originPort: number;
  /** The pricing service's port. */
  pricePort: number;
  /** The routing proxy's port. */
  proxyPort: number;
  /** Parent of the replicas' `--data` directories. */
  dataDir: string;
}

/**
 * The demo's replicas: id, loopback address (as in scripts/demo/cdn.json), location, and the
 * cloud provider it runs on (priced in scripts/demo/prices.json).
 */
export const REPLICAS = [
  { id: "nyc", ip: "127.0.0.11", city: "New York", lat: 40.71, lon: -74.01, provider: "alpha" },
  { id: "lon", ip: "127.0.0.12", city: "London", lat: 51.51, lon: -0.13, provider: "beta" },
  { id: "tok", ip: "127.0.0.13", city: "Tokyo", lat: 35.68, lon: 139.69, provider: "gamma" },
] as const;

/**
 * The proxy's latency bound: on loopback every server answers within it even on a loaded
 * machine (a cold miss included), so the demo's proxy choice follows the prices.
 */
const PROXY_MAX_EXTRA_MS = 500;

/** The CDN's name (the DNS zone, and the host the proxy routes). */
const ZONE = "cdn.test";

/** The admin token of the demo's replicas (uploads, deletes, purges). */
export const DEMO_TOKEN = "demo-token";

/** Every process of the demo, started in this order and stopped in reverse. */
export function demoProcesses(o: DemoOptions): DemoProcess[] {
  const origin = `http://127.0.0.1:${o.originPort}`;
  const replicas = REPLICAS.map((r): DemoProcess => ({
    name: r.id,
    args: [
      "run",
      "-A",
      `${root}main_http.ts`,
      "-p",
      String(o.httpPort),
      "--host",
      r.ip,
      "-o",
      origin,
      "--id",
      r.id,
      "--data",
      `${o.dataDir}/${r.id}`,
      "--peers",
      REPLICAS.filter((p) => p.id !== r.id).map((p) => `http://${p.ip}:${o.httpPort}`).join(","),
      // Uploads: every node takes the same token; lon and tok join the fleet of uploads through
      // nyc, and learn the rest from its heartbeats.
      "--admin-token",
      DEMO_TOKEN,
      ...(r.id === "nyc" ? [] : ["--join", `http://${REPLICAS[0].ip}:${o.httpPort}`]),
      "--announce",
      `127.0.0.1:${o.controlPort}`,
      `--lat=${r.lat}`,
      `--lon=${r.lon}`,
      "--provider",
      r.provider,
    ],
    ready: /fleet: registered as/,
  }));
  return [
    {
      name: "origin",
      args: ["run", "-A", `${root}scripts/demo_origin.ts`, "-p", String(o.originPort)],
      ready: /demo origin: serving/,
    },
    {
      name: "price",
      args: [
        "run",
        "-A",
        `${root}main_price.ts`,
        "-p",
        String(o.pricePort),
        "--host",
        "127.0.0.1",
        "--config",
        `${root}scripts/demo/prices.json`,
        "--data",
        `${o.dataDir}/price`,
        "--admin-token",
        DEMO_TOKEN,
      ],
      ready: /price: serving on/,
    },
    {
      name: "dns",
      args: [
        "run",
        "-A",
        `${root}main_dns.ts`,
        "-p",
        String(o.dnsPort),
        "-n",
        ZONE,
        "--host",
        "127.0.0.1",
        "--config",
        `${root}scripts/demo/cdn.json`,
        "--control",
        String(o.controlPort),
        "--data",
        `${o.dataDir}/dns`,
        // On loopback every RTT is ~0.1 ms: the default (latency) would pick by noise.
        "--policy",
        "geo",
        // Prices show in /explain (the geo policy does not use them).
        "--price",
        `http://127.0.0.1:${o.pricePort}`,
      ],
      ready: /dns: control API on/,
    },
    ...replicas,
    {
      name: "proxy",
      args: [
        "run",
        "-A",
        `${root}main_proxy.ts`,
        "-p",
        String(o.proxyPort),
        "--mode",
        "balanced",
        "--max-extra-ms",
        String(PROXY_MAX_EXTRA_MS),
        "--node",
        `http://${REPLICAS[0].ip}:${o.httpPort}`,
        "--price",
        `http://127.0.0.1:${o.pricePort}`,
        "--name",
        ZONE,
      ],
      ready: /proxy: listening on/,
    },
  ];
}

/** The live dashboard of the demo's DNS server (`lib/fleet/dns/dashboard/`). */
export function dashboardUrl(o: Pick<DemoOptions, "controlPort">): string {
  return `http://127.0.0.1:${o.controlPort}/dashboard`;
}

/** The commands printed once everything is up. */
export function tryThis(o: DemoOptions, pids: Record<string, number> = {}): string {
  const { dnsPort, httpPort } = o;
  const d = `dig @127.0.0.1 -p ${dnsPort}`;
  const resolve = `--resolve cdn.test:${httpPort}:$(dig +short @127.0.0.1 -p ${dnsPort} cdn.test`;
  return `
Dashboard: ${dashboardUrl(o)}   (live: fleet, map, RTTs, decisions, replication, events)

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

Fetch through the CDN (the DNS answer picks the replica; X-Cache shows MISS, then HIT):

  curl -si ${resolve}) http://cdn.test:${httpPort}/ | grep -iE '^(HTTP|x-cache|age|via)'
  curl -si ${resolve} +subnet=203.0.113.0/24) http://cdn.test:${httpPort}/logo.png -o /dev/null -D - | grep -i x-cache
  curl -s ${resolve}) http://cdn.test:${httpPort}/large.bin -o /dev/null -w '%{size_download} bytes, %{time_total} s\\n'
  curl -si -H 'Range: bytes=0-99' http://127.0.0.12:${httpPort}/large.bin -o /dev/null -D - | grep -iE '^(HTTP|content-range|x-cache)'
  curl -s http://127.0.0.11:${httpPort}/_cdn/metrics | grep -E '^nearcast_http_cache_(hits|misses)_total'

Publish a file: upload it to one replica; every replica stores it, replicates it and serves it.

  ./deno task upload scripts/demo/site/logo.png --name uploads/logo.png --to http://127.0.0.11:${httpPort} --token ${DEMO_TOKEN}
${
    REPLICAS.map((r) =>
      `  curl -s http://${r.ip}:${httpPort}/uploads/logo.png | sha256sum                   # ${r.city}`
    ).join("\n")
  }
  curl -s http://127.0.0.12:${httpPort}/_cdn/manifest                                 # names, versions, hashes
  ./deno task upload --delete uploads/logo.png --to http://127.0.0.13:${httpPort} --token ${DEMO_TOKEN}

Live fleet: the replicas registered with the DNS server's control API and heartbeat every second.

  curl -s http://127.0.0.1:${o.controlPort}/replicas                    # state, last heartbeat, load
  curl -s 'http://127.0.0.1:${o.controlPort}/explain?client=127.0.0.1'  # every replica's score and why
  kill -9 ${
    pids.lon ?? "PID_OF_LON"
  }                                       # London dies (the demo says so and keeps running); within ~1.5 s ...
  watch -n 0.5 dig +short @127.0.0.1 -p ${dnsPort} cdn.test        # ... 127.0.0.12 gives way to another replica

${pricesText(o)}
Origin: http://127.0.0.1:${o.originPort}/   Pricing: http://127.0.0.1:${o.pricePort}/   Replicas: ${
    REPLICAS.map((r) => `${r.id} http://${r.ip}:${httpPort}/`).join("  ")
  }

Ctrl-C stops everything.
`;
}

/** The pricing and proxy part of {@link tryThis}: prices, the proxy's choice, and a flip. */
function pricesText(o: DemoOptions): string {
  const price = `http://127.0.0.1:${o.pricePort}`;
  const proxy = `http://127.0.0.1:${o.proxyPort}`;
  const patch = `curl -s -X PATCH -H 'Authorization: Bearer ${DEMO_TOKEN}' ` +
    `-H 'Content-Type: application/json'`;
  const via =
    `curl -si -x ${proxy} http://${ZONE}/index.html -o /dev/null -D - | grep -i '^x-nearcast'`;
  const who = REPLICAS.map((r) => `${r.id} on ${r.provider}`).join(", ");
  return `Prices: the pricing service holds each provider's cost; each replica names its provider
(${who}); cost per GiB = egressPerGiB + serverPerHour / 100.

  curl -s ${price}/providers                                       # every provider's record and version
  curl -s http://${
    REPLICAS[0].ip
  }:${o.httpPort}/_cdn/servers                  # every server's id, URL and provider
  curl -s 'http://127.0.0.1:${o.controlPort}/explain?client=127.0.0.1'      # each replica's costPerGiB

The routing proxy (${proxy}, --mode balanced --max-extra-ms ${PROXY_MAX_EXTRA_MS}: the cheapest server
within ${PROXY_MAX_EXTRA_MS} ms of the fastest; on loopback they all are, so price decides) picks a server
per request and says which and why:

  ${via}   # server tok (gamma, the cheapest)
  wget -qSO /dev/null -e use_proxy=yes -e http_proxy=${proxy} http://${ZONE}/index.html 2>&1 | grep -i x-nearcast   # server tok
  curl -s ${proxy}/_proxy/explain                                  # every server's score
  ${patch} -d '{"egressPerGiB":0.2}' ${price}/providers/gamma   # tok becomes the dearest ...
  ${via}   # server lon (beta, now the cheapest), within a second
  ${patch} -d '{"egressPerGiB":0.01}' ${price}/providers/gamma  # back: server tok again
  curl -s '${price}/prices?since=VERSION&wait=25'                   # long poll: returns on the next change
`;
}

interface Running {
  spec: DemoProcess;
  child: Deno.ChildProcess;
  exited: Promise<Deno.CommandStatus>;
  /** Set once the process has exited. */
  readonly state: { exited: boolean };
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
    // Our own output may be gone (a closed terminal): the children are still stopped.
    const say = (line: string) => {
      try {
        to(line);
      } catch { /* stdout or stderr closed */ }
    };
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + text).split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        say(`[${name}] ${line}`);
        onLine(line);
      }
    }
    if (rest) say(`[${name}] ${rest}`);
  })();
}

async function start(spec: DemoProcess): Promise<Running> {
  const child = new Deno.Command(Deno.execPath(), {
    args: spec.args,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    // A session of its own: Ctrl-C (or `deno task`'s SIGTERM) reaches the whole foreground
    // process group, and the DNS server stopped alongside the replicas then refused their
    // deregistrations ("cannot deregister ... fetch failed"); now only the demo gets the
    // signal and stops its processes in reverse order of start.
    detached: true,
  }).spawn();
  let ready: () => void = () => {};
  const isReady = new Promise<void>((resolve) => (ready = resolve));
  const check = (line: string) => spec.ready.test(line) && ready();
  pipeOutput(spec.name, child.stdout, console.log, check);
  pipeOutput(spec.name, child.stderr, console.error, check);
  const state = { exited: false };
  const exited = child.status.then((s) => {
    state.exited = true;
    return s;
  });
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
    await stop({ spec, child, exited, state });
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return { spec, child, exited, state };
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

/** Waits until the DNS server's control API lists `count` live replicas. */
async function fleetAlive(controlPort: number, count: number): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${controlPort}/replicas`);
      const body = await res.json() as { replicas: { id: string; state: string }[] };
      last = body.replicas.map((r) => `${r.id} ${r.state}`).join(", ");
      if (body.replicas.filter((r) => r.state === "alive").length >= count) return;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`replicas not all alive after ${READY_TIMEOUT_MS} ms: ${last}`);
}

/** The command that starts `spec` again by hand, from the repository root. */
export function restartCommand(spec: DemoProcess): string {
  const script = spec.args.indexOf("-A") + 1;
  const file = spec.args[script].replace(root, "");
  const quote = (a: string) => /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`;
  return `./deno run -A ${file} ${spec.args.slice(script + 1).map(quote).join(" ")}`;
}

/** What a process's death means and how to bring it back. */
function deathNotice(o: DemoOptions, r: Running, s: Deno.CommandStatus, interactive: boolean) {
  const how = s.signal !== null ? `killed by ${s.signal}` : `exit code ${s.code}`;
  const replica = REPLICAS.find((x) => x.id === r.spec.name);
  const lines = [
    "",
    `demo: ${r.spec.name} (pid ${r.child.pid}) exited (${how}); the other processes keep running.`,
  ];
  if (replica !== undefined) {
    lines.push(
      `demo: the DNS server stops answering ${replica.ip} once ${replica.id}'s heartbeats are ` +
        `missed (about 1.5 s): dig +short @127.0.0.1 -p ${o.dnsPort} cdn.test`,
    );
  }
  lines.push(
    interactive
      ? `demo: to restart it, type "restart ${r.spec.name}" here, or run in another terminal:`
      : `demo: to restart it, run in another terminal (from the repository root):`,
    `  ${restartCommand(r.spec)}`,
    "",
  );
  console.error(lines.join("\n"));
}

/**
 * Opens `url` in the system browser with `xdg-open` when there is one; otherwise says so and
 * gives the URL to open by hand. Never fails the demo.
 */
export async function openInBrowser(url: string): Promise<void> {
  try {
    const child = new Deno.Command("xdg-open", {
      args: [url],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const s = await child.status;
    if (!s.success) console.error(`demo: xdg-open ${url} failed (exit ${s.code}); open it by hand`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    console.error(`demo: --open needs xdg-open (apt-get install xdg-utils); open ${url} by hand`);
  }
}

/** Starts every process; resolves when the demo has been stopped. */
export async function runDemo(o: DemoOptions, open = false): Promise<number> {
  console.log(`demo: dashboard ${dashboardUrl(o)} (live once everything has started)`);
  const running: Running[] = [];
  const stopAll = async () => {
    for (const r of [...running].reverse()) await stop(r);
    running.length = 0;
  };
  let stopping = false;
  const done = new Promise<number>((resolve) => {
    const onSignal = () => {
      if (stopping) return;
      stopping = true;
      try {
        console.log("\nstopping...");
      } catch { /* stdout closed */ }
      stopAll().then(() => resolve(0));
    };
    // SIGHUP too: a closed terminal stops the demo and everything it started (the servers
    // themselves ignore SIGHUP).
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      Deno.addSignalListener(sig, onSignal);
    }
  });
  try {
    for (const spec of demoProcesses(o)) running.push(await start(spec));
    await fleetAlive(o.controlPort, REPLICAS.length);
  } catch (e) {
    console.error(`demo: ${(e as Error).message}`);
    stopping = true;
    await stopAll();
    return 1;
  }
  const pids = Object.fromEntries(running.map((r) => [r.spec.name, r.child.pid]));
  const interactive = Deno.stdin.isTerminal();
  console.log(tryThis(o, pids));
  if (open) await openInBrowser(dashboardUrl(o));
  // A child that dies on its own (a kill -9 to watch failover) is reported; the rest keep
  // running, so the failover can be watched, and it can be restarted.
  const watch = (r: Running) =>
    r.exited.then((s) => {
      if (!stopping) deathNotice(o, r, s, interactive);
    });
  running.forEach(watch);
  if (interactive) {
    // "restart NAME" lines; end of input (Ctrl-D) only ends the reading, never the demo.
    (async () => {
      for await (const line of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
        const m = /^\s*restart\s+(\S+)\s*$/m.exec(line);
        if (m === null || stopping) continue;
        const i = running.findIndex((r) => r.spec.name === m[1]);
        const r = running[i];
        if (r === undefined) console.error(`demo: no process named ${m[1]}`);
        else if (!r.state.exited) {
          console.error(`demo: ${m[1]} is running (pid ${r.child.pid})`);
        } else {
          try {
            const again = running[i] = await start(r.spec);
            watch(again);
            console.error(`demo: ${m[1]} restarted (pid ${again.child.pid})`);
          } catch (e) {
            console.error(`demo: cannot restart ${m[1]}: ${(e as Error).message}`);
          }
        }
      }
    })().catch(() => {});
  }
  return await done;
}

const DEMO_FLAGS = {
  "dns-port": { type: "string", arg: "PORT", help: "DNS server port. Default 5300." },
  "control-port": {
    type: "string",
    arg: "PORT",
    help: "DNS control API and heartbeat port. Default 5380.",
  },
  "http-port": {
    type: "string",
    arg: "PORT",
    help: "Port of every replica, each on its own address. Default 8080.",
  },
  "origin-port": { type: "string", arg: "PORT", help: "Demo origin port. Default 8000." },
  "price-port": { type: "string", arg: "PORT", help: "Pricing service port. Default 7000." },
  "proxy-port": { type: "string", arg: "PORT", help: "Routing proxy port. Default 3128." },
  open: {
    type: "boolean",
    help: "Open the dashboard in the system browser (xdg-open) once everything is up.",
  },
  help: { type: "boolean", short: "h", help: "Show this help." },
} satisfies FlagTable;

async function main(): Promise<void> {
  const f = parseFlags(Deno.args, DEMO_FLAGS);
  if (f.bool("help")) {
    console.log(usage(
      [
        "Usage: deno task demo [--dns-port PORT] [--control-port PORT] [--http-port PORT] [--origin-port PORT]",
        "                      [--price-port PORT] [--proxy-port PORT] [--open]",
        "",
        "Prints the live dashboard's URL first (http://127.0.0.1:CONTROL_PORT/dashboard); --open opens",
        "it in the system browser with xdg-open.",
        "",
        "Starts a whole CDN on loopback as real processes and prints commands to try: the demo origin",
        "on 127.0.0.1, three caching replicas (nyc 127.0.0.11, lon 127.0.0.12, tok 127.0.0.13, peers",
        `of each other, replicating uploads among themselves (admin token ${DEMO_TOKEN}), each with its`,
        "own data directory, removed at exit) registering with the DNS server on 127.0.0.1 (UDP and",
        "TCP, control API on --control-port), which steers cdn.test to the live ones. A process that",
        "dies is reported with the command that restarts it; the others keep running. The pricing",
        "service (127.0.0.1, --price-port) holds the cost of each replica's provider; the routing",
        "proxy (127.0.0.1, --proxy-port, mode balanced) picks a replica per request by latency and price.",
      ],
      DEMO_FLAGS,
      ["Exit codes: 0 stopped by Ctrl-C/SIGTERM, 1 a process did not start, 2 bad flag."],
    ));
    return;
  }
  const port = (name: string, fallback: number) => {
    const p = f.port(name, fallback);
    if (p === 0) throw new UsageError(`--${name} must be 1..65535: received 0`);
    return p;
  };
  const ports = {
    dnsPort: port("dns-port", 5300),
    controlPort: port("control-port", 5380),
    httpPort: port("http-port", 8080),
    originPort: port("origin-port", 8000),
    pricePort: port("price-port", 7000),
    proxyPort: port("proxy-port", 3128),
  };
  const dataDir = await Deno.makeTempDir({ prefix: "nearcast-demo-" });
  let code = 1;
  try {
    code = await runDemo({ ...ports, dataDir }, f.bool("open"));
  } finally {
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
  Deno.exit(code);
}

if (import.meta.main) await runMain("demo", main);

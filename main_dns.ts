/**
 * The DNS steering server: `deno task dns -p PORT -n NAME [--config FILE] [--host ADDR]`.
 * See docs/notes/dns.md.
 *
 * @module
 */
import {
  DEFAULT_HEADER_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  type ListenerLimits,
} from "./lib/common/http_server.ts";
import { parseArgs } from "node:util";
import { ConfigError, defaultConfig, loadConfig } from "./lib/dns/config.ts";
import { CODECS, IO_MODES } from "./lib/dns/server.ts";
import { startFleetDns } from "./lib/fleet/dns_fleet.ts";
import {
  DEFAULT_OVERLOAD_RPS,
  DEFAULT_POLICY,
  DEFAULT_REFRESH_MS,
  DEFAULT_SHORT_TTL,
  POLICIES,
  type PolicyName,
} from "./lib/dns/policy.ts";
import { DEFAULT_PROBE_PORT } from "./lib/fleet/monitor.ts";
import { DEFAULT_CONTROL_PORT } from "./lib/fleet/protocol.ts";
import { DEFAULT_RTT_TTL_MS } from "./lib/fleet/rtt.ts";
import { parseDuration } from "./lib/http/units.ts";

/** The batched path is the only one that reaches the throughput goal (docs/benchmarks.md). */
const DEFAULT_IO = Deno.build.os === "linux" ? "mmsg" : "portable";

const HELP = `Usage: deno task dns -p PORT -n NAME [options]

Authoritative DNS (UDP and TCP on one port) for the CDN zone NAME: A/AAAA at NAME answer the
best live replica for the client (EDNS Client Subnet, else the source address). Replicas come
from the config and from registration on the control API (docs/notes/fleet.md).

  -p, --port PORT      UDP and TCP port (0 picks a free one; the chosen one is printed)
  -n, --name NAME      zone to serve, e.g. cdn.test
  -c, --config FILE    JSON config: ttl, answers, replicas, geo, ns, soa, tcp (docs/notes/dns.md)
      --host ADDR      address to bind (default 127.0.0.1; 0.0.0.0 or :: for all)
      --codec KIND     DNS wire codec: wasm (default) or ts (the TypeScript reference)
      --io MODE        UDP transport: mmsg (default on Linux: batched recvmmsg/sendmmsg
                       through FFI, needs --allow-ffi) or portable (Deno sockets; the
                       default elsewhere). See docs/benchmarks.md for why.
      --control PORT   control API (HTTP) and heartbeat (UDP) port; default ${DEFAULT_CONTROL_PORT},
                       or a free one when -p is 0; "off": no control API (static
                       config only, no registration)
      --data DIR       keep the replica registry in DIR/fleet.sqlite (default: in memory)
      --admin-token T  bearer token for registration and removal (or env
                       NEARCAST_ADMIN_TOKEN); without one, only loopback clients may
                       register or remove replicas
      --policy P       ${POLICIES.join(", ")} (default ${DEFAULT_POLICY}: the smallest
                       measured RTT, else the nearest by geography, else rotation)
      --weights W      balanced weights, e.g. latency=1,load=2 (default 1 and 1)
      --overload-rps N a replica above N requests/s loses its clients (default ${DEFAULT_OVERLOAD_RPS})
      --rtt-refresh D  re-measure a subnet's RTT after D (default ${DEFAULT_REFRESH_MS / 1000}s)
      --rtt-ttl D      forget a measurement after D (default ${DEFAULT_RTT_TTL_MS / 60000}m)
      --short-ttl S    TTL of answers not based on a measurement (default ${DEFAULT_SHORT_TTL})
      --probe-port N   port replicas connect to when measuring RTT (default ${DEFAULT_PROBE_PORT})
      --max-conns N    control API: most open connections; past it the oldest idle one
                       is closed (default 512, at most 3/4 of the open-file limit)
      --header-timeout D  control API: time for a complete request head (default 30s)
      --idle-timeout D control API: close a connection with a request in flight after D
                       without a byte either way (default 60s)
  -h, --help           show this help`;

/** Parses the command line, or explains what is wrong and exits 2. */
function args(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string", short: "p" },
      name: { type: "string", short: "n" },
      config: { type: "string", short: "c" },
      host: { type: "string", default: "127.0.0.1" },
      codec: { type: "string", default: "wasm" },
      io: { type: "string", default: DEFAULT_IO },
      control: { type: "string" },
      data: { type: "string" },
      "admin-token": { type: "string" },
      policy: { type: "string", default: DEFAULT_POLICY },
      weights: { type: "string" },
      "overload-rps": { type: "string" },
      "rtt-refresh": { type: "string" },
      "rtt-ttl": { type: "string" },
      "short-ttl": { type: "string" },
      "probe-port": { type: "string" },
      "max-conns": { type: "string" },
      "header-timeout": { type: "string" },
      "idle-timeout": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(HELP);
    Deno.exit(0);
  }
  const port = Number(values.port);
  const problems = [
    !/^[0-9]{1,5}$/.test(values.port ?? "") || port > 65535 ? "-p PORT: 0..65535 required" : "",
    !values.name ? "-n NAME: the zone name is required" : "",
    !(CODECS as readonly string[]).includes(values.codec) ? `--codec: one of ${CODECS}` : "",
    !(IO_MODES as readonly string[]).includes(values.io) ? `--io: one of ${IO_MODES}` : "",
    !(POLICIES as readonly string[]).includes(values.policy) ? `--policy: one of ${POLICIES}` : "",
  ].filter(Boolean);
  const portOf = (flag: string, text: string | undefined, dflt: number) => {
    if (text === undefined) return dflt;
    const n = Number(text);
    if (!/^[0-9]{1,5}$/.test(text) || n > 65535) problems.push(`${flag}: 0..65535 required`);
    return n;
  };
  const controlPort = values.control === "off"
    ? null
    : portOf("--control", values.control, port === 0 ? 0 : DEFAULT_CONTROL_PORT);
  const probePort = portOf("--probe-port", values["probe-port"], DEFAULT_PROBE_PORT);
  const duration = (flag: string, text: string | undefined, dflt: number) => {
    if (text === undefined) return dflt;
    try {
      const ms = parseDuration(text);
      if (ms > 0) return ms;
      problems.push(`${flag}: must be positive: received ${text}`);
    } catch (e) {
      problems.push(`${flag}: ${(e as Error).message}`);
    }
    return dflt;
  };
  const refreshMs = duration("--rtt-refresh", values["rtt-refresh"], DEFAULT_REFRESH_MS);
  const rttTtlMs = duration("--rtt-ttl", values["rtt-ttl"], DEFAULT_RTT_TTL_MS);
  const number = (flag: string, text: string | undefined, dflt: number, min: number) => {
    if (text === undefined) return dflt;
    const n = Number(text);
    if (text.trim() === "" || !Number.isFinite(n) || n < min) {
      problems.push(`${flag}: a number >= ${min} required: received ${text}`);
    }
    return n;
  };
  const controlLimits: ListenerLimits = {
    headerTimeoutMs: duration(
      "--header-timeout",
      values["header-timeout"],
      DEFAULT_HEADER_TIMEOUT_MS,
    ),
    idleTimeoutMs: duration("--idle-timeout", values["idle-timeout"], DEFAULT_IDLE_TIMEOUT_MS),
  };
  if (values["max-conns"] !== undefined) {
    controlLimits.maxConns = number("--max-conns", values["max-conns"], 1, 1);
    if (!Number.isInteger(controlLimits.maxConns)) {
      problems.push("--max-conns: an integer required");
    }
  }
  const overloadRps = number("--overload-rps", values["overload-rps"], DEFAULT_OVERLOAD_RPS, 1);
  const shortTtl = number("--short-ttl", values["short-ttl"], DEFAULT_SHORT_TTL, 0);
  if (!Number.isInteger(shortTtl)) problems.push("--short-ttl: whole seconds required");
  const weights = { latency: 1, load: 1 };
  for (const part of (values.weights ?? "").split(",").filter((p) => p.trim() !== "")) {
    const m = /^\s*(latency|load)\s*=\s*([0-9]+(?:\.[0-9]+)?)\s*$/.exec(part);
    if (m) weights[m[1] as "latency" | "load"] = Number(m[2]);
    else problems.push(`--weights: latency=N,load=N expected: received ${part}`);
  }
  if (problems.length) throw new SyntaxError(problems.join("\n"));
  const token = values["admin-token"] ?? Deno.env.get("NEARCAST_ADMIN_TOKEN") ?? "";
  return {
    ...values,
    port,
    name: values.name!,
    codec: values.codec as (typeof CODECS)[number],
    io: values.io as (typeof IO_MODES)[number],
    controlPort,
    controlLimits,
    probePort,
    refreshMs,
    rttTtlMs,
    overloadRps,
    shortTtl,
    weights,
    policy: values.policy as PolicyName,
    adminToken: token === "" ? null : token,
  };
}

/** Runs the server until SIGINT/SIGTERM. */
export async function main(argv: string[]): Promise<void> {
  const a = args(argv);
  const config = a.config ? await loadConfig(a.config) : defaultConfig();
  let logged = 0;
  if (a.data !== undefined) await Deno.mkdir(a.data, { recursive: true });
  const fleet = await startFleetDns({
    zone: a.name,
    config,
    hostname: a.host,
    port: a.port,
    codec: a.codec,
    io: a.io,
    controlPort: a.controlPort,
    controlLimits: a.controlLimits,
    data: a.data ?? ":memory:",
    adminToken: a.adminToken,
    policy: a.policy,
    weights: a.weights,
    overloadRps: a.overloadRps,
    refreshMs: a.refreshMs,
    rttTtlMs: a.rttTtlMs,
    shortTtl: a.shortTtl,
    probePort: a.probePort,
    // Log the first errors, then one in a thousand: a flood must not become a log flood.
    onError: (e) => (logged++ < 10 || logged % 1000 === 0) && console.error(`dns error:`, e),
    log: (line) => console.log(line),
  });
  const server = fleet.dns;
  const known = fleet.registry.entries().length;
  console.log(
    `dns: serving ${a.name} on ${a.host} port ${server.port} (udp+tcp, codec ${a.codec}, io ${a.io}, ${config.replicas.length} replicas)`,
  );
  const shown = a.host.includes(":") ? `[${a.host}]` : a.host;
  const registry = a.data ? `${a.data}/fleet.sqlite` : "in memory";
  console.log(
    fleet.control === null
      ? `dns: no control API (--control off): static replicas only, policy ${a.policy}`
      : `dns: control API on http://${shown}:${fleet.control.port}/ (heartbeats udp ` +
        `${fleet.control.port}, policy ${a.policy}, ${known} replicas known, registry ${registry})`,
  );
  const stop = async () => {
    await fleet.close();
    console.log(`dns: stopped ${JSON.stringify(server.stats())}`);
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    const msg = e instanceof ConfigError || e instanceof SyntaxError || e instanceof RangeError
      ? e.message
      : String(e);
    console.error(`dns: cannot start:\n${msg}\n(run with --help for usage)`);
    Deno.exit(e instanceof ConfigError ? 3 : 2);
  }
}

/**
 * The DNS server's command line (`main_dns.ts`): its flag table, and a pure parse from argv to
 * a typed {@link DnsFlagsConfig} with every default filled, or a {@link UsageError} naming the
 * flag and the value. (`config.ts` beside it is the JSON file that `--config` names.)
 *
 * @module
 */
import { type FlagTable, parseFlags, usage, UsageError } from "../common/cli.ts";
import {
  DEFAULT_HEADER_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  defaultMaxConns,
  type ListenerLimits,
} from "../common/http_server.ts";
import { DEFAULT_CONTROL_MAX_CONNS } from "../fleet/dns/control.ts";
import { DEFAULT_PROBE_PORT } from "../fleet/dns/monitor.ts";
import { DEFAULT_CONTROL_PORT } from "../fleet/protocol.ts";
import { DEFAULT_RTT_TTL_MS } from "../fleet/dns/rtt.ts";
import {
  DEFAULT_OVERLOAD_RPS,
  DEFAULT_POLICY,
  DEFAULT_REFRESH_MS,
  DEFAULT_SHORT_TTL,
  DEFAULT_WEIGHTS,
  POLICIES,
  type PolicyName,
  type Weights,
} from "./policy.ts";
import { CODECS, IO_MODES } from "./server.ts";
import { type Cidr, parseCidr } from "../common/ip.ts";
import { DEFAULT_TCP_PER_CLIENT } from "./tcp.ts";
import {
  DEFAULT_RRL_RATE,
  DEFAULT_RRL_SLIP,
  RRL_IPV4_PREFIX,
  RRL_IPV6_PREFIX,
  type RrlOptions,
} from "./rrl.ts";

/** The batched path is the only one that reaches the throughput goal (docs/benchmarks.md). */
export const DEFAULT_IO: (typeof IO_MODES)[number] = Deno.build.os === "linux"
  ? "mmsg"
  : "portable";

/** The DNS server's flags. */
export const DNS_FLAGS = {
  port: {
    type: "string",
    short: "p",
    arg: "PORT",
    help: "UDP and TCP port (0 picks a free one; the chosen one is printed). Required.",
  },
  name: {
    type: "string",
    short: "n",
    arg: "NAME",
    help: "Zone to serve, e.g. cdn.test. Required.",
  },
  config: {
    type: "string",
    short: "c",
    arg: "FILE",
    help: "JSON config: ttl, answers, replicas, geo, ns, soa, tcp (README, DNS config file).",
  },
  host: {
    type: "string",
    arg: "ADDR",
    help: "Address to bind. Default 127.0.0.1; 0.0.0.0 or :: for all.",
  },
  codec: {
    type: "string",
    arg: "KIND",
    help: "DNS wire codec: wasm (default) or ts (the TypeScript reference).",
  },
  io: {
    type: "string",
    arg: "MODE",
    help: `UDP transport: mmsg (batched recvmmsg/sendmmsg through FFI) or portable (Deno\n` +
      `sockets). Default ${DEFAULT_IO}.`,
  },
  "rrl-rate": {
    type: "string",
    arg: "N",
    help: `UDP response rate limit: responses/s per client prefix (/${RRL_IPV4_PREFIX}, ` +
      `/${RRL_IPV6_PREFIX}) and response\nkind. Default ${DEFAULT_RRL_RATE}; 0 turns it off. ` +
      `TCP is never limited.`,
  },
  "rrl-slip": {
    type: "string",
    arg: "K",
    help: `Every Kth rate-limited response goes out truncated (TC, so clients retry over\n` +
      `TCP); the others are dropped. Default ${DEFAULT_RRL_SLIP}; 0 drops them all.`,
  },
  "rrl-exempt": {
    type: "string",
    multiple: true,
    arg: "CIDR",
    help: "Never rate-limit clients in CIDR (repeatable), e.g. 10.0.0.0/8. Default none.",
  },
  "tcp-per-client": {
    type: "string",
    arg: "N",
    help: `Most DNS-over-TCP connections per client address. Default ${DEFAULT_TCP_PER_CLIENT}.`,
  },
  control: {
    type: "string",
    arg: "PORT",
    help:
      `Control API (HTTP) and heartbeat (UDP) port. Default ${DEFAULT_CONTROL_PORT}, or a free\n` +
      `one when -p is 0; "off": no control API (static config only, no registration).`,
  },
  data: {
    type: "string",
    arg: "DIR",
    help: "Keep the replica registry in DIR/fleet.sqlite. Default: in memory.",
  },
  "admin-token": {
    type: "string",
    arg: "TOKEN",
    help: "Bearer token for registration and removal (or env NEARCAST_ADMIN_TOKEN); without\n" +
      "one, only loopback clients may register or remove replicas.",
  },
  policy: {
    type: "string",
    arg: "P",
    help: `${POLICIES.join(", ")}. Default ${DEFAULT_POLICY}.`,
  },
  weights: {
    type: "string",
    arg: "W",
    help: "Balanced weights, e.g. latency=1,load=2,price=1: 100 ms of RTT, a full overload\n" +
      "and 0.10 per GiB weigh the same at weight 1. Default 1 each.",
  },
  "max-extra-ms": {
    type: "string",
    arg: "MS",
    help: "Balanced: answer the cheapest replica whose RTT is within MS of the fastest one's\n" +
      "(instead of the weighted score).",
  },
  price: {
    type: "string",
    arg: "URL",
    help: "Pricing service (deno task price) to take provider prices from, for --policy price\n" +
      "and balanced. Unreachable: the last prices received are kept; unpriced replicas rank\n" +
      "after priced ones; with no price at all, price plays no part.",
  },
  "overload-rps": {
    type: "string",
    arg: "N",
    help: "A replica above N requests/s loses its clients; from 80 % of N its answers get a " +
      `spill address and the short TTL. Default ${DEFAULT_OVERLOAD_RPS}.`,
  },
  "rtt-refresh": {
    type: "string",
    arg: "DURATION",
    help: `Re-measure a subnet's RTT after this. Default ${DEFAULT_REFRESH_MS / 1000}s.`,
  },
  "rtt-ttl": {
    type: "string",
    arg: "DURATION",
    help: `Forget a measurement after this. Default ${DEFAULT_RTT_TTL_MS / 60000}m.`,
  },
  "short-ttl": {
    type: "string",
    arg: "SECONDS",
    help: "TTL of answers that may change soon: a measurement pending, a replica near its " +
      `limit or changing state (README, State-aware answers). Default ${DEFAULT_SHORT_TTL}.`,
  },
  cert: {
    type: "string",
    arg: "FILE",
    help: "Serve the control API over HTTPS only with this certificate (PEM; needs --key).\n" +
      "Replicas then --announce https://HOST:PORT.",
  },
  key: { type: "string", arg: "FILE", help: "The --cert's private key (PEM)." },
  ca: {
    type: "string",
    arg: "FILE",
    help: "Replicas run with --tls: health checks and RTT probe requests go over HTTPS,\n" +
      "verified against this CA (PEM).",
  },
  "probe-port": {
    type: "string",
    arg: "PORT",
    help: `Port replicas connect to when measuring RTT. Default ${DEFAULT_PROBE_PORT}.`,
  },
  "max-conns": {
    type: "string",
    arg: "N",
    help: "Control API: most open connections; past it the oldest idle one is closed.\n" +
      "Default 512, at most 3/4 of the open-file limit.",
  },
  "header-timeout": {
    type: "string",
    arg: "DURATION",
    help: "Control API: time for a complete request head. Default 30s.",
  },
  "idle-timeout": {
    type: "string",
    arg: "DURATION",
    help: "Control API: close a connection with a request in flight after this long\n" +
      "without a byte either way. Default 60s.",
  },
  help: { type: "boolean", short: "h", help: "Show this help." },
} satisfies FlagTable;

/** The DNS server's exit codes (README "Exit codes"). */
export const DNS_EXIT = {
  /** Stopped by SIGINT/SIGTERM. */
  ok: 0,
  /** Bad command line. */
  usage: 2,
  /** The --config file or the --data directory cannot be used. */
  config: 3,
  /** Cannot listen on the DNS port or the control port. */
  listen: 4,
} as const;

/** The usage text of `--help`. */
export function dnsUsage(): string {
  return usage(
    [
      "Usage: deno task dns -p PORT -n NAME [options]",
      "",
      "Authoritative DNS (UDP and TCP on one port) for the CDN zone NAME: A/AAAA at NAME answer",
      "the best live replica for the client (EDNS Client Subnet, else the source address).",
      "Replicas come from the config and from registration on the control API.",
    ],
    DNS_FLAGS,
    [
      "Exit codes: 0 stopped by SIGINT/SIGTERM, 2 bad command line, 3 unusable --config file or",
      "--data directory, 4 cannot listen on the DNS or control port. SIGHUP is ignored (no reload).",
    ],
  );
}

/** Everything the DNS process needs from its flags, every default filled. */
export interface DnsFlagsConfig {
  port: number;
  name: string;
  configFile: string | null;
  host: string;
  codec: (typeof CODECS)[number];
  io: (typeof IO_MODES)[number];
  /** UDP response rate limiting; a rate of 0: off. */
  rrl: RrlOptions & { exempt: Cidr[] };
  /** Most TCP connections per client address. */
  tcpPerClient: number;
  /** Null: no control API (`--control off`). */
  controlPort: number | null;
  /** Limits of the control API's listener (lib/common/http_server.ts). */
  controlLimits: ListenerLimits;
  dataDir: string | null;
  adminToken: string | null;
  policy: PolicyName;
  weights: Weights;
  /** Balanced's latency bound (`--max-extra-ms`), or null: the weighted score. */
  maxExtraMs: number | null;
  /** The pricing service's URL, or null. */
  priceUrl: string | null;
  overloadRps: number;
  refreshMs: number;
  rttTtlMs: number;
  shortTtl: number;
  probePort: number;
  /** `--ca`: replicas speak HTTPS, verified against this file; null: plain HTTP. */
  caFile: string | null;
  /** `--cert`/`--key`: the control API's certificate and key files, or null for plain HTTP. */
  controlTls: { certFile: string; keyFile: string } | null;
}

/** Checks a zone name's labels (1..63 octets each, 253 in all); throws naming `--name`. */
function checkZone(name: string): string {
  const zone = name.endsWith(".") ? name.slice(0, -1) : name;
  if (zone.length > 253) throw new UsageError(`--name: longer than 253 characters: ${name}`);
  const labels = zone.split(".");
  for (const [i, label] of labels.entries()) {
    if (label.length === 0 || label.length > 63 || !/^[A-Za-z0-9_-]+$/.test(label)) {
      throw new UsageError(
        `--name: zone label ${i + 1} of "${name}" must be 1 to 63 of A-Z a-z 0-9 - _`,
      );
    }
  }
  return zone;
}

/**
 * Parses the DNS server's argv (`env` gives NEARCAST_ADMIN_TOKEN): "help" for `-h`, else the
 * config. Throws a {@link UsageError} naming the flag and the value.
 */
export function parseDnsFlags(
  argv: string[],
  env: Record<string, string | undefined> = {},
): DnsFlagsConfig | "help" {
  const f = parseFlags(argv, DNS_FLAGS);
  if (f.bool("help")) return "help";
  f.required("port", "the DNS port, e.g. -p 5300 (0 picks a free one)");
  const port = f.port("port", 0);
  const name = checkZone(f.required("name", "the zone to serve, e.g. -n cdn.test"));
  const shortTtl = f.number("short-ttl", DEFAULT_SHORT_TTL, 0);
  if (!Number.isInteger(shortTtl)) {
    throw new UsageError(`--short-ttl must be whole seconds: received ${f.string("short-ttl")}`);
  }
  const weights = { ...DEFAULT_WEIGHTS };
  for (const part of (f.string("weights") ?? "").split(",").filter((p) => p.trim() !== "")) {
    const m = /^\s*(latency|load|price)\s*=\s*([0-9]+(?:\.[0-9]+)?)\s*$/.exec(part);
    if (m === null) {
      throw new UsageError(`--weights: latency=N,load=N,price=N expected: received ${part}`);
    }
    weights[m[1] as keyof Weights] = Number(m[2]);
  }
  const priceUrl = f.string("price") ?? null;
  if (priceUrl !== null && !URL.canParse(priceUrl)) {
    throw new UsageError(
      `--price: a URL expected, e.g. http://127.0.0.1:7000: received ${priceUrl}`,
    );
  }
  const token = f.string("admin-token") ?? env.NEARCAST_ADMIN_TOKEN ?? "";
  const controlLimits: ListenerLimits = {
    headerTimeoutMs: f.duration("header-timeout", DEFAULT_HEADER_TIMEOUT_MS, 1),
    idleTimeoutMs: f.duration("idle-timeout", DEFAULT_IDLE_TIMEOUT_MS, 1),
  };
  if (f.string("max-conns") !== undefined) controlLimits.maxConns = f.int("max-conns", 0, 1);
  return {
    port,
    name,
    configFile: f.string("config") ?? null,
    host: f.string("host") ?? "127.0.0.1",
    codec: f.oneOf("codec", CODECS, "wasm"),
    io: f.oneOf("io", IO_MODES, DEFAULT_IO),
    rrl: {
      rate: f.number("rrl-rate", DEFAULT_RRL_RATE, 0),
      slip: f.int("rrl-slip", DEFAULT_RRL_SLIP, 0),
      exempt: f.list("rrl-exempt").map((text) => {
        try {
          return parseCidr(text);
        } catch (e) {
          throw new UsageError(`--rrl-exempt ${(e as Error).message}`);
        }
      }),
    },
    tcpPerClient: f.int("tcp-per-client", DEFAULT_TCP_PER_CLIENT, 1),
    controlPort: f.string("control") === "off"
      ? null
      : f.port("control", port === 0 ? 0 : DEFAULT_CONTROL_PORT),
    controlLimits,
    dataDir: f.string("data") ?? null,
    adminToken: token === "" ? null : token,
    policy: f.oneOf("policy", POLICIES, DEFAULT_POLICY),
    weights,
    maxExtraMs: f.string("max-extra-ms") === undefined ? null : f.number("max-extra-ms", 0, 0),
    priceUrl,
    overloadRps: f.number("overload-rps", DEFAULT_OVERLOAD_RPS, 1),
    refreshMs: f.duration("rtt-refresh", DEFAULT_REFRESH_MS, 1),
    rttTtlMs: f.duration("rtt-ttl", DEFAULT_RTT_TTL_MS, 1),
    shortTtl,
    probePort: f.port("probe-port", DEFAULT_PROBE_PORT),
    caFile: f.string("ca") ?? null,
    controlTls: controlTls(f.string("cert"), f.string("key")),
  };
}

/** `--cert` and `--key` together, or neither. */
function controlTls(
  certFile: string | undefined,
  keyFile: string | undefined,
): { certFile: string; keyFile: string } | null {
  if (certFile === undefined && keyFile === undefined) return null;
  if (certFile === undefined || keyFile === undefined) {
    throw new UsageError("--cert and --key go together (the control API's certificate)");
  }
  return { certFile, keyFile };
}

/** How the DNS process's two listeners share the open files it may use for connections. */
export interface ConnectionShares {
  /** Cap of DNS-over-TCP connections (the config's `tcp.maxConnections`, lowered if needed). */
  tcp: number;
  /** Cap of the control API's connections (`--max-conns`, or its default within the share). */
  control: number;
  /** A line to log when the configured TCP cap was lowered; null when it was kept. */
  note: string | null;
}

/**
 * Splits the descriptors a process may spend on connections ({@link defaultMaxConns}: the
 * open-file limit less a reserve) between DNS over TCP and the control API, so that both under
 * attack at once cannot reach the limit (past it Deno 2.9.6 can panic, ending the process):
 * TCP keeps its configured cap up to half of the budget, the control API gets the rest (at most
 * its default of 512) unless `--max-conns` sets it. Under `ulimit -n 1024`: 256 and 512.
 */
export function shareConnections(
  tcpConfigured: number,
  controlFlag: number | undefined,
  budget: number = defaultMaxConns(),
): ConnectionShares {
  const tcp = Math.min(tcpConfigured, Math.max(16, Math.floor(budget / 2)));
  const control = controlFlag ?? Math.min(DEFAULT_CONTROL_MAX_CONNS, Math.max(16, budget - tcp));
  const note = tcp === tcpConfigured ? null : `dns: tcp.maxConnections ${tcpConfigured} lowered ` +
    `to ${tcp}: the open-file limit leaves ${budget} descriptors for connections, shared ` +
    `with the control API (raise it with ulimit -n)`;
  return { tcp, control, note };
}

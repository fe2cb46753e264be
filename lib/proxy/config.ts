/**
 * The routing proxy's command line: `deno task proxy -p PORT --mode latency|price|balanced
 * --node URL --price URL [--name CDN_HOST]` and its limits and tuning flags.
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
import { DEFAULT_DECAY_MS } from "./peak_ewma.ts";
import { type Mode, MODES } from "./select.ts";
import { DEFAULT_EJECTION, type EjectionPolicy } from "./server_state.ts";
import { DEFAULT_POOL, type PoolOptions } from "./upstream.ts";

/** Default port (the usual HTTP proxy port). */
export const DEFAULT_PROXY_PORT = 3128;
/** Default latency window of the balanced mode, ms. */
export const DEFAULT_MAX_EXTRA_MS = 20;

/** The proxy's flags. */
export const PROXY_FLAGS = {
  port: {
    type: "string",
    short: "p",
    arg: "PORT",
    help: `Port to listen on. Default ${DEFAULT_PROXY_PORT}.`,
  },
  host: {
    type: "string",
    arg: "ADDR",
    help:
      "Address to listen on. Default 127.0.0.1 (a client-side proxy; --other forward makes it an open proxy for whoever can reach it).",
  },
  mode: {
    type: "string",
    arg: "MODE",
    help:
      "latency (lowest expected latency), price (cheapest per GiB) or balanced (cheapest within --max-extra-ms of the fastest). Default latency.",
  },
  node: { type: "string", arg: "URL", help: "A CDN node to ask for the server list (required)." },
  price: {
    type: "string",
    arg: "URL",
    help: "The pricing service (needed by --mode price and balanced).",
  },
  name: {
    type: "string",
    arg: "HOST[,HOST...]",
    help: "The CDN's host name(s) routed to a chosen server. Default: the name the node reports.",
  },
  ca: {
    type: "string",
    arg: "FILE",
    help: "The CDN's nodes run with --tls: ask and reach them over HTTPS, verified against " +
      "this CA (PEM).",
  },
  other: {
    type: "string",
    arg: "forward|refuse",
    help: "Requests for other hosts: forwarded directly, or refused with 403. Default forward.",
  },
  "max-extra-ms": {
    type: "string",
    arg: "MS",
    help:
      `Balanced mode: latency allowed above the fastest server's. Default ${DEFAULT_MAX_EXTRA_MS}.`,
  },
  pick: {
    type: "string",
    arg: "best|p2c",
    help: "Latency mode: best of all servers, or power of two random choices. Default best.",
  },
  decay: {
    type: "string",
    arg: "DURATION",
    help: `Peak-EWMA decay time constant. Default ${DEFAULT_DECAY_MS / 1000}s.`,
  },
  "probe-interval": {
    type: "string",
    arg: "DURATION",
    help: "Active probe period per server. Default 1s.",
  },
  refresh: { type: "string", arg: "DURATION", help: "Server list refresh period. Default 2s." },
  "connect-timeout": {
    type: "string",
    arg: "DURATION",
    help: `TCP connect timeout to servers. Default ${DEFAULT_POOL.connectTimeoutMs / 1000}s.`,
  },
  "upstream-timeout": {
    type: "string",
    arg: "DURATION",
    help: `Longest wait for a server's response head. Default ${
      DEFAULT_POOL.headTimeoutMs / 1000
    }s.`,
  },
  "eject-base": {
    type: "string",
    arg: "DURATION",
    help: "First ejection of a failing server. Default 1s.",
  },
  "eject-max": {
    type: "string",
    arg: "DURATION",
    help: "Longest ejection (doubling backoff). Default 10s.",
  },
  "max-conns": { type: "string", arg: "N", help: "Most client connections open at once." },
  "header-timeout": {
    type: "string",
    arg: "DURATION",
    help: "Time a client has to send a complete request head. Default 30s.",
  },
  "idle-timeout": {
    type: "string",
    arg: "DURATION",
    help: "Time without a byte (client or server side) before a request is dropped. Default 60s.",
  },
  help: { type: "boolean", short: "h", help: "Show this help." },
} satisfies FlagTable;

/** Everything the proxy needs, defaults filled. */
export interface ProxyConfig {
  port: number;
  host: string;
  mode: Mode;
  node: string;
  price: string | null;
  /** Lower-case host names routed to the CDN; empty: the name the node reports. */
  names: string[];
  other: "forward" | "refuse";
  maxExtraMs: number;
  pick: "best" | "p2c";
  decayMs: number;
  probeIntervalMs: number;
  refreshMs: number;
  pool: PoolOptions;
  ejection: EjectionPolicy;
  limits: Required<ListenerLimits>;
  /** `--ca`: the nodes speak HTTPS, verified against this file (absent: plain HTTP). */
  caFile?: string;
}

/** Usage text. */
export function proxyUsage(): string {
  return usage(
    ["Usage: deno task proxy -p PORT --mode latency|price|balanced --node URL --price URL [--name CDN_HOST]"],
    PROXY_FLAGS,
    ["Exit codes: 0 stopped by SIGINT/SIGTERM, 2 bad command line or no node answered, 4 cannot listen."],
  );
}

/** Parses argv; throws {@link UsageError} naming the flag. */
export function parseProxyConfig(argv: string[]): ProxyConfig | "help" {
  const f = parseFlags(argv, PROXY_FLAGS);
  if (f.bool("help")) return "help";
  const mode = f.oneOf("mode", MODES, "latency");
  const price = f.httpUrl("price")?.replace(/\/+$/, "") ?? null;
  if (price === null && mode !== "latency") {
    throw new UsageError(`--mode ${mode} needs --price URL (the pricing service)`);
  }
  const idle = f.duration("idle-timeout", DEFAULT_IDLE_TIMEOUT_MS, 1);
  const names = (f.string("name") ?? "").split(",").map((s) =>
    s.trim().toLowerCase().replace(/\.$/, "")
  )
    .filter((s) => s !== "");
  for (const n of names) {
    if (!/^[a-z0-9.-]{1,253}$/.test(n)) {
      throw new UsageError(`--name must be host names (letters, digits, - and .): received ${n}`);
    }
  }
  const ejection = {
    baseMs: f.duration("eject-base", DEFAULT_EJECTION.baseMs, 1),
    maxMs: f.duration("eject-max", DEFAULT_EJECTION.maxMs, 1),
  };
  if (ejection.maxMs < ejection.baseMs) {
    throw new UsageError(
      `--eject-max must be at least --eject-base: received ${f.string("eject-max")}`,
    );
  }
  return {
    port: f.port("port", DEFAULT_PROXY_PORT),
    host: f.string("host") ?? "127.0.0.1",
    mode,
    node: f.httpUrl("node")?.replace(/\/+$/, "") ??
      (() => {
        throw new UsageError(
          "--node is required: a CDN node's URL, e.g. --node http://127.0.0.11:8080",
        );
      })(),
    price,
    names,
    other: f.oneOf("other", ["forward", "refuse"] as const, "forward"),
    maxExtraMs: f.number("max-extra-ms", DEFAULT_MAX_EXTRA_MS, 0),
    pick: f.oneOf("pick", ["best", "p2c"] as const, "best"),
    decayMs: f.duration("decay", DEFAULT_DECAY_MS, 1),
    probeIntervalMs: f.duration("probe-interval", 1_000, 10),
    refreshMs: f.duration("refresh", 2_000, 10),
    pool: {
      ...DEFAULT_POOL,
      connectTimeoutMs: f.duration("connect-timeout", DEFAULT_POOL.connectTimeoutMs, 1),
      headTimeoutMs: f.duration("upstream-timeout", DEFAULT_POOL.headTimeoutMs, 1),
      idleTimeoutMs: idle,
    },
    ejection,
    ...(f.string("ca") === undefined ? {} : { caFile: f.string("ca") }),
    limits: {
      maxConns: f.int("max-conns", defaultMaxConns(), 1),
      headerTimeoutMs: f.duration("header-timeout", DEFAULT_HEADER_TIMEOUT_MS, 1),
      idleTimeoutMs: idle,
    },
  };
}

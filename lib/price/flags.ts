/**
 * The pricing service's command line (`main_price.ts`): its flag table and a pure parse from
 * argv to a typed {@link PriceFlags}, or a {@link UsageError} naming the flag and the value.
 *
 * @module
 */
import { type FlagTable, parseFlags, usage } from "../common/cli.ts";
import {
  DEFAULT_HEADER_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  defaultMaxConns,
  type ListenerLimits,
} from "../common/http_server.ts";

/** Exit codes of `main_price.ts`. */
export const PRICE_EXIT = {
  /** Stopped by SIGINT/SIGTERM. */
  ok: 0,
  /** Bad command line. */
  usage: 2,
  /** The --config file or the --data directory cannot be used. */
  config: 3,
  /** Cannot listen on --host/--port. */
  listen: 4,
} as const;

/** The pricing service's flags. */
export const PRICE_FLAGS = {
  port: {
    type: "string",
    short: "p",
    arg: "PORT",
    help: "TCP port of the HTTP API (0 picks a free one; the chosen one is printed). Required.",
  },
  host: {
    type: "string",
    arg: "ADDR",
    help: "Address to bind. Default 127.0.0.1; 0.0.0.0 or :: for all.",
  },
  data: {
    type: "string",
    arg: "DIR",
    help: "Keep the prices in DIR/price.sqlite (created if missing). Default: in memory (lost " +
      "at exit).",
  },
  "admin-token": {
    type: "string",
    arg: "TOKEN",
    help: "Bearer token for PUT, PATCH and DELETE (or env NEARCAST_ADMIN_TOKEN); without one, " +
      "every mutation is refused (403).",
  },
  config: {
    type: "string",
    short: "c",
    arg: "FILE",
    help: 'JSON {"providers": {"NAME": {serverPerHour, egressPerGiB, currency, ...}}}: seeds ' +
      "providers the database has never seen (README, Pricing service).",
  },
  "max-conns": {
    type: "string",
    arg: "N",
    help: `Most open connections (each long poll holds one). Default ${defaultMaxConns()}.`,
  },
  "header-timeout": {
    type: "string",
    arg: "DURATION",
    help: `Close a connection without a complete request head within this. Default ` +
      `${DEFAULT_HEADER_TIMEOUT_MS / 1000}s.`,
  },
  "idle-timeout": {
    type: "string",
    arg: "DURATION",
    help: `Close a connection with a request in flight after this without a byte. Default ` +
      `${DEFAULT_IDLE_TIMEOUT_MS / 1000}s. Long polls wait at most 55s and 80% of this; event ` +
      `streams send a keepalive every 15s or half of this when shorter.`,
  },
  help: { type: "boolean", short: "h", help: "Show this help." },
} satisfies FlagTable;

/** The parsed command line. */
export interface PriceFlags {
  port: number;
  host: string;
  dataDir: string | null;
  adminToken: string | null;
  configFile: string | null;
  limits: ListenerLimits;
}

/** The usage text. */
export function priceUsage(): string {
  return usage(
    [
      "Usage: deno task price -p PORT [--host ADDR] [--data DIR] [--admin-token T] [--config FILE]",
      "",
      "Pricing service: server and egress cost per cloud provider, over an HTTP JSON API",
      "(GET/PUT/PATCH/DELETE /providers/NAME, GET /prices?since=VERSION long poll or SSE).",
    ],
    PRICE_FLAGS,
    [
      `Exit codes: 0 stopped by a signal, ${PRICE_EXIT.usage} bad command line, ` +
      `${PRICE_EXIT.config} bad --config or --data, ${PRICE_EXIT.listen} cannot listen.`,
    ],
  );
}

/** Parses argv (`env` gives NEARCAST_ADMIN_TOKEN): "help", or the flags. */
export function parsePriceFlags(
  argv: string[],
  env: Record<string, string | undefined> = {},
): PriceFlags | "help" {
  const f = parseFlags(argv, PRICE_FLAGS);
  if (f.bool("help")) return "help";
  f.required("port", "the TCP port of the API (0 for any free one)");
  const token = f.string("admin-token") ?? env.NEARCAST_ADMIN_TOKEN ?? "";
  return {
    port: f.port("port", 0),
    host: f.string("host") ?? "127.0.0.1",
    dataDir: f.string("data") ?? null,
    adminToken: token === "" ? null : token,
    configFile: f.string("config") ?? null,
    limits: {
      maxConns: f.int("max-conns", defaultMaxConns(), 1),
      headerTimeoutMs: f.duration("header-timeout", DEFAULT_HEADER_TIMEOUT_MS, 1),
      idleTimeoutMs: f.duration("idle-timeout", DEFAULT_IDLE_TIMEOUT_MS, 1),
    },
  };
}

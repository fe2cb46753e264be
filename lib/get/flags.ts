/**
 * The index client's command line (`main_get.ts`): its flag table and a pure parse from argv
 * to a typed {@link GetConfig}, or a {@link UsageError} naming the flag and the value.
 *
 * @module
 */
import { type FlagTable, parseFlags, usage, UsageError } from "../common/cli.ts";
import { DEFAULT_CONTROL_PORT, parseHostPort } from "../fleet/protocol.ts";

/** The index (a DNS server's control API) asked without `--dns` or NEARCAST_DNS. */
export const DEFAULT_DNS = `127.0.0.1:${DEFAULT_CONTROL_PORT}`;
/** A transfer that brings no byte for this long is given up (and resumed elsewhere). */
export const DEFAULT_IDLE_TIMEOUT_MS = 10_000;

/** The client's flags. */
export const GET_FLAGS = {
  dns: {
    type: "string",
    arg: "HOST:PORT",
    help: "The index: a DNS server's control API (or env NEARCAST_DNS); https://HOST:PORT " +
      `for one served over TLS (--cert), verified against --ca. Default ${DEFAULT_DNS}.`,
  },
  name: {
    type: "string",
    arg: "NAME",
    help: "The CDN's host name, sent as Host to the replicas. Default: the replica's address.",
  },
  output: {
    type: "string",
    short: "o",
    arg: "FILE",
    help: "Where to save it. Default: PATH's last segment in the current directory.",
  },
  ca: {
    type: "string",
    arg: "FILE",
    help: "CA (PEM) the certificate of an https holder (a replica started with --tls) and of " +
      "an https index must chain to, alone. Default: Deno's public roots.",
  },
  "limit-rate": {
    type: "string",
    arg: "SIZE",
    help: "Read at most SIZE bytes per second (e.g. 500KiB, 2MiB). Default: no limit.",
  },
  timeout: {
    type: "string",
    arg: "DURATION",
    help: "Give up a transfer that brings no byte for this long (and resume it elsewhere). " +
      `Default ${DEFAULT_IDLE_TIMEOUT_MS / 1000}s.`,
  },
  quiet: { type: "boolean", short: "q", help: "No progress or event lines on stderr." },
  help: { type: "boolean", short: "h", help: "Show this help." },
} satisfies FlagTable;

/** The usage text of `--help`. */
export function getUsage(): string {
  return usage(
    [
      "Usage: deno task get PATH [--dns [https://]HOST:PORT] [--name NAME] [--ca FILE] [-o FILE]",
    ],
    GET_FLAGS,
    [
      "Asks the index which live replicas hold PATH, downloads it from the best one (resuming",
      "from the same or the next holder after a failure), verifies its SHA-256 when the replica",
      "gives one, and saves it atomically; an interrupted download leaves FILE.part to resume.",
      "A holder whose certificate does not verify is skipped with a TLS line and the next tried.",
      "Exit codes: 0 saved, 1 cannot write the output, 2 bad usage, 3 not found, 4 no live",
      "holder (replicas hold it but none is live), 5 SHA-256 mismatch (nothing kept), 6 network",
      "(the index or every live holder unreachable).",
    ],
  );
}

/** What to download, every default filled. */
export interface GetConfig {
  /** The path asked for, with its leading slash. */
  path: string;
  /** Base URL of the index, e.g. `http://127.0.0.1:5380` (`https://` given as such). */
  index: string;
  /** `Host` sent to the replicas, or null for their address. */
  name: string | null;
  /** `--ca`: the CA file https holders must chain to, or null. */
  ca: string | null;
  output: string;
  /** Bytes per second, or 0 for no limit. */
  limitRate: number;
  idleTimeoutMs: number;
  quiet: boolean;
}

/**
 * Parses the client's argv (`env` gives NEARCAST_DNS): "help" for `-h`, else what to do.
 * Throws a {@link UsageError} naming the flag and the value.
 */
export function parseGetConfig(
  argv: string[],
  env: Record<string, string | undefined> = {},
): GetConfig | "help" {
  const f = parseFlags(argv, GET_FLAGS, { positionals: true });
  if (f.bool("help")) return "help";
  if (f.positionals.length !== 1) {
    throw new UsageError(`give exactly one PATH to download: received ${f.positionals.length}`);
  }
  const raw = f.positionals[0];
  const path = raw.startsWith("/") ? raw : `/${raw}`;
  if (path === "/" || path.endsWith("/") || /[?#\s]/.test(path)) {
    throw new UsageError(`PATH must name a file (no query, no trailing /): received ${raw}`);
  }
  const dns = f.string("dns") ?? env.NEARCAST_DNS ?? DEFAULT_DNS;
  // `https://HOST:PORT`: a control API served over TLS (the DNS server's --cert), as --announce.
  const scheme = /^https?:\/\//i.exec(dns)?.[0].slice(0, -3).toLowerCase() ?? "http";
  let index: string;
  try {
    const { host, port } = parseHostPort(dns.replace(/^https?:\/\//i, ""), "--dns");
    index = `${scheme}://${host.includes(":") ? `[${host}]` : host}:${port}`;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const name = f.string("name") ?? null;
  if (name !== null && !/^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$/.test(name)) {
    throw new UsageError(`--name must be a host name (letters, digits, - and .): received ${name}`);
  }
  let last: string;
  try {
    last = decodeURIComponent(path.slice(path.lastIndexOf("/") + 1));
  } catch {
    throw new UsageError(`PATH has a bad percent-encoding: received ${raw}`);
  }
  return {
    path,
    index,
    name,
    ca: f.string("ca") ?? null,
    output: f.string("output") ?? last,
    limitRate: f.size("limit-rate", 0, 1),
    idleTimeoutMs: f.duration("timeout", DEFAULT_IDLE_TIMEOUT_MS, 1),
    quiet: f.bool("quiet"),
  };
}

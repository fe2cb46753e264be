/**
 * The replica's command line (`main_http.ts`): its flag table, and a pure parse from argv to a
 * typed {@link HttpConfig} with every default filled, or a {@link UsageError} naming the flag
 * and the value. Also the one rule for the replica's id ({@link replicaId}).
 *
 * @module
 */
import { checkHttpUrl, type FlagTable, parseFlags, usage, UsageError } from "../common/cli.ts";
import {
  DEFAULT_HEADER_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  defaultMaxConns,
  type ListenerLimits,
} from "../common/http_server.ts";
import { type FleetFlags, parseFleetFlags } from "../fleet/replica/flags.ts";
import { ID_PATTERN } from "../fleet/protocol.ts";
import { DEFAULT_CHUNK_BYTES, MAX_CHUNK_BYTES } from "../upload/wire.ts";
import { parseNodeAuth, parseTlsFlags, TLS_FLAGS, type TlsConfig } from "../tls/flags.ts";
import { COOP_FLAGS, type CoopConfig, parseCoopFlags } from "../coop/flags.ts";
import { DEFAULT_IMAGE_MEMORY } from "../image/memory.ts";
import { DEFAULT_WIRE, WIRE_ENCODINGS, type WireEncoding } from "../wire/encoding.ts";

/** Default cache budget. */
export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;
/** Default upload limit: larger than any single asset a CDN should serve, small enough to bound disk use per request. */
export const DEFAULT_MAX_UPLOAD_BYTES = 4 * 1024 * 1024 * 1024;
/**
 * V8 flags of `--heap compact`: a 1 MiB young generation (V8's default lets it grow to 16 MiB
 * per semi-space, held through the whole run) and `--optimize-for-size`, which among others makes
 * V8 grow its old generation by smaller steps past what is live. No hard heap limit: a replica
 * holding more live data than expected collects more often instead of stopping. Measured by
 * `deno task bench:memory` (docs/benchmarks.md).
 */
export const REPLICA_HEAP_FLAGS = ["--max-semi-space-size=1", "--optimize-for-size"];

/** Default listening port. */
export const DEFAULT_PORT = 8080;

/** The replica's flags. */
export const HTTP_FLAGS = {
  port: {
    type: "string",
    short: "p",
    arg: "PORT",
    help: "TCP port to listen on (0 picks a free one). Default 8080.",
  },
  origin: {
    type: "string",
    short: "o",
    arg: "ORIGIN",
    help: "Origin: a URL (http://127.0.0.1:8000), HOST:PORT or HOST (http). Required.",
  },
  host: { type: "string", arg: "ADDR", help: "Address to bind. Default 0.0.0.0." },
  id: {
    type: "string",
    arg: "ID",
    help: "Replica id (1-63 of A-Z a-z 0-9 - _), in `Via: 1.1 nearcast-ID` and the fleet.\n" +
      "Default: the stored node id with --data, else HOST-PORT.",
  },
  "cache-bytes": {
    type: "string",
    arg: "SIZE",
    help: "Cache budget (e.g. 64MiB, 500KB, 1048576). Default 64MiB.",
  },
  "max-object-bytes": {
    type: "string",
    arg: "SIZE",
    help: "Largest response cached; larger ones are streamed, not stored. Default: the budget.",
  },
  "origin-timeout": {
    type: "string",
    arg: "DURATION",
    help: "Time allowed for the origin's answer (and a cached body), e.g. 10s, 500ms. Default 10s.",
  },
  "stale-on-error": {
    type: "string",
    arg: "DURATION",
    help: "How long past expiry a stale copy is served when the origin is unreachable, times " +
      "out or drops the connection (not past must-revalidate, proxy-revalidate, no-cache). " +
      "0 turns it off (stale-if-error still applies). Default 1h.",
  },
  "slice-size": {
    type: "string",
    arg: "SIZE",
    help: "Range requests that miss fetch aligned slices of this size from the origin, each " +
      "cached as its own entry (like nginx's slice module), e.g. 1MiB. Default 0: off (a " +
      "range miss fetches the whole object).",
  },
  "slice-fetches": {
    type: "string",
    arg: "N",
    help: "With --slice-size: most slice requests to the origin at once. Default 4.",
  },
  "coalesce-timeout": {
    type: "string",
    arg: "DURATION",
    help:
      "How long a miss waits for a concurrent fetch of the same key. Default origin-timeout+1s.",
  },
  peers: {
    type: "string",
    arg: "URLS",
    help: "Comma-separated peer base URLs asked before the origin on a miss.",
  },
  "peer-timeout": {
    type: "string",
    arg: "DURATION",
    help: "Time allowed for a peer's answer. Default 1s.",
  },
  "max-conns": {
    type: "string",
    arg: "N",
    help: "Most open client connections; past it the oldest idle one is closed. " +
      "Default 4096, at most 3/4 of the open-file limit (768 under ulimit -n 1024).",
  },
  "header-timeout": {
    type: "string",
    arg: "DURATION",
    help: "Time allowed for a complete request head (slowloris). Default 30s.",
  },
  "idle-timeout": {
    type: "string",
    arg: "DURATION",
    help: "Close a connection with a request in flight after this long without a byte " +
      "either way. Default 60s.",
  },
  "access-log": {
    type: "string",
    arg: "FILE|-",
    help: "Append one line per request (cache status, upstream time) to FILE, or - for stdout.",
  },
  "access-log-format": {
    type: "string",
    arg: "FORMAT",
    help: "combined (default: Apache/nginx combined, then cache status and upstream seconds)\n" +
      "or json (one object a line).",
  },
  preload: {
    type: "string",
    arg: "FILE",
    help: "Paths, URLs or `URL COUNT` lines (one per line, # comments) fetched at start.",
  },
  "preload-concurrency": {
    type: "string",
    arg: "N",
    help: "Preload fetches at a time. Default 8.",
  },
  data: {
    type: "string",
    arg: "DIR",
    help: "Directory of the durable store; the cache survives restarts.",
  },
  "admin-token": {
    type: "string",
    arg: "TOKEN",
    help: "Bearer token for /_cdn/purge (or env NEARCAST_ADMIN_TOKEN). Purge is off without one.",
  },
  index: { type: "string", arg: "KIND", help: "Cache index implementation: wasm (default) or ts." },
  images: {
    type: "string",
    arg: "MODE",
    help:
      "Image variants: both (default), on-the-fly, precompute or off (JPEG/PNG resized to the\n" +
      "ladder 320/640/1280/original from ?w= ?q= ?fmt=, Client Hints and measured throughput;\n" +
      "precompute makes an image's ladder in the background when it enters the cache). Needs\n" +
      "--allow-ffi (imagescript): without it the default turns images off with a warning, and\n" +
      "an explicit mode is an error.",
  },
  "image-memory": {
    type: "string",
    arg: "SIZE",
    help: "Memory image transcodes may reserve at once (decode buffers, output, encoder);\n" +
      "a variant that does not fit is served as the original. Default 128MiB.",
  },
  heap: {
    type: "string",
    arg: "MODE",
    help:
      "V8 heap sizing: compact (default: 1 MiB young generation, --optimize-for-size, applied\n" +
      "by re-executing the process in place; keeps memory near the cache budget) or v8 (V8's\n" +
      "defaults). --v8-flags given to deno still win.",
  },
  servers: {
    type: "string",
    arg: "FILE",
    help:
      "JSON file listing the other nodes' base URLs, for uploads and replication (needs --data).",
  },
  join: {
    type: "string",
    arg: "URL",
    help: "Base URL of one known node to join through (needs --data).",
  },
  advertise: {
    type: "string",
    arg: "URL",
    help:
      "Base URL other nodes use to reach this one. Default http://HOST:PORT (127.0.0.1 for 0.0.0.0).",
  },
  heartbeat: {
    type: "string",
    arg: "DURATION",
    help: "Heartbeat and anti-entropy period between nodes. Default 1s.",
  },
  "max-upload-bytes": {
    type: "string",
    arg: "SIZE",
    help: "Largest upload accepted (413 beyond). Default 4GiB.",
  },
  "chunk-bytes": {
    type: "string",
    arg: "SIZE",
    help: "Chunk size of pushes to other nodes (1..8MiB). Default 1MiB.",
  },
  wire: {
    type: "string",
    arg: "json|protobuf",
    help:
      "Encoding of what this node sends to others (pushes, heartbeats, manifest and pull requests); it accepts both and answers in the one asked for. Default json.",
  },
  announce: {
    type: "string",
    multiple: true,
    arg: "HOST:PORT",
    // "Repeat" comes first: scripts/_cdn_remote.sh reads it from --help up to the next flag.
    help: "DNS control API to register with and heartbeat to (live fleet). Repeat it, or give " +
      "a comma-separated list, to announce to several DNS servers (each keeps its own " +
      "registry). https://HOST:PORT for one served with --cert (verified against --ca).",
  },
  lat: {
    type: "string",
    arg: "DEG",
    help: "Latitude of this replica (-90..90), sent on registration.",
  },
  lon: {
    type: "string",
    arg: "DEG",
    help: "Longitude of this replica (-180..180), sent on registration.",
  },
  provider: {
    type: "string",
    arg: "NAME",
    help: "Cloud provider this node runs on, as the pricing service names it: sent on\n" +
      "registration with the DNS servers and shown in every node's server list.",
  },
  "cdn-name": {
    type: "string",
    arg: "NAME",
    help: "The CDN's host name, reported as cdnName in /_cdn/health (the routing proxy's\n" +
      "default --name). Default: the zone of the first DNS server --announce registers with.",
  },
  ...TLS_FLAGS,
  ...COOP_FLAGS,
  help: { type: "boolean", short: "h", help: "Show this help." },
} satisfies FlagTable;

/** The replica's exit codes (README "Exit codes"). */
export const HTTP_EXIT = {
  /** Stopped by SIGINT/SIGTERM after draining. */
  ok: 0,
  /** Bad command line, or a file a flag names cannot be read. */
  usage: 2,
  /** The --data directory cannot be used. */
  data: 3,
  /** Cannot listen: address in use, not available, or not permitted. */
  listen: 4,
} as const;

/** The usage text of `--help`. */
export function httpUsage(): string {
  return usage(["Usage: deno task http -p PORT -o ORIGIN [options]"], HTTP_FLAGS, [
    "Exit codes: 0 stopped by SIGINT/SIGTERM, 2 bad command line or unreadable file,",
    "3 unusable --data directory, 4 cannot listen on --host/--port.",
  ]);
}

/** Everything the replica process needs, every default filled. */
export interface HttpConfig {
  port: number;
  host: string;
  /** `--id`, or null for the default rule of {@link replicaId}. */
  id: string | null;
  /** Normalised origin base URL without a trailing slash, e.g. `http://127.0.0.1:8000`. */
  origin: string;
  /** `--provider` ("" when not given): on registration and in every node's server list. */
  provider: string;
  /** `--cdn-name` (lower case), or null: the DNS servers' zone when announcing, else none. */
  cdnName: string | null;
  cacheBytes: number;
  maxObjectBytes: number;
  originTimeoutMs: number;
  coalesceTimeoutMs: number;
  /** `--stale-on-error`, ms (0: off). */
  staleOnErrorMs: number;
  /** `--slice-size`, bytes (0: off). */
  sliceBytes: number;
  /** `--slice-fetches`. */
  sliceFetches: number;
  peers: string[];
  peerTimeoutMs: number;
  /** Limits of the listener (lib/common/http_server.ts). */
  limits: Required<ListenerLimits>;
  preloadFile: string | null;
  /** `--access-log`: a file, `-` for standard output, or null for none. */
  accessLog: string | null;
  accessLogFormat: "combined" | "json";
  preloadConcurrency: number;
  dataDir: string | null;
  adminToken: string | null;
  index: "wasm" | "ts";
  /** `--images`: serve image variants (lib/image/serve.ts) or not. */
  images: "off" | "on-the-fly" | "precompute" | "both";
  /** Whether `--images` was given (an explicit mode needs --allow-ffi; the default degrades). */
  imagesGiven: boolean;
  /** `--image-memory`: bytes image transcodes may reserve at once (lib/image/memory.ts). */
  imageMemoryBytes: number;
  /** `--heap`: V8 heap sizing (see {@link REPLICA_HEAP_FLAGS}). */
  heap: "compact" | "v8";
  serversFile: string | null;
  join: string | null;
  advertise: string | null;
  heartbeatMs: number;
  maxUploadBytes: number;
  chunkBytes: number;
  /** `--wire`: encoding of node-to-node traffic this node sends. */
  wire: WireEncoding;
  /** The live-fleet flags, or null without `--announce`. */
  fleet: FleetFlags | null;
  /** `--tls` and its files or ACME settings, or null for plain HTTP. */
  tls: TlsConfig | null;
  /** `--node-auth`: what authenticates node-to-node requests (`lib/tls/cert_identity.ts`). */
  nodeAuth: "cert" | "key" | "both";
  /** `--coop` and its budgets, or null when off. */
  coop: CoopConfig | null;
}

/**
 * Parses the replica's argv (`env` gives NEARCAST_ADMIN_TOKEN): "help" for `-h`, else the
 * config. Throws a {@link UsageError} naming the flag and the value.
 */
export function parseHttpConfig(
  argv: string[],
  env: Record<string, string | undefined> = {},
): HttpConfig | "help" {
  const f = parseFlags(argv, HTTP_FLAGS);
  if (f.bool("help")) return "help";
  const origin = parseOrigin(f.required("origin", "the origin to cache, e.g. -o 127.0.0.1:8000"));
  const host = f.string("host") ?? "0.0.0.0";
  const id = f.string("id") ?? null;
  if (id !== null && !ID_PATTERN.test(id)) {
    throw new UsageError(`--id must be 1 to 63 of A-Z a-z 0-9 - _: received ${id}`);
  }
  const cacheBytes = f.size("cache-bytes", DEFAULT_CACHE_BYTES, 1);
  const originTimeoutMs = f.duration("origin-timeout", 10_000, 1);
  const peers = (f.string("peers") ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const p of peers) checkHttpUrl("--peers", p);
  const dataDir = f.string("data") ?? null;
  const join = f.httpUrl("join") ?? null;
  const advertise = f.httpUrl("advertise") ?? null;
  const serversFile = f.string("servers") ?? null;
  if (dataDir === null && (serversFile !== null || join !== null || advertise !== null)) {
    throw new UsageError(
      "--servers, --join and --advertise need --data DIR (uploads are stored durably)",
    );
  }
  const coop = parseCoopFlags(f, cacheBytes);
  const tls = parseTlsFlags(f);
  if (dataDir === null && coop !== null) throw new UsageError("--coop needs --data DIR");
  const token = f.string("admin-token") ?? env.NEARCAST_ADMIN_TOKEN ?? "";
  let fleet: FleetFlags | null;
  try {
    fleet = parseFleetFlags({
      announce: f.list("announce"),
      lat: f.string("lat"),
      lon: f.string("lon"),
      provider: f.string("provider"),
      host,
      advertise: advertise ?? undefined,
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return {
    port: f.port("port", DEFAULT_PORT),
    host,
    id,
    origin,
    provider: f.string("provider") ?? "",
    cdnName: cdnName(f.string("cdn-name")),
    cacheBytes,
    maxObjectBytes: f.size("max-object-bytes", cacheBytes),
    originTimeoutMs,
    coalesceTimeoutMs: f.duration("coalesce-timeout", originTimeoutMs + 1000),
    staleOnErrorMs: f.string("stale-on-error")?.trim() === "0"
      ? 0
      : f.duration("stale-on-error", 3_600_000, 1),
    sliceBytes: f.size("slice-size", 0),
    sliceFetches: f.int("slice-fetches", 4, 1),
    peers,
    peerTimeoutMs: f.duration("peer-timeout", 1000),
    limits: {
      maxConns: f.int("max-conns", defaultMaxConns(), 1),
      headerTimeoutMs: f.duration("header-timeout", DEFAULT_HEADER_TIMEOUT_MS, 1),
      idleTimeoutMs: f.duration("idle-timeout", DEFAULT_IDLE_TIMEOUT_MS, 1),
    },
    preloadFile: f.string("preload") ?? null,
    accessLog: f.string("access-log") ?? null,
    accessLogFormat: f.oneOf("access-log-format", ["combined", "json"] as const, "combined"),
    preloadConcurrency: f.int("preload-concurrency", 8, 1),
    dataDir,
    adminToken: token === "" ? null : token,
    index: f.oneOf("index", ["wasm", "ts"] as const, "wasm"),
    images: f.oneOf("images", ["off", "on-the-fly", "precompute", "both"] as const, "both"),
    imagesGiven: f.string("images") !== undefined,
    imageMemoryBytes: f.size("image-memory", DEFAULT_IMAGE_MEMORY, 1),
    heap: f.oneOf("heap", ["compact", "v8"] as const, "compact"),
    serversFile,
    join,
    advertise,
    heartbeatMs: f.duration("heartbeat", 1000, 1),
    maxUploadBytes: f.size("max-upload-bytes", DEFAULT_MAX_UPLOAD_BYTES),
    chunkBytes: f.size("chunk-bytes", DEFAULT_CHUNK_BYTES, 1, MAX_CHUNK_BYTES),
    wire: f.oneOf("wire", WIRE_ENCODINGS, DEFAULT_WIRE),
    fleet,
    tls,
    nodeAuth: parseNodeAuth(f, tls),
    coop,
  };
}

/**
 * The origin flag: a URL (`http://h:8000`, `https://h`), or `HOST[:PORT]` (http). A path
 * prefix is refused (the replica forwards `/x` to the origin's `/x`; prefixes are not
 * supported yet), as are credentials, a query and a fragment. Returns `scheme://host[:port]`.
 */
export function parseOrigin(text: string): string {
  const hasScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(text);
  let url: URL;
  try {
    url = new URL(hasScheme ? text : `http://${text}`);
  } catch {
    throw new UsageError(
      `--origin: not a URL or HOST[:PORT]: received ${text} ` +
        "(e.g. -o 127.0.0.1:8000, -o origin.example.com, -o https://origin.example.com)",
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`--origin must be http or https: received ${text}`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new UsageError(`--origin: credentials in the URL are not supported: received ${text}`);
  }
  if (url.search !== "" || url.hash !== "" || /[?#]/.test(text)) {
    throw new UsageError(`--origin: a query or fragment is not allowed: received ${text}`);
  }
  if (url.pathname !== "/") {
    throw new UsageError(
      `--origin: a path prefix (${url.pathname}) is not supported yet: the replica forwards ` +
        `/x to the origin's /x; give ${url.origin}: received ${text}`,
    );
  }
  return url.origin;
}

/** `--cdn-name`'s value checked (a host name, lower case, no final dot), or null. */
function cdnName(text: string | undefined): string | null {
  if (text === undefined) return null;
  const name = text.trim().toLowerCase().replace(/\.$/, "");
  if (!/^[a-z0-9-]{1,63}(\.[a-z0-9-]{1,63})*$/.test(name) || name.length > 253) {
    throw new UsageError(
      `--cdn-name must be a host name (letters, digits, - and .): received ${text}`,
    );
  }
  return name;
}

/**
 * The replica's id, decided here only (Via header, fleet registration, replication): `--id`;
 * else the node id stored in the `--data` directory (stable across restarts); else
 * `HOST-PORT` with the port it listens on and the host's dots and colons as dashes.
 */
export function replicaId(config: HttpConfig, listenPort: number, storedId?: string): string {
  if (config.id !== null) return config.id;
  if (storedId !== undefined) return storedId;
  return `${config.host.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "")}-${listenPort}`
    .slice(0, 63);
}

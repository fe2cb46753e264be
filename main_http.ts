/**
 * The caching HTTP replica: `deno task http -p PORT -o ORIGIN [--host ADDR] [...]`.
 * See `--help` and docs/notes/http.md.
 *
 * @module
 */

import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { hashKey } from "./lib/cache/hash.ts";
import { TsLfru } from "./lib/cache/lfru.ts";
import { createWasmLfru } from "./lib/cache/wasm_lfru.ts";
import type { CacheIndex } from "./lib/cache/types.ts";
import { openStore } from "./lib/store/sqlite_store.ts";
import { createReplica, serveReplica } from "./lib/http/replica.ts";
import { preload } from "./lib/http/preload.ts";
import { parseDuration, parseSize } from "./lib/http/units.ts";
import { ReplicationDb } from "./lib/replication/db.ts";
import { ReplicationNode } from "./lib/replication/node.ts";
import { loadOrCreateKey } from "./lib/replication/trust.ts";
import { DEFAULT_CHUNK_BYTES, MAX_CHUNK_BYTES } from "./lib/upload/wire.ts";
import { FleetAgent } from "./lib/fleet/agent.ts";
import { heldPaths, parseFleetFlags } from "./lib/fleet/flags.ts";
import { MAX_HELD_PATHS } from "./lib/fleet/protocol.ts";

/** Default cache budget. */
const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;
/** Default upload limit: larger than any single asset a CDN should serve, small enough to bound disk use per request. */
const DEFAULT_MAX_UPLOAD_BYTES = 4 * 1024 * 1024 * 1024;
/** Time allowed for in-flight requests and transfers after SIGINT/SIGTERM. */
const SHUTDOWN_GRACE_MS = 5_000;
/** Routes that exist only with a store (uploads and replication). */
const REPLICATION_ROUTES =
  /^\/_cdn\/(upload|replicate|manifest|export|heartbeat|servers|files|credentials)(\/|$)/;

const FLAGS = {
  port: {
    type: "string",
    short: "p",
    help: "TCP port to listen on (0 picks a free one). Default 8080.",
  },
  origin: {
    type: "string",
    short: "o",
    help: "Origin base URL, e.g. http://127.0.0.1:8000. Required.",
  },
  host: { type: "string", help: "Address to bind. Default 0.0.0.0." },
  id: { type: "string", help: "Replica id, shown in `Via: 1.1 nearcast-ID`. Default: HOST-PORT." },
  "cache-bytes": {
    type: "string",
    help: "Cache budget (e.g. 64MiB, 500KB, 1048576). Default 64MiB.",
  },
  "max-object-bytes": {
    type: "string",
    help: "Largest response cached; larger ones are streamed, not stored. Default: the budget.",
  },
  "origin-timeout": {
    type: "string",
    help: "Time allowed for the origin's answer (and a cached body), e.g. 10s, 500ms. Default 10s.",
  },
  "coalesce-timeout": {
    type: "string",
    help:
      "How long a miss waits for a concurrent fetch of the same key. Default origin-timeout+1s.",
  },
  peers: {
    type: "string",
    help: "Comma-separated peer base URLs asked before the origin on a miss.",
  },
  "peer-timeout": { type: "string", help: "Time allowed for a peer's answer. Default 1s." },
  preload: {
    type: "string",
    help: "File of paths or URLs (one per line, # comments) fetched at start.",
  },
  "preload-concurrency": { type: "string", help: "Preload fetches per batch. Default 8." },
  data: { type: "string", help: "Directory of the durable store; the cache survives restarts." },
  "admin-token": {
    type: "string",
    help: "Bearer token for /_cdn/purge (or env NEARCAST_ADMIN_TOKEN). Purge is off without one.",
  },
  index: { type: "string", help: "Cache index implementation: wasm (default) or ts." },
  servers: {
    type: "string",
    help:
      "JSON file listing the other nodes' base URLs, for uploads and replication (needs --data).",
  },
  join: { type: "string", help: "Base URL of one known node to join through (needs --data)." },
  advertise: {
    type: "string",
    help:
      "Base URL other nodes use to reach this one. Default http://HOST:PORT (127.0.0.1 for 0.0.0.0).",
  },
  heartbeat: {
    type: "string",
    help: "Heartbeat and anti-entropy period between nodes. Default 1s.",
  },
  "max-upload-bytes": {
    type: "string",
    help: "Largest upload accepted (413 beyond). Default 4GiB.",
  },
  "chunk-bytes": {
    type: "string",
    help: "Chunk size of pushes to other nodes (1..8MiB). Default 1MiB.",
  },
  announce: {
    type: "string",
    help: "DNS control API HOST:PORT to register with and heartbeat to (live fleet).",
  },
  lat: { type: "string", help: "Latitude of this replica (-90..90), sent on registration." },
  lon: { type: "string", help: "Longitude of this replica (-180..180), sent on registration." },
  provider: { type: "string", help: "Provider name sent on registration (pricing)." },
  help: { type: "boolean", short: "h", help: "Show this help." },
} as const;

function usage(): string {
  const lines = ["Usage: deno task http -p PORT -o ORIGIN [options]", "", "Options:"];
  for (const [name, f] of Object.entries(FLAGS)) {
    const short = "short" in f ? `-${f.short}, ` : "    ";
    const arg = f.type === "string" ? " VALUE" : "";
    lines.push(`  ${short}--${name}${arg}`.padEnd(34) + f.help);
  }
  return lines.join("\n");
}

function fail(message: string): never {
  console.error(`main_http: ${message}\n\n${usage()}`);
  Deno.exit(2);
}

function positiveInt(name: string, value: string): number {
  if (!/^[0-9]+$/.test(value) || Number(value) <= 0) {
    fail(`--${name} must be a positive integer: received ${value}`);
  }
  return Number(value);
}

async function main(): Promise<void> {
  const options = Object.fromEntries(
    Object.entries(FLAGS).map((
      [k, f],
    ) => [k, "short" in f ? { type: f.type, short: f.short } : { type: f.type }]),
  );
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: Deno.args,
      options: options as ParseArgsOptionsConfig,
      strict: true,
      allowPositionals: false,
    }).values as Record<string, string | boolean | undefined>;
  } catch (e) {
    fail((e as Error).message);
  }
  if (values.help) {
    console.log(usage());
    return;
  }
  const str = (k: string) => values[k] as string | undefined;
  const origin = str("origin");
  if (origin === undefined) fail("--origin is required");
  const portText = str("port") ?? "8080";
  if (!/^[0-9]+$/.test(portText) || Number(portText) > 65535) {
    fail(`--port must be an integer in 0..65535: received ${portText}`);
  }
  const port = Number(portText);
  const host = str("host") ?? "0.0.0.0";
  const sizeOf = (k: string, d: number) => {
    const v = str(k);
    if (v === undefined) return d;
    try {
      return parseSize(v);
    } catch (e) {
      fail(`--${k}: ${(e as Error).message}`);
    }
  };
  const durationOf = (k: string, d: number) => {
    const v = str(k);
    if (v === undefined) return d;
    try {
      return parseDuration(v);
    } catch (e) {
      fail(`--${k}: ${(e as Error).message}`);
    }
  };
  const cacheBytes = sizeOf("cache-bytes", DEFAULT_CACHE_BYTES);
  if (cacheBytes <= 0) fail(`--cache-bytes must be positive: received ${str("cache-bytes")}`);
  const maxObjectBytes = sizeOf("max-object-bytes", cacheBytes);
  const originTimeoutMs = durationOf("origin-timeout", 10_000);
  const coalesceTimeoutMs = durationOf("coalesce-timeout", originTimeoutMs + 1000);
  const peerTimeoutMs = durationOf("peer-timeout", 1000);
  const peers = (str("peers") ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const p of peers) {
    try {
      const u = new URL(p);
      if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error();
    } catch {
      fail(`--peers: not an http(s) URL: ${p}`);
    }
  }
  const concurrency = positiveInt("preload-concurrency", str("preload-concurrency") ?? "8");
  const indexKind = str("index") ?? "wasm";
  let index: CacheIndex;
  try {
    if (indexKind === "wasm") index = createWasmLfru(cacheBytes);
    else if (indexKind === "ts") index = new TsLfru(cacheBytes);
    else fail(`--index must be wasm or ts: received ${indexKind}`);
  } catch (e) {
    fail(`cannot create the ${indexKind} index: ${(e as Error).message}`);
  }
  let preloadLines: string[] | null = null;
  const preloadFile = str("preload");
  if (preloadFile !== undefined) {
    try {
      preloadLines = (await Deno.readTextFile(preloadFile)).split(/\r?\n/);
    } catch (e) {
      fail(`--preload: cannot read ${preloadFile}: ${(e as Error).message}`);
    }
  }
  const dataDir = str("data");
  let store = null;
  if (dataDir !== undefined) {
    try {
      await Deno.mkdir(dataDir, { recursive: true });
      store = openStore(dataDir);
    } catch (e) {
      fail(`--data: cannot open the store in ${dataDir}: ${(e as Error).message}`);
    }
  }
  const adminToken = str("admin-token") ?? Deno.env.get("NEARCAST_ADMIN_TOKEN") ?? null;
  const seeds: string[] = [];
  const serversFile = str("servers");
  if (serversFile !== undefined) {
    let list: unknown;
    try {
      list = JSON.parse(await Deno.readTextFile(serversFile));
    } catch (e) {
      fail(`--servers: cannot read ${serversFile} as JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(list)) fail(`--servers: ${serversFile} must hold a JSON list of URLs`);
    for (const item of list) {
      const u = typeof item === "string" ? item : (item as { url?: unknown })?.url;
      if (typeof u !== "string" || !/^https?:\/\//.test(u) || !URL.canParse(u)) {
        fail(`--servers: not an http(s) URL in ${serversFile}: ${JSON.stringify(item)}`);
      }
      seeds.push(u);
    }
  }
  const join = str("join");
  if (join !== undefined) {
    if (!/^https?:\/\//.test(join) || !URL.canParse(join)) {
      fail(`--join: not an http(s) URL: ${join}`);
    }
    seeds.push(join);
  }
  const advertise = str("advertise");
  if (advertise !== undefined && (!/^https?:\/\//.test(advertise) || !URL.canParse(advertise))) {
    fail(`--advertise: not an http(s) URL: ${advertise}`);
  }
  if (store === null && (seeds.length > 0 || advertise !== undefined)) {
    fail("--servers, --join and --advertise need --data DIR (uploads are stored durably)");
  }
  const heartbeatMs = durationOf("heartbeat", 1000);
  if (heartbeatMs <= 0) fail(`--heartbeat must be positive: received ${str("heartbeat")}`);
  const maxUploadBytes = sizeOf("max-upload-bytes", DEFAULT_MAX_UPLOAD_BYTES);
  const chunkBytes = sizeOf("chunk-bytes", DEFAULT_CHUNK_BYTES);
  if (chunkBytes <= 0 || chunkBytes > MAX_CHUNK_BYTES) {
    fail(`--chunk-bytes must be in 1..${MAX_CHUNK_BYTES}: received ${str("chunk-bytes")}`);
  }
  let fleetFlags;
  try {
    fleetFlags = parseFleetFlags({
      announce: str("announce"),
      lat: str("lat"),
      lon: str("lon"),
      provider: str("provider"),
      host,
      advertise,
    });
  } catch (e) {
    fail((e as Error).message);
  }
  // Set once listening (the agent needs the port); `as` keeps TS from narrowing it to null.
  let agent = null as FleetAgent | null;
  let node: ReplicationNode | null = null;
  let replica;
  try {
    replica = createReplica({
      origin,
      id: str("id") ?? `${host}-${port}`,
      index,
      hashKey,
      store,
      maxObjectBytes,
      originTimeoutMs,
      coalesceTimeoutMs,
      peers,
      peerTimeoutMs,
      adminToken: adminToken === "" ? null : adminToken,
      log: (line) => console.log(line),
      extraApi: (req, path) => {
        const fleet = agent?.handle(req, path) ?? null;
        if (fleet !== null) return fleet;
        if (node !== null) return node.handle(req, path);
        if (!REPLICATION_ROUTES.test(path)) return null;
        return new Response("503: uploads and replication need a store: start with --data DIR\n", {
          status: 503,
          headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
        });
      },
      health: () => {
        if (node === null) return { ready: true };
        return {
          ready: node.ready,
          nodeId: node.id,
          catchUp: node.catchUp(),
          files: node.files().length,
          digest: node.digest(),
          replication: node.stats,
        };
      },
      onMiss: (req, url) => node?.serveMiss(req, url) ?? null,
    });
  } catch (e) {
    fail((e as Error).message);
  }
  if (store !== null) {
    const n = replica.cache.load();
    console.log(`http: loaded ${n} cached entries from ${dataDir}`);
    try {
      const db = new ReplicationDb(dataDir!);
      node = new ReplicationNode({
        id: str("id") ?? db.nodeId(() => crypto.randomUUID().slice(0, 8)),
        key: loadOrCreateKey(`${dataDir}/node_key.json`),
        store,
        db,
        cache: replica.cache,
        adminToken: adminToken === "" ? null : adminToken,
        maxUploadBytes,
        heartbeatMs,
        requestTimeoutMs: Math.max(2000, heartbeatMs * 2),
        chunkBytes,
        seeds,
        log: (line) => console.log(line),
      });
    } catch (e) {
      fail(`--data: cannot open the replication state in ${dataDir}: ${(e as Error).message}`);
    }
  }
  const ac = new AbortController();
  const server = serveReplica(replica, {
    port,
    hostname: host,
    signal: ac.signal,
    onListen: (addr) => {
      const shown = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
      console.log(
        `http: listening on http://${shown}:${addr.port}/ (origin ${origin}, index ${indexKind}, ` +
          `cache ${cacheBytes} bytes${dataDir === undefined ? "" : `, data ${dataDir}`})`,
      );
      if (node !== null) {
        const self = advertise ??
          `http://${addr.hostname === "0.0.0.0" ? "127.0.0.1" : shown}:${addr.port}`;
        node.start(self).catch((e) => console.error(`replication: start failed: ${e}`));
      }
      if (fleetFlags !== null) {
        const r = replica!;
        agent = new FleetAgent({
          ...fleetFlags,
          id: str("id") ?? `${host}-${addr.port}`,
          port: addr.port,
          adminToken: adminToken === "" ? null : adminToken,
          load: () => ({
            requests: r.metrics.requests,
            hits: r.metrics.hits,
            misses: r.metrics.misses,
            cacheBytes: r.cache.usedBytes,
          }),
          held: () => heldPaths(node?.files() ?? [], replica.cache.urls(MAX_HELD_PATHS)),
          log: (line) => console.log(line),
        });
        agent.start();
      }
    },
  });
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => {
      ac.abort();
      // Bounded shutdown: transfers still running after the grace period are cut (the store
      // is crash-safe, a cut transfer stores nothing).
      const t = setTimeout(() => Deno.exit(0), SHUTDOWN_GRACE_MS);
      Deno.unrefTimer(t);
    });
  }
  if (preloadLines !== null) {
    preload(replica.handler, preloadLines, { concurrency, log: (line) => console.log(line) })
      .catch((e) => console.error(`preload: ${e}`));
  }
  await server.finished;
  await agent?.close();
  await node?.close();
  await replica.close();
  // Outgoing node:http connections of pushes can keep the event loop alive after close.
  Deno.exit(0);
}

if (import.meta.main) await main();

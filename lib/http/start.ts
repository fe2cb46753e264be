/**
 * Starts a replica process from its {@link HttpConfig}: reads the files its flags name, opens
 * the store, listens, wires replication, the fleet agent and preload, and stops in order
 * (stop accepting, deregister from the DNS server, finish in-flight requests, close).
 * Start-up failures are {@link StartError}s naming the flag and value, with the exit codes of
 * {@link HTTP_EXIT}.
 *
 * @module
 */
import { type LimitedServer, writeListenerMetrics } from "../common/http_server.ts";
import { writeReplicationMetrics } from "../replication/metrics.ts";
import { hashKey } from "../cache/hash.ts";
import { TsLfru } from "../cache/lfru.ts";
import type { CacheIndex } from "../cache/types.ts";
import { createWasmLfru } from "../cache/wasm_lfru.ts";
import { checkHttpUrl, listenError, StartError } from "../common/cli.ts";
import { ReplicaFleet } from "../fleet/replica/fleet.ts";
import { writeFleetMetrics } from "../fleet/replica/metrics.ts";
import { heldPaths } from "../fleet/replica/flags.ts";
import { MAX_HELD_PATHS } from "../fleet/protocol.ts";
import { ReplicationDb } from "../replication/db.ts";
import { ReplicationNode, replicationRoute } from "../replication/node.ts";
import { loadOrCreateKey, type StoredKey } from "../replication/trust.ts";
import type { ObjectStore } from "../store/types.ts";
import { openStore } from "../store/sqlite_store.ts";
import { HTTP_EXIT, type HttpConfig, replicaId } from "./config.ts";
import { imageLayer } from "../image/enable.ts";
import { DERIVED } from "../image/cache_variants.ts";
import { writeImageMetrics } from "../image/metrics.ts";
import { preload } from "./preload.ts";
import { openAccessLog, withAccessLog } from "./access_log.ts";
import { applyPurge } from "./purge.ts";
import { isPrefetch, prefetchThrough } from "../coop/prefetch.ts";
import { createReplica, type Replica, serveReplica } from "./replica.ts";
import type { NodeTls } from "../tls/node_tls.ts";

/** Time allowed for in-flight requests and transfers after SIGINT/SIGTERM. */
export const SHUTDOWN_GRACE_MS = 5_000;
/** A running replica process. */
export interface ReplicaProcess {
  readonly id: string;
  readonly port: number;
  /**
   * Stops accepting connections at once, deregisters from the DNS server, lets in-flight
   * requests finish (at most {@link SHUTDOWN_GRACE_MS}), then closes everything.
   */
  shutdown(reason: string): Promise<void>;
  /**
   * With `--tls --cert`: reads the certificate files again and serves new connections with
   * them; the line to log. Null without such files (plain HTTP, or ACME).
   */
  reloadCertificate(): Promise<string> | null;
}

async function readFileFor(flag: string, path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    throw new StartError(
      `--${flag}: cannot read ${path}: ${(e as Error).message}`,
      HTTP_EXIT.usage,
    );
  }
}

async function serverSeeds(c: HttpConfig): Promise<string[]> {
  const seeds: string[] = [];
  if (c.serversFile !== null) {
    let list: unknown;
    try {
      list = JSON.parse(await readFileFor("servers", c.serversFile));
    } catch (e) {
      if (e instanceof StartError) throw e;
      throw new StartError(`--servers: ${c.serversFile} is not JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(list)) {
      throw new StartError(`--servers: ${c.serversFile} must hold a JSON list of URLs`);
    }
    for (const item of list) {
      const u = typeof item === "string" ? item : (item as { url?: unknown })?.url;
      seeds.push(checkHttpUrl(`--servers (${c.serversFile})`, String(u)));
    }
  }
  if (c.join !== null) seeds.push(c.join);
  return seeds;
}

function createIndex(c: HttpConfig): CacheIndex {
  try {
    return c.index === "wasm" ? createWasmLfru(c.cacheBytes) : new TsLfru(c.cacheBytes);
  } catch (e) {
    throw new StartError(`--index ${c.index}: cannot create the index: ${(e as Error).message}`);
  }
}

/** Starts the replica; `log` receives its lines (stdout in `main_http.ts`). */
export async function startReplicaProcess(
  c: HttpConfig,
  log: (line: string) => void,
): Promise<ReplicaProcess> {
  const preloadLines = c.preloadFile === null
    ? null
    : (await readFileFor("preload", c.preloadFile)).split(/\r?\n/);
  const seeds = await serverSeeds(c);
  const index = createIndex(c);
  let store: ObjectStore | null = null;
  let db: ReplicationDb | null = null;
  let storedId: string | undefined;
  let key: StoredKey | undefined;
  let newKey = false;
  if (c.dataDir !== null) {
    try {
      await Deno.mkdir(c.dataDir, { recursive: true });
      store = openStore(c.dataDir);
      db = new ReplicationDb(c.dataDir);
      ({ key, created: newKey } = loadOrCreateKey(`${c.dataDir}/node_key.json`));
    } catch (e) {
      throw new StartError(
        `--data ${c.dataDir}: cannot open the store: ${(e as Error).message}`,
        HTTP_EXIT.data,
      );
    }
  }

  const scheme = c.tls === null ? "http" : "https";
  // Loaded only with --tls: the certificate and ACME code (node:crypto, node:https, acme-client)
  // costs about 24 MiB of resident memory in every replica that imports it.
  const nodeTls = c.tls === null ? null : await import("../tls/node_tls.ts");
  const tls: NodeTls | null = c.tls === null ? null : await nodeTls!.prepareNodeTls(c.tls, {
    identifier: c.fleet?.address ||
      (c.advertise !== null ? new URL(c.advertise).hostname.replace(/^\[|\]$/g, "") : null) ||
      (c.host === "0.0.0.0" || c.host === "::" ? null : c.host),
    host: c.host,
    dataDir: c.dataDir,
    log,
  });

  // Node-to-node requests signed with the certificate (replication needs --data).
  const certAuth = tls === null || c.nodeAuth === "key" || db === null
    ? null
    : nodeTls!.certCredential(tls, c.nodeAuth, c.tls!.certFile!);
  if (db !== null && c.id === null) {
    // With --node-auth cert, a new node's id is its certificate's name.
    storedId = db.nodeId(() => certAuth?.signer.name ?? crypto.randomUUID().slice(0, 8));
  }
  if (certAuth !== null && certAuth.signer.name !== (c.id ?? storedId)) {
    const id = c.id ?? storedId;
    throw new StartError(
      `--node-auth ${c.nodeAuth}: this node's id is ${id} but --cert ${c.tls!.certFile} names ` +
        `${certAuth.signer.name} (its CN): give --id ${certAuth.signer.name}, or a certificate ` +
        `made for ${id} (deno task certs --nodes ${id}=ADDR)`,
      HTTP_EXIT.usage,
    );
  }

  // Listen first (the default id names the port), then build the replica before any request
  // can arrive: nothing below awaits until it exists.
  let replica: Replica | null = null;
  let agent: ReplicaFleet | null = null;
  let node: ReplicationNode | null = null;
  let server: LimitedServer;
  const accessLog = c.accessLog === null ? null : openAccessLog(c.accessLog);
  const images = await imageLayer(c, log, (ip) => agent?.prober.rttTo(ip));
  try {
    const handler = withAccessLog(
      (req, info) =>
        images && info
          ? images.handle(req, info.remoteAddr.hostname, (r) => replica!.handler(r))
          : replica!.handler(req),
      { access: accessLog?.write ?? null, format: c.accessLogFormat, log },
    );
    server = serveReplica({ handler } as Replica, {
      ...c.limits,
      port: c.port,
      hostname: c.host,
      tls: tls?.pair,
    });
  } catch (e) {
    throw listenError(e, `--host ${c.host} --port ${c.port}`, HTTP_EXIT.listen);
  }
  const port = server.addr.port;
  const stopRenewal = tls?.renew((pair) => server.setCertificate(pair));
  const id = replicaId(c, port, storedId);
  const r = replica = createReplica({
    origin: c.origin,
    id,
    index,
    hashKey,
    store,
    maxObjectBytes: c.maxObjectBytes,
    originTimeoutMs: c.originTimeoutMs,
    coalesceTimeoutMs: c.coalesceTimeoutMs,
    staleOnErrorSeconds: c.staleOnErrorMs / 1000,
    sliceBytes: c.sliceBytes,
    sliceFetches: c.sliceFetches,
    peers: c.peers,
    // One membership: its live members are cache peers too, and purges reach all of it.
    members: () => node?.aliveMemberUrls() ?? [],
    coop: c.coop === null ? undefined : {
      route: (url, req) => node?.coop?.route(url, req) ?? null,
      keepCopy: (url, req, streamed) => node?.coop?.keepCopy(url, req, streamed) ?? true,
      copyDone: (url) => node?.coop?.copyDone(url),
      peersOnly: isPrefetch,
      fillsFor: (req) => node?.coop?.fillsFor(req) ?? false,
    },
    purgeMembers: (t) => node?.purgeMembers(t) ?? Promise.resolve(null),
    peerTimeoutMs: c.peerTimeoutMs,
    adminToken: c.adminToken,
    log,
    extraApi: (req, path) => {
      const fleet = agent?.handle(req, path) ?? null;
      if (fleet !== null) return fleet;
      if (node !== null) return node.handle(req, path);
      if (replicationRoute(path) === null) return null; // uploads and replication need a store
      return new Response("503: uploads and replication need a store: start with --data DIR\n", {
        status: 503,
        headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
      });
    },
    health: () => ({
      // The CDN's name (the routing proxy's default --name): --cdn-name, else the DNS zone.
      cdnName: c.cdnName ?? agent?.cdnName ?? null,
      ...(node === null ? { ready: true } : {
        ready: node.ready,
        nodeId: node.id,
        catchUp: node.catchUp(),
        files: node.files().length,
        digest: node.digest(),
        replication: node.stats,
        ...(c.coop === null ? {} : { coop: node.coopView() }),
      }),
    }),
    onMiss: (req, url) => node?.serveMiss(req, url) ?? null,
    cacheEvents: images?.cacheEvents,
    moreMetrics: (e) => {
      writeListenerMetrics(e, server.stats, server.limits);
      if (node !== null) writeReplicationMetrics(e, node);
      if (agent !== null) writeFleetMetrics(e, agent);
      if (images !== null) writeImageMetrics(e, images);
    },
  });
  images?.attach(r.cache, store);
  if (store !== null && db !== null) {
    log(`http: loaded ${r.cache.load()} cached entries from ${c.dataDir}`);
    node = new ReplicationNode({
      id,
      key: key!,
      newKey,
      store,
      db,
      cache: r.cache,
      adminToken: c.adminToken,
      provider: c.provider,
      maxUploadBytes: c.maxUploadBytes,
      heartbeatMs: c.heartbeatMs,
      requestTimeoutMs: Math.max(2000, c.heartbeatMs * 2),
      chunkBytes: c.chunkBytes,
      wire: c.wire,
      cert: certAuth ?? undefined,
      seeds,
      // One membership: the replicas the DNS server lists are replication peers too.
      discover: () =>
        (agent?.servers ?? []).filter((s) => s.state === "alive").map((s) =>
          `${scheme}://${s.address.includes(":") ? `[${s.address}]` : s.address}:${s.port}`
        ),
      applyPurge: (t) => applyPurge(r.cache, r.metrics, t),
      coop: c.coop === null
        ? undefined
        : { ...c.coop, prefetch: (url) => prefetchThrough(r.handler, r.cache, url) },
      log,
    });
  }
  const shown = c.host.includes(":") ? `[${c.host}]` : c.host;
  log(
    `http: listening on ${scheme}://${shown}:${port}/ (id ${id}, origin ${c.origin}, index ${c.index}, ` +
      `heap ${c.heap}, cache ${c.cacheBytes} bytes${
        c.dataDir === null ? "" : `, data ${c.dataDir}`
      })`,
  );
  if (node !== null) {
    const self = c.advertise ?? `${scheme}://${c.host === "0.0.0.0" ? "127.0.0.1" : shown}:${port}`;
    node.start(self).catch((e) => log(`replication: start failed: ${e}`));
  }
  if (c.fleet !== null) {
    agent = new ReplicaFleet({
      ...c.fleet,
      id,
      port,
      tls: c.tls !== null,
      cdnName: c.cdnName,
      adminToken: c.adminToken,
      // Its own credential at the DNS server: the node key, admitted once with the admin token.
      nodeKey: key,
      pinFile: c.dataDir === null ? null : `${c.dataDir}/fleet_server.json`,
      load: () => ({
        requests: r.metrics.requests,
        hits: r.metrics.hits,
        misses: r.metrics.misses,
        cacheBytes: r.cache.usedBytes,
      }),
      held: () =>
        heldPaths(
          node?.files() ?? [],
          r.cache.urls(MAX_HELD_PATHS).filter((u) => !u.includes(DERIVED)), // image variants
        ),
      log,
    });
    agent.start();
  }
  if (preloadLines !== null) {
    preload(r.handler, preloadLines, { origin: c.origin, concurrency: c.preloadConcurrency, log })
      .catch((e) => log(`preload: ${e}`));
  }

  let stopping: Promise<void> | null = null;
  return {
    id,
    port,
    reloadCertificate() {
      if (tls === null || c.tls?.acme !== null) return null;
      // With --node-auth cert, the new certificate must name this node too.
      const signer = (next: { pair: { cert: string; key: string } } | null) =>
        certAuth === null ? null : nodeTls!.nodeCertSigner(next!.pair, id);
      return tls.reload().then((next) => ({ next, signer: signer(next) })).then(
        ({ next, signer }) => {
          if (signer !== null) certAuth!.signer = signer;
          server.setCertificate(next!.pair);
          return `tls: reloaded --cert and --key: now serving ${nodeTls!.describe(next!.info)}`;
        },
        (e) => `tls: reload refused, still serving the old certificate: ${(e as Error).message}`,
      );
    },
    shutdown(reason) {
      stopping ??= (async () => {
        log(`http: ${reason}: stopping: no new connections, deregistering, draining requests`);
        stopRenewal?.();
        // Bounded: transfers still running after the grace period are cut (the store is
        // crash-safe, a cut transfer stores nothing).
        const grace = setTimeout(() => {
          log(`http: requests still running after ${SHUTDOWN_GRACE_MS} ms: cut`);
          Deno.exit(0);
        }, SHUTDOWN_GRACE_MS);
        Deno.unrefTimer(grace);
        await Promise.all([server.shutdown(), agent?.deregister()]);
        await node?.close();
        await r.close();
        accessLog?.close();
        log("http: stopped");
      })();
      return stopping;
    },
  };
}

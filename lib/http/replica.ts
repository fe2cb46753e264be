/**
 * The caching HTTP replica: a request handler serving GET and HEAD from an {@link HttpCache}
 * (RFC 9111), filling misses from peers or the origin with one fetch per key, forwarding
 * other methods and invalidating what they change, plus the `/_cdn/` API. This module wires
 * the parts: dispatch.ts (methods, limits, cache lookup), fill.ts (peers, origin, coalescing),
 * forward.ts (other methods), api.ts (route table), respond.ts (response building).
 *
 * @example
 * ```ts ignore
 * import { createReplica, serveReplica } from "./replica.ts";
 * import { TsLfru } from "../cache/lfru.ts";
 * import { hashKey } from "../cache/hash.ts";
 * const replica = createReplica({
 *   origin: "http://127.0.0.1:8000",
 *   id: "a",
 *   index: new TsLfru(64 * 1024 * 1024),
 *   hashKey,
 * });
 * const server = serveReplica(replica, { port: 8080 });
 * ```
 *
 * @module
 */

import { type LimitedServer, type ListenerLimits, serveLimited } from "../common/http_server.ts";
import type { Exposition } from "../common/prometheus.ts";
import type { TlsKeyPair } from "../tls/listen.ts";
import type { CacheIndex } from "../cache/types.ts";
import type { ObjectStore } from "../store/types.ts";
import { createApi } from "./api.ts";
import { type CacheEvents, HttpCache, type KeyHasher } from "./cache.ts";
import { createDispatcher } from "./dispatch.ts";
import { createFiller } from "./fill.ts";
import { createForwarder } from "./forward.ts";
import { Metrics } from "./metrics.ts";
import type { PurgeFanOut, PurgeTarget } from "./purge.ts";
import { Responder } from "./respond.ts";
import type { CoopHooks } from "./coop_hooks.ts";
import { trimNativeHeap } from "./native_memory.ts";

/** How often freed native memory is returned to the system while requests come in, ms. */
const TRIM_INTERVAL_MS = 2000;

export { API_PREFIX, MAX_PURGE_BODY } from "./api.ts";
export { PEER_HEADER } from "./forwarding.ts";
export {
  headerSectionError,
  MAX_HEADER_BYTES,
  MAX_HEADER_FIELD_BYTES,
  MAX_URL_LENGTH,
} from "./limits.ts";

/** Options of {@link createReplica}. */
export interface ReplicaOptions {
  /** Origin base URL, e.g. `http://127.0.0.1:8000`. */
  origin: string;
  /** Replica id, used in `Via: 1.1 nearcast-ID`. */
  id: string;
  /** The cache index (its budget is the cache size). */
  index: CacheIndex;
  hashKey: KeyHasher;
  /** Durable store for write-through and restart; null for memory only. */
  store?: ObjectStore | null;
  /** Largest body cached (default: the index budget). */
  maxObjectBytes?: number;
  /** Time allowed for an origin response (headers and a cached body), ms. Default 10 s. */
  originTimeoutMs?: number;
  /** How long a miss waits for another request's fetch of the same key, ms. */
  coalesceTimeoutMs?: number;
  /** Peer base URLs asked before the origin on a miss. */
  peers?: string[];
  /** Base URLs of the live members of the membership (not this one), asked on a miss too. */
  members?: () => string[];
  /** With `--coop`: which members a miss asks, and what it keeps (coop_hooks.ts). */
  coop?: CoopHooks;
  /** Pushes a purge applied here to the other members; null without a membership. */
  purgeMembers?: (t: PurgeTarget) => Promise<PurgeFanOut | null>;
  /** Time allowed for a peer's answer, ms. Default 1 s. */
  peerTimeoutMs?: number;
  /**
   * How long past expiry a stale copy stands in for a failing origin, seconds (default 3600;
   * 0: only with `stale-if-error`).
   */
  staleOnErrorSeconds?: number;
  /** Slice size of range misses, bytes (default 0: off; see fill_slice.ts). */
  sliceBytes?: number;
  /** Most slice requests to the origin at once (default 4). */
  sliceFetches?: number;
  /** Token for `/_cdn/purge`; purge is disabled without one. */
  adminToken?: string | null;
  /** Clock in ms since the epoch (default `Date.now`). */
  now?: () => number;
  /** More `/_cdn/` routes (uploads, replication): a response, or null when not one of them. */
  extraApi?: (req: Request, path: string) => Response | Promise<Response> | null;
  /** More `/_cdn/health` fields; `ready: false` makes it answer 503 (still catching up). */
  health?: () => { ready: boolean; [field: string]: unknown };
  /** Writes more `/_cdn/metrics` (the listener's counters, replication). */
  moreMetrics?: (e: Exposition) => void;
  /**
   * Asked on a cache miss before peers and origin (uploaded files the index had no room for):
   * a response, or null.
   */
  onMiss?: (req: Request, url: string) => Response | Promise<Response> | null;
  /** Told of entries stored and dropped (the image layer's precompute and clean-up). */
  cacheEvents?: CacheEvents;
  /** Log sink (default `console.error`). */
  log?: (line: string) => void;
}

/** A running replica's handler and state. */
export interface Replica {
  handler(req: Request): Response | Promise<Response>;
  /** Waits for background work, then closes the store. */
  close(): Promise<void>;
  readonly cache: HttpCache;
  readonly metrics: Metrics;
}

/** Builds a replica from options (see {@link ReplicaOptions}). */
export function createReplica(opts: ReplicaOptions): Replica {
  let originUrl: URL;
  try {
    originUrl = new URL(opts.origin);
  } catch {
    throw new TypeError(
      `Cannot create replica: origin must be an absolute URL: received ${opts.origin}`,
    );
  }
  if (originUrl.protocol !== "http:" && originUrl.protocol !== "https:") {
    throw new TypeError(
      `Cannot create replica: origin must be http: or https:: received ${opts.origin}`,
    );
  }
  const originBase = originUrl.origin;
  const originTimeout = opts.originTimeoutMs ?? 10_000;
  if (!(originTimeout > 0)) {
    throw new RangeError(
      `Cannot create replica: originTimeoutMs must be positive: received ${originTimeout}`,
    );
  }
  const peers = (opts.peers ?? []).map((p) => new URL(p).origin);
  const peerTimeout = opts.peerTimeoutMs ?? 1000;
  const now = opts.now ?? Date.now;
  const log = opts.log ?? ((line: string) => console.error(line));
  const via = `1.1 nearcast-${opts.id}`;
  const metrics = new Metrics();
  const cache = new HttpCache({
    index: opts.index,
    hashKey: opts.hashKey,
    store: opts.store,
    maxObjectBytes: opts.maxObjectBytes ?? opts.index.budget,
    via,
    onStoreError: (m) => log(`store: ${m}`),
    events: opts.cacheEvents,
  });
  const respond = new Responder({
    via,
    cache,
    metrics,
    idleTimeoutMs: originTimeout,
    log,
  });
  const filler = createFiller({
    cache,
    store: opts.store ?? null,
    metrics,
    respond,
    originBase,
    originTimeoutMs: originTimeout,
    coalesceTimeoutMs: opts.coalesceTimeoutMs ?? originTimeout + 1000,
    peers,
    members: opts.members,
    coop: opts.coop,
    peerTimeoutMs: peerTimeout,
    staleOnErrorSeconds: opts.staleOnErrorSeconds ?? 3600,
    sliceBytes: opts.sliceBytes ?? 0,
    sliceFetches: opts.sliceFetches ?? 4,
    via,
    now,
    log,
  });
  const handler = createDispatcher({
    cache,
    metrics,
    respond,
    filler,
    coop: opts.coop,
    api: createApi({
      cache,
      metrics,
      respond,
      id: opts.id,
      originBase,
      adminToken: opts.adminToken ?? null,
      extraApi: opts.extraApi,
      purgeMembers: opts.purgeMembers,
      health: opts.health,
      moreMetrics: opts.moreMetrics,
      now,
    }),
    forward: createForwarder({
      cache,
      metrics,
      respond,
      originBase,
      originTimeoutMs: originTimeout,
      now,
      log,
    }),
    onMiss: opts.onMiss,
    originBase,
    now,
  });
  // A stored body found missing or corrupt: the entry is gone, so this fetches it anew.
  respond.refetch = handler;
  // Hands freed native heap back to the system now and then while requests come in (see
  // native_memory.ts); a few milliseconds per call.
  let requestsAtTrim = 0;
  const trimTimer = setInterval(() => {
    if (metrics.requests === requestsAtTrim) return;
    requestsAtTrim = metrics.requests;
    trimNativeHeap();
  }, TRIM_INTERVAL_MS);
  Deno.unrefTimer(trimTimer);

  return {
    handler,
    cache,
    metrics,
    async close() {
      clearInterval(trimTimer);
      await filler.settled();
      opts.store?.close();
    },
  };
}

/** Options of {@link serveReplica}: where to listen, and the listener's limits. */
export interface ServeOptions extends ListenerLimits {
  port: number;
  hostname?: string;
  signal?: AbortSignal;
  onListen?: (addr: Deno.NetAddr) => void;
  /** HTTPS only, with this certificate (lib/common/http_server.ts). */
  tls?: TlsKeyPair;
}

/**
 * Serves a replica through the limited listener (lib/common/http_server.ts: connection cap
 * below the open-file limit, header and idle timeouts, accept errors never fatal); a handler
 * crash becomes a 500, logged.
 */
export function serveReplica(replica: Replica, opts: ServeOptions): LimitedServer {
  return serveLimited({
    ...opts,
    hostname: opts.hostname ?? "0.0.0.0",
    onListen: opts.onListen ?? (() => {}),
    name: "http",
  }, replica.handler);
}

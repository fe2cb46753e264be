/**
 * Test helper (private): the replica's in-process parts (an {@link HttpCache} on a 1 MiB LFRU
 * index, its {@link Metrics} and a {@link Responder}) as the `http_*` unit tests build them.
 *
 * @module
 */

import { hashKey } from "../lib/cache/hash.ts";
import { TsLfru } from "../lib/cache/lfru.ts";
import { HttpCache } from "../lib/http/cache.ts";
import { Metrics } from "../lib/http/metrics.ts";
import { Responder } from "../lib/http/respond.ts";

/** A cache whose index holds `indexBytes` (default 1 MiB), objects up to 1 MiB by default. */
export function testCache(via: string, indexBytes = 1 << 20, maxObjectBytes = 1 << 20): HttpCache {
  return new HttpCache({ index: new TsLfru(indexBytes), hashKey, maxObjectBytes, via });
}

/** A stored 200 of `size` zero bytes, fresh for 10 minutes from 2026-01-01 (for `cache.put`). */
export function storedParts(size: number) {
  const t0 = Date.UTC(2026, 0, 1);
  return {
    status: 200,
    headers: [["cache-control", "max-age=600"]] as [string, string][],
    body: new Uint8Array(size),
    requestTime: t0,
    responseTime: t0,
  };
}

/** How {@link httpParts} builds its parts. */
export interface PartsOptions {
  /** The cache's Via value (default `1.1 t`, the Responder's). */
  cacheVia?: string;
  /** The Responder's idle timeout (default 1000 ms). */
  idleTimeoutMs?: number;
}

/** A cache, metrics and a quiet Responder over them (Via `1.1 t`). */
export function httpParts(
  opts: PartsOptions = {},
): { cache: HttpCache; metrics: Metrics; respond: Responder } {
  const cache = testCache(opts.cacheVia ?? "1.1 t");
  const metrics = new Metrics();
  const respond = new Responder({
    via: "1.1 t",
    cache,
    metrics,
    idleTimeoutMs: opts.idleTimeoutMs ?? 1000,
    log: () => {},
  });
  return { cache, metrics, respond };
}

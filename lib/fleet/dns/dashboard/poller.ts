/**
 * What the dashboard fetches from the replicas themselves: replication state (files, digest,
 * lag), cache fill and bytes served from `GET /_cdn/health` and `GET /_cdn/metrics`, and the
 * uploads and deletions a changed digest brings (`GET /_cdn/manifest`, read only then). Each
 * replica is asked at most once per {@link POLL_MS}, one request at a time, each bounded by
 * {@link POLL_TIMEOUT_MS} and {@link MAX_ANSWER_BYTES}; dead replicas are not asked.
 *
 * @module
 */
import { readBodyText } from "../../../common/body.ts";
import { describeFetchError, peerFetch } from "../../../tls/client.ts";
import { type FleetEntry, replicaScheme } from "../registry.ts";

/** Least time between two polls of a replica. */
export const POLL_MS = 2_000;
/** Time allowed for each answer. */
export const POLL_TIMEOUT_MS = 1_500;
/** Largest health, metrics or manifest answer read. */
export const MAX_ANSWER_BYTES = 8 * 1024 * 1024;
/** An upload older than this when first seen is not shown as an event. */
export const RECENT_UPLOAD_MS = 10 * 60_000;
/** Manifest versions remembered (to show each upload once, whichever replica shows it first). */
export const MAX_SEEN_VERSIONS = 4096;

/** What the dashboard shows of one replica's own figures. */
export interface NodeView {
  files: number | null;
  digest: string | null;
  /** `nearcast_http_replication_lag_seconds`. */
  lagSeconds: number | null;
  /** When this dashboard saw the digest change (or first saw it), clock ms. */
  digestSince: number | null;
  catchUp: string | null;
  usedBytes: number | null;
  budgetBytes: number | null;
  bytesServed: number | null;
  requests: number | null;
  purged: number | null;
  /** When the latest poll answered, clock ms. */
  polledAt: number | null;
  error: string | null;
}

/** An event the poller saw: an upload, a deletion or a purge. */
export interface PolledEvent {
  kind: "upload" | "delete" | "purge";
  text: string;
}

interface ManifestEntry {
  name?: unknown;
  version?: { ts?: unknown; node?: unknown };
  deleted?: unknown;
  size?: unknown;
}

function emptyView(): NodeView {
  return {
    files: null,
    digest: null,
    lagSeconds: null,
    digestSince: null,
    catchUp: null,
    usedBytes: null,
    budgetBytes: null,
    bytesServed: null,
    requests: null,
    purged: null,
    polledAt: null,
    error: null,
  };
}

/** The value of an unlabelled sample `name` in Prometheus text, or null. */
export function sample(text: string, name: string): number | null {
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  return m === null ? null : Number(m[1]);
}

function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** Options of {@link ReplicaPoller}. */
export interface PollerOptions {
  scheme?: "http" | "https";
  now?: () => number;
  onEvent: (e: PolledEvent) => void;
}

/** See the module doc. */
export class ReplicaPoller {
  readonly #views = new Map<string, NodeView>();
  readonly #busy = new Set<string>();
  readonly #seen = new Map<string, true>();
  readonly #scheme: string;
  readonly #now: () => number;
  readonly #onEvent: (e: PolledEvent) => void;
  readonly #ac = new AbortController();

  constructor(o: PollerOptions) {
    this.#scheme = o.scheme ?? "http";
    this.#now = o.now ?? Date.now;
    this.#onEvent = o.onEvent;
  }

  /** The latest view of replica `id` (empty before its first poll). */
  view(id: string): NodeView {
    return this.#views.get(id) ?? emptyView();
  }

  /** Polls every registered, not dead replica that is due; forgets the ones gone. */
  poll(entries: readonly FleetEntry[]): void {
    const ids = new Set(entries.map((e) => e.id));
    for (const id of this.#views.keys()) if (!ids.has(id)) this.#views.delete(id);
    const now = this.#now();
    for (const e of entries) {
      if (e.source !== "registered" || e.state === "dead" || this.#busy.has(e.id)) continue;
      const v = this.#views.get(e.id);
      if (v?.polledAt != null && now - v.polledAt < POLL_MS) continue;
      this.#busy.add(e.id);
      this.#pollOne(e).finally(() => this.#busy.delete(e.id));
    }
  }

  /** Stops every poll in flight. */
  close(): void {
    this.#ac.abort();
  }

  async #get(base: string, path: string): Promise<string> {
    const res = await peerFetch(base + path, {
      signal: AbortSignal.any([this.#ac.signal, AbortSignal.timeout(POLL_TIMEOUT_MS)]),
    });
    const text = await readBodyText(res, MAX_ANSWER_BYTES, path);
    if (res.status !== 200 && !(path === "/_cdn/health" && res.status === 503)) {
      throw new Error(`${path}: HTTP ${res.status}`);
    }
    return text;
  }

  async #pollOne(e: FleetEntry): Promise<void> {
    const host = e.address.includes(":") ? `[${e.address}]` : e.address;
    const base = `${replicaScheme(e, this.#scheme)}://${host}:${e.port}`;
    const v = this.#views.get(e.id) ?? emptyView();
    try {
      const health = JSON.parse(await this.#get(base, "/_cdn/health"));
      const metrics = await this.#get(base, "/_cdn/metrics");
      const now = this.#now();
      const digest = typeof health.digest === "string" ? health.digest : null;
      const changed = digest !== null && digest !== v.digest;
      // Read before the digest is kept: a failed read is tried again at the next poll.
      const manifest = changed ? await this.#get(base, "/_cdn/manifest") : null;
      if (changed) v.digestSince = now;
      v.digest = digest;
      v.files = num(health.files);
      v.catchUp = typeof health.catchUp?.state === "string" ? health.catchUp.state : null;
      v.usedBytes = num(health.usedBytes);
      v.budgetBytes = num(health.budgetBytes);
      v.lagSeconds = sample(metrics, "nearcast_http_replication_lag_seconds");
      v.bytesServed = sample(metrics, "nearcast_http_response_bytes_total");
      v.requests = sample(metrics, "nearcast_http_requests_total");
      const purged = sample(metrics, "nearcast_http_cache_purged_total");
      if (purged !== null && v.purged !== null && purged > v.purged) {
        this.#onEvent({ kind: "purge", text: `${e.id} purged ${purged - v.purged} cache entries` });
      }
      v.purged = purged;
      v.polledAt = now;
      v.error = null;
      this.#views.set(e.id, v);
      if (manifest !== null) this.#manifest(e.id, manifest);
    } catch (err) {
      if (this.#ac.signal.aborted) return;
      v.polledAt = this.#now();
      v.error = describeFetchError(err).split("\n")[0];
      this.#views.set(e.id, v);
    }
  }

  /** Shows each recent version once, from whichever replica lists it first. */
  #manifest(id: string, text: string): void {
    const body = JSON.parse(text) as { entries?: ManifestEntry[] };
    if (!Array.isArray(body.entries)) return;
    const now = this.#now();
    for (const m of body.entries) {
      const ts = num(m.version?.ts);
      if (typeof m.name !== "string" || ts === null || now - ts > RECENT_UPLOAD_MS) continue;
      const key = `${m.name}\n${ts}\n${m.version?.node}`;
      if (this.#seen.has(key)) continue;
      this.#seen.set(key, true);
      if (this.#seen.size > MAX_SEEN_VERSIONS) this.#seen.delete(this.#seen.keys().next().value!);
      const size = num(m.size);
      this.#onEvent(
        m.deleted === true ? { kind: "delete", text: `${m.name} deleted (seen on ${id})` } : {
          kind: "upload",
          text: `${m.name} uploaded${size === null ? "" : ` (${size} bytes)`} via ${
            String(m.version?.node)
          } (seen on ${id})`,
        },
      );
    }
  }
}

/**
 * A replica's replication figures for `/_cdn/metrics`: files held and their bytes in the
 * store, catch-up state, lag (how long a peer's manifest has differed) and the node's counters.
 *
 * @module
 */
import type { Exposition } from "../common/prometheus.ts";
import type { ReplicationNode } from "./node.ts";

/** Writes `node`'s figures into `e` (prefix `nearcast_http`), names `replication_*`. */
export function writeReplicationMetrics(e: Exposition, node: ReplicationNode): void {
  const files = node.files();
  let bytes = 0;
  for (const f of files) bytes += f.size;
  const c = node.catchUp();
  const s = node.stats;
  e.gauge("replication_files", "Uploaded files held (not deleted).", files.length);
  e.gauge("replication_store_bytes", "Bytes of the uploaded files held.", bytes);
  e.gauge("replication_ready", "1 once the start-up catch-up is done.", node.ready ? 1 : 0);
  e.gauge(
    "replication_missing_files",
    "Files peers listed at start that are not held yet (start-up catch-up).",
    c.missing,
  );
  e.gauge(
    "replication_lag_seconds",
    "How long some peer's manifest digest has differed from ours (0: all equal).",
    node.lagSeconds(),
  );
  e.counter("replication_uploads_total", "Uploads accepted here.", s.uploads);
  e.counter("replication_pushes_total", "Pushes sent to peers.", s.pushes);
  e.counter("replication_push_failures_total", "Pushes that failed.", s.pushFailures);
  e.counter("replication_pulls_total", "Objects pulled from peers.", s.pulls);
  e.counter("replication_rejected_total", "Node-to-node requests rejected.", s.rejected);
}

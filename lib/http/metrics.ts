/**
 * Replica metrics in the Prometheus text exposition format (version 0.0.4).
 *
 * @module
 */
import { type Exposition, Histogram } from "../common/prometheus.ts";

/** Counters and the origin latency histogram of one replica. */
export class Metrics {
  requests = 0;
  hits = 0;
  misses = 0;
  stale = 0;
  revalidated = 0;
  notModified = 0;
  bytesSent = 0;
  originBytes = 0;
  originRequests = 0;
  originErrors = 0;
  peerHits = 0;
  evictions = 0;
  purged = 0;
  coalesced = 0;
  notStored = 0;
  /** Origin time to response headers, seconds. */
  readonly originLatency = new Histogram();

  /** Records one origin fetch's time to headers, in seconds. */
  observeOriginLatency(seconds: number): void {
    this.originLatency.observe(seconds);
  }

  /** Writes the counters and the histogram into `e` (prefix `nearcast_http`). */
  write(e: Exposition): void {
    e.counter("requests_total", "Requests received.", this.requests);
    e.counter("cache_hits_total", "Requests served from a fresh cached copy.", this.hits);
    e.counter("cache_misses_total", "Requests fetched from a peer or the origin.", this.misses);
    e.counter("cache_stale_total", "Requests served from a stale copy.", this.stale);
    e.counter(
      "cache_revalidated_total",
      "Requests served after a 304 from the origin.",
      this.revalidated,
    );
    e.counter("not_modified_total", "304 answers sent to clients.", this.notModified);
    e.counter("response_bytes_total", "Body bytes sent to clients.", this.bytesSent);
    e.counter("origin_bytes_total", "Body bytes received from the origin.", this.originBytes);
    e.counter("origin_requests_total", "Requests sent to the origin.", this.originRequests);
    e.counter("origin_errors_total", "Origin failures and timeouts.", this.originErrors);
    e.counter("peer_hits_total", "Misses answered by a peer.", this.peerHits);
    e.counter("cache_evictions_total", "Entries evicted by the index.", this.evictions);
    e.counter("cache_purged_total", "Entries removed by purge or invalidation.", this.purged);
    e.counter("coalesced_total", "Misses that waited for another request's fetch.", this.coalesced);
    e.counter("not_stored_total", "Cacheable-method responses not stored.", this.notStored);
    e.histogram("origin_latency_seconds", "Origin time to response headers.", this.originLatency);
  }
}

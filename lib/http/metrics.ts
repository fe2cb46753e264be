/**
 * Replica metrics in the Prometheus text exposition format (version 0.0.4).
 *
 * @module
 */

/** Upper bounds (seconds) of the origin latency histogram buckets. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

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
  #buckets = new Array<number>(LATENCY_BUCKETS.length).fill(0);
  #latencySum = 0;
  #latencyCount = 0;

  /** Records one origin fetch's time to headers, in seconds. */
  observeOriginLatency(seconds: number): void {
    this.#latencySum += seconds;
    this.#latencyCount++;
    for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
      if (seconds <= LATENCY_BUCKETS[i]) {
        this.#buckets[i]++;
        break;
      }
    }
  }

  /** The exposition text; `gauges` adds current values such as cache bytes. */
  render(gauges: Record<string, { help: string; value: number }>): string {
    const lines: string[] = [];
    const counter = (name: string, help: string, value: number) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${value}`);
    };
    counter("nearcast_http_requests_total", "Requests received.", this.requests);
    counter(
      "nearcast_http_cache_hits_total",
      "Requests served from a fresh cached copy.",
      this.hits,
    );
    counter(
      "nearcast_http_cache_misses_total",
      "Requests fetched from a peer or the origin.",
      this.misses,
    );
    counter("nearcast_http_cache_stale_total", "Requests served from a stale copy.", this.stale);
    counter(
      "nearcast_http_cache_revalidated_total",
      "Requests served after a 304 from the origin.",
      this.revalidated,
    );
    counter("nearcast_http_not_modified_total", "304 answers sent to clients.", this.notModified);
    counter("nearcast_http_response_bytes_total", "Body bytes sent to clients.", this.bytesSent);
    counter(
      "nearcast_http_origin_bytes_total",
      "Body bytes received from the origin.",
      this.originBytes,
    );
    counter(
      "nearcast_http_origin_requests_total",
      "Requests sent to the origin.",
      this.originRequests,
    );
    counter(
      "nearcast_http_origin_errors_total",
      "Origin failures and timeouts.",
      this.originErrors,
    );
    counter("nearcast_http_peer_hits_total", "Misses answered by a peer.", this.peerHits);
    counter("nearcast_http_cache_evictions_total", "Entries evicted by the index.", this.evictions);
    counter(
      "nearcast_http_cache_purged_total",
      "Entries removed by purge or invalidation.",
      this.purged,
    );
    counter(
      "nearcast_http_coalesced_total",
      "Misses that waited for another request's fetch.",
      this.coalesced,
    );
    counter(
      "nearcast_http_not_stored_total",
      "Cacheable-method responses not stored.",
      this.notStored,
    );
    for (const [name, g] of Object.entries(gauges)) {
      lines.push(`# HELP ${name} ${g.help}`, `# TYPE ${name} gauge`, `${name} ${g.value}`);
    }
    const h = "nearcast_http_origin_latency_seconds";
    lines.push(`# HELP ${h} Origin time to response headers.`, `# TYPE ${h} histogram`);
    let cumulative = 0;
    for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
      cumulative += this.#buckets[i];
      lines.push(`${h}_bucket{le="${LATENCY_BUCKETS[i]}"} ${cumulative}`);
    }
    lines.push(`${h}_bucket{le="+Inf"} ${this.#latencyCount}`);
    lines.push(`${h}_sum ${this.#latencySum}`, `${h}_count ${this.#latencyCount}`);
    return lines.join("\n") + "\n";
  }
}

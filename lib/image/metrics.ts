/**
 * The image layer's counters and memory in the replica's `/_cdn/metrics`
 * (`nearcast_http_image_*`).
 *
 * @module
 */
import type { Exposition } from "../common/prometheus.ts";
import type { ImageLayer } from "./serve.ts";

/** Writes `layer`'s figures into `e`. */
export function writeImageMetrics(e: Exposition, layer: ImageLayer): void {
  const s = layer.stats;
  const m = layer.memory;
  e.counter("image_variants_computed_total", "Image variants transcoded.", s.computed);
  e.counter(
    "image_variants_precomputed_total",
    "Image variants made by the background ladder work.",
    s.precomputed,
  );
  e.counter("image_variant_hits_total", "Requests answered with a stored variant.", s.cacheHits);
  e.counter(
    "image_timeouts_total",
    "Requests served the original: their variant failed or was not ready in time.",
    s.timeouts,
  );
  e.gauge(
    "image_memory_limit_bytes",
    "Memory image transcodes may reserve at once (--image-memory).",
    m.limit,
  );
  e.gauge("image_memory_reserved_bytes", "Memory reserved by transcodes now.", m.reserved);
  e.gauge("image_memory_peak_bytes", "Most memory reserved by transcodes at once.", m.peak);
  e.counter(
    "image_memory_refused_total",
    "Requests served the original because their transcode did not fit in the memory allowance.",
    s.memoryRefused,
  );
  e.counter(
    "image_memory_deferred_total",
    "Background transcodes that waited for room in the memory allowance.",
    s.memoryDeferred,
  );
  e.counter(
    "image_memory_skipped_total",
    "Background transcodes not made: larger than the whole memory allowance.",
    s.memorySkipped,
  );
  e.gauge("image_workers", "Transcoding workers alive.", layer.workers.alive);
  e.counter(
    "image_workers_idle_ended_total",
    "Transcoding workers ended after being idle.",
    layer.workers.idleEnded,
  );
}

/**
 * The process's own memory as Prometheus gauges: resident set size (the standard
 * `process_resident_memory_bytes`, unprefixed so stock dashboards find it), and V8's heap in
 * use, its limit and the external memory it accounts (`ArrayBuffer` backing stores among it),
 * under the process's prefix. Every process's `/metrics` adds them.
 *
 * @module
 */
import { getHeapStatistics } from "node:v8";
import type { Exposition } from "./prometheus.ts";

/** Writes this process's memory gauges into `e` (under its prefix, RSS under its standard name). */
export function writeMemoryGauges(e: Exposition): void {
  const m = Deno.memoryUsage();
  const h = getHeapStatistics();
  e.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", m.rss, false);
  e.gauge("v8_heap_used_bytes", "V8 heap in use, bytes.", m.heapUsed);
  e.gauge(
    "v8_heap_limit_bytes",
    "V8 heap size limit, bytes (see --heap).",
    h.heap_size_limit,
  );
  e.gauge(
    "v8_external_bytes",
    "Memory outside V8's heap that it accounts for (buffers), bytes.",
    m.external,
  );
}

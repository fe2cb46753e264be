/**
 * The process's own memory as Prometheus gauges: resident set size (the standard
 * `process_resident_memory_bytes`), and V8's heap in use, its limit and the external memory it
 * accounts (`ArrayBuffer` backing stores among it). Every process with a `/metrics` route can
 * add them to its exposition.
 *
 * @module
 */
import { getHeapStatistics } from "node:v8";

/** A gauge for the exposition: help text and current value. */
export interface Gauge {
  help: string;
  value: number;
}

/** Current memory gauges of this process. */
export function memoryGauges(): Record<string, Gauge> {
  const m = Deno.memoryUsage();
  const h = getHeapStatistics();
  return {
    process_resident_memory_bytes: { help: "Resident memory size in bytes.", value: m.rss },
    nearcast_v8_heap_used_bytes: { help: "V8 heap in use, bytes.", value: m.heapUsed },
    nearcast_v8_heap_limit_bytes: {
      help: "V8 heap size limit, bytes (see --heap).",
      value: h.heap_size_limit,
    },
    nearcast_v8_external_bytes: {
      help: "Memory outside V8's heap that it accounts for (buffers), bytes.",
      value: m.external,
    },
  };
}

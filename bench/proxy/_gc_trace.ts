/**
 * Evidence for where a proxy's latency tail comes from, independent of the machine's load:
 * V8's garbage collections (`--trace-gc-nvp` lines on the proxy's stderr: count, pause, bytes
 * allocated and promoted) and the CPU time of each of the proxy's threads (/proc).
 *
 * @module
 */

/** One collection, from a `--trace-gc-nvp` line. */
export interface GcEvent {
  /** `s` (scavenge, young generation), `mc` (mark-compact), `ms` (minor mark-sweep)... */
  kind: string;
  /** Pause of the JavaScript thread, ms (wall clock: a loaded core stretches it). */
  pause: number;
  /** Bytes allocated since the previous collection. */
  allocated: number;
  /** Bytes moved to the old generation. */
  promoted: number;
  /** Bytes of the young generation that survived. */
  survived: number;
}

/** The V8 flag that makes a process print one line per collection. */
export const GC_TRACE_FLAG = "--trace-gc-nvp";

/** Collects {@link GcEvent}s from a process's stderr text, fed in pieces. */
export class GcTrace {
  readonly events: GcEvent[] = [];
  #rest = "";

  /** Takes the collections out of `text`; answers the other complete lines. */
  feed(text: string): string {
    const lines = (this.#rest + text).split("\n");
    this.#rest = lines.pop() ?? "";
    let other = "";
    for (const l of lines) {
      const i = l.indexOf("GC: {");
      if (i < 0) {
        other += l + "\n";
        continue;
      }
      try {
        const r = JSON.parse(l.slice(i + 4));
        this.events.push({
          kind: String(r.gc),
          pause: Number(r.pause),
          allocated: Number(r.allocated ?? 0),
          promoted: Number(r.promoted ?? 0),
          survived: Number(r.new_space_survived ?? 0),
        });
      } catch { /* a line cut by the process's exit */ }
    }
    return other;
  }
}

const quantile = (sorted: number[], q: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

/** Pauses this long count as holding requests up (the p99 goal is 1 ms added). */
const LONG_PAUSE_MS = 1;

/**
 * One line on `events` over a run of `requests` with `connections` clients: collections by
 * kind, their pauses, bytes allocated and promoted per request, and the share of requests that
 * pauses of {@link LONG_PAUSE_MS} or more can hold up (each stalls at most one request per
 * connection).
 */
export function gcSummary(events: GcEvent[], requests: number, connections: number): string {
  const n = Math.max(1, requests);
  const kinds = new Map<string, GcEvent[]>();
  for (const e of events) kinds.set(e.kind, [...(kinds.get(e.kind) ?? []), e]);
  const parts = [...kinds].map(([k, es]) => {
    const p = es.map((e) => e.pause).sort((a, b) => a - b);
    return `${es.length} ${
      k === "s" ? "scavenges" : k === "mc" ? "mark-compacts" : k
    } (pause median ${quantile(p, 0.5).toFixed(2)}, max ${p.at(-1)!.toFixed(2)} ms)`;
  });
  const sum = (f: (e: GcEvent) => number) => events.reduce((s, e) => s + f(e), 0);
  const long = events.filter((e) => e.pause >= LONG_PAUSE_MS).length;
  const held = Math.min(1, long * connections / n);
  return `${parts.join(", ") || "no collection"}; ${
    (sum((e) => e.allocated) / n / 1024).toFixed(1)
  } KiB allocated and ${(sum((e) => e.promoted) / n).toFixed(0)} B promoted per request; ${
    (long / n * 1000).toFixed(2)
  } pauses of ${LONG_PAUSE_MS} ms or more per 1000 requests: at most ${
    (held * 100).toFixed(2)
  }% of requests held up by one`;
}

/** CPU ticks (user + system, 1/100 s) of each thread of `pid`, summed by thread name. */
export async function threadTicks(pid: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const t of Deno.readDir(`/proc/${pid}/task`)) {
    try {
      const stat = await Deno.readTextFile(`/proc/${pid}/task/${t.name}/stat`);
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(name, (out.get(name) ?? 0) + Number(f[11]) + Number(f[12]));
    } catch { /* the thread ended */ }
  }
  return out;
}

/** `deno 61%, V8_DefaultWorke 9%...`: each thread name's share of the CPU between two reads. */
export function threadShares(before: Map<string, number>, after: Map<string, number>): string {
  const d = [...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)] as const).filter(([, v]) =>
    v > 0
  );
  const total = d.reduce((s, [, v]) => s + v, 0);
  return d.sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(v / total * 100).toFixed(0)}%`)
    .join(", ") || "none";
}

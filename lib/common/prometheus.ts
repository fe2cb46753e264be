/**
 * A small writer of the Prometheus text exposition format (version 0.0.4), shared by every
 * process's `/metrics`: counters, gauges and histograms, with labels, `# HELP` and `# TYPE` on
 * every family, label values and help text escaped.
 *
 * @example
 * ```ts
 * import { Exposition, Histogram } from "./prometheus.ts";
 * const h = new Histogram([0.1, 1]);
 * h.observe(0.5);
 * const e = new Exposition("nearcast_demo");
 * e.counter("requests_total", "Requests received.", 3);
 * e.gauge("replicas", "Replicas by state.", [[{ state: "alive" }, 2]]);
 * e.histogram("latency_seconds", "Latency.", h);
 * if (!e.text().includes('nearcast_demo_latency_seconds_bucket{le="1"} 1')) throw new Error();
 * ```
 *
 * @module
 */

/** Label names and values of one sample. */
export type Labels = Record<string, string>;

/** One sample's value, or labelled samples of one family. */
export type Samples = number | readonly (readonly [Labels, number])[];

/** Content type of the text format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Latency buckets in seconds, 5 ms to 10 s (the client libraries' defaults). */
export const LATENCY_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A label value escaped: backslash, double quote and newline. */
export function escapeLabel(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => c === "\n" ? "\\n" : `\\${c}`);
}

/** Help text escaped: backslash and newline. */
export function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => c === "\n" ? "\\n" : "\\\\");
}

/** A number as the format writes it (`+Inf`, `-Inf`, `NaN`). */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

function labelText(labels: Labels): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(labels)) {
    if (!LABEL_NAME.test(k) || k.startsWith("__")) {
      throw new TypeError(`Cannot write metrics: bad label name: received ${k}`);
    }
    parts.push(`${k}="${escapeLabel(v)}"`);
  }
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

/** A cumulative histogram with fixed upper bounds. */
export class Histogram {
  readonly bounds: readonly number[];
  readonly #counts: number[];
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[] = LATENCY_BUCKETS_SECONDS) {
    for (let i = 1; i < bounds.length; i++) {
      if (!(bounds[i] > bounds[i - 1])) {
        throw new RangeError(`Cannot create histogram: bounds must increase: received ${bounds}`);
      }
    }
    this.bounds = bounds;
    this.#counts = new Array<number>(bounds.length).fill(0);
  }

  /** Records one value. */
  observe(value: number): void {
    this.sum += value;
    this.count++;
    for (let i = 0; i < this.bounds.length; i++) {
      if (value <= this.bounds[i]) {
        this.#counts[i]++;
        return;
      }
    }
  }

  /** Cumulative counts per bound (without `+Inf`, which is {@link count}). */
  cumulative(): number[] {
    let c = 0;
    return this.#counts.map((n) => (c += n));
  }
}

/** Families written in order, each name once, with the process's prefix. */
export class Exposition {
  /** Prepended to every name with `_` (e.g. `nearcast_http`), or "". */
  readonly prefix: string;
  readonly #lines: string[] = [];
  readonly #seen = new Set<string>();

  /** `prefix` (e.g. `nearcast_http`) goes before each name with `_`; "" for none. */
  constructor(prefix = "") {
    this.prefix = prefix;
  }

  #head(name: string, type: string, help: string, prefixed = true): string {
    const full = this.prefix === "" || !prefixed ? name : `${this.prefix}_${name}`;
    if (!NAME.test(full)) throw new TypeError(`Cannot write metrics: bad name: received ${full}`);
    if (this.#seen.has(full)) {
      throw new TypeError(`Cannot write metrics: ${full} written twice`);
    }
    this.#seen.add(full);
    this.#lines.push(`# HELP ${full} ${escapeHelp(help)}`, `# TYPE ${full} ${type}`);
    return full;
  }

  #family(type: string, name: string, help: string, samples: Samples, prefixed = true): this {
    const full = this.#head(name, type, help, prefixed);
    if (typeof samples === "number") {
      this.#lines.push(`${full} ${formatValue(samples)}`);
    } else {
      for (const [l, v] of samples) this.#lines.push(`${full}${labelText(l)} ${formatValue(v)}`);
    }
    return this;
  }

  /** A counter (its name should end in `_total`). */
  counter(name: string, help: string, samples: Samples): this {
    return this.#family("counter", name, help, samples);
  }

  /** A gauge; `prefixed: false` writes `name` as it is (standard names). */
  gauge(name: string, help: string, samples: Samples, prefixed = true): this {
    return this.#family("gauge", name, help, samples, prefixed);
  }

  /** A histogram, or labelled histograms of one family. */
  histogram(
    name: string,
    help: string,
    h: Histogram | readonly (readonly [Labels, Histogram])[],
  ): this {
    const full = this.#head(name, "histogram", help);
    const rows = h instanceof Histogram ? [[{}, h] as const] : h;
    for (const [labels, one] of rows) {
      const cum = one.cumulative();
      for (let i = 0; i < one.bounds.length; i++) {
        const l = labelText({ ...labels, le: formatValue(one.bounds[i]) });
        this.#lines.push(`${full}_bucket${l} ${cum[i]}`);
      }
      this.#lines.push(`${full}_bucket${labelText({ ...labels, le: "+Inf" })} ${one.count}`);
      this.#lines.push(`${full}_sum${labelText(labels)} ${formatValue(one.sum)}`);
      this.#lines.push(`${full}_count${labelText(labels)} ${one.count}`);
    }
    return this;
  }

  /** Lines already in the text format (another writer's), appended as they are. */
  raw(text: string): this {
    for (const line of text.split("\n")) if (line !== "") this.#lines.push(line);
    return this;
  }

  /** The exposition, one line each, ending in a newline. */
  text(): string {
    return this.#lines.join("\n") + "\n";
  }
}

/** A `200` response carrying `text` with the format's content type. */
export function metricsResponse(text: string, head = false): Response {
  return new Response(head ? null : text, {
    headers: { "content-type": PROMETHEUS_CONTENT_TYPE, "cache-control": "no-store" },
  });
}

/**
 * The client of the pricing service, for every process that needs prices (the routing proxy,
 * the DNS server's price steering): a {@link PriceFeed} that loads every provider's record once
 * and then follows changes by long poll, plus {@link costPerGiB}.
 *
 * ## Wire contract (`main_price.ts`; versions are opaque strings, compare them for equality)
 *
 * - `GET /prices` → `200` `{"version": "V", "providers": [RECORD, ...]}` with `ETag: "V"`:
 *   every provider, sorted by name. `V` is the global version; it changes on every mutation
 *   (it is an increasing integer, but clients must only test it for equality).
 * - `GET /prices?since=V[&wait=S]` → at once the snapshot above (200) when the version is not
 *   `V` any more; otherwise waits up to `S` seconds (default 25, at most 55) for a change and
 *   answers 200 with the new snapshot, or `304 Not Modified` (no body) when none came.
 * - `GET /prices` with `Accept: text/event-stream` (optional `since` or `Last-Event-ID`):
 *   Server-Sent Events; each version is one `event: prices` with `id: V` and the snapshot as
 *   `data`; `: keepalive` comments every 15 s.
 * - `RECORD` is `{"name", "serverPerHour", "egressPerGiB", "currency", "capacityGiBPerHour"?,
 *   "regions"?, "version", "updated"}` ({@link ProviderPrice}); numbers are finite and >= 0
 *   (capacity > 0), currency is three uppercase letters, `regions` maps a region name to
 *   overrides of the three numbers.
 * - Every answer carries `Nearcast-Price-Version: V`. Other routes (`/providers`...) are the
 *   admin API (`lib/price/api.ts`, README "Pricing service").
 *
 * A client that reconnects after the service restarted sends its old `since`; the version it
 * gets differs (a restarted service keeps its version under `--data`, and a new database starts
 * it at the current time in ms), so it reloads at once.
 *
 * @example
 * ```ts ignore
 * import { costPerGiB, PriceFeed } from "./client.ts";
 * const feed = new PriceFeed("http://127.0.0.1:7000", { onChange: (v) => console.log(v) });
 * await feed.start();
 * const aws = feed.get("aws");
 * if (aws) console.log(costPerGiB(aws));
 * feed.close();
 * ```
 *
 * @module
 */
import { sleep } from "../common/sleep.ts";
import { checkProvider, type ProviderPrice } from "./record.ts";

export { costPerGiB, DEFAULT_CAPACITY } from "./record.ts";
export type { ProviderPrice, RegionPrice } from "./record.ts";

/** Options of {@link PriceFeed}. */
export interface PriceFeedOptions {
  /** Stops the feed when aborted (as {@link PriceFeed.close}). */
  signal?: AbortSignal;
  /** Called with the new version after every snapshot that changed it (the first load too). */
  onChange?: (version: string) => void;
  /** The fetch to use (default `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** Long-poll wait asked of the service, seconds. Default 25. */
  waitSeconds?: number;
  /** Longest pause between failed attempts, ms (backoff doubles from 100 ms). Default 5000. */
  maxBackoffMs?: number;
  /** Where failures are reported (once per outage). Default: nowhere. */
  log?: (line: string) => void;
}

/** Time allowed to a request beyond the long-poll wait before it is aborted. */
const REQUEST_MARGIN_MS = 10_000;
/** First retry pause after a failure. */
const MIN_BACKOFF_MS = 100;

/**
 * Parses a snapshot body; throws `TypeError` naming the problem. Entries are checked with the
 * service's own validator.
 */
export function parseSnapshot(v: unknown): { version: string; providers: ProviderPrice[] } {
  if (v === null || typeof v !== "object") throw new TypeError("snapshot: not an object");
  const s = v as { version?: unknown; providers?: unknown };
  if (typeof s.version !== "string" || s.version === "") {
    throw new TypeError("snapshot: version must be a non-empty string");
  }
  if (!Array.isArray(s.providers)) throw new TypeError("snapshot: providers must be an array");
  const providers: ProviderPrice[] = [];
  for (const [i, p] of s.providers.entries()) {
    const problems: string[] = [];
    const name = (p as { name?: unknown })?.name;
    if (typeof name !== "string") throw new TypeError(`snapshot: providers.${i}.name missing`);
    const fields = checkProvider(p, `providers.${i}`, problems, name);
    if (fields === undefined) throw new TypeError(`snapshot: ${problems.join("; ")}`);
    const rec = p as ProviderPrice;
    providers.push({ name, ...fields, version: rec.version, updated: rec.updated });
  }
  return { version: s.version, providers };
}

/**
 * Every provider's price, kept fresh from the pricing service at `url` (see the module doc for
 * the wire contract). {@link start} loads the first snapshot; the feed then long-polls
 * `GET /prices?since=VERSION` until {@link close}, reconnecting with exponential backoff
 * (100 ms doubling to 5 s, with jitter) after a failure. While the service is unreachable the
 * last snapshot stays in use and {@link healthy} is false.
 */
export class PriceFeed {
  readonly #base: string;
  readonly #fetch: typeof fetch;
  readonly #opts: PriceFeedOptions;
  readonly #ac = new AbortController();
  #prices = new Map<string, ProviderPrice>();
  #version = "";
  #healthy = false;
  #loop: Promise<void> | null = null;

  constructor(url: string, opts: PriceFeedOptions = {}) {
    this.#base = url.replace(/\/+$/, "");
    this.#fetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.#opts = opts;
    opts.signal?.addEventListener("abort", () => this.close(), { once: true });
  }

  /** The version of the snapshot held ("" before the first load). */
  get version(): string {
    return this.#version;
  }

  /** Whether the last request to the service succeeded. */
  get healthy(): boolean {
    return this.#healthy;
  }

  /** One provider's record, or undefined. */
  get(name: string): ProviderPrice | undefined {
    return this.#prices.get(name);
  }

  /** Every provider's record, by name. */
  all(): ProviderPrice[] {
    return [...this.#prices.values()];
  }

  /**
   * Loads the first snapshot and starts following changes. Rejects when that first load fails
   * (naming the URL; a service that accepts but does not answer fails it after 10 s); the feed keeps retrying in the background all the same, so a caller may
   * log the error and go on with no prices until the service answers. Call it once.
   */
  async start(): Promise<void> {
    if (this.#loop !== null) throw new Error("PriceFeed.start: already started");
    let first: unknown = null;
    try {
      await this.#poll(false);
    } catch (e) {
      first = e;
      this.#healthy = false;
    }
    this.#loop = this.#run(first !== null);
    if (first !== null) {
      throw new Error(`Cannot load prices from ${this.#base}/prices: ${(first as Error).message}`, {
        cause: first,
      });
    }
  }

  /** Stops following changes (the last snapshot stays readable). */
  close(): void {
    this.#ac.abort();
  }

  /** Settles when the background loop has ended after {@link close}. */
  async closed(): Promise<void> {
    await this.#loop;
  }

  /** One request: the snapshot (`wait` false) or a long poll; applies a 200. */
  async #poll(wait: boolean): Promise<void> {
    const waitS = this.#opts.waitSeconds ?? 25;
    const url = wait && this.#version !== ""
      ? `${this.#base}/prices?since=${encodeURIComponent(this.#version)}&wait=${waitS}`
      : `${this.#base}/prices`;
    const timeout = AbortSignal.timeout((wait ? waitS * 1000 : 0) + REQUEST_MARGIN_MS);
    const res = await this.#fetch(url, {
      signal: AbortSignal.any([this.#ac.signal, timeout]),
      headers: { accept: "application/json" },
    });
    if (res.status === 304) {
      await res.body?.cancel();
      this.#healthy = true;
      return;
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new Error(`GET ${url}: status ${res.status}`);
    }
    const snap = parseSnapshot(await res.json());
    this.#healthy = true;
    if (snap.version === this.#version) return;
    this.#prices = new Map(snap.providers.map((p) => [p.name, p]));
    this.#version = snap.version;
    this.#opts.onChange?.(snap.version);
  }

  async #run(failing: boolean): Promise<void> {
    const max = this.#opts.maxBackoffMs ?? 5_000;
    let backoff = failing ? MIN_BACKOFF_MS : 0;
    let reported = false;
    while (!this.#ac.signal.aborted) {
      if (backoff > 0) {
        await sleep(backoff * (0.5 + Math.random() / 2), this.#ac.signal);
        if (this.#ac.signal.aborted) break;
      }
      try {
        // After a failure, a plain GET first: it answers at once, so `healthy` comes back as
        // soon as the service does (a long poll would hold it false until a change or 304).
        await this.#poll(backoff === 0);
        if (reported) this.#opts.log?.(`price feed: ${this.#base} answers again`);
        backoff = 0;
        reported = false;
      } catch (e) {
        if (this.#ac.signal.aborted) break;
        this.#healthy = false;
        if (!reported) this.#opts.log?.(`price feed: ${this.#base}: ${(e as Error).message}`);
        reported = true;
        backoff = Math.min(max, Math.max(MIN_BACKOFF_MS, backoff * 2));
      }
    }
  }
}

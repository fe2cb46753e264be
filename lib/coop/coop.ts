/**
 * Cooperative caching between the replicas of one membership (`--coop`). The group's caches
 * are partitioned: every URL has a home, the member ranked highest for it by rendezvous
 * hashing over the live members and this node (home.ts). Then:
 *
 * - a miss of a URL whose home is another live member asks that member only, with
 *   `X-Nearcast-Coop-Fill` (coop_hooks.ts): the home answers from its cache, or fills the
 *   object from the origin (as any miss of its own, so concurrent asks share one fetch),
 *   stores it and answers; the asking replica serves it and keeps a copy only when the URL
 *   missed here before, among the last max(1024, entries) misses (hot here), and its copies
 *   of other homes' objects stay within a byte budget (guests.ts), so the group's caches hold
 *   mostly distinct objects;
 * - a miss of a URL whose home is this node (and a member's ask it fills as the home) asks
 *   only the members whose summary claims the URL, nearest first, at most
 *   {@link MAX_HOLDERS}, for their copy, then the origin. Each replica keeps a summary of
 *   what it holds and what is hot there (summary.ts: a Bloom filter of its URLs and its
 *   hottest objects), whose version its heartbeat answers carry (`X-Nearcast-Summary`,
 *   heartbeat.ts); a node that sees a new version fetches it over HTTP
 *   (`GET /_cdn/coop/summary`, signed both ways like every node-to-node call);
 * - each round, the replica prefetches the group's hottest objects it lacks (the other
 *   members' hot lists, scores summed) that are predicted to be hit here (a score of at
 *   least {@link PREFETCH_MIN_SCORE} per member on average), from the members that hold
 *   them, within a bandwidth budget (bytes per second) and a byte budget (prefetched bytes
 *   not yet hit held at once); prefetched objects count as copies.
 *
 * @module
 */

import type { HttpCache } from "../http/cache.ts";
import type { Membership } from "../replication/membership.ts";
import type { Caller, PeerAuth } from "../replication/peer_auth.ts";
import { COOP_FILL_HEADER, type CoopHooks, type CoopRoute } from "../http/coop_hooks.ts";
import { PEER_HEADER } from "../http/forwarding.ts";
import { BloomFilter } from "./bloom.ts";
import { Guests } from "./guests.ts";
import { homeOf, RecentMisses } from "./home.ts";
import { isPrefetch } from "./prefetch.ts";
import { type HotObject, SummaryBuilder, type SummaryJson } from "./summary.ts";

/** The signed route a member's summary is fetched from. */
export const SUMMARY_PATH = "/_cdn/coop/summary";
/** Most members one miss asks. */
export const MAX_HOLDERS = 2;
/** Most prefetches started per round. */
export const MAX_PREFETCHES_PER_ROUND = 64;
/** A URL whose prefetch was tried is not tried again for this long, ms. */
export const PREFETCH_RETRY_MS = 30_000;
/**
 * Least score (hits per round, decayed; see summary.ts) an object must have on average
 * across the live members to be prefetched: what is predicted to be hit here.
 */
export const PREFETCH_MIN_SCORE = 2;
/** Fewest recent misses remembered to tell what is hot here (see home.ts). */
const MIN_RECENT_MISSES = 1024;
/** Most seconds of bandwidth budget saved up between rounds. */
const MAX_BUDGET_SECONDS = 5;

/** Options of {@link Cooperation}. */
export interface CoopOptions {
  id: string;
  cache: HttpCache;
  auth: PeerAuth;
  members: Membership;
  /** Hot objects listed in this replica's summary. */
  top: number;
  /** Bandwidth budget of prefetches, bytes per second; 0 turns prefetching off. */
  prefetchRate: number;
  /** Most bytes of prefetched objects not hit yet held at once. */
  prefetchBytes: number;
  /** Most bytes of copies of objects whose home is another member (guests.ts). */
  copyBytes: number;
  /** Fills `url` into this replica's cache (a miss through its own handler); true if stored. */
  prefetch: (url: string) => Promise<boolean>;
  requestTimeoutMs: number;
  signal: AbortSignal;
  now: () => number;
  log: (line: string) => void;
}

/** Counters shown in `/_cdn/health` (`coop`). */
export interface CoopStats {
  summariesFetched: number;
  summaryErrors: number;
  prefetches: number;
  prefetchedBytes: number;
  /** Prefetched objects hit at least once. */
  prefetchesUsed: number;
  /** Bytes of prefetched objects evicted or purged before any hit. */
  prefetchWastedBytes: number;
  /** Prefetches that stored nothing. */
  prefetchFailures: number;
  /** Misses sent to the URL's home member, asked to fill it. */
  homeAsks: number;
  /** Members' requests this node filled as the URL's home (it did not hold the object). */
  memberFills: number;
  /** Copies filled from a member and kept (hot here, or this node is the URL's home). */
  copiesKept: number;
  /** Copies filled from a member, served and not kept (not hot here). */
  copiesDropped: number;
}

interface PeerSummary {
  url: string;
  version: string;
  bloom: BloomFilter;
  hot: HotObject[];
  /** How long its summary took to fetch, ms (smoothed): the distance used to rank holders. */
  rttMs: number;
}

/** See the module doc. */
export class Cooperation implements CoopHooks {
  readonly stats: CoopStats = {
    summariesFetched: 0,
    summaryErrors: 0,
    prefetches: 0,
    prefetchedBytes: 0,
    prefetchesUsed: 0,
    prefetchWastedBytes: 0,
    prefetchFailures: 0,
    homeAsks: 0,
    memberFills: 0,
    copiesKept: 0,
    copiesDropped: 0,
  };
  #o: CoopOptions;
  #own: SummaryBuilder;
  #peers = new Map<string, PeerSummary>();
  /** Prefetched objects not hit yet: URL to size. */
  #unused = new Map<string, number>();
  #tried = new Map<string, number>();
  #lastRound: number;
  #running = false;
  #misses: RecentMisses;
  #guests: Guests;

  constructor(o: CoopOptions) {
    this.#o = o;
    this.#guests = new Guests(o.cache, () => o.copyBytes);
    this.#misses = new RecentMisses(() => Math.max(MIN_RECENT_MISSES, o.cache.count));
    this.#own = new SummaryBuilder(o.cache, o.id, o.top);
    this.#lastRound = o.now();
  }

  /** This node's summary version (sent in heartbeat answers). */
  get version(): string {
    return this.#own.version;
  }

  /** Answers `GET /_cdn/coop/summary` from a member (signed). */
  handle(caller: Caller): Response {
    return this.#o.auth.signed(caller, 200, JSON.stringify(this.#own.json));
  }

  /**
   * The members a miss of `url` asks (see the module doc): the URL's home, asked to fill it,
   * when that is another live member; else the members whose filter claims it, nearest first,
   * at most {@link MAX_HOLDERS}, asked for their copy only (so for a prefetch, and for a
   * member's request this node fills as the home); null before any summary arrived.
   */
  route(url: string, req: Request): CoopRoute | null {
    const alive = this.#o.members.alivePeers();
    if (!isPrefetch(req) && !req.headers.has(PEER_HEADER)) {
      this.#misses.note(url);
      const home = homeOf(url, [this.#o.id, ...alive.map((e) => e.id)]);
      if (home !== this.#o.id) {
        this.stats.homeAsks++;
        return { peers: [alive.find((e) => e.id === home)!.url], fill: true };
      }
    }
    if (this.#peers.size === 0) return isPrefetch(req) ? { peers: [], fill: false } : null;
    const ids = new Set(alive.map((e) => e.id));
    const out: PeerSummary[] = [];
    for (const [id, p] of this.#peers) if (ids.has(id) && p.bloom.has(url)) out.push(p);
    out.sort((a, b) => a.rttMs - b.rttMs);
    return { peers: out.slice(0, MAX_HOLDERS).map((p) => p.url), fill: false };
  }

  /**
   * Whether a copy of `url` filled from a member is kept: always for a URL this node is home
   * for; else, as a copy within the budget, for a prefetch, a URL that missed here before while
   * remembered, or a `streamed` body (stored whatever the answer).
   */
  keepCopy(url: string, req: Request, streamed: boolean): boolean {
    const ids = [this.#o.id, ...this.#o.members.alivePeers().map((e) => e.id)];
    if (homeOf(url, ids) === this.#o.id) return true;
    if (streamed || isPrefetch(req) || this.#misses.count(url) >= 2) {
      this.stats.copiesKept++;
      this.#guests.add(url);
      return true;
    }
    this.stats.copiesDropped++;
    return false;
  }

  /** The fill of a copy {@link keepCopy} was asked about has ended (stored or not). */
  copyDone(url: string): void {
    this.#guests.done(url);
  }

  /** Whether `req` is filled from members only, never the origin: a prefetch. */
  peersOnly(req: Request): boolean {
    return isPrefetch(req);
  }

  /** Whether this node fills a member's request it misses: when asked to (as the home). */
  fillsFor(req: Request): boolean {
    if (!req.headers.has(COOP_FILL_HEADER)) return false;
    this.stats.memberFills++;
    return true;
  }

  /** What health shows. */
  view(): Record<string, unknown> {
    return {
      version: this.version,
      peers: [...this.#peers].map(([id, p]) => ({
        id,
        version: p.version,
        hot: p.hot.length,
        rttMs: Math.round(p.rttMs * 10) / 10,
      })),
      unusedPrefetches: this.#unused.size,
      copies: this.#guests.count,
      copyBytes: this.#guests.bytes,
      copiesRemoved: this.#guests.removed,
      ...this.stats,
    };
  }

  /**
   * One round, after a heartbeat round (`answered`: the members that answered, with the
   * summary version they announced): rebuilds this node's summary, fetches the summaries that
   * changed, forgets members no longer listed, then prefetches.
   */
  async round(answered: { id: string; url: string; summary: string | null }[]): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      this.#own.rebuild();
      this.#guests.sweep();
      const listed = new Set(this.#o.members.peers().map((e) => e.id));
      for (const id of this.#peers.keys()) if (!listed.has(id)) this.#peers.delete(id);
      await Promise.all(answered.map(async (a) => {
        if (a.summary === null || this.#peers.get(a.id)?.version === a.summary) return;
        await this.#fetch(a.id, a.url);
      }));
      this.#account();
      await this.#prefetch();
    } finally {
      this.#running = false;
    }
  }

  async #fetch(id: string, url: string): Promise<void> {
    const t0 = performance.now();
    try {
      const signal = AbortSignal.any([
        this.#o.signal,
        AbortSignal.timeout(this.#o.requestTimeoutMs),
      ]);
      const r = await this.#o.auth.json(url, SUMMARY_PATH, { method: "GET", signal, expect: id });
      if (r.status !== 200) throw new Error(`answered ${r.status}`);
      const s = r.value as unknown as SummaryJson;
      if (typeof s.version !== "string" || !Array.isArray(s.hot)) {
        throw new Error("malformed summary");
      }
      const hot = s.hot.filter((h) =>
        typeof h?.url === "string" && h.url.startsWith("/") && Number.isSafeInteger(h.size) &&
        h.size >= 0 && typeof h.score === "number" && h.score > 0
      );
      const ms = performance.now() - t0;
      const before = this.#peers.get(id);
      this.#peers.set(id, {
        url,
        version: s.version,
        bloom: BloomFilter.fromJson(s.bloom),
        hot,
        rttMs: before === undefined ? ms : 0.7 * before.rttMs + 0.3 * ms,
      });
      this.stats.summariesFetched++;
    } catch (e) {
      this.stats.summaryErrors++;
      if (!this.#o.signal.aborted) {
        this.#o.log(`coop: summary of ${id} (${url}): ${(e as Error).message}`);
      }
    }
  }

  /** Counts prefetched objects hit since (used) or gone before any hit (wasted). */
  #account(): void {
    for (const [url, size] of this.#unused) {
      const e = this.#o.cache.peek(url);
      if (e === null) {
        this.stats.prefetchWastedBytes += size;
        this.#unused.delete(url);
      } else if (e.hits > 0) {
        this.stats.prefetchesUsed++;
        this.#unused.delete(url);
      }
    }
  }

  /** Prefetches the group's hottest objects this node lacks, within the budgets. */
  async #prefetch(): Promise<void> {
    const { cache, prefetchRate, prefetchBytes, now } = this.#o;
    const t = now();
    const elapsed = Math.min(MAX_BUDGET_SECONDS, Math.max(0, (t - this.#lastRound) / 1000));
    this.#lastRound = t;
    if (prefetchRate <= 0) return;
    let unusedBytes = 0;
    for (const size of this.#unused.values()) unusedBytes += size;
    let allowance = Math.min(prefetchRate * elapsed, prefetchBytes - unusedBytes);
    if (allowance <= 0) return;
    const group = new Map<string, HotObject>();
    const alive = new Set(this.#o.members.alivePeers().map((e) => e.id));
    for (const [id, p] of this.#peers) {
      if (!alive.has(id)) continue;
      for (const h of p.hot) {
        const g = group.get(h.url);
        if (g === undefined) group.set(h.url, { ...h });
        else g.score += h.score;
      }
    }
    // Predicted to be hit here: popularity is shared, so what each member hits often is
    // asked here often too; objects below that are left to be copied on a second miss.
    const min = PREFETCH_MIN_SCORE * alive.size;
    const ranked = [...group.values()].filter((h) => h.score >= min)
      .sort((a, b) => b.score - a.score);
    let started = 0;
    for (const h of ranked) {
      if (started >= MAX_PREFETCHES_PER_ROUND || this.#o.signal.aborted) break;
      if (h.size > allowance || cache.peek(h.url) !== null) continue;
      if (t - (this.#tried.get(h.url) ?? -Infinity) < PREFETCH_RETRY_MS) continue;
      this.#tried.set(h.url, t);
      started++;
      allowance -= h.size;
      if (await this.#o.prefetch(h.url)) {
        this.stats.prefetches++;
        this.stats.prefetchedBytes += h.size;
        this.#unused.set(h.url, h.size);
      } else this.stats.prefetchFailures++;
    }
    for (const [url, at] of this.#tried) if (t - at >= PREFETCH_RETRY_MS) this.#tried.delete(url);
  }
}

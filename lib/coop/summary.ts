/**
 * A replica's summary for cooperative caching: a Bloom filter of the URLs it holds and its
 * hottest objects (URL, size, score), rebuilt from the cache now and then. The score of an
 * object is the hits it took in the last rebuild period plus half its previous score (an
 * exponentially decaying count, so what was hot an hour ago fades), read from the cache's
 * per-entry hit counters without touching the request path.
 *
 * @module
 */

import type { HttpCache } from "../http/cache.ts";
import { BloomFilter, type BloomJson } from "./bloom.ts";

/** One of the hottest objects of a replica. */
export interface HotObject {
  url: string;
  size: number;
  score: number;
}

/** What a replica sends the other members (`GET /_cdn/coop/summary`). */
export interface SummaryJson {
  id: string;
  /** Changes whenever the filter or the hot list changes. */
  version: string;
  /** URLs held. */
  count: number;
  bloom: BloomJson;
  hot: HotObject[];
}

/** Builds this replica's summaries (see the module doc). */
export class SummaryBuilder {
  #cache: HttpCache;
  #id: string;
  #top: number;
  /** Score and hits seen at the last rebuild, per URL held. */
  #seen = new Map<string, { hits: number; score: number }>();
  #bloom: BloomFilter | null = null;
  #hot: HotObject[] = [];
  #generation = 0;
  #epoch = Date.now().toString(36);
  #json: SummaryJson | null = null;

  constructor(cache: HttpCache, id: string, top: number) {
    this.#cache = cache;
    this.#id = id;
    this.#top = top;
  }

  /** The version of the latest summary ("" before the first rebuild). */
  get version(): string {
    return this.#json?.version ?? "";
  }

  /** The latest summary (rebuilding first if there is none). */
  get json(): SummaryJson {
    return this.#json ?? this.rebuild();
  }

  /** Rebuilds from the cache; the version changes only when the content did. */
  rebuild(): SummaryJson {
    const bloom = BloomFilter.forCount(this.#cache.count);
    const seen = new Map<string, { hits: number; score: number }>();
    const hot: HotObject[] = [];
    let count = 0;
    for (const e of this.#cache.entries()) {
      bloom.add(e.url);
      count++;
      // Variants (Vary) and uploads (on every node anyway) are not offered for prefetch.
      if (e.key !== e.url || e.pinned) continue;
      const before = this.#seen.get(e.url);
      const delta = before === undefined ? e.hits : Math.max(0, e.hits - before.hits);
      const score = (before?.score ?? 0) / 2 + delta;
      seen.set(e.url, { hits: e.hits, score });
      if (score >= 1) hot.push({ url: e.url, size: e.size, score: Math.round(score * 100) / 100 });
    }
    this.#seen = seen;
    hot.sort((a, b) => b.score - a.score || (a.url < b.url ? -1 : 1));
    hot.length = Math.min(hot.length, this.#top);
    // Scores count too: a peer keeps the summary of a version it has, and decides what to
    // prefetch by the scores in it (an object whose hits came after it fetched the summary
    // would otherwise stay below the prefetch threshold there until it left the list). To a
    // power of two: a peer's scores stay within a factor 2 of these, and an object hit about
    // as often every round does not make every round a new version.
    const same = this.#bloom !== null && this.#bloom.equals(bloom) &&
      sameHot(this.#hot, hot);
    if (!same || this.#json === null) this.#generation++;
    this.#bloom = bloom;
    this.#hot = hot;
    this.#json = {
      id: this.#id,
      version: `${this.#epoch}.${this.#generation}`,
      count,
      bloom: bloom.toJson(),
      hot,
    };
    return this.#json;
  }
}

/** Same URLs in the same order, same sizes, scores in the same power of two. */
function sameHot(a: HotObject[], b: HotObject[]): boolean {
  return a.length === b.length &&
    a.every((x, i) =>
      x.url === b[i].url && x.size === b[i].size &&
      Math.floor(Math.log2(x.score)) === Math.floor(Math.log2(b[i].score))
    );
}

/**
 * The simulations behind bench/coop/bound.ts and the bound rows of bench/coop/run.ts: three
 * caches of C equal-size objects replaying a request stream split by client (request i to
 * cache i mod 3), LRU or the replica's own LFRU policy (lib/cache/lfru.ts, the TypeScript
 * twin of the WASM index). See bound.ts for the modes.
 *
 * @module
 */

import { TsLfru } from "../../lib/cache/lfru.ts";
import { homeOf, RecentMisses } from "../../lib/coop/home.ts";

const REPLICAS = 3;

export type Policy = "lru" | "lfru";

/** A cache of unit-size objects: `get` counts a use, `peek` does not. */
interface Cache {
  get(k: number): boolean;
  peek(k: number): boolean;
  set(k: number): void;
  delete(k: number): void;
}

class Lru implements Cache {
  #m = new Set<number>();
  constructor(readonly cap: number) {}
  peek(k: number): boolean {
    return this.#m.has(k);
  }
  get(k: number): boolean {
    if (!this.#m.delete(k)) return false;
    this.#m.add(k);
    return true;
  }
  set(k: number): void {
    this.#m.delete(k);
    this.#m.add(k);
    if (this.#m.size > this.cap) this.#m.delete(this.#m.values().next().value!);
  }
  delete(k: number): void {
    this.#m.delete(k);
  }
}

class Lfru implements Cache {
  #i: TsLfru;
  constructor(cap: number) {
    this.#i = new TsLfru(cap);
  }
  peek(k: number): boolean {
    return this.#i.peek(k, 0) >= 0;
  }
  get(k: number): boolean {
    return this.#i.get(k, 0) >= 0;
  }
  set(k: number): void {
    this.#i.set(k, 0, 1);
  }
  delete(k: number): void {
    this.#i.delete(k, 0);
  }
}

const make = (p: Policy, cap: number): Cache => p === "lru" ? new Lru(cap) : new Lfru(cap);

export type Mode = "independent" | "peer" | "home" | "home + hot copies";
export const MODES: Mode[] = ["independent", "peer", "home", "home + hot copies"];
const IDS = Array.from({ length: REPLICAS }, (_, r) => `r${r}`);

/** Share of each cache that copies of other homes' objects may take (`--coop-copy-bytes`). */
export const COPY_SHARE = 0.1;

/**
 * Origin and node-to-node requests of three caches of `cap` in `mode`. Copies are kept within
 * {@link COPY_SHARE} of the cache, the oldest going first unless hit since (as guests.ts).
 */
export function replay(ids: Uint32Array, p: Policy, cap: number, mode: Mode) {
  const c = IDS.map(() => make(p, cap));
  const recent = IDS.map(() => new RecentMisses(() => Math.max(1024, cap)));
  /** Per cache: its copies, oldest first, and whether each was hit since last looked at. */
  const guests = IDS.map(() => new Map<number, boolean>());
  const copy = (r: number, k: number) => {
    c[r].set(k);
    const g = guests[r];
    g.delete(k);
    g.set(k, false);
    let chances = g.size;
    while (g.size > Math.max(1, Math.floor(COPY_SHARE * cap))) {
      const [oldest, hit] = g.entries().next().value!;
      g.delete(oldest);
      if (hit && chances-- > 0) g.set(oldest, false);
      else c[r].delete(oldest);
    }
  };
  let origin = 0, n2n = 0;
  for (let i = 0; i < ids.length; i++) {
    const r = i % REPLICAS, k = ids[i];
    if (c[r].get(k)) {
      if (guests[r].has(k)) guests[r].set(k, true);
      continue;
    }
    if (mode === "independent") {
      origin++;
      c[r].set(k);
    } else if (mode === "peer") {
      n2n += REPLICAS - 1;
      const holder = c.findIndex((x, j) => j !== r && x.peek(k));
      if (holder < 0) origin++;
      else c[holder].get(k);
      c[r].set(k);
    } else {
      const again = recent[r].note(`${k}`) >= 2;
      const home = Number(homeOf(`/o/${k}`, IDS).slice(1));
      if (home !== r) {
        n2n++;
        if (c[home].get(k)) {
          if (mode === "home + hot copies" && again) copy(r, k);
          continue;
        }
      }
      origin++;
      c[home].set(k);
      if (home !== r && mode === "home + hot copies" && again) copy(r, k);
    }
  }
  return { origin, n2n };
}

export function shared(ids: Uint32Array, p: Policy, cap: number): number {
  const one = make(p, REPLICAS * cap);
  let origin = 0;
  for (const k of ids) {
    if (!one.get(k)) {
      origin++;
      one.set(k);
    }
  }
  return origin;
}

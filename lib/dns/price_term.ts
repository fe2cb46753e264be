/**
 * Price in steering: the provider prices the engine reads ({@link PriceSource}, in practice the
 * pricing service's feed), each replica's cost per GiB ({@link ReplicaCosts}), and the words
 * `/explain` uses for them.
 *
 * A replica's cost is its provider's `egressPerGiB + serverPerHour / capacityGiBPerHour`
 * (capacity default 100 GiB/h), compared as numbers (one currency per fleet). A replica whose
 * provider is empty or not in the pricing service has no price: it ranks after the priced ones.
 * When the pricing service cannot be reached the last prices received keep being used (the feed
 * keeps them); with no price at all every replica is unpriced and the price term drops out.
 *
 * @module
 */
import { costPerGiB, type ProviderPrice } from "../price/client.ts";
import type { ReplicaSet } from "./steering.ts";

/** Prices by provider name: `lib/price/client.ts`'s `PriceFeed` is one. */
export interface PriceSource {
  /** Changes with every change of any price. */
  readonly version: number | string;
  /** False while the pricing service cannot be reached (the last prices are kept). */
  readonly healthy: boolean;
  get(provider: string): ProviderPrice | undefined;
}

/** Balanced scoring divides cost by this: 0.10 per GiB weighs as much as 100 ms of RTT. */
export const PRICE_SCALE_PER_GIB = 0.1;

/** Why a replica has or lacks a price. */
export type PriceBasis =
  | "priced"
  | "no provider"
  | "unknown provider"
  | "pricing service unreachable"
  | "no pricing service";

/** Each replica's cost per GiB (NaN: none), refreshed when the replicas or the prices change. */
export class ReplicaCosts {
  /** Per replica index; NaN when the replica has no price. */
  cost = new Float64Array(0);
  /** True when at least one replica has a price. */
  anyPriced = false;
  readonly source: PriceSource | null;
  #setVersion = -1;
  #priceVersion: number | string | null = null;
  #healthy = false;

  constructor(source: PriceSource | null) {
    this.source = source;
  }

  /** Recomputes the costs when the set, the prices or the feed's health changed. */
  refresh(set: ReplicaSet): void {
    const src = this.source;
    const n = set.replicas.length;
    if (
      this.#setVersion === set.version && this.cost.length >= n &&
      (src === null || (src.version === this.#priceVersion && src.healthy === this.#healthy))
    ) return;
    this.#setVersion = set.version;
    this.#priceVersion = src?.version ?? null;
    this.#healthy = src?.healthy ?? false;
    if (this.cost.length < n) this.cost = new Float64Array(Math.max(16, n * 2));
    let any = false;
    for (let i = 0; i < n; i++) {
      const p = this.#record(set.replicas[i].provider ?? "");
      const c = p === undefined ? NaN : costPerGiB(p);
      this.cost[i] = Number.isFinite(c) && c >= 0 ? c : NaN;
      any ||= this.cost[i] === this.cost[i];
    }
    this.anyPriced = any;
  }

  #record(provider: string): ProviderPrice | undefined {
    return provider === "" || this.source === null ? undefined : this.source.get(provider);
  }

  /** A replica's price as `/explain` shows it. */
  describe(provider: string): { basis: PriceBasis; costPerGiB: number | null; currency: string } {
    const p = this.#record(provider);
    if (p !== undefined) {
      const c = costPerGiB(p);
      if (Number.isFinite(c) && c >= 0) {
        return { basis: "priced", costPerGiB: round6(c), currency: p.currency };
      }
    }
    const basis: PriceBasis = this.source === null
      ? "no pricing service"
      : provider === ""
      ? "no provider"
      : this.source.healthy
      ? "unknown provider"
      : "pricing service unreachable";
    return { basis, costPerGiB: null, currency: "" };
  }

  /** The state of the prices for `/explain`. */
  state(): { source: boolean; healthy: boolean | null; version: number | string | null } {
    const s = this.source;
    return { source: s !== null, healthy: s?.healthy ?? null, version: s?.version ?? null };
  }

  /** What `/explain`'s reason adds about prices ("" when there is nothing to say). */
  note(unpriced: readonly { id: string; provider: string; price: PriceBasis }[]): string {
    const s = this.source;
    if (s === null) return "; no pricing service (--price): price not used";
    const parts: string[] = [];
    if (!s.healthy) {
      parts.push(
        this.anyPriced
          ? `pricing service unreachable: using the last prices received (version ${s.version})`
          : "pricing service unreachable and no price received yet: price not used",
      );
    }
    if (unpriced.length > 0 && this.anyPriced) {
      const who = unpriced.map((u) =>
        u.price === "no provider"
          ? `${u.id} (no provider)`
          : `${u.id} (provider "${u.provider}" not priced)`
      );
      parts.push(`no price for ${who.join(", ")}: ranked after the priced replicas`);
    } else if (unpriced.length > 0 && s.healthy) {
      parts.push("no replica has a price: price not used");
    }
    return parts.map((p) => `; ${p}`).join("");
  }
}

/** Money to six decimals (prices per GiB are often below a cent). */
export function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

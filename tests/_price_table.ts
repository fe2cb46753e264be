/**
 * A price table in memory for steering tests: the shape of the pricing service's feed
 * (`PriceSource`), changed by hand.
 */
import type { PriceRecord, PriceSource } from "../lib/dns/price_term.ts";

export class PriceTable implements PriceSource {
  version = 1;
  healthy = true;
  readonly #byName = new Map<string, PriceRecord>();

  constructor(prices: Record<string, number> = {}) {
    for (const [name, egress] of Object.entries(prices)) this.set(name, egress);
  }

  get(name: string): PriceRecord | undefined {
    return this.#byName.get(name);
  }

  /** Sets a provider's egress price (no server cost, so its cost per GiB is `egressPerGiB`). */
  set(name: string, egressPerGiB: number, serverPerHour = 0): void {
    this.#byName.set(name, { egressPerGiB, serverPerHour, currency: "USD" });
    this.version++;
  }

  delete(name: string): void {
    this.#byName.delete(name);
    this.version++;
  }
}

/**
 * A price table in memory for steering tests: the shape of the pricing service's feed
 * (`PriceSource`), changed by hand.
 */
import type { PriceSource } from "../lib/dns/price_term.ts";
import type { ProviderPrice } from "../lib/price/client.ts";

export class PriceTable implements PriceSource {
  version = 1;
  healthy = true;
  readonly #byName = new Map<string, ProviderPrice>();

  constructor(prices: Record<string, number> = {}) {
    for (const [name, egress] of Object.entries(prices)) this.set(name, egress);
  }

  get(name: string): ProviderPrice | undefined {
    return this.#byName.get(name);
  }

  /** Sets a provider's egress price (no server cost, so its cost per GiB is `egressPerGiB`). */
  set(name: string, egressPerGiB: number, serverPerHour = 0): void {
    this.#byName.set(name, { name, egressPerGiB, serverPerHour, currency: "USD" });
    this.version++;
  }

  delete(name: string): void {
    this.#byName.delete(name);
    this.version++;
  }
}

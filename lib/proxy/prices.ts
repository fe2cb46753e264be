/**
 * The proxy's price source: the pricing service's {@link PriceFeed} (first snapshot, then
 * long-poll updates within a second of a change), read as a price per GiB per provider.
 *
 * @module
 */

import { costPerGiB, PriceFeed } from "../price/client.ts";
import type { PriceSource } from "./start.ts";

/** A {@link PriceSource} following the pricing service at `url`. */
export function openPriceFeed(url: string, log: (line: string) => void): PriceSource {
  const feed = new PriceFeed(url, {
    log,
    onChange: (v) => log(`proxy: prices version ${v} (${feed.all().length} providers)`),
  });
  return {
    start: () => feed.start(),
    close: () => feed.close(),
    quote(provider) {
      const p = feed.get(provider);
      return p === undefined ? undefined : { perGiB: costPerGiB(p), currency: p.currency };
    },
    state: () => ({
      url,
      version: feed.version,
      healthy: feed.healthy,
      providers: feed.all().map((p) => ({
        name: p.name,
        perGiB: costPerGiB(p),
        currency: p.currency,
      })),
    }),
  };
}

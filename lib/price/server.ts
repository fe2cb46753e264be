/**
 * Starts the pricing service: opens the store, seeds it from the config, and serves the API
 * (`api.ts`) on a limited listener (`lib/common/http_server.ts`: connection cap, header and
 * idle timeouts).
 *
 * @module
 */
import {
  type LimitedServer,
  type ListenerLimits,
  resolveLimits,
  serveLimited,
  writeListenerMetrics,
} from "../common/http_server.ts";
import { writeMemoryGauges } from "../common/process_metrics.ts";
import { priceHandler } from "./api.ts";
import type { PriceConfig } from "./config.ts";
import { PriceDb } from "./db.ts";
import { PriceWatch } from "./prices.ts";

/** Options of {@link startPriceService}. */
export interface PriceServiceOptions {
  port: number;
  hostname?: string;
  /** Directory of `price.sqlite`, or `:memory:`. */
  data: string;
  adminToken: string | null;
  config?: PriceConfig;
  limits?: ListenerLimits;
  log?: (line: string) => void;
}

/** A running pricing service. */
export interface PriceService {
  readonly port: number;
  readonly db: PriceDb;
  /** Providers added from the config at this start. */
  readonly seeded: string[];
  close(): Promise<void>;
}

/** The store under `--data` cannot be opened or written. */
export class StoreError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreError";
  }
}

/**
 * See the module doc. Throws a {@link StoreError} when the store cannot be opened, and what
 * `Deno.listen` throws when the address cannot be bound.
 */
export function startPriceService(o: PriceServiceOptions): PriceService {
  const log = o.log ?? (() => {});
  let db: PriceDb;
  try {
    db = new PriceDb(o.data);
  } catch (e) {
    throw new StoreError(`cannot open ${o.data}/price.sqlite: ${(e as Error).message}`, {
      cause: e,
    });
  }
  let seeded: string[];
  try {
    seeded = db.seed(o.config?.providers ?? {});
  } catch (e) {
    db.close();
    throw e;
  }
  const watch = new PriceWatch(db, resolveLimits(o.limits).idleTimeoutMs);
  const handler = priceHandler({
    watch,
    adminToken: o.adminToken,
    log,
    moreMetrics: (e) => {
      if (server !== undefined) writeListenerMetrics(e, server.stats, server.limits);
      writeMemoryGauges(e);
    },
  });
  let server: LimitedServer | undefined;
  try {
    server = serveLimited({
      ...o.limits,
      port: o.port,
      hostname: o.hostname ?? "127.0.0.1",
      name: "price",
      log,
      onListen: () => {},
    }, handler);
  } catch (e) {
    db.close();
    throw e;
  }
  return {
    port: server!.addr.port,
    db,
    seeded,
    async close() {
      watch.close(); // long polls answer 304 and event streams end: the drain need not wait
      await server!.shutdown();
      db.close();
    },
  };
}

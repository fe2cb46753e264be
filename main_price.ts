/**
 * The pricing service: `deno task price -p PORT [--host ADDR] [--data DIR] [--admin-token T]
 * [--config FILE]`. Flags, defaults and exit codes: `lib/price/flags.ts` (`--help`); the API:
 * `lib/price/api.ts`; the wire contract of `GET /prices`: `lib/price/client.ts`.
 *
 * @module
 */
import { Logger, takeLogFlag, withLogUsage } from "./lib/common/log.ts";
import { listenError, runMain, StartError } from "./lib/common/cli.ts";
import { ConfigError, loadConfig, type PriceConfig } from "./lib/price/config.ts";
import { parsePriceFlags, PRICE_EXIT, priceUsage } from "./lib/price/flags.ts";
import { startPriceService, StoreError } from "./lib/price/server.ts";

async function main(): Promise<void> {
  const { format, rest } = takeLogFlag(Deno.args);
  const logger = new Logger({ process: "price", format });
  const a = parsePriceFlags(rest, Deno.env.toObject());
  if (a === "help") {
    console.log(withLogUsage(priceUsage()));
    return;
  }
  let config: PriceConfig = { providers: {} };
  try {
    if (a.configFile !== null) config = await loadConfig(a.configFile);
    if (a.dataDir !== null) await Deno.mkdir(a.dataDir, { recursive: true });
  } catch (e) {
    const what = e instanceof ConfigError ? "--config" : `--data ${a.dataDir}`;
    throw new StartError(`${what}: ${(e as Error).message}`, PRICE_EXIT.config);
  }
  let service;
  try {
    service = startPriceService({
      port: a.port,
      hostname: a.host,
      data: a.dataDir ?? ":memory:",
      adminToken: a.adminToken,
      config,
      limits: a.limits,
      log: logger.line,
    });
  } catch (e) {
    if (e instanceof StoreError) throw new StartError(`--data: ${e.message}`, PRICE_EXIT.config);
    throw listenError(e, `--host ${a.host} --port ${a.port}`, PRICE_EXIT.listen);
  }
  const shown = a.host.includes(":") ? `[${a.host}]` : a.host;
  logger.line(
    `price: serving on http://${shown}:${service.port}/ (${service.db.size} providers, ` +
      `version ${service.db.version}, store ${
        a.dataDir ? `${a.dataDir}/price.sqlite` : "in memory"
      }` +
      `${service.seeded.length > 0 ? `, seeded ${service.seeded.join(" ")} from --config` : ""}` +
      `${a.adminToken === null ? ", read-only: no --admin-token" : ""})`,
  );
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, async () => {
      await service.close();
      logger.line(`price: stopped (${signal})`);
      Deno.exit(PRICE_EXIT.ok);
    });
  }
  Deno.addSignalListener("SIGHUP", () => {
    logger.line("price: SIGHUP ignored (no config reload; restart to apply a new --config)");
  });
}

if (import.meta.main) await runMain("price", main);

/**
 * The routing proxy: `deno task proxy -p PORT --mode latency|price|balanced --node URL
 * --price URL [--name CDN_HOST]`. An HTTP proxy on the client's side that sends each request
 * for the CDN's name to the server its mode ranks first. Flags: `lib/proxy/config.ts`
 * (`--help`); start-up: `lib/proxy/start.ts`.
 *
 * @module
 */
import { Logger, takeLogFlag, withLogUsage } from "./lib/common/log.ts";
import { runMain } from "./lib/common/cli.ts";
import { parseProxyConfig, proxyUsage } from "./lib/proxy/config.ts";
import { startProxy } from "./lib/proxy/start.ts";

async function main(): Promise<void> {
  const { format, rest } = takeLogFlag(Deno.args);
  const logger = new Logger({ process: "proxy", format });
  const config = parseProxyConfig(rest);
  if (config === "help") {
    console.log(withLogUsage(proxyUsage()));
    return;
  }
  const proxy = await startProxy(config, { log: logger.line });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, async () => {
      await proxy.shutdown();
      Deno.exit(0);
    });
  }
}

if (import.meta.main) await runMain("proxy", main);

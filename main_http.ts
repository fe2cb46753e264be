/**
 * The caching HTTP replica: `deno task http -p PORT -o ORIGIN [--host ADDR] [...]`.
 * Flags, defaults and exit codes: `lib/http/config.ts` (`--help`); start-up and shutdown:
 * `lib/http/start.ts`.
 *
 * @module
 */
import { runMain } from "./lib/common/cli.ts";
import { httpUsage, parseHttpConfig } from "./lib/http/config.ts";
import { startReplicaProcess } from "./lib/http/start.ts";

async function main(): Promise<void> {
  const config = parseHttpConfig(Deno.args, Deno.env.toObject());
  if (config === "help") {
    console.log(httpUsage());
    return;
  }
  const replica = await startReplicaProcess(config, (line) => console.log(line));
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, async () => {
      await replica.shutdown(signal);
      // Outgoing node:http connections of pushes can keep the event loop alive after close.
      Deno.exit(0);
    });
  }
  // No config reload yet: a hang-up (closed terminal, `kill -HUP`) must not stop the replica.
  Deno.addSignalListener("SIGHUP", () => {
    console.log("http: SIGHUP ignored (no config reload yet; restart to apply new flags)");
  });
}

if (import.meta.main) await runMain("http", main);

/**
 * The caching HTTP replica: `deno task http -p PORT -o ORIGIN [--host ADDR] [...]`.
 * Flags, defaults and exit codes: `lib/http/config.ts` (`--help`); start-up and shutdown:
 * `lib/http/start.ts`. With `--heap compact` (the default) the process first re-executes itself
 * in place with the V8 flags of {@link REPLICA_HEAP_FLAGS} (`lib/common/v8_heap.ts`), so the
 * replica's modules are loaded only after that.
 *
 * @module
 */
import { Logger, takeLogFlag, withLogUsage } from "./lib/common/log.ts";
import { runMain } from "./lib/common/cli.ts";
import { applyV8Flags } from "./lib/common/v8_heap.ts";
import { httpUsage, parseHttpConfig, REPLICA_HEAP_FLAGS } from "./lib/http/config.ts";

async function main(): Promise<void> {
  const { format, rest } = takeLogFlag(Deno.args);
  const logger = new Logger({ process: "http", format });
  const config = parseHttpConfig(rest, Deno.env.toObject());
  if (config === "help") {
    console.log(withLogUsage(httpUsage()));
    return;
  }
  if (config.heap === "compact") {
    const heap = applyV8Flags(REPLICA_HEAP_FLAGS);
    if (!heap.applied) logger.line(`http: --heap compact not applied: ${heap.reason}`);
  }
  const { startReplicaProcess } = await import("./lib/http/start.ts");
  // Signals are taken before start-up, which logs "listening" before it returns: a SIGTERM
  // right after that line must drain and exit 0, not hit the default action (killed).
  let replica: Awaited<ReturnType<typeof startReplicaProcess>> | null = null;
  let stopAsked: Deno.Signal | null = null;
  const stop = async (signal: Deno.Signal) => {
    await replica!.shutdown(signal);
    // Outgoing node:http connections of pushes can keep the event loop alive after close.
    Deno.exit(0);
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      if (replica === null) stopAsked ??= signal; // stopped once start-up is done
      else stop(signal);
    });
  }
  // No config reload yet: a hang-up (closed terminal, `kill -HUP`) must not stop the replica.
  Deno.addSignalListener("SIGHUP", async () => {
    if (replica === null) return;
    // `--tls --cert`: re-read the certificate files (rotated by the operator); nothing else.
    const reloaded = replica.reloadCertificate();
    if (reloaded !== null) return logger.line(await reloaded);
    logger.line("http: SIGHUP ignored (no config reload yet; restart to apply new flags)");
  });
  replica = await startReplicaProcess(config, logger.line);
  if (stopAsked !== null) await stop(stopAsked);
}

if (import.meta.main) await runMain("http", main);

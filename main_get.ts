/**
 * The index's client: `deno task get PATH [--dns HOST:PORT] [--name NAME] [--ca FILE] [-o FILE]` asks a
 * DNS server's control API which live replicas hold PATH and downloads it from the best one,
 * resuming from the same or the next holder after a failure. Flags and exit codes:
 * `lib/get/flags.ts` (`--help`); how it works: `lib/get/download.ts`.
 *
 * @module
 */
import { runMain, StartError } from "./lib/common/cli.ts";
import { download } from "./lib/get/download.ts";
import { getUsage, parseGetConfig } from "./lib/get/flags.ts";
import { trustCa } from "./lib/tls/client.ts";
import { loadCa } from "./lib/tls/files.ts";
import { progressReporter } from "./lib/upload/client.ts";

async function main(): Promise<void> {
  const c = parseGetConfig(Deno.args, Deno.env.toObject());
  if (c === "help") {
    console.log(getUsage());
    return;
  }
  if (c.ca !== null) {
    try {
      trustCa(await loadCa(c.ca));
    } catch (e) {
      throw new StartError((e as Error).message);
    }
  }
  const bar = c.quiet ? null : progressReporter(c.path, Deno.stderr);
  // On a terminal the bar redraws one line: an event line starts below it.
  const tty = Deno.stderr.isTerminal();
  let drawn = false;
  const endBar = () => {
    if (drawn && tty) console.error("");
    drawn = false;
  };
  const r = await download({
    ...c,
    log: (line) => {
      if (c.quiet) return;
      endBar();
      console.error(`get: ${line}`);
    },
    progress: bar === null ? undefined : (got, total) => {
      bar.update(got, total);
      drawn = true;
    },
  }).finally(endBar);
  console.log(
    `saved ${r.output}: ${r.bytes} bytes from ${r.from.join(" then ")}, sha256 ${r.sha256} ` +
      (r.verified ? "(verified)" : "(not verified: the replica states no SHA-256)"),
  );
}

if (import.meta.main) await runMain("get", main);

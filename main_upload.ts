/**
 * The upload client: `deno task upload FILE [--to URL] [--name NAME] [--meta key=value ...]
 * [--token T]`, or `deno task upload --delete NAME`. Flags and exit codes:
 * `lib/upload/config.ts` (`--help`); the protocol: README, "Upload protocol".
 *
 * @module
 */
import { runMain, StartError } from "./lib/common/cli.ts";
import { deleteFile, progressReporter, UploadFailure, uploadFile } from "./lib/upload/client.ts";
import { parseUploadConfig, uploadUsage } from "./lib/upload/config.ts";
import { trustCa } from "./lib/tls/client.ts";
import { loadCa } from "./lib/tls/files.ts";

async function main(): Promise<void> {
  const c = parseUploadConfig(Deno.args, Deno.env.toObject());
  if (c === "help") {
    console.log(uploadUsage());
    return;
  }
  if (c.ca !== undefined) {
    try {
      trustCa(await loadCa(c.ca));
    } catch (e) {
      throw new StartError((e as Error).message);
    }
  }
  try {
    if (c.mode === "delete") {
      await deleteFile({ name: c.name, to: c.to, token: c.token });
      console.log(`deleted ${c.name} (every node drops it)`);
      return;
    }
    const bar = c.quiet
      ? null
      : progressReporter(c.name ?? c.file.split(/[\\/]/).pop()!, Deno.stderr);
    const r = await uploadFile({
      file: c.file,
      to: c.to,
      name: c.name,
      meta: c.meta,
      token: c.token,
      contentType: c.contentType,
      chunkBytes: c.chunkBytes,
      wire: c.wire,
      progress: bar?.update,
    }).finally(() => bar?.done());
    const where = new URL(r.path, c.to).href;
    console.log(
      r.status === "unchanged"
        ? `unchanged: ${r.name} already holds these ${r.size} bytes (${where})`
        : `stored ${r.name}: ${r.size} bytes, sha256 ${r.sha256}, served at ${where}`,
    );
  } catch (e) {
    throw e instanceof UploadFailure ? new StartError(e.message, e.exitCode) : e;
  }
}

if (import.meta.main) await runMain("upload", main);

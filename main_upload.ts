/**
 * The upload client: `deno task upload FILE [--to URL] [--name NAME] [--meta key=value ...]
 * [--token T]`, or `deno task upload --delete NAME`. See `--help` and docs/notes/upload.md.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  deleteFile,
  EXIT,
  progressReporter,
  UploadFailure,
  uploadFile,
} from "./lib/upload/client.ts";
import { DEFAULT_CHUNK_BYTES, MAX_CHUNK_BYTES } from "./lib/upload/wire.ts";
import { parseSize } from "./lib/http/units.ts";

const FLAGS = {
  to: {
    type: "string",
    help: "Base URL of any node (or env NEARCAST_URL). Default http://127.0.0.1:8080.",
  },
  name: {
    type: "string",
    help: "Name to publish under (served at /NAME). Default: the file name.",
  },
  meta: { type: "string", multiple: true, help: "User metadata key=value; repeat for more." },
  token: { type: "string", help: "The node's admin token (or env NEARCAST_TOKEN)." },
  "content-type": { type: "string", help: "Content type. Default: from the file extension." },
  "chunk-bytes": {
    type: "string",
    help: `Bytes per chunk sent (1..${MAX_CHUNK_BYTES}). Default ${DEFAULT_CHUNK_BYTES}.`,
  },
  delete: { type: "string", help: "Delete NAME from every node instead of uploading." },
  quiet: { type: "boolean", short: "q", help: "No progress output." },
  help: { type: "boolean", short: "h", help: "Show this help." },
} as const;

function usage(): string {
  const lines = [
    "Usage: deno task upload FILE [--to URL] [--name NAME] [--meta key=value ...] [--token T]",
    "       deno task upload --delete NAME [--to URL] [--token T]",
    "",
    "Options:",
  ];
  for (const [name, f] of Object.entries(FLAGS)) {
    const short = "short" in f ? `-${f.short}, ` : "    ";
    const arg = f.type === "string" ? " VALUE" : "";
    lines.push(`  ${short}--${name}${arg}`.padEnd(30) + f.help);
  }
  lines.push(
    "",
    "Exit codes: 0 done (or unchanged), 2 bad usage or unreadable file, 3 refused by the node",
    "(token, size, name, hash), 4 node unreachable or connection lost, 5 node error.",
  );
  return lines.join("\n");
}

function fail(message: string): never {
  console.error(`upload: ${message}\n\nRun with --help for usage.`);
  Deno.exit(EXIT.usage);
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      options: Object.fromEntries(
        Object.entries(FLAGS).map(([k, f]) => [k, { ...f, help: undefined }]),
      ) as unknown as typeof FLAGS,
      strict: true,
      allowPositionals: true,
    });
  } catch (e) {
    fail((e as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(usage());
    return;
  }
  const to = values.to ?? Deno.env.get("NEARCAST_URL") ?? "http://127.0.0.1:8080";
  const token = values.token ?? Deno.env.get("NEARCAST_TOKEN");
  try {
    if (values.delete !== undefined) {
      if (positionals.length > 0) fail("--delete takes a NAME, not a FILE");
      await deleteFile({ name: values.delete, to, token });
      console.log(`deleted ${values.delete} (every node drops it)`);
      return;
    }
    if (positionals.length !== 1) fail("give exactly one FILE to upload");
    const meta: Record<string, string> = {};
    for (const kv of values.meta ?? []) {
      const eq = kv.indexOf("=");
      if (eq <= 0) fail(`--meta must be key=value: received ${kv}`);
      meta[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    let chunkBytes = DEFAULT_CHUNK_BYTES;
    if (values["chunk-bytes"] !== undefined) {
      try {
        chunkBytes = parseSize(values["chunk-bytes"]);
      } catch (e) {
        fail(`--chunk-bytes: ${(e as Error).message}`);
      }
      if (chunkBytes <= 0 || chunkBytes > MAX_CHUNK_BYTES) {
        fail(`--chunk-bytes must be in 1..${MAX_CHUNK_BYTES}: received ${values["chunk-bytes"]}`);
      }
    }
    const file = positionals[0];
    const bar = values.quiet
      ? null
      : progressReporter(values.name ?? file.split(/[\\/]/).pop()!, Deno.stderr);
    const r = await uploadFile({
      file,
      to,
      name: values.name,
      meta,
      token,
      contentType: values["content-type"],
      chunkBytes,
      progress: bar?.update,
    }).finally(() => bar?.done());
    const where = new URL(r.path, to).href;
    console.log(
      r.status === "unchanged"
        ? `unchanged: ${r.name} already holds these ${r.size} bytes (${where})`
        : `stored ${r.name}: ${r.size} bytes, sha256 ${r.sha256}, served at ${where}`,
    );
  } catch (e) {
    if (e instanceof UploadFailure) {
      console.error(`upload: ${e.message}`);
      Deno.exit(e.exitCode);
    }
    throw e;
  }
}

if (import.meta.main) await main();

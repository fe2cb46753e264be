/**
 * The upload client's command line (`main_upload.ts`): its flag table, and a pure parse from
 * argv to a typed {@link UploadConfig} (an upload or a delete), or a {@link UsageError} naming
 * the flag and the value.
 *
 * @module
 */
import { type FlagTable, parseFlags, usage, UsageError } from "../common/cli.ts";
import { DEFAULT_CHUNK_BYTES, MAX_CHUNK_BYTES } from "./wire.ts";
import { DEFAULT_WIRE, WIRE_ENCODINGS, type WireEncoding } from "../wire/encoding.ts";

/** Where uploads go without `--to` or NEARCAST_URL. */
export const DEFAULT_TO = "http://127.0.0.1:8080";

/** The upload client's flags. */
export const UPLOAD_FLAGS = {
  to: {
    type: "string",
    arg: "URL",
    help: `Base URL of any node (or env NEARCAST_URL). Default ${DEFAULT_TO}.`,
  },
  name: {
    type: "string",
    help: "Name to publish under (served at /NAME). Default: the file name.",
  },
  meta: {
    type: "string",
    multiple: true,
    arg: "KEY=VALUE",
    help: "User metadata; repeat for more.",
  },
  token: { type: "string", arg: "TOKEN", help: "The node's admin token (or env NEARCAST_TOKEN)." },
  ca: {
    type: "string",
    arg: "FILE",
    help: "CA (PEM) an https --to node's certificate must chain to (nodes started with --tls).",
  },
  "content-type": {
    type: "string",
    arg: "TYPE",
    help: "Content type. Default: from the file extension.",
  },
  "chunk-bytes": {
    type: "string",
    arg: "SIZE",
    help: `Bytes per chunk sent (1..${MAX_CHUNK_BYTES}). Default ${DEFAULT_CHUNK_BYTES}.`,
  },
  wire: {
    type: "string",
    arg: "json|protobuf",
    help: "Encoding of the upload and of the answers asked for. Default json.",
  },
  delete: {
    type: "string",
    arg: "NAME",
    help: "Delete NAME from every node instead of uploading.",
  },
  quiet: { type: "boolean", short: "q", help: "No progress output." },
  help: { type: "boolean", short: "h", help: "Show this help." },
} satisfies FlagTable;

/** The usage text of `--help`. */
export function uploadUsage(): string {
  return usage(
    [
      "Usage: deno task upload FILE [--to URL] [--name NAME] [--meta key=value ...] [--token T]",
      "       deno task upload --delete NAME [--to URL] [--token T]",
    ],
    UPLOAD_FLAGS,
    [
      "Exit codes: 0 done (or unchanged), 2 bad usage or unreadable file, 3 refused by the node",
      "(token, size, name, hash), 4 node unreachable or connection lost, 5 node error.",
    ],
  );
}

/** What to do, every default filled. */
export type UploadConfig =
  | {
    mode: "upload";
    file: string;
    to: string;
    token: string | undefined;
    name: string | undefined;
    meta: Record<string, string>;
    contentType: string | undefined;
    chunkBytes: number;
    wire: WireEncoding;
    quiet: boolean;
    /** `--ca`: CA file for an https node. */
    ca?: string;
  }
  | { mode: "delete"; name: string; to: string; token: string | undefined; ca?: string };

/**
 * Parses the client's argv (`env` gives NEARCAST_URL and NEARCAST_TOKEN): "help" for `-h`,
 * else what to do. Throws a {@link UsageError} naming the flag and the value.
 */
export function parseUploadConfig(
  argv: string[],
  env: Record<string, string | undefined> = {},
): UploadConfig | "help" {
  const f = parseFlags(argv, UPLOAD_FLAGS, { positionals: true });
  if (f.bool("help")) return "help";
  const to = f.httpUrl("to") ?? env.NEARCAST_URL ?? DEFAULT_TO;
  const token = f.string("token") ?? env.NEARCAST_TOKEN;
  const ca = f.string("ca") === undefined ? {} : { ca: f.string("ca") };
  const del = f.string("delete");
  if (del !== undefined) {
    if (f.positionals.length > 0) throw new UsageError("--delete takes a NAME, not a FILE");
    return { mode: "delete", name: del, to, token, ...ca };
  }
  if (f.positionals.length !== 1) {
    throw new UsageError(`give exactly one FILE to upload: received ${f.positionals.length}`);
  }
  const meta: Record<string, string> = {};
  for (const kv of f.list("meta")) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new UsageError(`--meta must be key=value: received ${kv}`);
    meta[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return {
    mode: "upload",
    file: f.positionals[0],
    to,
    token,
    name: f.string("name"),
    meta,
    contentType: f.string("content-type"),
    chunkBytes: f.size("chunk-bytes", DEFAULT_CHUNK_BYTES, 1, MAX_CHUNK_BYTES),
    wire: f.oneOf("wire", WIRE_ENCODINGS, DEFAULT_WIRE),
    quiet: f.bool("quiet"),
    ...ca,
  };
}

/**
 * The upload client: hashes a file (streaming), skips the upload when the node already holds
 * the same content, then streams it in the wire format (`wire.ts`) in chunks, reporting
 * progress. Failures are {@link UploadFailure}s carrying the exit code the CLI uses.
 *
 * @example
 * ```ts ignore
 * import { uploadFile } from "./client.ts";
 * const r = await uploadFile({ file: "logo.png", to: "http://127.0.0.1:8080", token: "T" });
 * console.log(r.status, r.path); // "stored" "/logo.png"
 * ```
 *
 * @module
 */

import { createHash } from "node:crypto";
import { DEFAULT_CHUNK_BYTES, type ObjectHeader } from "./wire.ts";
import { writeObjectStreamAs } from "../wire/object_stream.ts";
import { acceptOf, bodyEncoding, streamTypeOf, type WireEncoding } from "../wire/encoding.ts";
import { decodeMessage } from "../wire/messages.ts";
import { nameError, nameToPath } from "./validate.ts";
import { postStream } from "./post_stream.ts";
import { peerFetch, tlsFailure } from "../tls/client.ts";

/** Exit codes of `main_upload.ts`. */
export const EXIT = {
  ok: 0,
  /** Bad flags, unreadable file, invalid name: fix the command. */
  usage: 2,
  /** The node refused (4xx): bad token, too large, bad name, hash mismatch. */
  refused: 3,
  /** The node could not be reached or the connection broke: retry later or check --to. */
  unreachable: 4,
  /** The node failed (5xx): see its log. */
  server: 5,
} as const;

/** A failure with the exit code and a message a user can act on. */
export class UploadFailure extends Error {
  constructor(readonly exitCode: number, message: string) {
    super(message);
    this.name = "UploadFailure";
  }
}

/** Common content types by extension; anything else is application/octet-stream. */
const CONTENT_TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  htm: "text/html; charset=utf-8",
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  mjs: "text/javascript; charset=utf-8",
  json: "application/json",
  txt: "text/plain; charset=utf-8",
  md: "text/markdown; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  avif: "image/avif",
  ico: "image/x-icon",
  wasm: "application/wasm",
  pdf: "application/pdf",
  mp4: "video/mp4",
  webm: "video/webm",
  mp3: "audio/mpeg",
  woff2: "font/woff2",
  zip: "application/zip",
  gz: "application/gzip",
};

/** The content type for a file name. */
export function contentTypeOf(name: string): string {
  const dot = name.lastIndexOf(".");
  return CONTENT_TYPES[dot < 0 ? "" : name.slice(dot + 1).toLowerCase()] ??
    "application/octet-stream";
}

/** Options of {@link uploadFile}. */
export interface UploadOptions {
  file: string;
  /** Node base URL. */
  to: string;
  /** Name to publish under; default: the file's base name. */
  name?: string;
  meta?: Record<string, string>;
  token?: string;
  contentType?: string;
  chunkBytes?: number;
  /** Encoding of the upload and of the answers asked for (default JSON). */
  wire?: WireEncoding;
  /** Called as bytes are sent (and once with `sent === total` at the end). */
  progress?: (sent: number, total: number) => void;
}

/** What the node answered. */
export interface UploadResult {
  status: "stored" | "unchanged";
  name: string;
  path: string;
  size: number;
  sha256: string;
}

/** SHA-256 (hex) and size of a file, read as a stream. */
export async function hashFile(path: string): Promise<{ sha256: string; size: number }> {
  const h = createHash("sha256");
  let size = 0;
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(1024 * 1024);
  while (true) {
    const n = await file.read(buf);
    if (n === null) break;
    h.update(buf.subarray(0, n));
    size += n;
  }
  return { sha256: h.digest("hex"), size };
}

function base(to: string): string {
  try {
    const u = new URL(to);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error();
    return u.origin;
  } catch {
    throw new UploadFailure(EXIT.usage, `--to must be an http(s) URL: received ${to}`);
  }
}

/** Path of a name under `/_cdn/files/`. */
function filesPath(name: string): string {
  return "/_cdn/files/" + name.split("/").map(encodeURIComponent).join("/");
}

async function send(url: string, init: RequestInit): Promise<Response> {
  try {
    return await peerFetch(url, init);
  } catch (e) {
    const tls = tlsFailure(e);
    throw new UploadFailure(
      EXIT.unreachable,
      `cannot reach ${new URL(url).origin}: ${tls ?? (e as Error).message} (${
        tls === null ? "is the node running? check --to" : "check --ca"
      })`,
    );
  }
}

/** Turns a non-2xx answer into an {@link UploadFailure} with a hint. */
async function refusal(res: Response, what: string): Promise<UploadFailure> {
  const body = (await res.text()).trim().replace(/^\d{3}: /, "");
  const hints: Record<number, string> = {
    401: " (pass --token TOKEN or set NEARCAST_TOKEN)",
    403: " (check --token; the node needs --admin-token for uploads)",
    413: " (the node's --max-upload-bytes is lower than the file)",
  };
  const code = res.status >= 500 ? EXIT.server : EXIT.refused;
  return new UploadFailure(code, `${what}: ${res.status} ${body}${hints[res.status] ?? ""}`);
}

function authHeaders(token: string | undefined): Record<string, string> {
  return token === undefined || token === "" ? {} : { authorization: `Bearer ${token}` };
}

/** Uploads one file; see {@link UploadOptions}. */
export async function uploadFile(opts: UploadOptions): Promise<UploadResult> {
  const to = base(opts.to);
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(opts.file);
  } catch (e) {
    throw new UploadFailure(EXIT.usage, `cannot read ${opts.file}: ${(e as Error).message}`);
  }
  if (!stat.isFile) throw new UploadFailure(EXIT.usage, `${opts.file} is not a regular file`);
  const name = opts.name ?? opts.file.split(/[\\/]/).pop()!;
  const err = nameError(name);
  if (err !== null) {
    throw new UploadFailure(
      EXIT.usage,
      `cannot publish as ${JSON.stringify(name)}: ${err} (use --name)`,
    );
  }
  const { sha256, size } = await hashFile(opts.file).catch((e) => {
    throw new UploadFailure(EXIT.usage, `cannot read ${opts.file}: ${(e as Error).message}`);
  });
  const header: ObjectHeader = {
    name,
    contentType: opts.contentType ?? contentTypeOf(name),
    size,
    sha256,
    mtime: Math.floor(stat.mtime?.getTime() ?? 0),
    meta: opts.meta ?? {},
  };
  const wire = opts.wire ?? "json";
  // Identical content already there: nothing to send.
  const info = await send(to + filesPath(name), {
    headers: { ...authHeaders(opts.token), accept: acceptOf(wire) },
  });
  if (info.status === 200) {
    const raw = new Uint8Array(await info.arrayBuffer());
    const cur = await decodeMessage("file", raw, bodyEncoding(info.headers)) as Partial<
      ObjectHeader
    >;
    if (
      cur.sha256 === sha256 && cur.size === size && cur.contentType === header.contentType &&
      JSON.stringify(sorted(cur.meta ?? {})) === JSON.stringify(sorted(header.meta))
    ) {
      opts.progress?.(size, size);
      return { status: "unchanged", name, path: nameToPath(name), size, sha256 };
    }
  } else await info.body?.cancel();
  const file = await Deno.open(opts.file, { read: true }).catch((e) => {
    throw new UploadFailure(EXIT.usage, `cannot read ${opts.file}: ${(e as Error).message}`);
  });
  // The file is read into one reused chunk buffer and encoded into two reused line buffers.
  const body = (write: (bytes: Uint8Array) => Promise<void>) =>
    writeObjectStreamAs(
      wire,
      header,
      file,
      opts.chunkBytes ?? DEFAULT_CHUNK_BYTES,
      write,
      (sent) => opts.progress?.(sent, size),
    );
  let res;
  try {
    res = await postStream(
      to + "/_cdn/upload",
      {
        "content-type": streamTypeOf(wire),
        accept: acceptOf(wire),
        ...authHeaders(opts.token),
      },
      body,
    );
  } catch (e) {
    throw new UploadFailure(
      EXIT.unreachable,
      `upload of ${name} to ${to} broke off: ${(e as Error).message} (nothing was stored; retry)`,
    );
  } finally {
    try {
      file.close();
    } catch { /* already closed */ }
  }
  if (res.status < 200 || res.status > 299) {
    throw await refusal(
      new Response(res.text, { status: res.status }),
      `upload of ${name} refused`,
    );
  }
  const answerWire = bodyEncoding(new Headers(res.headers));
  const out = await decodeMessage("uploadAnswer", res.body, answerWire) as {
    status: "stored" | "unchanged";
    path: string;
  };
  opts.progress?.(size, size);
  return { status: out.status, name, path: out.path, size, sha256 };
}

/** Deletes `name` from every node. */
export async function deleteFile(
  opts: { name: string; to: string; token?: string },
): Promise<void> {
  const to = base(opts.to);
  const err = nameError(opts.name);
  if (err !== null) {
    throw new UploadFailure(EXIT.usage, `cannot delete ${JSON.stringify(opts.name)}: ${err}`);
  }
  const res = await send(to + filesPath(opts.name), {
    method: "DELETE",
    headers: authHeaders(opts.token),
  });
  if (!res.ok) throw await refusal(res, `delete of ${opts.name} refused`);
  await res.body?.cancel();
}

function sorted(o: Record<string, string>): [string, string][] {
  return Object.entries(o).sort(([a], [b]) => a < b ? -1 : 1);
}

/**
 * A progress reporter: a redrawn bar on a terminal, else a plain line at every tenth.
 * Returns the callback and a `done` to end the bar's line.
 */
export function progressReporter(
  label: string,
  out: { isTerminal(): boolean; writeSync(p: Uint8Array): number },
  now: () => number = Date.now,
): { update: (sent: number, total: number) => void; done: () => void } {
  const enc = new TextEncoder();
  const tty = out.isTerminal();
  const start = now();
  let lastDraw = -Infinity;
  let lastTenth = -1;
  let drawn = false;
  const mib = (n: number) => (n / 1048576).toFixed(1);
  return {
    update(sent, total) {
      const frac = total === 0 ? 1 : sent / total;
      if (tty) {
        const t = now();
        if (t - lastDraw < 100 && sent < total) return;
        lastDraw = t;
        const width = 30;
        const full = Math.round(frac * width);
        const rate = sent / 1048576 / Math.max((t - start) / 1000, 0.001);
        const line = `\r${label} [${"#".repeat(full)}${"-".repeat(width - full)}] ` +
          `${(frac * 100).toFixed(0).padStart(3)}% ${mib(sent)}/${mib(total)} MiB ${
            rate.toFixed(1)
          } MiB/s`;
        out.writeSync(enc.encode(line));
        drawn = true;
      } else {
        const tenth = Math.floor(frac * 10);
        if (tenth === lastTenth) return;
        lastTenth = tenth;
        out.writeSync(enc.encode(`${label}: ${tenth * 10}% (${sent} of ${total} bytes)\n`));
      }
    },
    done() {
      if (drawn) out.writeSync(enc.encode("\n"));
    },
  };
}

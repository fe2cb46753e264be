/**
 * Bare `Deno.serve` servers for the HTTP benchmark: the ceiling of what Deno itself does, and
 * the ways of handing it a body that the large-object investigation compares. At start it
 * fetches each path from the origin once, keeps the bytes in memory (and in a file under
 * `--tmp`), then answers every request from there with `X-Cache: HIT`.
 *
 * Modes (how the body of a hit is handed to Deno):
 * - `bytes`: `new Response(uint8array)` from a Map (the placeholder baseline);
 * - `bytesasync`: the same from a handler returning a Promise;
 * - `bytesfetched`: the same, but the buffer is the one `fetch()`'s `bytes()` returned;
 * - `byteslen`: the same with an explicit `Content-Length` header;
 * - `clone`: `template.clone()` of a Response built once at start (the body is shared, not
 *   copied: `new Response(uint8array)` copies the bytes, as the Fetch standard says);
 * - `blob`: `new Response(blob)` with a Blob made once at start;
 * - `stream`: a ReadableStream over the cached buffer, `--chunk` bytes per enqueue
 *   (0: the whole buffer in one chunk);
 * - `file`: `(await Deno.open(path)).readable`, the file written at start;
 * - `filebytes`: `await Deno.readFile(path)` per request.
 *
 * Usage: deno run -A bench/http_rps/deno_server.ts -p PORT -o ORIGIN --paths /a,/b
 *   [--mode bytes] [--chunk 65536] [--tmp DIR]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { serveLimited } from "../../lib/common/http_server.ts";

/** The modes this server implements. */
export const MODES = [
  "bytes",
  "bytesasync",
  "bytesfetched",
  "byteslen",
  "clone",
  "blob",
  "stream",
  "file",
  "filebytes",
] as const;
export type Mode = typeof MODES[number];

const HELP = `Bare Deno.serve benchmark server

Usage: deno run -A bench/http_rps/deno_server.ts -p PORT -o ORIGIN --paths P1,P2 [options]

Options:
  -p, --port PORT     port to listen on (required)
      --host ADDR     address to bind (default 127.0.0.1)
  -o, --origin URL    origin base URL the objects are fetched from once (required)
      --paths LIST    comma-separated paths to preload (required)
      --mode MODE     ${MODES.join(" | ")} (default bytes)
      --chunk BYTES   enqueue size for --mode stream; 0 = one chunk (default 65536)
      --tmp DIR       where --mode file/filebytes keep the bodies (default: a new temp dir)
      --listener L    deno (Deno.serve, default) or limited (lib/common/http_server.ts: our
                      accept loop, connection cap and timeouts in front of Deno's HTTP server)
  -h, --help          show this help
`;

function fail(msg: string): never {
  console.error(`deno_server: ${msg}\n\n${HELP}`);
  Deno.exit(2);
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        port: { type: "string", short: "p" },
        host: { type: "string", default: "127.0.0.1" },
        origin: { type: "string", short: "o" },
        paths: { type: "string" },
        mode: { type: "string", default: "bytes" },
        chunk: { type: "string", default: "65536" },
        tmp: { type: "string" },
        listener: { type: "string", default: "deno" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    console.log(HELP);
    return;
  }
  const port = Number(values.port);
  if (!values.port || !Number.isInteger(port) || port < 0 || port > 65535) {
    fail(`--port must be an integer in 0..65535: received ${values.port}`);
  }
  if (!values.origin) fail("--origin is required");
  if (!values.paths) fail("--paths is required");
  const mode = values.mode as Mode;
  if (!MODES.includes(mode)) fail(`--mode must be one of ${MODES.join(", ")}: received ${mode}`);
  const chunk = Number(values.chunk);
  if (!Number.isInteger(chunk) || chunk < 0) fail(`--chunk must be >= 0: received ${chunk}`);
  const tmp = values.tmp ?? await Deno.makeTempDir({ prefix: "nearcast_bench_" });
  const ownTmp = values.tmp === undefined;

  const objects = new Map<
    string,
    {
      bytes: Uint8Array<ArrayBuffer>;
      fetched: Uint8Array<ArrayBuffer>;
      blob: Blob;
      file: string;
      template: Response;
    }
  >();
  for (const [i, path] of values.paths.split(",").entries()) {
    const res = await fetch(new URL(path, values.origin));
    if (!res.ok) fail(`origin answered ${res.status} for ${path}`);
    const fetched = await res.bytes();
    // A copy into a buffer allocated here: `bytesfetched` serves the buffer fetch() returned.
    const bytes = fetched.slice();
    const file = `${tmp}/obj${i}`;
    await Deno.writeFile(file, bytes);
    const template = new Response(bytes, {
      headers: { "content-type": "application/octet-stream", "x-cache": "HIT" },
    });
    objects.set(path, { bytes, fetched, blob: new Blob([bytes]), file, template });
  }

  // Deno sets Content-Length itself for byte and Blob bodies; streams need it explicitly,
  // or they go out chunked. `byteslen` measures what an explicit header costs.
  const withLength = (size: number) => ({
    "content-type": "application/octet-stream",
    "content-length": String(size),
    "x-cache": "HIT",
  });
  const plain = { "content-type": "application/octet-stream", "x-cache": "HIT" };
  // Synchronous where the body is at hand: a handler returning a Promise costs more per
  // request (`bytesasync` measures how much).
  const handler = (req: Request): Response | Promise<Response> => {
    const path = new URL(req.url).pathname;
    const o = objects.get(path);
    if (!o) return new Response("not found\n", { status: 404 });
    switch (mode) {
      case "bytes":
        return new Response(o.bytes, { headers: plain });
      case "bytesfetched":
        return new Response(o.fetched, { headers: plain });
      case "bytesasync":
        return Promise.resolve(new Response(o.bytes, { headers: plain }));
      case "byteslen":
        return new Response(o.bytes, { headers: withLength(o.bytes.length) });
      case "clone":
        return o.template.clone();
      case "blob":
        return new Response(o.blob, { headers: plain });
      case "stream":
        return new Response(bufferStream(o.bytes, chunk), { headers: withLength(o.bytes.length) });
      case "file":
        return Deno.open(o.file).then((f) =>
          new Response(f.readable, { headers: withLength(o.bytes.length) })
        );
      case "filebytes":
        return Deno.readFile(o.file).then((b) => new Response(b, { headers: plain }));
    }
  };
  if (values.listener !== "deno" && values.listener !== "limited") {
    fail(`--listener must be deno or limited: received ${values.listener}`);
  }
  const serve = values.listener === "limited" ? serveLimited : Deno.serve;
  const server = serve({
    port,
    hostname: values.host,
    onListen: ({ hostname, port }: Deno.NetAddr) =>
      console.log(
        `deno_server (${mode}, ${values.listener}): listening on http://${hostname}:${port}/`,
      ),
  }, handler);
  const stop = () => server.shutdown();
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  await server.finished;
  if (ownTmp) await Deno.remove(tmp, { recursive: true });
}

/** A stream over `bytes`, `chunk` bytes per enqueue (views, no copies); 0 = one chunk. */
function bufferStream(
  bytes: Uint8Array<ArrayBuffer>,
  chunk: number,
): ReadableStream<Uint8Array<ArrayBuffer>> {
  const step = chunk === 0 ? bytes.length : chunk;
  let off = 0;
  return new ReadableStream({
    pull(c) {
      if (off >= bytes.length) {
        c.close();
        return;
      }
      c.enqueue(bytes.subarray(off, off + step));
      off += step;
    },
  });
}

if (import.meta.main) await main();

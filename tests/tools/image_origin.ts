/**
 * A static origin for the image scenarios: serves the files of a directory (flat) on
 * 127.0.0.1 with `Cache-Control: max-age=3600`, an `ETag` and a content type by extension, and
 * prints `origin http://127.0.0.1:PORT` once listening.
 *
 * Usage: deno run -A tests/tools/image_origin.ts DIR
 *
 * @module
 */
const TYPES: Record<string, string> = {
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  png: "image/png",
  html: "text/html; charset=utf-8",
};

if (import.meta.main) {
  const dir = Deno.args[0];
  if (dir === undefined) {
    console.error("Usage: image_origin.ts DIR");
    Deno.exit(2);
  }
  const files = new Map<string, Uint8Array<ArrayBuffer>>();
  for (const e of Deno.readDirSync(dir)) {
    if (e.isFile) files.set(`/${e.name}`, Deno.readFileSync(`${dir}/${e.name}`));
  }
  Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: (a) => console.log(`origin http://127.0.0.1:${a.port}`),
  }, (req) => {
    const path = new URL(req.url).pathname;
    const body = files.get(path);
    if (body === undefined) return new Response("not found\n", { status: 404 });
    const ext = path.slice(path.lastIndexOf(".") + 1).toLowerCase();
    return new Response(body, {
      headers: {
        "content-type": TYPES[ext] ?? "application/octet-stream",
        "cache-control": "max-age=3600",
        etag: `"${body.length.toString(16)}-${path.length}"`,
      },
    });
  });
}

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import {
  createOriginHandler,
  GENERATED_LAST_MODIFIED,
  LARGE_SIZE,
  MAX_GENERATED_SIZE,
  parseRange,
} from "../scripts/demo_origin.ts";
import { spawnDenoLines, startedLine } from "./_proc.ts";
import { withTempDir } from "./_store_helpers.ts";

const SITE = fileURLToPath(new URL("../scripts/demo/site", import.meta.url));
const SCRIPT = fileURLToPath(new URL("../scripts/demo_origin.ts", import.meta.url));
const site = createOriginHandler({ dir: SITE });
const get = (path: string, headers: Record<string, string> = {}, method = "GET") =>
  site(new Request(`http://origin.test${path}`, { method, headers }));
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

Deno.test("origin: site files carry type, max-age, ETag and Last-Modified", async () => {
  const cases: [string, string, number][] = [
    ["/", "text/html; charset=utf-8", 60],
    ["/about.html", "text/html; charset=utf-8", 60],
    ["/style.css", "text/css; charset=utf-8", 3600],
    ["/app.js", "text/javascript; charset=utf-8", 3600],
    ["/logo.png", "image/png", 86400],
    ["/landscape.jpg", "image/jpeg", 86400],
  ];
  for (const [path, type, maxAge] of cases) {
    const res = await get(path);
    const body = await res.bytes();
    const file = path === "/" ? "/index.html" : path;
    assert.equal(res.status, 200, path);
    assert.equal(res.headers.get("content-type"), type, path);
    assert.equal(res.headers.get("cache-control"), `public, max-age=${maxAge}`, path);
    assert.match(res.headers.get("etag")!, /^"[0-9a-f]+-[0-9a-f]+"$/, path);
    const info = await Deno.stat(SITE + file);
    assert.equal(
      res.headers.get("last-modified"),
      new Date(Math.floor(info.mtime!.getTime() / 1000) * 1000).toUTCString(),
      path,
    );
    assert.equal(res.headers.get("content-length"), String(info.size), path);
    assert.deepEqual(body, await Deno.readFile(SITE + file), path);
  }
});

Deno.test("origin: the sample images are real PNG and JPEG files of a few KiB", async () => {
  const png = await (await get("/logo.png")).bytes();
  const jpg = await (await get("/landscape.jpg")).bytes();
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.deepEqual([...jpg.subarray(0, 3)], [0xff, 0xd8, 0xff]);
  assert.deepEqual([...jpg.subarray(-2)], [0xff, 0xd9]);
  for (const b of [png, jpg]) assert.ok(b.length > 1000 && b.length < 16 * 1024, `${b.length}`);
});

Deno.test("origin: every local link in index.html resolves", async () => {
  const html = await (await get("/")).text();
  const links = [...html.matchAll(/(?:href|src)="(\/[^"]*)"/g)].map((m) => m[1]);
  assert.ok(links.length >= 6, `links: ${links}`);
  for (const link of new Set(links)) {
    const res = await get(link, {}, "HEAD");
    assert.equal(res.status, 200, link);
    await res.body?.cancel();
  }
});

Deno.test("origin: conditional requests get 304 or 412 as RFC 9110 says", async () => {
  const first = await get("/style.css");
  await first.body?.cancel();
  const etag = first.headers.get("etag")!;
  const lm = first.headers.get("last-modified")!;
  const earlier = new Date(Date.parse(lm) - 1000).toUTCString();
  const cases: [Record<string, string>, number][] = [
    [{ "if-none-match": etag }, 304],
    [{ "if-none-match": `W/${etag}` }, 304], // weak comparison
    [{ "if-none-match": `"nope", ${etag}` }, 304],
    [{ "if-none-match": "*" }, 304],
    [{ "if-none-match": '"nope"' }, 200],
    [{ "if-modified-since": lm }, 304],
    [{ "if-modified-since": earlier }, 200],
    [{ "if-modified-since": "not a date" }, 200],
    [{ "if-none-match": '"nope"', "if-modified-since": lm }, 200], // INM wins over IMS
    [{ "if-match": etag }, 200],
    [{ "if-match": `W/${etag}` }, 412], // strong comparison
    [{ "if-match": '"nope"' }, 412],
    [{ "if-unmodified-since": earlier }, 412],
    [{ "if-unmodified-since": lm }, 200],
  ];
  for (const [headers, status] of cases) {
    const res = await get("/style.css", headers);
    const body = await res.bytes();
    assert.equal(res.status, status, JSON.stringify(headers));
    if (status === 304) {
      assert.equal(body.length, 0);
      assert.equal(res.headers.get("etag"), etag);
      assert.equal(res.headers.get("cache-control"), "public, max-age=3600");
    }
  }
});

Deno.test("origin: HEAD has the headers and no body", async () => {
  const res = await get("/landscape.jpg", {}, "HEAD");
  assert.equal(res.status, 200);
  assert.equal(res.body, null);
  assert.equal(
    res.headers.get("content-length"),
    String((await Deno.stat(`${SITE}/landscape.jpg`)).size),
  );
  const big = await get("/large.bin", {}, "HEAD");
  assert.equal(big.headers.get("content-length"), String(LARGE_SIZE));
  assert.equal(big.body, null);
});

Deno.test("origin: /large.bin is 32 MiB, deterministic, and ranges slice it", async () => {
  const full = await (await get("/large.bin")).bytes();
  assert.equal(full.length, LARGE_SIZE);
  assert.equal(sha(await (await get("/large.bin")).bytes()), sha(full), "deterministic");
  const res = await get("/large.bin");
  assert.equal(res.headers.get("last-modified"), new Date(GENERATED_LAST_MODIFIED).toUTCString());
  assert.equal(res.headers.get("accept-ranges"), "bytes");
  await res.body?.cancel();
  // Not a constant pattern: distinct 64 KiB blocks differ.
  assert.notDeepEqual(full.subarray(0, 65536), full.subarray(65536, 131072));
  const cases: [string, number, number][] = [
    ["bytes=0-99", 0, 100],
    ["bytes=65530-65545", 65530, 65546], // across a generator block boundary
    ["bytes=-10", LARGE_SIZE - 10, LARGE_SIZE],
    [`bytes=${LARGE_SIZE - 5}-`, LARGE_SIZE - 5, LARGE_SIZE],
    [`bytes=100-${LARGE_SIZE * 2}`, 100, LARGE_SIZE],
    ["bytes=1000000-3000000", 1_000_000, 3_000_001],
  ];
  for (const [range, start, end] of cases) {
    const r = await get("/large.bin", { range });
    assert.equal(r.status, 206, range);
    assert.equal(r.headers.get("content-range"), `bytes ${start}-${end - 1}/${LARGE_SIZE}`);
    assert.equal(r.headers.get("content-length"), String(end - start));
    assert.deepEqual(await r.bytes(), full.subarray(start, end), range);
  }
  // /bytes/N is a prefix of the same sequence.
  assert.deepEqual(await (await get("/bytes/100000")).bytes(), full.subarray(0, 100000));
  assert.equal((await (await get("/bytes/0")).bytes()).length, 0);
});

Deno.test("origin: bad, unsatisfiable and If-Range-mismatched ranges", async () => {
  const etag = (await get("/bytes/1000", {}, "HEAD")).headers.get("etag")!;
  const unsat = await get("/bytes/1000", { range: "bytes=1000-" });
  assert.equal(unsat.status, 416);
  assert.equal(unsat.headers.get("content-range"), "bytes */1000");
  for (const range of ["bytes=0-1,5-6", "items=0-1", "bytes=5-2", "bytes=x"]) {
    const r = await get("/bytes/1000", { range });
    assert.equal(r.status, 200, range);
    assert.equal((await r.bytes()).length, 1000, range);
  }
  const matching = await get("/bytes/1000", { range: "bytes=0-9", "if-range": etag });
  assert.equal(matching.status, 206);
  await matching.body?.cancel();
  for (const ifRange of ['"other"', `W/${etag}`, "Thu, 01 Jan 1970 00:00:00 GMT"]) {
    const r = await get("/bytes/1000", { range: "bytes=0-9", "if-range": ifRange });
    assert.equal(r.status, 200, ifRange);
    assert.equal((await r.bytes()).length, 1000, ifRange);
  }
  assert.deepEqual(parseRange("bytes=-0", 10), "unsatisfiable");
  assert.deepEqual(parseRange("bytes=0-0", 10), [0, 1]);
  assert.deepEqual(parseRange("bytes=-20", 10), [0, 10]);
  assert.deepEqual(parseRange("bytes=0-", 0), "unsatisfiable");
});

Deno.test("origin: /time follows the injected clock with a short max-age", async () => {
  let t = Date.UTC(2026, 10, 21, 5, 0, 0);
  const origin = createOriginHandler({ dir: SITE, now: () => t });
  const a = await origin(new Request("http://o/time"));
  assert.deepEqual(await a.json(), { iso: "2026-11-21T05:00:00.000Z", epochMs: t });
  assert.equal(a.headers.get("cache-control"), "public, max-age=2");
  t += 1500;
  const b = await (await origin(new Request("http://o/time"))).json();
  assert.equal(b.epochMs, t);
});

Deno.test("origin: bad requests get clear errors", async () => {
  const cases: [string, string, number, RegExp][] = [
    ["POST", "/", 405, /Method POST not allowed/],
    ["GET", "/%2e%2e%2fdeno.json", 400, /Bad request path/],
    ["GET", "/%2e%2e/deno.json", 404, /Not found/], // the URL parser resolves the dots first
    ["GET", "/a%2fb", 400, /Bad request path/],
    ["GET", "/%E0%A4%A", 400, /Bad request path/],
    ["GET", "/.hidden", 404, /Not found/],
    ["GET", "/missing.html", 404, /Not found/],
    ["GET", "/logo.png/x", 404, /Not found/],
    ["GET", `/bytes/${MAX_GENERATED_SIZE + 1}`, 400, /Cannot generate \d+ bytes: the limit is/],
  ];
  for (const [method, path, status, re] of cases) {
    const res = await get(path, {}, method);
    assert.equal(res.status, status, `${method} ${path}`);
    assert.match(await res.text(), re);
    assert.equal(res.headers.get("cache-control"), "no-store");
  }
  assert.equal((await get("/", {}, "DELETE")).headers.get("allow"), "GET, HEAD");
});

Deno.test("origin: files and ranges of a file on disk; directories serve index.html", async () => {
  await withTempDir(async (dir) => {
    const data = new Uint8Array(200_000).map((_, i) => (i * 7) & 0xff);
    await Deno.mkdir(`${dir}/sub`);
    await Deno.writeFile(`${dir}/sub/data.bin`, data);
    await Deno.writeTextFile(`${dir}/sub/index.html`, "<p>sub</p>");
    const origin = createOriginHandler({ dir });
    const whole = await origin(new Request("http://o/sub/data.bin"));
    assert.deepEqual(await whole.bytes(), data);
    const part = await origin(
      new Request("http://o/sub/data.bin", { headers: { range: "bytes=65000-140000" } }),
    );
    assert.equal(part.status, 206);
    assert.deepEqual(await part.bytes(), data.subarray(65000, 140001));
    assert.equal(await (await origin(new Request("http://o/sub/"))).text(), "<p>sub</p>");
    assert.equal(await (await origin(new Request("http://o/sub"))).text(), "<p>sub</p>");
  });
});

async function startOrigin(args: string[]) {
  const p = spawnDenoLines([SCRIPT, ...args], { denoFlags: ["-A", "--no-check"], name: "origin" });
  const [, port] = await startedLine(p, /http:\/\/[^\s]+:(\d+)\//);
  return { p, port: Number(port) };
}

Deno.test("origin: the CLI serves on loopback and stops on SIGTERM", async () => {
  const { p, port } = await startOrigin(["-p", "0", "--host", "127.0.0.1"]);
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /Nearcast demo origin/);
    const etag = res.headers.get("etag")!;
    const again = await fetch(`http://127.0.0.1:${port}/`, { headers: { "if-none-match": etag } });
    assert.equal(again.status, 304);
    await again.body?.cancel();
    const range = await fetch(`http://127.0.0.1:${port}/large.bin`, {
      headers: { range: "bytes=100-199" },
    });
    assert.equal(range.status, 206);
    assert.equal((await range.bytes()).length, 100);
    assert.ok(res.headers.get("date"), "Deno.serve adds Date");
  } finally {
    await p.stop("SIGTERM");
    assert.equal((await p.done).code, 0);
  }
});

Deno.test("origin: the CLI prints help and rejects bad flags", async () => {
  const run = (args: string[]) =>
    new Deno.Command(Deno.execPath(), { args: ["run", "-A", "--no-check", SCRIPT, ...args] })
      .output();
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  assert.match(
    new TextDecoder().decode(help.stdout),
    /--port PORT[\s\S]*--host ADDR[\s\S]*--dir DIR/,
  );
  const bad = await run(["--bogus"]);
  assert.equal(bad.code, 2);
  assert.match(new TextDecoder().decode(bad.stderr), /bogus/);
  const port = await run(["-p", "70000"]);
  assert.equal(port.code, 2);
  assert.match(new TextDecoder().decode(port.stderr), /--port must be an integer in 0..65535/);
  const dir = await run(["--dir", "/nonexistent/nearcast"]);
  assert.equal(dir.code, 2);
  assert.match(
    new TextDecoder().decode(dir.stderr),
    /--dir "\/nonexistent\/nearcast" is not a readable directory/,
  );
});

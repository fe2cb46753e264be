/**
 * `--preload`: the line forms people have (absolute and relative paths, origin URLs, `URL
 * COUNT` and `COUNT URL` lines from popularity logs), foreign hosts and junk skipped with their
 * line numbers (never rewritten to the origin), and a summary of what was cached, not cached,
 * skipped and failed.
 */
import assert from "node:assert/strict";
import { parsePreloadLine, parsePreloadList } from "../lib/http/preload.ts";
import { startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";

const ORIGIN = "http://127.0.0.1:8000";

Deno.test("preload lines: the forms accepted", () => {
  const path = (line: string) => parsePreloadLine(line, ORIGIN);
  assert.deepEqual(path("/docs/page.html"), { path: "/docs/page.html" });
  assert.deepEqual(path("docs/page.html"), { path: "/docs/page.html" });
  assert.deepEqual(path("  /a?x=1  "), { path: "/a?x=1" });
  assert.deepEqual(path("http://127.0.0.1:8000/a/b"), { path: "/a/b" });
  assert.deepEqual(path("https://127.0.0.1/a"), { path: "/a" }, "scheme and default port");
  assert.deepEqual(path("/index.html 1234"), { path: "/index.html" });
  assert.deepEqual(path("http://127.0.0.1:8000/x\t17"), { path: "/x" });
  assert.deepEqual(path("   1234 /top.css"), { path: "/top.css" }, "uniq -c output");
  assert.equal(path(""), null);
  assert.equal(path("   # a comment"), null);
});

Deno.test("preload lines: what is refused, and why", () => {
  const reason = (line: string) => (parsePreloadLine(line, ORIGIN) as { reason: string }).reason;
  assert.equal(reason("https://other.example/a"), "not on the origin's host (127.0.0.1:8000)");
  assert.equal(reason("http://127.0.0.1:9000/a"), "not on the origin's host (127.0.0.1:8000)");
  assert.equal(reason("ftp://127.0.0.1:8000/a"), "not an http(s) URL");
  assert.match(
    reason("not a url or path"),
    /expected a path, a URL, or a path or URL with a count/,
  );
  assert.match(reason("/a /b"), /expected a path/);
  assert.equal(reason("//other.example/a"), "not a valid path");
});

Deno.test("preload list: line numbers, duplicates fetched once", () => {
  const r = parsePreloadList(["# hot", "/a", "a 10", "https://x.example/b", "", "/c"], ORIGIN);
  assert.deepEqual(r.targets, [{ line: 2, path: "/a" }, { line: 6, path: "/c" }]);
  assert.deepEqual(r.skipped, [
    { line: 3, text: "a 10", reason: "listed already on line 2" },
    { line: 4, text: "https://x.example/b", reason: "not on the origin's host (127.0.0.1:8000)" },
  ]);
});

Deno.test("preload end to end: cached, not cached, skipped, failed", async () => {
  const cacheable = { headers: { "cache-control": "max-age=60" }, body: "x" };
  const origin = await startOrigin({
    "/docs/page.html": cacheable,
    "/index.html": cacheable,
    "/top.css": cacheable,
    "/abs": cacheable,
    "/private": { headers: { "cache-control": "no-store" }, body: "p" },
  });
  const dir = await Deno.makeTempDir({ prefix: "nearcast_preload_" });
  const list = `${dir}/popular.txt`;
  await Deno.writeTextFile(
    list,
    [
      "# from the access log",
      "docs/page.html",
      `${origin.url}/index.html 1234`,
      "   99 /top.css",
      "/abs",
      "https://elsewhere.example/abs",
      "/private",
      "/missing 3",
      "what is this",
      "/abs",
    ].join("\n"),
  );
  const replica = await startReplica(["-o", origin.url, "--preload", list]);
  try {
    const done = await replica.waitFor(/^preload: done/);
    assert.equal(done, "preload: done: 4 cached, 1 not cached, 3 skipped, 1 failed");
    const has = (text: string) => assert.ok(replica.lines.includes(text), text);
    has(
      "preload: line 6: skipped: not on the origin's host " +
        `(${new URL(origin.url).host}): https://elsewhere.example/abs`,
    );
    has("preload: line 7: /private: HTTP 200 but not cached (not storable)");
    has("preload: line 8: /missing: failed: HTTP 404");
    has("preload: line 10: skipped: listed already on line 5: /abs");
    assert.equal(origin.count("/abs"), 1, "the foreign URL is not rewritten to the origin");
    for (const p of ["/docs/page.html", "/index.html", "/top.css"]) {
      const res = await fetch(replica.url + p);
      await res.body?.cancel();
      assert.equal(res.headers.get("x-cache"), "HIT", p);
      assert.equal(origin.count(p), 1, p);
    }
  } finally {
    await replica.close();
    await origin.close();
    await Deno.remove(dir, { recursive: true });
  }
});

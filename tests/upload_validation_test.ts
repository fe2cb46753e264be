/**
 * End-to-end, one node: every bad upload is answered with a clear error and stores nothing
 * (token, name, size limit, SHA-256 mismatch, truncated or malformed stream); the CLI's exit
 * codes; identical re-uploads are no-ops; a new version replaces the old; deletes.
 */
import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  bytesOf,
  get,
  runUpload,
  sha256,
  startNode,
  stopAll,
  type TestNode,
  tfetch,
  TOKEN,
  withTempDir,
} from "./_upload_cluster.ts";

/** A hand-made wire stream: header, chunks as given, optional end line. */
function wire(header: unknown, chunks: [number, Uint8Array | string][], end = true): string {
  let s = JSON.stringify(header) + "\n";
  for (const [offset, data] of chunks) {
    const b64 = typeof data === "string" ? data : Buffer.from(data).toString("base64");
    s += JSON.stringify({ offset, data: b64 }) + "\n";
  }
  return end ? s + '{"end":true}\n' : s;
}

async function post(node: TestNode, body: string | ReadableStream<Uint8Array>, token = TOKEN) {
  const res = await tfetch(`${node.url}/_cdn/upload`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/x-ndjson" },
    body,
  });
  return { status: res.status, text: await res.text() };
}

/** Nothing stored: no file, no manifest entry, no temporary file left behind. */
async function assertNothingStored(node: TestNode, name: string) {
  const info = await tfetch(`${node.url}/_cdn/files/${name}`);
  await info.body?.cancel();
  equal(info.status, 404, `${name} must not be stored`);
  const m = await (await tfetch(`${node.url}/_cdn/manifest`)).json();
  deepStrictEqual(m.entries.filter((e: { name: string }) => e.name === name), []);
  const tmp = [...Deno.readDirSync(`${node.dir}/objects/tmp`)];
  deepStrictEqual(tmp, [], "no temporary file left");
}

Deno.test("upload validation: bad inputs get clear errors and store nothing", async () => {
  await withTempDir(async (dir) => {
    const node = await startNode("v", dir, ["--max-upload-bytes", "200000"]);
    try {
      const body = bytesOf(100_000, 7);
      const good = {
        name: "ok.bin",
        contentType: "application/octet-stream",
        size: body.length,
        sha256: await sha256(body),
        mtime: 0,
        meta: {},
      };
      const chunks: [number, Uint8Array][] = [[0, body.subarray(0, 65536)], [
        65536,
        body.subarray(65536),
      ]];

      const cases: [string, string, number, RegExp, string?][] = [
        ["no token", "", 401, /Authorization: Bearer/],
        ["wrong token", "nope", 401, /wrong token/],
      ];
      for (const [what, token, status, re] of cases) {
        const r = token === ""
          ? await (async () => {
            const res = await tfetch(`${node.url}/_cdn/upload`, {
              method: "POST",
              body: wire(good, chunks),
            });
            return { status: res.status, text: await res.text() };
          })()
          : await post(node, wire(good, chunks), token);
        equal(r.status, status, what);
        match(r.text, re, what);
        await assertNothingStored(node, "ok.bin");
      }

      const badNames: [string, RegExp][] = [
        ["../etc/passwd", /"\.\." segment/],
        ["a/../../b", /"\.\." segment/],
        ["/abs/path", /relative path/],
        ["C:/x", /relative path/],
        ["tab\there", /control characters/],
        ["nul\u0000", /control characters/],
        ["_cdn/health", /reserved/],
        ["a//b", /empty segments/],
        ["", /non-empty/],
        ["x".repeat(2000), /longer than 1024/],
      ];
      for (const [name, re] of badNames) {
        const r = await post(node, wire({ ...good, name }, chunks));
        equal(r.status, 400, `name ${JSON.stringify(name.slice(0, 40))}`);
        match(r.text, re);
      }

      // Too large: 413 before any byte of the body is kept.
      const big = await post(node, wire({ ...good, size: 300_000 }, chunks));
      equal(big.status, 413);
      match(big.text, /larger than this node's limit of 200000 bytes/);
      await assertNothingStored(node, "ok.bin");

      // SHA-256 mismatch.
      const wrongSha = await post(node, wire({ ...good, sha256: "0".repeat(64) }, chunks));
      equal(wrongSha.status, 400);
      match(wrongSha.text, /does not match expected 0{64}; nothing stored/);
      await assertNothingStored(node, "ok.bin");

      // Truncated: the stream stops (no end line, fewer bytes than declared).
      const cut = await post(node, wire(good, [chunks[0]], false));
      equal(cut.status, 400);
      match(cut.text, /truncated after 65536 bytes \(no end line\); nothing stored/);
      await assertNothingStored(node, "ok.bin");

      // An end line but fewer bytes than declared.
      const short = await post(node, wire(good, [chunks[0]], true));
      equal(short.status, 400);
      match(short.text, /ended after 65536 bytes, expected 100000; nothing stored/);
      await assertNothingStored(node, "ok.bin");

      // More bytes than declared.
      const long = await post(node, wire({ ...good, size: 1000 }, chunks));
      equal(long.status, 400);
      match(long.text, /longer than the declared size 1000/);

      // Malformed: chunk out of order, bad base64, header not JSON, bad size/sha fields.
      const order = await post(node, wire(good, [chunks[1], chunks[0]]));
      equal(order.status, 400);
      match(order.text, /expected offset 0, got 65536/);
      const b64 = await post(node, wire(good, [[0, "!!!!"]]));
      equal(b64.status, 400);
      match(b64.text, /base64/);
      const notJson = await post(node, "this is not json\n");
      equal(notJson.status, 400);
      match(notJson.text, /not JSON/);
      const noSize = await post(node, wire({ ...good, size: -1 }, chunks));
      equal(noSize.status, 400);
      match(noSize.text, /size must be a non-negative integer/);
      const badSha = await post(node, wire({ ...good, sha256: "xyz" }, chunks));
      equal(badSha.status, 400);
      match(badSha.text, /sha256 must be 64 lowercase hex digits/);
      const badMeta = await post(node, wire({ ...good, meta: { k: 1 } }, chunks));
      equal(badMeta.status, 400);
      match(badMeta.text, /meta\.k must be a string/);
      const empty = await post(node, "");
      equal(empty.status, 400);
      await assertNothingStored(node, "ok.bin");

      // The connection drops in the middle of the body.
      const ac = new AbortController();
      let sent = 0;
      const dropping = new ReadableStream<Uint8Array>({
        pull(c) {
          if (sent === 0) {
            c.enqueue(new TextEncoder().encode(wire(good, [chunks[0]], false)));
            sent++;
          } else setTimeout(() => ac.abort(), 200);
        },
      });
      await tfetch(`${node.url}/_cdn/upload`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}` },
        body: dropping,
        signal: ac.signal,
      }).then((r) => r.body?.cancel(), () => {});
      // Give the node a moment to see the reset, then check nothing is there.
      for (let i = 0; i < 20 && [...Deno.readDirSync(`${dir}/objects/tmp`)].length > 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      await assertNothingStored(node, "ok.bin");

      // API paths cannot be shadowed by GETs of uploads, and the good upload works.
      const fine = await post(node, wire(good, chunks));
      equal(fine.status, 201, fine.text);
      const served = await get(`${node.url}/ok.bin`);
      equal(served.status, 200);
      equal(await sha256(served.body), good.sha256);
    } finally {
      await stopAll([node]);
    }
  });
});

Deno.test("upload CLI: exit codes, unchanged re-upload, new version, delete", async () => {
  await withTempDir(async (dir) => {
    const node = await startNode("c", `${dir}/node`, ["--max-upload-bytes", "1MiB"]);
    try {
      const file = `${dir}/hello.txt`;
      await Deno.writeFile(file, bytesOf(300_000, 3));
      const to = ["--to", node.url];

      let r = await runUpload([file, ...to]);
      equal(r.code, 3, r.err);
      match(r.err, /401 .*pass --token TOKEN/);
      r = await runUpload([file, ...to, "--token", "bad"]);
      equal(r.code, 3, r.err);
      match(r.err, /401 wrong token/);
      r = await runUpload([`${dir}/missing.txt`, ...to, "--token", TOKEN]);
      equal(r.code, 2, r.err);
      match(r.err, /cannot read .*missing\.txt/);
      r = await runUpload([file, ...to, "--token", TOKEN, "--name", "../up"]);
      equal(r.code, 2, r.err);
      match(r.err, /"\.\." segment/);
      r = await runUpload([file, "--to", "http://127.0.0.1:9", "--token", TOKEN]);
      equal(r.code, 4, r.err);
      match(r.err, /cannot reach http:\/\/127\.0\.0\.1:9/);
      r = await runUpload([file, ...to, "--meta", "novalue"]);
      equal(r.code, 2, r.err);
      const huge = `${dir}/huge.bin`;
      await Deno.writeFile(huge, new Uint8Array(1024 * 1024 + 1));
      r = await runUpload([huge, ...to, "--token", TOKEN]);
      equal(r.code, 3, r.err);
      match(r.err, /413 .*--max-upload-bytes/);

      // Stored, with metadata and progress lines (stderr is not a terminal here).
      const args = [file, ...to, "--token", TOKEN, "--chunk-bytes", "65536", "--meta", "a=1"];
      r = await runUpload(args);
      equal(r.code, 0, r.err);
      match(r.out, /^stored hello\.txt: 300000 bytes/);
      match(r.err, /hello\.txt: 100% \(300000 of 300000 bytes\)/);
      const info = await (await tfetch(`${node.url}/_cdn/files/hello.txt`)).json();
      deepStrictEqual(
        [info.size, info.contentType, info.meta],
        [300_000, "text/plain; charset=utf-8", { a: "1" }],
      );
      const v1 = info.version;
      let served = await get(`${node.url}/hello.txt`);
      equal(await sha256(served.body), info.sha256);
      equal(served.headers.get("etag"), `"${info.sha256}"`);
      const inm = await tfetch(`${node.url}/hello.txt`, {
        headers: { "if-none-match": `"${info.sha256}"` },
      });
      await inm.body?.cancel();
      equal(inm.status, 304);
      // A client asking to revalidate still gets the upload (the node is its origin).
      const nc = await tfetch(`${node.url}/hello.txt`, {
        headers: { "cache-control": "no-cache" },
      });
      equal(await sha256(new Uint8Array(await nc.arrayBuffer())), info.sha256);

      // Identical re-upload: a no-op, the version stays.
      r = await runUpload(args);
      equal(r.code, 0, r.err);
      match(r.out, /^unchanged: hello\.txt/);
      deepStrictEqual(
        (await (await tfetch(`${node.url}/_cdn/files/hello.txt`)).json()).version,
        v1,
      );

      // New content: replaces the old version.
      const v2body = bytesOf(200_000, 4);
      await Deno.writeFile(file, v2body);
      r = await runUpload(args);
      equal(r.code, 0, r.err);
      served = await get(`${node.url}/hello.txt`);
      equal(await sha256(served.body), await sha256(v2body));
      const info2 = await (await tfetch(`${node.url}/_cdn/files/hello.txt`)).json();
      ok(info2.version.ts > v1.ts);

      // A POST to an uploaded name (forwarded to the origin) does not unpin it.
      await (await tfetch(`${node.url}/hello.txt`, { method: "POST", body: "x" })).body?.cancel();
      served = await get(`${node.url}/hello.txt`);
      equal(served.status, 200);

      // Delete; a second delete (or one of a name never received here) leaves a newer
      // tombstone: it must win over a copy still on its way from another node.
      r = await runUpload(["--delete", "hello.txt", ...to, "--token", TOKEN]);
      equal(r.code, 0, r.err);
      match(r.out, /deleted hello\.txt/);
      equal((await get(`${node.url}/hello.txt`)).status, 502); // back to the (absent) origin
      r = await runUpload(["--delete", "hello.txt", ...to, "--token", TOKEN]);
      equal(r.code, 0, r.err);
      r = await runUpload(["--delete", "never.txt", ...to, "--token", TOKEN]);
      equal(r.code, 0, r.err);
      const never = await tfetch(`${node.url}/_cdn/files/never.txt`);
      await never.body?.cancel();
      equal(never.status, 410);
      const gone = await tfetch(`${node.url}/_cdn/files/hello.txt`);
      equal(gone.status, 410);
      equal((await gone.json()).deleted, true);
    } finally {
      await stopAll([node]);
    }
  });
});

Deno.test("upload: a file larger than the cache budget is served from the store", async () => {
  await withTempDir(async (dir) => {
    const node = await startNode("s", `${dir}/node`, ["--cache-bytes", "64KiB"]);
    try {
      const bytes = bytesOf(300_000, 21);
      await Deno.writeFile(`${dir}/big.bin`, bytes);
      const r = await runUpload([`${dir}/big.bin`, "--to", node.url, "--token", TOKEN]);
      equal(r.code, 0, r.err);
      const got = await get(`${node.url}/big.bin`);
      deepStrictEqual([got.status, got.headers.get("x-cache")], [200, "PINNED"]);
      equal(await sha256(got.body), await sha256(bytes));
      const head = await tfetch(`${node.url}/big.bin`, { method: "HEAD" });
      deepStrictEqual([head.status, head.headers.get("content-length")], [200, "300000"]);
    } finally {
      await stopAll([node]);
    }
  });
});

Deno.test("upload: a node without --data says uploads need a store", async () => {
  const { startReplica } = await import("./_http_replica.ts");
  const proc = await startReplica(["-o", "http://127.0.0.1:9", "--admin-token", TOKEN]);
  try {
    const res = await tfetch(`${proc.url}/_cdn/upload`, { method: "POST", body: "{}" });
    equal(res.status, 503);
    match(await res.text(), /need a store: start with --data DIR/);
  } finally {
    await proc.close();
  }
});

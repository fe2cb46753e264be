/**
 * The upload protocol as the README's "Upload protocol" section describes it, spoken by a
 * third-party client with plain `fetch` (not our client): the NDJSON stream, `mtime` in ms,
 * 201 `stored` then 200 `unchanged`, the metadata route, the delete, and the refusals.
 */
import assert from "node:assert/strict";
import { startReplica } from "./_http_replica.ts";

const TOKEN = "protocol-token";

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("upload protocol: a third-party client with fetch", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nearcast_upload_protocol_" });
  const node = await startReplica([
    ...["-o", "127.0.0.1:9", "--data", dir, "--admin-token", TOKEN],
    ...["--max-upload-bytes", "1MiB"],
  ]);
  try {
    const bytes = new TextEncoder().encode("hello, CDN\n".repeat(1000));
    const header = {
      name: "docs/hello.txt",
      contentType: "text/plain; charset=utf-8",
      size: bytes.length,
      sha256: await sha256Hex(bytes),
      mtime: Date.UTC(2026, 0, 2, 3, 4, 5),
      meta: { team: "web" },
    };
    const lines = [JSON.stringify(header)];
    for (let offset = 0; offset < bytes.length; offset += 4096) {
      const data = btoa(String.fromCharCode(...bytes.subarray(offset, offset + 4096)));
      lines.push(JSON.stringify({ offset, data }));
    }
    lines.push(JSON.stringify({ end: true }));
    const upload = (token: string | null, body = lines.join("\n") + "\n") =>
      fetch(`${node.url}/_cdn/upload`, {
        method: "POST",
        headers: {
          "content-type": "application/x-ndjson",
          ...(token === null ? {} : { authorization: `Bearer ${token}` }),
        },
        body,
      });

    const noToken = await upload(null);
    assert.equal(noToken.status, 401);
    await noToken.body?.cancel();
    const wrongToken = await upload("nope");
    assert.equal(wrongToken.status, 401);
    await wrongToken.body?.cancel();
    const tooLarge = await upload(
      TOKEN,
      JSON.stringify({ ...header, size: 2 * 1024 * 1024 }) + "\n",
    );
    assert.equal(tooLarge.status, 413);
    assert.match(await tooLarge.text(), /^413: docs\/hello\.txt is 2097152 bytes, larger than/);
    const badHash = await upload(TOKEN, lines.join("\n").replace(header.sha256, "0".repeat(64)));
    assert.equal(badHash.status, 400);
    const why = await badHash.text();
    assert.match(why, /^400: .*(SHA-256|sha256)/i, why);

    const stored = await upload(TOKEN);
    assert.equal(stored.status, 201);
    const s = await stored.json();
    assert.deepEqual(
      { ...s, version: undefined },
      {
        status: "stored",
        name: "docs/hello.txt",
        path: "/docs/hello.txt",
        size: bytes.length,
        sha256: header.sha256,
        version: undefined,
        pushingTo: 0,
      },
    );
    assert.equal(typeof s.version.ts, "number");
    assert.equal(typeof s.version.node, "string");

    const again = await upload(TOKEN);
    assert.equal(again.status, 200);
    const a = await again.json();
    assert.deepEqual([a.status, a.name, a.path], [
      "unchanged",
      "docs/hello.txt",
      "/docs/hello.txt",
    ]);
    assert.deepEqual(a.version, s.version);

    const served = await fetch(`${node.url}/docs/hello.txt`);
    assert.deepEqual(new Uint8Array(await served.arrayBuffer()), bytes);
    assert.equal(served.headers.get("etag"), `"${header.sha256}"`);
    assert.equal(served.headers.get("last-modified"), new Date(header.mtime).toUTCString());
    assert.equal(served.headers.get("content-type"), header.contentType);

    const info = await (await fetch(`${node.url}/_cdn/files/docs/hello.txt`)).json();
    assert.deepEqual(
      [info.name, info.size, info.sha256, info.mtime, info.contentType, info.meta, info.path],
      [
        header.name,
        header.size,
        header.sha256,
        header.mtime,
        header.contentType,
        header.meta,
        "/docs/hello.txt",
      ],
    );

    const del = await fetch(`${node.url}/_cdn/files/docs/hello.txt`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(del.status, 200);
    const d = await del.json();
    assert.deepEqual([d.status, d.name, d.wasHeld], ["deleted", "docs/hello.txt", true]);
    const gone = await fetch(`${node.url}/_cdn/files/docs/hello.txt`);
    assert.equal(gone.status, 410);
    await gone.body?.cancel();
  } finally {
    await node.close();
    await Deno.remove(dir, { recursive: true });
  }
});

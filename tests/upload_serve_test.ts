/**
 * Uploads are served by the same code as cached objects: byte ranges (single, multipart,
 * unsatisfiable, If-Range) and conditional requests work whether the upload is in the cache
 * index or only in the store (larger than the budget), before and after a restart.
 */
import { deepStrictEqual, equal, match } from "node:assert/strict";
import {
  bytesOf,
  runUpload,
  startNode,
  stopAll,
  type TestNode,
  tfetch,
  TOKEN,
  withTempDir,
} from "./_upload_cluster.ts";

async function checkServing(
  node: TestNode,
  name: string,
  bytes: Uint8Array,
  xcache: string,
): Promise<void> {
  const url = `${node.url}/${name}`;
  const full = await tfetch(url);
  deepStrictEqual([full.status, full.headers.get("x-cache")], [200, xcache]);
  const etag = full.headers.get("etag")!;
  match(etag, /^"[0-9a-f]{64}"$/);
  await full.body?.cancel();

  const one = await tfetch(url, { headers: { range: "bytes=10-19" } });
  deepStrictEqual(
    [one.status, one.headers.get("content-range"), one.headers.get("content-length")],
    [206, `bytes 10-19/${bytes.length}`, "10"],
    `${name}: single range`,
  );
  deepStrictEqual(new Uint8Array(await one.arrayBuffer()), bytes.subarray(10, 20));

  const suffix = await tfetch(url, { headers: { range: "bytes=-3" } });
  equal(suffix.status, 206);
  deepStrictEqual(new Uint8Array(await suffix.arrayBuffer()), bytes.subarray(-3));

  const multi = await tfetch(url, { headers: { range: "bytes=0-1,5-6" } });
  equal(multi.status, 206);
  const ct = multi.headers.get("content-type")!;
  match(ct, /^multipart\/byteranges; boundary=/);
  const text = new TextDecoder("latin1").decode(await multi.arrayBuffer());
  match(text, new RegExp(`Content-Range: bytes 0-1/${bytes.length}`));
  match(text, new RegExp(`Content-Range: bytes 5-6/${bytes.length}`));

  const bad = await tfetch(url, { headers: { range: `bytes=${bytes.length}-` } });
  await bad.body?.cancel();
  deepStrictEqual([bad.status, bad.headers.get("content-range")], [416, `bytes */${bytes.length}`]);

  const inm = await tfetch(url, { headers: { "if-none-match": etag } });
  await inm.body?.cancel();
  deepStrictEqual([inm.status, inm.headers.get("etag")], [304, etag], `${name}: If-None-Match`);

  const ims = await tfetch(url, {
    headers: { "if-modified-since": full.headers.get("last-modified")! },
  });
  await ims.body?.cancel();
  equal(ims.status, 304, `${name}: If-Modified-Since`);

  const ifRange = await tfetch(url, { headers: { range: "bytes=0-0", "if-range": etag } });
  equal(ifRange.status, 206);
  deepStrictEqual(new Uint8Array(await ifRange.arrayBuffer()), bytes.subarray(0, 1));
  const stale = await tfetch(url, { headers: { range: "bytes=0-0", "if-range": '"other"' } });
  equal(stale.status, 200, `${name}: If-Range with another tag serves the whole body`);
  equal((await stale.arrayBuffer()).byteLength, bytes.length);

  const head = await tfetch(url, { method: "HEAD", headers: { range: "bytes=0-9" } });
  deepStrictEqual([head.status, head.headers.get("content-length")], [206, "10"]);
}

Deno.test("upload serving: ranges and conditionals on uploads in the index and store-only", async () => {
  await withTempDir(async (dir) => {
    // 64 KiB budget: the small file fits in the index, the big one is served from the store.
    let node = await startNode("s", `${dir}/node`, ["--cache-bytes", "64KiB"]);
    const small = bytesOf(5_000, 3);
    const big = bytesOf(300_000, 4);
    await Deno.writeFile(`${dir}/small.bin`, small);
    await Deno.writeFile(`${dir}/big.bin`, big);
    try {
      for (const f of ["small.bin", "big.bin"]) {
        const r = await runUpload([`${dir}/${f}`, "--to", node.url, "--token", TOKEN]);
        equal(r.code, 0, r.err);
      }
      await checkServing(node, "small.bin", small, "HIT");
      await checkServing(node, "big.bin", big, "PINNED");
      await stopAll([node]);
      node = await startNode("s", `${dir}/node`, ["--cache-bytes", "64KiB"]);
      await checkServing(node, "big.bin", big, "PINNED");
      await checkServing(node, "small.bin", small, "HIT");
    } finally {
      await stopAll([node]);
    }
  });
});

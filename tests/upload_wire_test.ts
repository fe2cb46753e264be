/**
 * Unit tests of the upload area's pure parts: the wire format (round trip over random chunk
 * and piece sizes, hostile streams), name and header validation, versions and the hybrid
 * clock, and the progress reporter (terminal bar and plain lines).
 */
import { deepStrictEqual, equal, match, ok, rejects } from "node:assert/strict";
import {
  decodeObjectStream,
  encodeObjectStream,
  MAX_LINE_BYTES,
  readLines,
  WireError,
} from "../lib/upload/wire.ts";
import { checkHeader, nameError, nameToPath } from "../lib/upload/validate.ts";
import { compareVersions, HybridClock } from "../lib/replication/version.ts";
import { progressReporter } from "../lib/upload/client.ts";
import { bytesOf, sha256 } from "./_upload_cluster.ts";
import { collect, header, rechunk } from "./_wire_streams.ts";

Deno.test("wire: round trip over random chunk and network piece sizes", async () => {
  let seed = 42;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  for (let round = 0; round < 30; round++) {
    const size = rand(5) === 0 ? 0 : rand(200_000);
    const body = bytesOf(size, round + 1);
    const h = await header(body);
    const sources = [body.subarray(0, size >> 1), body.subarray(size >> 1)];
    const chunkSize = 1 + rand(70_000);
    const wireBytes = await collect(encodeObjectStream(h, sources, chunkSize));
    const pieces = [1 + rand(10), 1 + rand(5000), 1 + rand(100_000)];
    const d = await decodeObjectStream(rechunk(wireBytes, pieces));
    deepStrictEqual(d.header, h as unknown as Record<string, unknown>);
    const out = await collect(d.body);
    equal(out.length, size, `round ${round}`);
    equal(await sha256(out), h.sha256, `round ${round}`);
  }
});

Deno.test("wire: hostile streams fail with a WireError", async () => {
  const body = bytesOf(1000, 5);
  const h = await header(body);
  const enc = new TextEncoder();
  const cases: [string, string, RegExp][] = [
    ["no end line", `${JSON.stringify(h)}\n`, /truncated after 0 bytes/],
    ["gap", `${JSON.stringify(h)}\n{"offset":10,"data":"AAAA"}\n`, /expected offset 0, got 10/],
    [
      "over size",
      `${JSON.stringify({ ...h, size: 2 })}\n{"offset":0,"data":"AAAA"}\n`,
      /longer than the declared size 2/,
    ],
    ["bad base64", `${JSON.stringify(h)}\n{"offset":0,"data":"A=AA"}\n`, /base64/],
    ["not an object", `${JSON.stringify(h)}\n[1]\n`, /expected offset 0/],
    ["after end", `${JSON.stringify(h)}\n{"end":true}\n{"end":true}\n`, /data after the end line/],
    ["empty chunk", `${JSON.stringify(h)}\n{"offset":0,"data":""}\n`, /empty chunk at 0/],
    [
      "empty chunk, spaced",
      `${JSON.stringify(h)}\n{"offset": 0, "data": ""}\n`,
      /empty chunk at 0/,
    ],
  ];
  for (const [what, text, re] of cases) {
    const d = await decodeObjectStream(ReadableStream.from([enc.encode(text)]));
    await rejects(
      collect(d.body),
      (e: Error) => e instanceof WireError && re.test(e.message),
      what,
    );
  }
  await rejects(decodeObjectStream(ReadableStream.from([])), /empty body/);
  await rejects(decodeObjectStream(ReadableStream.from([enc.encode("[]\n")])), /JSON object/);
  // A line without a newline longer than the limit is refused before it is all buffered.
  const endless = new ReadableStream<Uint8Array>({
    pull(c) {
      c.enqueue(new Uint8Array(1024 * 1024).fill(0x41));
    },
  });
  await rejects(
    (async () => {
      for await (const _ of readLines(endless, MAX_LINE_BYTES)) { /* none */ }
    })(),
    /line longer than/,
  );
});

Deno.test("validate: names and headers", () => {
  for (const good of ["a", "a.txt", "dir/sub/file.tar.gz", "spaces ok.txt", "ünïcode/名前.txt"]) {
    equal(nameError(good), null, good);
  }
  const bad: [unknown, RegExp][] = [
    ["", /non-empty/],
    [7, /non-empty string/],
    ["..", /"\.\."/],
    ["a/..", /"\.\."/],
    ["/etc/passwd", /relative/],
    ["a\\b", /relative/],
    ["C:x", /relative/],
    ["a\nb", /control/],
    ["a\u007fb", /control/],
    ["./a", /"\." or empty/],
    ["a/", /"\." or empty/],
    ["a?b", /"\?"/],
    ["a%2e", /"%"/],
    ["_cdn", /reserved/],
    ["_cdn/x", /reserved/],
  ];
  for (const [name, re] of bad) match(nameError(name) ?? "accepted", re, String(name));
  equal(nameToPath("a b/c.txt"), "/a%20b/c.txt");
  const h = { name: "x", size: 1, sha256: "a".repeat(64) };
  ok(typeof checkHeader(h, false) === "object");
  match(checkHeader(h, true) as string, /version must be an object/);
  match(checkHeader({ ...h, contentType: "a\nb" }, false) as string, /contentType/);
  match(checkHeader({ ...h, mtime: -1 }, false) as string, /mtime/);
  match(checkHeader({ ...h, meta: [] }, false) as string, /meta must be a JSON object/);
  const tomb = checkHeader({ name: "x", deleted: true, version: { ts: 1, node: "a" } }, true);
  equal(typeof tomb === "object" && tomb.deleted, true);
});

Deno.test("versions: total order and a clock that never repeats or goes back", () => {
  ok(compareVersions({ ts: 1, node: "b" }, { ts: 2, node: "a" }) < 0);
  ok(compareVersions({ ts: 2, node: "b" }, { ts: 2, node: "a" }) > 0);
  equal(compareVersions({ ts: 2, node: "a" }, { ts: 2, node: "a" }), 0);
  let t = 1000;
  const clock = new HybridClock("n", () => t);
  const v1 = clock.next();
  const v2 = clock.next();
  deepStrictEqual([v1.ts, v2.ts], [1000, 1001]);
  t = 500; // the wall clock steps back
  ok(clock.next().ts > v2.ts);
  clock.observe(5000); // another node is ahead
  equal(clock.next().ts, 5001);
});

Deno.test("progress: a redrawn bar on a terminal, plain lines otherwise", () => {
  const dec = new TextDecoder();
  const sink = (tty: boolean) => {
    const out: string[] = [];
    return {
      out,
      isTerminal: () => tty,
      writeSync: (p: Uint8Array) => (out.push(dec.decode(p)), p.length),
    };
  };
  let t = 0;
  const plain = sink(false);
  const p = progressReporter("f", plain, () => t);
  for (let sent = 0; sent <= 100; sent += 5) p.update(sent, 100);
  p.done();
  equal(plain.out.length, 11);
  equal(plain.out[10], "f: 100% (100 of 100 bytes)\n");
  const tty = sink(true);
  const bar = progressReporter("f", tty, () => t);
  bar.update(10, 100);
  bar.update(20, 100); // within 100 ms: not redrawn
  t = 1000;
  bar.update(100, 100);
  bar.done();
  equal(tty.out.length, 3);
  match(tty.out[1], /^\rf \[#{30}\] 100% 0\.0\/0\.0 MiB/);
  equal(tty.out[2], "\n");
});

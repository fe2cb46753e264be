/**
 * End-to-end: `--data DIR` persistence. A restarted replica serves what it cached before
 * without the origin; a replica killed with SIGKILL while a big body is being written through
 * to its store (part of it on disk, part already sent) never serves a truncated one after
 * restart.
 */
import { deepStrictEqual as assertEquals, equal, ok } from "node:assert/strict";
import { startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";

const BIG = new Uint8Array(200_000).map((_, i) => (i * 7) % 256);
/** Above the cache's FILE_SERVE_THRESHOLD: hits stream it from the store's file. */
const FILE = new Uint8Array(1_500_000).map((_, i) => (i * 31) % 256);
const HUGE = new Uint8Array(6 * 1024 * 1024).map((_, i) => (i * 13 + (i >> 10)) % 256);

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

Deno.test("http persist: a restarted replica serves its cache without the origin", async () => {
  const origin = await startOrigin({
    "/small": { headers: { "cache-control": "max-age=600", etag: '"s"' }, body: "small body" },
    "/big": {
      headers: { "cache-control": "max-age=600", "content-type": "application/octet-stream" },
      body: BIG,
    },
    "/file": { headers: { "cache-control": "max-age=600" }, body: FILE },
    "/vary": {
      headers: { "cache-control": "max-age=600", vary: "Accept-Language" },
      body: (req) => `lang=${req.headers.get("accept-language")}`,
    },
  });
  const dir = await Deno.makeTempDir({ prefix: "nearcast_http_persist_" });
  let replica = await startReplica(["-o", origin.url, "--id", "p", "--data", dir]);
  try {
    for (const p of ["/small", "/big", "/file"]) await (await fetch(replica.url + p)).arrayBuffer();
    // Before the restart too, the file-backed body is served from the store's file.
    const fromFile = await fetch(replica.url + "/file");
    equal(fromFile.headers.get("x-cache"), "HIT");
    ok(same(new Uint8Array(await fromFile.arrayBuffer()), FILE));
    await (await fetch(replica.url + "/vary", { headers: { "accept-language": "de" } })).text();
    await replica.close();
    replica = await startReplica(["-o", origin.url, "--id", "p", "--data", dir]);
    ok(
      replica.lines.some((l) => l === `http: loaded 4 cached entries from ${dir}`),
      replica.lines.join("\n"),
    );
    const small = await fetch(replica.url + "/small");
    assertEquals([small.headers.get("x-cache"), await small.text()], ["HIT", "small body"]);
    const big = await fetch(replica.url + "/big");
    equal(big.headers.get("x-cache"), "HIT");
    ok(same(new Uint8Array(await big.arrayBuffer()), BIG));
    const range = await fetch(replica.url + "/big", { headers: { range: "bytes=100-104" } });
    assertEquals([range.status, [...new Uint8Array(await range.arrayBuffer())]], [206, [
      ...BIG.subarray(100, 105),
    ]]);
    const file = await fetch(replica.url + "/file");
    assertEquals([file.headers.get("x-cache"), file.headers.get("content-length")], [
      "HIT",
      "1500000",
    ]);
    ok(same(new Uint8Array(await file.arrayBuffer()), FILE));
    const fileRange = await fetch(replica.url + "/file", { headers: { range: "bytes=-2" } });
    assertEquals([...new Uint8Array(await fileRange.arrayBuffer())], [...FILE.subarray(-2)]);
    const de = await fetch(replica.url + "/vary", { headers: { "accept-language": "de" } });
    assertEquals([de.headers.get("x-cache"), await de.text()], ["HIT", "lang=de"]);
    const inm = await fetch(replica.url + "/small", { headers: { "if-none-match": '"s"' } });
    await inm.body?.cancel();
    equal(inm.status, 304);
    for (const p of ["/small", "/big", "/file", "/vary"]) equal(origin.count(p), 1, p);
  } finally {
    await replica.close();
    await origin.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Paths of the files under `dir` of exactly `size` bytes. */
async function filesOfSize(dir: string, size: number): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await filesOfSize(p, size));
    else if (e.isFile && (await Deno.stat(p)).size === size) out.push(p);
  }
  return out;
}

Deno.test("http persist: a stored body corrupted on disk is refetched, never served", async () => {
  const origin = await startOrigin({
    "/file": { headers: { "cache-control": "max-age=600" }, body: FILE },
  });
  const dir = await Deno.makeTempDir({ prefix: "nearcast_http_corrupt_" });
  let replica = await startReplica(["-o", origin.url, "--id", "p", "--data", dir]);
  try {
    await (await fetch(replica.url + "/file")).arrayBuffer();
    await replica.close();
    const files = await filesOfSize(dir, FILE.byteLength);
    equal(files.length, 1, "one body file");
    const f = await Deno.open(files[0], { read: true, write: true });
    await f.seek(1000, Deno.SeekMode.Start);
    await f.write(new Uint8Array([FILE[1000] ^ 0xff]));
    f.close();
    replica = await startReplica(["-o", origin.url, "--id", "p", "--data", dir]);
    const res = await fetch(replica.url + "/file");
    const body = new Uint8Array(await res.arrayBuffer());
    ok(same(body, FILE), "the correct body");
    equal(origin.count("/file"), 2);
    const again = await fetch(replica.url + "/file");
    equal(again.headers.get("x-cache"), "HIT");
    ok(same(new Uint8Array(await again.arrayBuffer()), FILE));
  } finally {
    await replica.close();
    await origin.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Sizes of the store's temporary files (bodies being written) under `dir`. */
async function tempFileSizes(dir: string): Promise<number[]> {
  const out: number[] = [];
  try {
    for await (const e of Deno.readDir(`${dir}/objects/tmp`)) {
      try {
        out.push((await Deno.stat(`${dir}/objects/tmp/${e.name}`)).size);
      } catch { /* published meanwhile */ }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out;
}

Deno.test("http persist: SIGKILL mid-write never leaves a truncated body", async () => {
  const origin = await startOrigin({
    "/huge": {
      headers: { "cache-control": "max-age=600", "content-length": String(HUGE.length) },
      body: HUGE,
      chunks: 24,
      chunkDelayMs: 25,
    },
  });
  const dir = await Deno.makeTempDir({ prefix: "nearcast_http_kill_" });
  try {
    // Kill when the body being written through reaches a quarter, half and three quarters.
    for (const fraction of [0.25, 0.5, 0.75]) {
      const victim = await startReplica(["-o", origin.url, "--id", "k", "--data", dir]);
      let received = 0;
      let partial: number[] = [];
      try {
        const res = await fetch(victim.url + "/huge");
        equal(res.headers.get("x-cache"), "MISS");
        const reader = res.body!.getReader();
        const reading = (async () => {
          try {
            while (true) {
              const r = await reader.read();
              if (r.done) break;
              received += r.value.byteLength;
            }
          } catch { /* killed */ }
        })();
        for (let i = 0; i < 2000; i++) {
          const sizes = await tempFileSizes(dir);
          if (sizes.some((n) => n >= HUGE.length * fraction)) break;
          await new Promise((r) => setTimeout(r, 5));
        }
        const atKill = received;
        await victim.kill9();
        await reading;
        // What the crash left on disk: a temporary file holding part of the body, while the
        // client already had part of it (the body is served while it is written).
        partial = await tempFileSizes(dir);
        equal(partial.length, 1, `one temporary file at the kill: ${partial}`);
        ok(
          partial[0] >= HUGE.length * fraction && partial[0] < HUGE.length,
          `kill at ${fraction}: temporary file of ${partial[0]} of ${HUGE.length} bytes`,
        );
        ok(atKill > 0 && atKill < HUGE.length, `client had ${atKill} bytes at the kill`);
      } finally {
        await victim.close();
      }
      const again = await startReplica(["-o", origin.url, "--id", "k", "--data", dir]);
      try {
        assertEquals(await tempFileSizes(dir), [], "the restart removed the partial file");
        const tail = await fetch(again.url + "/huge", { headers: { range: "bytes=-100" } });
        const tailBody = new Uint8Array(await tail.arrayBuffer());
        equal(tail.status, 206);
        ok(same(tailBody, HUGE.subarray(-100)), "the last bytes of the whole body");
        const res = await fetch(again.url + "/huge");
        const body = new Uint8Array(await res.arrayBuffer());
        equal(res.status, 200);
        ok(same(body, HUGE), `after a kill at ${fraction}: ${body.byteLength} bytes`);
        const hit = await fetch(again.url + "/huge");
        equal(hit.headers.get("x-cache"), "HIT");
        ok(same(new Uint8Array(await hit.arrayBuffer()), HUGE));
      } finally {
        await again.close();
      }
      // Start the next round from nothing cached.
      await Deno.remove(dir, { recursive: true });
      await Deno.mkdir(dir);
    }
  } finally {
    await origin.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("http persist: after a restart, a body under 1 MiB read once is served from memory", async () => {
  const origin = await startOrigin({
    "/big": { headers: { "cache-control": "max-age=600" }, body: BIG },
  });
  const dir = await Deno.makeTempDir({ prefix: "nearcast_http_reload_" });
  let replica = await startReplica(["-o", origin.url, "--id", "p", "--data", dir]);
  try {
    await (await fetch(replica.url + "/big")).arrayBuffer();
    await replica.close();
    replica = await startReplica(["-o", origin.url, "--id", "p", "--data", dir]);
    const first = await fetch(replica.url + "/big");
    equal(first.headers.get("x-cache"), "HIT");
    ok(same(new Uint8Array(await first.arrayBuffer()), BIG));
    // The store keeps this 200 KB body in a file; once read, hits no longer open it.
    const files = await filesOfSize(dir, BIG.byteLength);
    equal(files.length, 1, "one body file");
    await Deno.remove(files[0]);
    for (let i = 0; i < 3; i++) {
      const hit = await fetch(replica.url + "/big");
      equal(hit.headers.get("x-cache"), "HIT");
      ok(same(new Uint8Array(await hit.arrayBuffer()), BIG));
    }
    equal(origin.count("/big"), 1);
  } finally {
    await replica.close();
    await origin.close();
    await Deno.remove(dir, { recursive: true });
  }
});

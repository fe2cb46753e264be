/**
 * End-to-end: `--slice-size`. A range miss fetches the aligned slices covering it from the
 * origin (206s, each stored as its own entry) and answers from them; later ranges over stored
 * slices are hits; two ranges in different slices fetch only those two; slices of two
 * representations (the ETag changed) are never combined; a slice whose body is cut is never
 * stored; `If-Range` is evaluated against the slices' validator; slice fetches are bounded.
 */
import { deepStrictEqual as assertEquals, equal, ok, rejects } from "node:assert/strict";
import { parseByteranges, type Route, startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";

const K = 1024;
const SLICE = 64 * K;
const SIZE = 300 * K; // five slices, the last one 44 KiB
const body = (upper: boolean) =>
  new Uint8Array(SIZE).map((_, i) => (upper ? 65 : 97) + (i * 7 + (i >> 10)) % 26);
const V1 = body(false);
const V2 = body(true);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("http slices: stored 206s, hits, validators, cut slices, If-Range", async (t) => {
  let version = 1;
  const obj: Route = {
    ranges: true,
    headers: () => ({
      "cache-control": "max-age=600",
      "content-type": "application/x-test",
      etag: `"v${version}"`,
    }),
    body: () => version === 1 ? V1 : V2,
  };
  const cut: Route = {
    ranges: true,
    headers: { "cache-control": "max-age=600", etag: '"c"' },
    body: V1,
  };
  const origin = await startOrigin({
    "/obj": obj,
    "/cut": cut,
    "/small": { ...cut, body: V1.slice(0, 1000) },
    "/no-ranges": { ...cut, ranges: false },
    "/no-validator": { ranges: true, headers: { "cache-control": "max-age=600" }, body: V1 },
  });
  const data = await Deno.makeTempDir({ prefix: "i15-slice-" });
  const args = ["-o", origin.url, "--id", "slice", "--index", "ts", "--data", data];
  let replica = await startReplica([...args, "--slice-size", "64KiB"]);
  const get = async (path: string, headers: Record<string, string>) => {
    const res = await fetch(`${replica.url}${path}`, {
      headers,
      signal: AbortSignal.timeout(20_000),
    });
    return { res, bytes: new Uint8Array(await res.arrayBuffer()) };
  };
  const rangesSeen = (path: string) =>
    origin.seen.filter((s) => s.path === path).map((s) => s.headers.get("range"));
  try {
    await t.step("a 206 from the origin is stored; the same range is then a HIT", async () => {
      const a = await get("/obj", { range: "bytes=100-199" });
      equal(a.res.status, 206);
      equal(a.res.headers.get("content-range"), `bytes 100-199/${SIZE}`);
      equal(a.res.headers.get("x-cache"), "MISS");
      equal(a.res.headers.get("etag"), '"v1"');
      assertEquals(a.bytes, V1.slice(100, 200));
      assertEquals(rangesSeen("/obj"), [`bytes=0-${SLICE - 1}`]);
      const b = await get("/obj", { range: "bytes=100-199" });
      equal(b.res.status, 206);
      equal(b.res.headers.get("x-cache"), "HIT");
      assertEquals(b.bytes, V1.slice(100, 200));
      equal(origin.count("/obj"), 1);
    });

    await t.step("two ranges in different slices fetch only those slices", async () => {
      const ranges = "bytes=70000-70009,200000-200009";
      const a = await get("/obj", { range: ranges });
      equal(a.res.status, 206);
      const parts = parseByteranges(a.res.headers.get("content-type"), text(a.bytes));
      assertEquals(parts.map((p) => [p.contentRange, p.contentType, p.body]), [
        [`bytes 70000-70009/${SIZE}`, "application/x-test", text(V1.slice(70000, 70010))],
        [`bytes 200000-200009/${SIZE}`, "application/x-test", text(V1.slice(200000, 200010))],
      ]);
      assertEquals(
        rangesSeen("/obj").slice(1).sort(),
        [
          `bytes=${SLICE}-${2 * SLICE - 1}`,
          `bytes=${3 * SLICE}-${4 * SLICE - 1}`,
        ].sort(),
      );
      const b = await get("/obj", { range: ranges });
      equal(b.res.headers.get("x-cache"), "HIT");
      const again = parseByteranges(b.res.headers.get("content-type"), text(b.bytes));
      assertEquals(again.map((p) => p.body), parts.map((p) => p.body));
      // A range across a slice boundary, from two stored slices.
      const c = await get("/obj", { range: "bytes=65530-65545" });
      equal(c.res.headers.get("x-cache"), "HIT");
      assertEquals(c.bytes, V1.slice(65530, 65546));
      equal(origin.count("/obj"), 3);
      // A suffix range: the last slice, 44 KiB long.
      const d = await get("/obj", { range: "bytes=-100" });
      equal(d.res.headers.get("content-range"), `bytes ${SIZE - 100}-${SIZE - 1}/${SIZE}`);
      assertEquals(d.bytes, V1.slice(SIZE - 100));
      equal(rangesSeen("/obj").at(-1), `bytes=${4 * SLICE}-${5 * SLICE - 1}`);
      equal(origin.count("/obj"), 4);
      // Past the end: 416 with the length.
      const e = await get("/obj", { range: `bytes=${SIZE}-` });
      equal(e.res.status, 416);
      equal(e.res.headers.get("content-range"), `bytes */${SIZE}`);
      // A first range past the end, a second one within: 206 for the second.
      const f = await get("/obj", { range: `bytes=${SIZE + SLICE}-${SIZE + SLICE + 10},0-4` });
      equal(f.res.status, 206);
      equal(f.res.headers.get("content-range"), `bytes 0-4/${SIZE}`);
      assertEquals(f.bytes, V1.slice(0, 5));
    });

    await t.step("an ETag change between slices never mixes representations", async () => {
      version = 2;
      // Slice 1 is stored (v1, fresh); slice 2 comes from the origin as v2.
      const a = await get("/obj", { range: "bytes=130000-140000" });
      equal(a.res.status, 206);
      equal(a.res.headers.get("etag"), '"v2"');
      assertEquals(a.bytes, V2.slice(130000, 140001));
      // The v1 slices were dropped: slice 0 comes again, as v2.
      const b = await get("/obj", { range: "bytes=100-199" });
      equal(b.res.headers.get("x-cache"), "MISS");
      assertEquals(b.bytes, V2.slice(100, 200));
      const c = await get("/obj", { range: "bytes=0-199999" });
      assertEquals(c.bytes, V2.slice(0, 200000));
    });

    await t.step("If-Range: the range when it holds, the whole 200 when not", async () => {
      const a = await get("/obj", { range: "bytes=5-9", "if-range": '"v2"' });
      equal(a.res.status, 206);
      assertEquals(a.bytes, V2.slice(5, 10));
      const b = await get("/obj", { range: "bytes=5-9", "if-range": '"v1"' });
      equal(b.res.status, 200);
      equal(b.res.headers.get("content-range"), null);
      assertEquals(b.bytes, V2);
    });

    await t.step("a slice whose body is cut is never stored", async () => {
      cut.cutAfter = 1000;
      const a = await fetch(`${replica.url}/cut`, {
        headers: { range: "bytes=70000-70009" },
        signal: AbortSignal.timeout(20_000),
      });
      equal(a.status, 502);
      await a.body?.cancel();
      equal(origin.count("/cut"), 1);
      cut.cutAfter = undefined;
      const b = await get("/cut", { range: "bytes=70000-70009" });
      equal(b.res.status, 206);
      equal(b.res.headers.get("x-cache"), "MISS");
      assertEquals(b.bytes, V1.slice(70000, 70010));
      equal(origin.count("/cut"), 2);
      const c = await get("/cut", { range: "bytes=70000-70009" });
      equal(c.res.headers.get("x-cache"), "HIT");
      equal(origin.count("/cut"), 2);
    });

    await t.step("an object within one slice is stored whole", async () => {
      const a = await get("/small", { range: "bytes=10-19" });
      equal(a.res.status, 206);
      equal(a.res.headers.get("content-range"), "bytes 10-19/1000");
      assertEquals(a.bytes, V1.slice(10, 20));
      const b = await get("/small", {});
      equal(b.res.status, 200);
      equal(b.res.headers.get("x-cache"), "HIT");
      assertEquals(b.bytes, V1.slice(0, 1000));
      equal(origin.count("/small"), 1);
    });

    await t.step("an origin answering 200 to a slice request: the whole object", async () => {
      const a = await get("/no-ranges", { range: "bytes=10-19" });
      equal(a.res.status, 206);
      assertEquals(a.bytes, V1.slice(10, 20));
      equal(origin.count("/no-ranges"), 2); // the slice request, then the whole object
      const b = await get("/no-ranges", { range: "bytes=100000-100009" });
      equal(b.res.headers.get("x-cache"), "HIT");
      assertEquals(b.bytes, V1.slice(100000, 100010));
      equal(origin.count("/no-ranges"), 2);
    });

    await t.step("a 206 without a validator is not combined: the whole object", async () => {
      const a = await get("/no-validator", { range: "bytes=70000-70009" });
      equal(a.res.status, 206);
      assertEquals(a.bytes, V1.slice(70000, 70010));
      assertEquals(rangesSeen("/no-validator"), [`bytes=${SLICE}-${2 * SLICE - 1}`, null]);
    });

    await t.step("stored slices survive a restart", async () => {
      await replica.close();
      replica = await startReplica([...args, "--slice-size", "64KiB"]);
      const a = await get("/cut", { range: "bytes=70000-70009" });
      equal(a.res.headers.get("x-cache"), "HIT");
      assertEquals(a.bytes, V1.slice(70000, 70010));
      equal(origin.count("/cut"), 2);
    });
  } finally {
    await replica.close();
    await origin.close();
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("http slices: --slice-fetches bounds slice requests; one fetch per slice", async () => {
  const slow = {
    ranges: true,
    delayMs: 150,
    headers: { "cache-control": "max-age=600", etag: '"x"' },
    body: V1,
  };
  const origin = await startOrigin({ "/obj": slow, "/obj2": slow });
  const replica = await startReplica([
    "-o",
    origin.url,
    "--id",
    "slicebound",
    "--index",
    "ts",
    "--slice-size",
    "64KiB",
    "--slice-fetches",
    "2",
  ]);
  try {
    const res = await fetch(`${replica.url}/obj`, {
      headers: { range: `bytes=0-${SIZE - 1}` },
      signal: AbortSignal.timeout(20_000),
    });
    equal(res.status, 206);
    assertEquals(new Uint8Array(await res.arrayBuffer()), V1);
    equal(origin.count("/obj"), 5);
    ok(origin.maxInFlight() === 2, `slice requests at once: ${origin.maxInFlight()}`);
    // Concurrent misses for one slice share its fetch.
    const all = await Promise.all(
      Array.from({ length: 5 }, () =>
        fetch(`${replica.url}/obj2`, {
          headers: { range: "bytes=70000-70009" },
          signal: AbortSignal.timeout(20_000),
        }).then(async (r) => [r.status, text(new Uint8Array(await r.arrayBuffer()))])),
    );
    for (const r of all) assertEquals(r, [206, text(V1.slice(70000, 70010))]);
    equal(origin.count("/obj2"), 1);
    // A suffix range once the length is known: its own slice only.
    const tail = await fetch(`${replica.url}/obj2`, { headers: { range: "bytes=-100" } });
    assertEquals(new Uint8Array(await tail.arrayBuffer()), V1.slice(SIZE - 100));
    equal(origin.count("/obj2"), 2);
    equal(origin.seen.at(-1)?.headers.get("range"), `bytes=${4 * SLICE}-${5 * SLICE - 1}`);
  } finally {
    await replica.close();
    await origin.close();
  }
});

Deno.test("http slices: failures after the answer started abort it; unstable validators", async (t) => {
  let n = 0;
  const origin = await startOrigin({
    "/late-cut": {
      ranges: true,
      cutRangesFrom: 2 * SLICE,
      headers: { "cache-control": "max-age=600", etag: '"x"' },
      body: V1,
    },
    "/changing": {
      ranges: true,
      headers: (_req, k) => ({ "cache-control": "max-age=600", etag: k >= 3 ? '"b"' : '"a"' }),
      body: V1,
    },
    "/flapping": {
      ranges: true,
      headers: () => ({ "cache-control": "max-age=600", etag: ++n % 2 === 1 ? '"a"' : '"b"' }),
      body: V1,
    },
  });
  // One slice resolved ahead: the answer starts before the third slice is fetched.
  const replica = await startReplica([
    "-o",
    origin.url,
    "--id",
    "slicefail",
    "--index",
    "ts",
    "--slice-size",
    "64KiB",
    "--slice-fetches",
    "1",
  ]);
  const whole = (path: string) =>
    fetch(`${replica.url}${path}`, {
      headers: { range: `bytes=0-${SIZE - 1}` },
      signal: AbortSignal.timeout(20_000),
    });
  try {
    await t.step("a slice cut after the answer started aborts it, and is not stored", async () => {
      const res = await whole("/late-cut");
      equal(res.status, 206);
      equal(res.headers.get("content-length"), String(SIZE));
      await rejects(res.arrayBuffer());
      const before = origin.count("/late-cut");
      const again = await fetch(`${replica.url}/late-cut`, {
        headers: { range: `bytes=${2 * SLICE}-${2 * SLICE + 9}` },
      });
      equal(again.status, 502);
      await again.body?.cancel();
      equal(origin.count("/late-cut"), before + 1);
    });
    await t.step("a validator changing while the answer is sent aborts it", async () => {
      const res = await whole("/changing");
      equal(res.status, 206);
      await rejects(res.arrayBuffer());
      await replica.waitFor(
        /\/changing changed while its slices were sent; response aborted/,
        5000,
      );
    });
    await t.step("slices that differ twice: the request goes to the origin as it is", async () => {
      // Four slices resolved ahead (the default): both slices are checked before answering.
      const ahead = await startReplica([
        "-o",
        origin.url,
        "--id",
        "sliceflap",
        "--index",
        "ts",
        "--slice-size",
        "64KiB",
      ]);
      try {
        const res = await fetch(`${ahead.url}/flapping`, {
          headers: { range: "bytes=100-70000" },
          signal: AbortSignal.timeout(20_000),
        });
        equal(res.status, 206);
        assertEquals(new Uint8Array(await res.arrayBuffer()), V1.slice(100, 70001));
        equal(origin.count("/flapping"), 5);
        equal(origin.seen.at(-1)?.headers.get("range"), "bytes=100-70000");
      } finally {
        await ahead.close();
      }
    });
  } finally {
    await replica.close();
    await origin.close();
  }
});

Deno.test("http slices: stale slices are revalidated, and stand in for a failing origin", async (t) => {
  const origin = await startOrigin({
    "/reval": {
      ranges: true,
      conditional: true,
      headers: { "cache-control": "max-age=0", etag: '"r"' },
      body: V1,
    },
  });
  const replica = await startReplica([
    "-o",
    origin.url,
    "--id",
    "slicestale",
    "--index",
    "ts",
    "--slice-size",
    "64KiB",
  ]);
  const get = async () => {
    const res = await fetch(`${replica.url}/reval`, {
      headers: { range: "bytes=70000-70009" },
      signal: AbortSignal.timeout(20_000),
    });
    return { res, bytes: new Uint8Array(await res.arrayBuffer()) };
  };
  try {
    await t.step("a stale slice is revalidated: 304, REVALIDATED", async () => {
      equal((await get()).res.headers.get("x-cache"), "MISS");
      const a = await get();
      equal(a.res.status, 206);
      equal(a.res.headers.get("x-cache"), "REVALIDATED");
      assertEquals(a.bytes, V1.slice(70000, 70010));
      equal(origin.count("/reval"), 2);
      const last = origin.seen.at(-1)!.headers;
      equal(last.get("if-none-match"), '"r"');
      equal(last.get("range"), `bytes=${SLICE}-${2 * SLICE - 1}`);
    });
    await t.step("origin down: the stale slice is served (--stale-on-error)", async () => {
      await origin.close();
      const a = await get();
      equal(a.res.status, 206);
      equal(a.res.headers.get("x-cache"), "STALE");
      assertEquals(a.bytes, V1.slice(70000, 70010));
      await replica.waitFor(
        /origin failure: GET \/reval \(slice 1\): .*served the stale slice/,
        5000,
      );
    });
  } finally {
    await replica.close();
    await origin.close();
  }
});

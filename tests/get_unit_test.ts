/**
 * The index client's download against stand-in servers on loopback (an index answering
 * `/locate` and replicas that cut transfers, change files or state wrong digests): resume with
 * Range and If-Range from the same holder, a changed file replaced instead of spliced, a
 * SHA-256 mismatch (exit 5, nothing kept), the exit codes for not found (3), no live holder (4)
 * and an unreachable index (6), resuming the part file of an earlier run, and the flags.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { download, type DownloadResult } from "../lib/get/download.ts";
import { EXIT, GetFailure } from "../lib/get/exit_codes.ts";
import { parseGetConfig } from "../lib/get/flags.ts";
import { UsageError } from "../lib/common/cli.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const b64 = (hex: string) =>
  btoa(String.fromCharCode(...hex.match(/../g)!.map((h) => parseInt(h, 16))));

function bytes(n: number, seed: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return b;
}

/** A replica stand-in: `answer(req, nth)` answers its nth request; every request is kept. */
function replica(answer: (req: Request, nth: number) => Response) {
  const seen: Request[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    seen.push(req);
    return answer(req, seen.length);
  });
  return { server, seen, url: (p: string) => `http://127.0.0.1:${server.addr.port}${p}` };
}

/** A body of `data` that breaks off after `cut` bytes (the replica died mid-transfer). */
function cutBody(data: Uint8Array<ArrayBuffer>, cut: number): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream({
    pull(c): Promise<void> | void {
      if (!sent) {
        sent = true;
        c.enqueue(data.slice(0, cut));
      } else {
        // Let the bytes reach the client before the connection breaks.
        return new Promise((r) => setTimeout(r, 300)).then(() => c.error(new Error("died")));
      }
    },
  });
}

/** Serves `data` like a replica: 200 or 206 for `Range: bytes=N-` when If-Range matches `etag`. */
function serve(req: Request, data: Uint8Array<ArrayBuffer>, etag: string, extra: HeadersInit = {}) {
  const h = new Headers(extra);
  h.set("etag", etag);
  const m = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
  const ifRange = req.headers.get("if-range");
  if (m && (ifRange === null || ifRange === etag)) {
    const from = Number(m[1]);
    h.set("content-range", `bytes ${from}-${data.length - 1}/${data.length}`);
    return new Response(data.slice(from), { status: 206, headers: h });
  }
  return new Response(data, { headers: h });
}

/** An index stand-in answering `/locate/PATH` with `body` (status 200, or 404 when null). */
function index(holders: { id: string; url: string }[] | null, notLive: string[] = []) {
  const asked = { n: 0 };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () =>
      asked.n++ === -1 || holders === null
        ? Response.json({ error: "no live replica holds it", notLive }, { status: 404 })
        : Response.json({
          holders: holders.map((h) => h.id),
          urls: holders.map((h) => h.url),
          url: holders[0].url,
        }),
  );
  return { server, asked, base: `http://127.0.0.1:${server.addr.port}` };
}

async function run(
  base: string,
  output: string,
  path = "/f.bin",
  idleTimeoutMs = 5000,
): Promise<DownloadResult> {
  const lines: string[] = [];
  try {
    return await download({
      path,
      index: base,
      name: null,
      output,
      limitRate: 0,
      idleTimeoutMs,
      log: (l) => lines.push(l),
    });
  } catch (e) {
    if (e instanceof GetFailure) e.message += `\n${lines.join("\n")}`;
    throw e;
  }
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "nearcast_get_unit_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function code(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 0;
  } catch (e) {
    if (!(e instanceof GetFailure)) throw e;
    return e.exitCode;
  }
}

Deno.test("get: a cut transfer resumes at the same holder with Range and If-Range; digest verified", async () => {
  const data = bytes(300_000, 1);
  const etag = `"${sha(data)}"`;
  const r = replica((req, nth) =>
    nth === 1
      ? new Response(cutBody(data, 100_000), {
        headers: {
          etag,
          "content-length": String(data.length),
          "repr-digest": `sha-256=:${b64(sha(data))}:`,
        },
      })
      : serve(req, data, etag, { "repr-digest": `sha-256=:${b64(sha(data))}:` })
  );
  const ix = index([{ id: "a", url: r.url("/f.bin") }]);
  try {
    await withDir(async (dir) => {
      const got = await run(ix.base, `${dir}/out.bin`);
      assert.deepEqual(await Deno.readFile(`${dir}/out.bin`), data);
      assert.equal(got.verified, true);
      assert.deepEqual(got.resumedAt, [100_000], "resumed where the cut left it");
      assert.equal(r.seen[1].headers.get("range"), "bytes=100000-");
      assert.equal(r.seen[1].headers.get("if-range"), etag);
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["out.bin"], "no part left");
    });
  } finally {
    await Promise.all([r.server.shutdown(), ix.server.shutdown()]);
  }
});

Deno.test("get: a holder whose file changed sends it whole; it replaces the part, not spliced", async () => {
  const v1 = bytes(200_000, 1), v2 = bytes(250_000, 2);
  // a dies after 80 000 bytes of v1 (and answers 503 from then on); b has v2 since.
  const a = replica((_, nth) =>
    nth === 1
      ? new Response(cutBody(v1, 80_000), {
        headers: { etag: '"v1"', "content-length": String(v1.length) },
      })
      : new Response("down", { status: 503 })
  );
  const b = replica((req) => serve(req, v2, '"v2"'));
  const ix = index([{ id: "a", url: a.url("/f.bin") }, { id: "b", url: b.url("/f.bin") }]);
  try {
    await withDir(async (dir) => {
      const got = await run(ix.base, `${dir}/out.bin`);
      assert.deepEqual(b.seen[0].headers.get("if-range"), '"v1"');
      assert.deepEqual(await Deno.readFile(`${dir}/out.bin`), v2, "v2 whole, no v1 prefix");
      assert.deepEqual(got.from, ["a", "b"]);
      assert.deepEqual(got.resumedAt, []);
      assert.equal(got.verified, false, "no digest stated");
    });
  } finally {
    await Promise.all([a.server.shutdown(), b.server.shutdown(), ix.server.shutdown()]);
  }
});

Deno.test("get: a SHA-256 mismatch exits 5 and keeps nothing", async () => {
  const data = bytes(50_000, 3);
  const wrong = sha(bytes(50_000, 4));
  const r = replica((req) => serve(req, data, `"${wrong}"`, { "x-nearcast-version": "1-a" }));
  const ix = index([{ id: "a", url: r.url("/f.bin") }]);
  try {
    await withDir(async (dir) => {
      assert.equal(await code(run(ix.base, `${dir}/out.bin`)), EXIT.VERIFY);
      assert.deepEqual([...Deno.readDirSync(dir)], [], "no output, no part");
    });
  } finally {
    await Promise.all([r.server.shutdown(), ix.server.shutdown()]);
  }
});

Deno.test("get: exit codes 3 (not found), 4 (no live holder), 6 (index unreachable)", async () => {
  const none = index(null), dead = index(null, ["far"]);
  const r404 = replica(() => new Response("no", { status: 404 }));
  const gone = index([{ id: "a", url: r404.url("/f.bin") }]);
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (closed.addr as Deno.NetAddr).port;
  closed.close();
  try {
    await withDir(async (dir) => {
      assert.equal(await code(run(none.base, `${dir}/o`)), EXIT.NOT_FOUND);
      assert.equal(await code(run(gone.base, `${dir}/o`)), EXIT.NOT_FOUND, "holders answer 404");
      assert.equal(await code(run(dead.base, `${dir}/o`)), EXIT.NO_LIVE_HOLDER);
      assert.equal(await code(run(`http://127.0.0.1:${port}`, `${dir}/o`)), EXIT.NETWORK);
    });
  } finally {
    await Promise.all([none.server.shutdown(), dead.server.shutdown(), gone.server.shutdown()]);
    await r404.server.shutdown();
  }
});

Deno.test("get: a stalled transfer is given up after --timeout, resumed at the next holder", async () => {
  const data = bytes(150_000, 6);
  const etag = '"s1"';
  let release = () => {};
  const stalled = new Promise<void>((r) => release = r);
  // a sends 60 000 bytes, then nothing (the connection stays open).
  const a = replica(() =>
    new Response(
      new ReadableStream({
        start(c) {
          c.enqueue(data.slice(0, 60_000));
        },
        pull: () => stalled,
      }),
      { headers: { etag, "content-length": String(data.length) } },
    )
  );
  const b = replica((req) => serve(req, data, etag));
  const ix = index([{ id: "a", url: a.url("/f.bin") }, { id: "b", url: b.url("/f.bin") }]);
  try {
    await withDir(async (dir) => {
      const got = await run(ix.base, `${dir}/out.bin`, "/f.bin", 300);
      assert.deepEqual(await Deno.readFile(`${dir}/out.bin`), data);
      assert.equal(got.resumedAt.length, 1);
      assert.ok(got.resumedAt[0] > 0 && got.resumedAt[0] <= 60_000, `${got.resumedAt}`);
      assert.deepEqual(got.from, ["a", "b"]);
    });
  } finally {
    release();
    await Promise.all([a.server.shutdown(), b.server.shutdown(), ix.server.shutdown()]);
  }
});

Deno.test("get: when every holder fails, the index is asked once more, then exit 6", async () => {
  const r = replica(() => new Response("busy", { status: 503 }));
  const ix = index([{ id: "a", url: r.url("/f.bin") }, { id: "b", url: r.url("/f.bin") }]);
  try {
    await withDir(async (dir) => {
      assert.equal(await code(run(ix.base, `${dir}/o`)), EXIT.NETWORK);
      assert.equal(ix.asked.n, 2);
      assert.equal(r.seen.length, 4, "each holder tried once per answer of the index");
    });
  } finally {
    await Promise.all([r.server.shutdown(), ix.server.shutdown()]);
  }
});

Deno.test("get: the part file of an interrupted run is resumed by the next run", async () => {
  const data = bytes(120_000, 5);
  const etag = `"${sha(data)}"`;
  const r = replica((req) => serve(req, data, etag, { "x-nearcast-version": "1-a" }));
  const ix = index([{ id: "a", url: r.url("/f.bin") }]);
  try {
    await withDir(async (dir) => {
      // What an interrupted run leaves: the first 70 000 bytes and the sidecar.
      await Deno.writeFile(`${dir}/out.bin.part`, data.slice(0, 70_000));
      const meta = { path: "/f.bin", validator: etag, total: data.length, sha256: sha(data) };
      await Deno.writeTextFile(`${dir}/out.bin.part.json`, JSON.stringify(meta));
      const got = await run(ix.base, `${dir}/out.bin`);
      assert.equal(r.seen[0].headers.get("range"), "bytes=70000-");
      assert.deepEqual(got.resumedAt, [70_000]);
      assert.equal(got.verified, true, "the earlier bytes are hashed too");
      assert.deepEqual(await Deno.readFile(`${dir}/out.bin`), data);
      // A part for another path is not resumed.
      await Deno.writeFile(`${dir}/x.part`, data.slice(0, 10));
      await Deno.writeTextFile(`${dir}/x.part.json`, JSON.stringify({ ...meta, path: "/g" }));
      const other = await run(ix.base, `${dir}/x`);
      assert.deepEqual(other.resumedAt, []);
      assert.deepEqual(await Deno.readFile(`${dir}/x`), data);
    });
  } finally {
    await Promise.all([r.server.shutdown(), ix.server.shutdown()]);
  }
});

Deno.test("get: flags", () => {
  const c = parseGetConfig(["videos/a%20b.mp4", "--dns", "[::1]:5381", "--limit-rate", "2MiB"]);
  assert.ok(c !== "help");
  assert.deepEqual(
    [c.path, c.index, c.output, c.limitRate, c.name],
    ["/videos/a%20b.mp4", "http://[::1]:5381", "a b.mp4", 2 * 1048576, null],
  );
  assert.equal(
    (parseGetConfig(["/x"], { NEARCAST_DNS: "10.0.0.1:53" }) as { index: string }).index,
    "http://10.0.0.1:53",
  );
  for (
    const [argv, msg] of [
      [[], /exactly one PATH/],
      [["/a/"], /must name a file/],
      [["/a", "--dns", "nope"], /HOST:PORT/],
      [["/a", "--name", "a b"], /host name/],
      [["/a", "--limit-rate", "x"], /limit-rate/],
    ] as const
  ) {
    assert.throws(
      () => parseGetConfig([...argv]),
      (e) => e instanceof UsageError && msg.test(e.message),
    );
  }
});

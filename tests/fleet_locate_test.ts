/**
 * `GET /locate/PATH` on the control API: replicas report the paths they hold (an upload to one
 * of them, a URL in another's cache), and the DNS server names the best live replica that holds the path, even
 * when a nearer replica does not.
 */
import assert from "node:assert/strict";
import { http, spawnDeno, startDns, startReplica, waitFor } from "../lib/fleet/_testing.ts";

const TOKEN = "locate-token";

Deno.test({
  name: "fleet locate: the best live replica that holds PATH",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "nearcast_fleet_locate_" });
    await Deno.writeTextFile(
      `${dir}/cdn.json`,
      JSON.stringify({ geo: [{ cidr: "127.0.0.0/8", lat: 52.37, lon: 4.9 }] }),
    );
    await Deno.writeTextFile(`${dir}/hello.txt`, "hello from far away\n");
    const dns = await startDns(["-n", "cdn.test", "--config", `${dir}/cdn.json`]);
    // An origin for cached (not uploaded) content.
    const origin = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (req) =>
        new URL(req.url).pathname === "/cached.txt"
          ? new Response("cached by near\n", { headers: { "cache-control": "max-age=600" } })
          : new Response("not here\n", { status: 404 }),
    );
    const originUrl = `http://127.0.0.1:${origin.addr.port}`;
    // near has no --data (no uploads, so it does not replicate far's upload): the upload stays
    // held by far alone.
    const replica = (id: string, host: string, lat: number, lon: number) =>
      startReplica([
        ...["-o", originUrl],
        ...["--host", host, "--id", id, "--admin-token", TOKEN],
        ...(id === "far" ? ["--data", `${dir}/${id}`] : []),
        ...["--announce", `127.0.0.1:${dns.control}`, `--lat=${lat}`, `--lon=${lon}`],
      ]);
    const near = replica("near", "127.0.0.51", 52.37, 4.9);
    const far = replica("far", "127.0.0.52", 35.68, 139.69);
    const base = `http://127.0.0.1:${dns.control}`;
    try {
      const logs = () => dns.output() + near.output() + far.output();
      await waitFor(
        "both alive",
        async () => {
          const rows = (await http(`${base}/replicas`)).body.replicas as { state: string }[];
          return rows.filter((r) => r.state === "alive").length === 2 ? rows : undefined;
        },
        30_000,
        100,
        logs,
      );
      const farPort = Number(/listening on http:\/\/\S+?:(\d+)\//.exec(far.output())![1]);
      const up = spawnDeno([
        ...["main_upload.ts", `${dir}/hello.txt`, "--to", `http://127.0.0.52:${farPort}`],
        ...["--token", TOKEN, "-q"],
      ]);
      assert.equal((await up.child.status).code, 0, up.output());
      await up.done;
      // Held paths are reported every few seconds.
      const found = await waitFor(
        "far to report /hello.txt",
        async () => {
          const r = await http(`${base}/locate/hello.txt?client=127.0.0.1`);
          return r.status === 200 ? r.body : undefined;
        },
        15_000,
        200,
        logs,
      );
      assert.equal(found.id, "far", "the only holder, though near is nearer");
      assert.equal(found.url, `http://127.0.0.52:${farPort}/hello.txt`);
      assert.deepEqual(found.holders, ["far"]);
      assert.deepEqual(found.urls, [found.url], "every holder's URL, best first");
      const body = await (await fetch(found.url as string)).text();
      assert.equal(body, "hello from far away\n");
      // A URL that only near's cache holds (fetched through near from the origin) is located
      // at near; far never fetched it.
      const nearPort = Number(/listening on http:\/\/\S+?:(\d+)\//.exec(near.output())![1]);
      const fill = await fetch(`http://127.0.0.51:${nearPort}/cached.txt`);
      assert.equal(await fill.text(), "cached by near\n");
      const cached = await waitFor(
        "near to report /cached.txt",
        async () => {
          const r = await http(`${base}/locate/cached.txt?client=127.0.0.1`);
          return r.status === 200 ? r.body : undefined;
        },
        15_000,
        200,
        logs,
      );
      assert.equal(cached.id, "near");
      assert.deepEqual(cached.holders, ["near"]);
      const missing = await http(`${base}/locate/nothing.txt`);
      assert.equal(missing.status, 404);
      assert.deepEqual(missing.body.notLive, []);
      assert.match(missing.body.error as string, /no live replica holds \/nothing.txt/);
      assert.equal((await http(`${base}/locate/%E0%A4%A`)).status, 400, "bad percent-encoding");
      // A dead holder is not named.
      await far.stop("SIGKILL");
      const gone = await waitFor(
        "locate to stop naming far",
        async () => {
          const r = await http(`${base}/locate/hello.txt`);
          return r.status === 404 ? r.body : undefined;
        },
        10_000,
        100,
        logs,
      );
      assert.deepEqual(gone.notLive, ["far"], "the 404 names the holder that is not live");
    } finally {
      await Promise.all([near.stop(), far.stop()]);
      await dns.stop("SIGTERM");
      await origin.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

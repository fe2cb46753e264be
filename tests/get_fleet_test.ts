/**
 * `deno task get` against a real fleet: a DNS server and two replicas that replicate an
 * upload to each other. The client asks the index (`/locate`), downloads from the nearest
 * holder at a limited rate, and the nearest holder is killed (SIGKILL) mid-transfer: the
 * download resumes from the other holder with `Range` (its access log shows a 206 of only the
 * missing bytes), the SHA-256 the replicas state is verified, and the file is saved whole.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  http,
  replicaPort,
  spawnDeno,
  startDns,
  startReplica,
  waitFor,
} from "../lib/fleet/_testing.ts";

const TOKEN = "get-token";
const SIZE = 24 * 1048576;

Deno.test({
  name: "get: the first holder dies mid-download; resumed from the next holder, verified",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "nearcast_get_fleet_" });
    await Deno.writeTextFile(
      `${dir}/cdn.json`,
      JSON.stringify({ geo: [{ cidr: "127.0.0.0/8", lat: 52.37, lon: 4.9 }] }),
    );
    const data = new Uint8Array(SIZE);
    for (let i = 0; i < SIZE; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
    await Deno.writeFile(`${dir}/big.bin`, data);
    const sha = createHash("sha256").update(data).digest("hex");
    const dns = await startDns([
      "-n",
      "cdn.test",
      "--config",
      `${dir}/cdn.json`,
      "--policy",
      "geo",
    ]);
    const replica = (id: string, host: string, lat: number, lon: number) =>
      startReplica([
        ...["--host", host, "--id", id, "--admin-token", TOKEN, "--data", `${dir}/${id}`],
        ...["--access-log", `${dir}/${id}.log`, "--heartbeat", "300ms"],
        ...["--announce", `127.0.0.1:${dns.control}`, `--lat=${lat}`, `--lon=${lon}`],
      ]);
    const near = replica("near", "127.0.0.81", 52.37, 4.9);
    const far = replica("far", "127.0.0.82", 35.68, 139.69);
    const base = `http://127.0.0.1:${dns.control}`;
    const logs = () => [dns, near, far].map((p) => p.output().slice(-2000)).join("\n---\n");
    let getProc: ReturnType<typeof spawnDeno> | null = null;
    try {
      await waitFor(
        "both alive",
        async () => {
          const rows = (await http(`${base}/replicas`)).body.replicas as { state: string }[];
          return rows.filter((r) => r.state === "alive").length === 2 ? rows : undefined;
        },
        40_000,
        100,
        logs,
      );
      const nearPort = await replicaPort(near);
      const up = spawnDeno([
        ...["main_upload.ts", `${dir}/big.bin`, "--to", `http://127.0.0.81:${nearPort}`],
        ...["--token", TOKEN, "-q"],
      ]);
      assert.equal((await up.child.status).code, 0, up.output());
      await up.done;
      // Replicated to far, and both report holding it: the index names near first (nearer).
      const found = await waitFor(
        "both holders",
        async () => {
          const r = await http(`${base}/locate/big.bin`);
          return (r.body.holders as string[] | undefined)?.length === 2 ? r.body : undefined;
        },
        30_000,
        200,
        logs,
      );
      assert.deepEqual(found.holders, ["near", "far"]);
      assert.equal((found.urls as string[]).length, 2);

      getProc = spawnDeno([
        ...["main_get.ts", "/big.bin", "--dns", `127.0.0.1:${dns.control}`],
        ...["-o", `${dir}/out/big.bin`, "--limit-rate", "4MiB"],
      ]);
      await Deno.mkdir(`${dir}/out`);
      const g = getProc;
      // Kill near once 2 MiB have arrived: well before the end at 4 MiB/s.
      await waitFor(
        "2 MiB downloaded",
        async () => {
          const st = await Deno.stat(`${dir}/out/big.bin.part`).catch(() => null);
          return st !== null && st.size >= 2 * 1048576 ? true : undefined;
        },
        30_000,
        20,
        () => g.output() + logs(),
      );
      await near.stop("SIGKILL");
      const status = await g.child.status;
      await g.done;
      const out = g.output();
      assert.equal(status.code, 0, out);
      const got = await Deno.readFile(`${dir}/out/big.bin`);
      assert.equal(got.length, SIZE);
      assert.equal(createHash("sha256").update(got).digest("hex"), sha, "the same bytes");
      assert.match(out, new RegExp(`sha256 ${sha} \\(verified\\)`));
      assert.match(out, /near failed at byte \d+/);
      assert.match(out, new RegExp(`/big.bin: 100% \\(${SIZE} of ${SIZE} bytes\\)`), "plain lines");
      const m = /resuming at byte (\d+) of (\d+) from far/.exec(out);
      assert.ok(m, `resumed from far:\n${out}`);
      const at = Number(m[1]);
      assert.ok(at >= 2 * 1048576 && at < SIZE, `resumed mid-file at ${at}`);
      // far served the missing bytes only: one 206 of SIZE - at bytes, no whole file.
      const farLog = await Deno.readTextFile(`${dir}/far.log`);
      const lines = farLog.split("\n").filter((l) => l.includes("GET /big.bin "));
      assert.equal(lines.length, 1, farLog);
      assert.match(lines[0], new RegExp(`" 206 ${SIZE - at} `), lines[0]);
      assert.deepEqual(
        [...Deno.readDirSync(`${dir}/out`)].map((e) => e.name),
        ["big.bin"],
        "saved atomically: no part left",
      );
      // Not found: exit 3; no live holder once far is gone too: exit 4.
      const missing = spawnDeno([
        "main_get.ts",
        "/nothing.bin",
        "--dns",
        `127.0.0.1:${dns.control}`,
      ]);
      assert.equal((await missing.child.status).code, 3, missing.output());
      await missing.done;
      await far.stop("SIGKILL");
      await waitFor(
        "far dead",
        async () => {
          const r = await http(`${base}/locate/big.bin`);
          return r.status === 404 ? r.body : undefined;
        },
        15_000,
        100,
        logs,
      );
      const dead = spawnDeno([
        ...["main_get.ts", "/big.bin", "--dns", `127.0.0.1:${dns.control}`],
        ...["-o", `${dir}/out/again.bin`],
      ]);
      assert.equal((await dead.child.status).code, 4, dead.output());
      await dead.done;
      // notLive is in no particular order.
      assert.match(dead.output(), /held by (near, far|far, near), not live now/);
    } finally {
      await getProc?.stop();
      await Promise.all([near.stop(), far.stop()]);
      await dns.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
});

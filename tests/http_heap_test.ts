/**
 * `--heap`: the replica re-executes itself in place (same PID) with V8 flags that keep its
 * memory near the cache budget (issue 8 item 10), unless told not to; flags given by the user
 * win; without the permission to do it, it says so and serves anyway.
 */
import assert from "node:assert/strict";
import { startOrigin } from "./_http_origin.ts";
import { type ReplicaProc, startReplica } from "./_http_replica.ts";
import { REPLICA_HEAP_FLAGS } from "../lib/http/config.ts";

const MiB = 1024 * 1024;

/** The environment the process image at `pid` was started with. */
function environOf(pid: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const kv of Deno.readTextFileSync(`/proc/${pid}/environ`).split("\0")) {
    const i = kv.indexOf("=");
    if (i > 0) out.set(kv.slice(0, i), kv.slice(i + 1));
  }
  return out;
}

async function gauge(r: ReplicaProc, name: string): Promise<number> {
  const text = await (await fetch(`${r.url}/_cdn/metrics`)).text();
  const m = new RegExp(`^${name} (\\d+)$`, "m").exec(text);
  assert.ok(m, `${name} in /_cdn/metrics`);
  return Number(m[1]);
}

async function get(r: ReplicaProc, path: string): Promise<string> {
  const res = await fetch(`${r.url}${path}`);
  assert.equal(res.status, 200);
  return await res.text();
}

Deno.test("--heap compact (default): same PID re-executed with the V8 flags; v8: left alone", async () => {
  const origin = await startOrigin({ "/a": { body: "hello" } });
  const compact = await startReplica(["-o", origin.url]);
  const plain = await startReplica(["-o", origin.url, "--heap", "v8"]);
  try {
    // The PID we spawned is the process serving: its image got the flags at exec.
    const env = environOf(compact.pid);
    assert.equal(env.get("DENO_V8_FLAGS"), REPLICA_HEAP_FLAGS.join(","));
    assert.ok(Deno.readTextFileSync(`/proc/${compact.pid}/cmdline`).includes("main_http.ts"));
    assert.ok(compact.lines.some((l) => /listening on .*heap compact/.test(l)));
    assert.equal(await get(compact, "/a"), "hello");
    assert.equal(environOf(plain.pid).has("DENO_V8_FLAGS"), false);
    assert.equal(await get(plain, "/a"), "hello");
    // A 1 MiB semi-space takes the young generation's 3 x 32 MiB reserve out of the limit.
    const small = await gauge(compact, "nearcast_http_v8_heap_limit_bytes");
    const big = await gauge(plain, "nearcast_http_v8_heap_limit_bytes");
    assert.ok(big - small >= 64 * MiB, `limits: compact ${small}, v8 ${big}`);
    assert.ok(await gauge(compact, "process_resident_memory_bytes") > 10 * MiB);
  } finally {
    await compact.close();
    await plain.close();
    await origin.close();
  }
});

Deno.test("--heap compact: DENO_V8_FLAGS given by the user win and are kept", async () => {
  const origin = await startOrigin({ "/a": { body: "hello" } });
  const r = await startReplica(["-o", origin.url], {
    env: { DENO_V8_FLAGS: "--max-old-space-size=300" },
  });
  try {
    const env = environOf(r.pid);
    assert.equal(
      env.get("DENO_V8_FLAGS"),
      `${REPLICA_HEAP_FLAGS.join(",")},--max-old-space-size=300`,
    );
    const limit = await gauge(r, "nearcast_http_v8_heap_limit_bytes");
    assert.ok(limit > 290 * MiB && limit < 320 * MiB, `limit ${limit}`);
    assert.equal(await get(r, "/a"), "hello");
  } finally {
    await r.close();
    await origin.close();
  }
});

Deno.test("--heap compact without --allow-ffi: says why and serves with V8's defaults", async () => {
  const origin = await startOrigin({ "/a": { body: "hello" } });
  const r = await startReplica(["-o", origin.url], {
    denoFlags: ["--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-sys"],
  });
  try {
    assert.ok(r.lines.some((l) => l.includes("--heap compact not applied: needs --allow-ffi")));
    assert.equal(environOf(r.pid).has("DENO_V8_FLAGS"), false);
    assert.equal(await get(r, "/a"), "hello");
  } finally {
    await r.close();
    await origin.close();
  }
});

/**
 * End-to-end part of the wire experiment: two fleets of two nodes (`main_http.ts`
 * subprocesses), one started with `--wire json`, one with `--wire protobuf`, both up at once;
 * uploads with the client in the same encoding (in-process, `lib/upload/client.ts`), runs
 * interleaved between the fleets. Upload time is the client's call; replication time runs from
 * the start of the upload until the second node lists the file's SHA-256. Every file is then
 * fetched from the second node and hashed.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { uploadFile } from "../../lib/upload/client.ts";
import type { WireEncoding } from "../../lib/wire/encoding.ts";
import { startNode, stopAll, type TestNode, TOKEN } from "../../tests/_upload_cluster.ts";
import { peakRss } from "./_stats.ts";

/** Longest wait for a file to reach the second node. */
const WAIT_MS = 5 * 60_000;
/** Poll period of the second node: short next to the times measured, light on 2 cores. */
const POLL_MS = 5;

/** A fleet of two nodes speaking one encoding. */
export interface Fleet {
  wire: WireEncoding;
  a: TestNode;
  b: TestNode;
}

/** Starts a fleet in `dir`: `a`, then `b` joining through it, both with `--wire wire`. */
export async function startFleet(dir: string, wire: WireEncoding): Promise<Fleet> {
  const args = ["--wire", wire, "--max-upload-bytes", "8GiB"];
  const a = await startNode(`${wire}-a`, `${dir}/${wire}-a`, args);
  const b = await startNode(`${wire}-b`, `${dir}/${wire}-b`, [...args, "--join", a.url]);
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    const list = await (await fetch(`${a.url}/_cdn/servers`)).json() as unknown[];
    if (list.length === 2) return { wire, a, b };
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${wire} fleet: b never joined`);
}

/** Stops the fleets' nodes. */
export async function stopFleets(fleets: Fleet[]): Promise<void> {
  await stopAll(fleets.flatMap((f) => [f.a, f.b]));
}

/** Peak RSS (bytes) of the fleet's two nodes so far. */
export function fleetPeaks(f: Fleet): { a: number; b: number } {
  return { a: peakRss(f.a.proc.pid) ?? 0, b: peakRss(f.b.proc.pid) ?? 0 };
}

/** Writes `size` incompressible bytes to `path`; their SHA-256. */
export async function writeFile(path: string, size: number, seed: number): Promise<string> {
  const h = createHash("sha256");
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  const buf = new Uint8Array(Math.min(size, 1 << 20));
  for (let left = size, i = 0; left > 0; i++) {
    crypto.getRandomValues(buf.subarray(0, Math.min(buf.length, 65536)));
    buf[0] = (seed + i) & 0xff;
    const n = Math.min(left, buf.length);
    h.update(buf.subarray(0, n));
    let off = 0;
    while (off < n) off += await f.write(buf.subarray(off, n));
    left -= n;
  }
  return h.digest("hex");
}

async function onB(f: Fleet, name: string, sha: string): Promise<boolean> {
  const res = await fetch(`${f.b.url}/_cdn/files/${name}`);
  if (res.status !== 200) {
    await res.body?.cancel();
    return false;
  }
  return ((await res.json()) as { sha256: string }).sha256 === sha;
}

/** SHA-256 of what node b serves at `/name`. */
export async function servedSha(f: Fleet, name: string): Promise<string> {
  const res = await fetch(`${f.b.url}/${name}`);
  const h = createHash("sha256");
  for await (const c of res.body!) h.update(c);
  return h.digest("hex");
}

/** One upload to `a` in the fleet's encoding: upload ms and replication ms (until on `b`). */
export async function uploadOnce(
  f: Fleet,
  file: string,
  name: string,
  sha: string,
): Promise<{ uploadMs: number; replicationMs: number }> {
  const t0 = performance.now();
  const r = await uploadFile({ file, to: f.a.url, token: TOKEN, name, wire: f.wire });
  const t1 = performance.now();
  if (r.sha256 !== sha) throw new Error(`${name}: the client hashed ${r.sha256}, wrote ${sha}`);
  const deadline = Date.now() + WAIT_MS;
  while (!(await onB(f, name, sha))) {
    if (Date.now() > deadline) throw new Error(`${f.wire}: ${name} never reached b`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return { uploadMs: t1 - t0, replicationMs: performance.now() - t0 };
}

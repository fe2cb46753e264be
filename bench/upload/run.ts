/**
 * Upload benchmark: three nodes (`main_http.ts` subprocesses) on loopback.
 *
 * - upload throughput and propagation time to all three nodes for 1 KiB, 1 MiB and 100 MiB
 *   files (the upload runs in-process through `lib/upload/client.ts`; propagation is the time
 *   from the start of the upload until every node lists the new SHA-256);
 * - peak RSS (`VmHWM`) of the upload client (`main_upload.ts`, a subprocess) and of each node
 *   for one 1 GiB upload.
 *
 * Each part runs once per `--wire` encoding (default both, JSON then Protobuf), on fresh nodes
 * started with that `--wire` and a client uploading in it: the table's `wire` column.
 *
 * `deno run -A bench/upload/run.ts [--big 1GiB] [--runs 5] [--skip-big] [--wire json,protobuf]`
 * (see --help). Writes a table to stdout and JSON to bench/.out/upload.json.
 *
 * `--tls` instead compares plain HTTP with `--tls` (certificates from lib/tls/certs.ts): 1 MiB
 * and 100 MiB uploads on three fresh nodes per mode, median upload and propagation times, the
 * nodes' peak RSS and the upload client's (a subprocess, one 100 MiB upload); JSON to
 * bench/.out/upload_tls.json.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { uploadFile } from "../../lib/upload/client.ts";
import { parseSize } from "../../lib/http/units.ts";
import { parseWire, type WireEncoding } from "../../lib/wire/encoding.ts";
import { makeCa, makeCert } from "../../lib/tls/certs.ts";
import { peerFetch, trustCa } from "../../lib/tls/client.ts";
import { spawnLines, startedLine } from "../../tests/_proc.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const TOKEN = "bench-token";
/** Longest wait for a node to start, or for a file to reach every node. */
const WAIT_MS = 10 * 60_000;
/** Poll period of propagation and RSS: short next to the times measured. */
const POLL_MS = 2;

const FLAGS = {
  runs: {
    type: "string",
    help: "Uploads per size for 1 KiB and 1 MiB (100 MiB: a third); 0 skips them. Default 9.",
  },
  big: { type: "string", help: "Size of the memory run. Default 1GiB." },
  "big-chunk": {
    type: "string",
    help: "Client and node push chunk size of the memory run. Default 1MiB.",
  },
  v8: {
    type: "string",
    help: "V8 flags for the memory run's processes, e.g. --max-old-space-size=32.",
  },
  "skip-big": { type: "boolean", help: "Skip the memory run." },
  wire: {
    type: "string",
    help: "Encodings to run, comma-separated (nodes and client). Default json,protobuf.",
  },
  tls: {
    type: "boolean",
    help: "Compare plain HTTP and --tls (1 MiB x runs, 100 MiB x runs/3; json) instead.",
  },
  help: { type: "boolean", short: "h", help: "Show this help." },
} as const;

/** Push chunk size of the nodes (`--big-chunk` sets it for the memory run). */
let nodeChunk = 1024 * 1024;
/** `--v8-flags=...` for the client and nodes of the memory run, if `--v8` was given. */
let v8Args: string[] = [];
/** `--wire` of the nodes being started. */
let nodeWire: WireEncoding = "json";
/** With `--tls`: the directory of ca.pem and the nodes' certificates for nodes started now. */
let tlsCerts: string | null = null;

interface Node {
  id: string;
  url: string;
  pid: number;
  child: Deno.ChildProcess;
}

async function startNode(id: string, dir: string, join: string | null): Promise<Node> {
  const args = [
    "run",
    "-A",
    ...v8Args,
    `${ROOT}main_http.ts`,
    "-p",
    "0",
    "--host",
    "127.0.0.1",
    "-o",
    "http://127.0.0.1:9",
    "--data",
    dir,
    "--admin-token",
    TOKEN,
    "--id",
    id,
    "--max-upload-bytes",
    "8GiB",
    "--chunk-bytes",
    String(nodeChunk),
    "--wire",
    nodeWire,
  ];
  if (join !== null) args.push("--join", join);
  if (tlsCerts !== null) {
    args.push("--tls", "--cert", `${tlsCerts}/${id}.pem`, "--key", `${tlsCerts}/${id}-key.pem`);
    args.push("--ca", `${tlsCerts}/ca.pem`);
  }
  // Standard error live; standard output drained so the node never blocks on a full pipe.
  const p = spawnLines(Deno.execPath(), args, {
    stderr: "inherit",
    maxLines: 100,
    name: `node ${id}`,
  });
  const [, url] = await startedLine(
    p,
    /listening on (https?:\/\/127\.0\.0\.1:\d+)\//,
    undefined,
    WAIT_MS,
  );
  const node = { id, url, pid: p.pid, child: p.child };
  await until(async () => (await peerFetch(`${node.url}/_cdn/health`)).status === 200);
  return node;
}

/** Three nodes in `dir`, b and c joined through a, once a knows both. */
async function cluster(dir: string): Promise<Node[]> {
  const a = await startNode("a", `${dir}/a`, null);
  const nodes = [
    a,
    await startNode("b", `${dir}/b`, a.url),
    await startNode("c", `${dir}/c`, a.url),
  ];
  await until(async () => {
    const list = await (await peerFetch(`${a.url}/_cdn/servers`)).json();
    return list.length === 3;
  });
  return nodes;
}

async function stopNodes(nodes: Node[]): Promise<void> {
  for (const n of nodes) {
    try {
      n.child.kill("SIGTERM");
    } catch { /* gone */ }
    await n.child.status;
  }
}

async function until(cond: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    try {
      if (await cond()) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  throw new Error("timed out");
}

/** Peak resident set of a process so far, bytes (Linux `VmHWM`), or null once it is gone. */
function peakRss(pid: number): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m === null ? null : Number(m[1]) * 1024;
  } catch {
    return null;
  }
}

async function writeRandomFile(path: string, size: number): Promise<void> {
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  const buf = new Uint8Array(1024 * 1024);
  for (let left = size; left > 0;) {
    crypto.getRandomValues(buf.subarray(0, 65536));
    for (let i = 65536; i < buf.length; i += 65536) buf.copyWithin(i, 0, 65536);
    buf[0] = left & 0xff;
    buf[1] = (left >> 8) & 0xff;
    const n = Math.min(left, buf.length);
    let off = 0;
    while (off < n) off += await f.write(buf.subarray(off, n));
    left -= n;
  }
}

async function hasEverywhere(nodes: Node[], name: string, sha: string): Promise<boolean> {
  const all = await Promise.all(nodes.map(async (n) => {
    const res = await peerFetch(`${n.url}/_cdn/files/${name}`);
    if (res.status !== 200) {
      await res.body?.cancel();
      return false;
    }
    return ((await res.json()) as { sha256: string }).sha256 === sha;
  }));
  return all.every((x) => x);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const mib = (n: number) => (n / 1048576).toFixed(1);

/**
 * Uploads `n` random files of `size` bytes in-process (to the nodes in turn); each upload's
 * time and its propagation time (until every node lists its SHA-256), ms.
 */
async function timeUploads(
  nodes: Node[],
  dir: string,
  size: number,
  n: number,
  wire: WireEncoding = "json",
): Promise<{ uploadMs: number[]; propMs: number[] }> {
  const uploadMs: number[] = [];
  const propMs: number[] = [];
  for (let i = 0; i < n; i++) {
    const file = `${dir}/f-${size}-${i}.bin`;
    await writeRandomFile(file, size);
    const t0 = performance.now();
    const r = await uploadFile({
      file,
      to: nodes[i % 3].url,
      token: TOKEN,
      name: `b/${size}-${i}`,
      wire,
    });
    const t1 = performance.now();
    await until(() => hasEverywhere(nodes, `b/${size}-${i}`, r.sha256));
    const t2 = performance.now();
    uploadMs.push(t1 - t0);
    propMs.push(t2 - t0);
    await Deno.remove(file);
  }
  return { uploadMs, propMs };
}

/** Runs `main_upload.ts` on `file` to `to`; its time (ms, process start included) and peak RSS. */
async function clientRun(
  file: string,
  to: string,
  name: string,
  extra: string[],
): Promise<{ ms: number; peak: number; sha: string }> {
  const t0 = performance.now();
  const client = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...v8Args,
      `${ROOT}main_upload.ts`,
      file,
      "--to",
      to,
      "--token",
      TOKEN,
      "-q",
      "--name",
      name,
      ...extra,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let peak = 0;
  const poll = setInterval(() => {
    peak = Math.max(peak, peakRss(client.pid) ?? 0);
  }, 20);
  const out = await client.output();
  clearInterval(poll);
  const ms = performance.now() - t0;
  if (out.code !== 0) throw new Error(`client failed: ${new TextDecoder().decode(out.stderr)}`);
  const sha = /sha256 ([0-9a-f]{64})/.exec(new TextDecoder().decode(out.stdout))![1];
  return { ms, peak, sha };
}

/**
 * `--tls`: plain HTTP, then `--tls`, each on three fresh nodes: 1 MiB x `runs` and 100 MiB x
 * `runs/3` (median upload and propagation times), one 100 MiB upload by the client process
 * (its peak RSS), then the nodes' peak RSS.
 */
async function tlsCompare(dir: string, runs: number): Promise<Record<string, unknown>> {
  const certs = `${dir}/certs`;
  await makeCa(certs);
  for (const id of ["a", "b", "c"]) await makeCert(certs, { name: id, addresses: ["127.0.0.1"] });
  trustCa(await Deno.readTextFile(`${certs}/ca.pem`));
  const out: Record<string, Record<string, unknown>> = {};
  const sizes: [string, number, number][] = [
    ["1 MiB", 1024 * 1024, runs],
    ["100 MiB", 100 * 1024 * 1024, Math.max(1, Math.floor(runs / 3))],
  ];
  for (const mode of ["plain", "tls"] as const) {
    tlsCerts = mode === "tls" ? certs : null;
    const nodes = await cluster(`${dir}/${mode}`);
    try {
      const r: Record<string, unknown> = {};
      for (const [label, size, n] of sizes) r[label] = await timeUploads(nodes, dir, size, n);
      const file = `${dir}/client.bin`;
      await writeRandomFile(file, 100 * 1024 * 1024);
      const c = await clientRun(
        file,
        nodes[0].url,
        "client.bin",
        mode === "tls" ? ["--ca", `${certs}/ca.pem`] : [],
      );
      await until(() => hasEverywhere(nodes, "client.bin", c.sha));
      await Deno.remove(file);
      r.client100MiB = { ms: c.ms, peakRss: c.peak };
      r.nodePeakRss = nodes.map((nd) => peakRss(nd.pid) ?? 0);
      out[mode] = r;
      console.error(`upload bench: ${mode} done`);
    } finally {
      await stopNodes(nodes);
    }
  }
  tlsCerts = null;
  const all = (mode: string, label: string, k: "uploadMs" | "propMs") =>
    (out[mode][label] as Record<string, number[]>)[k];
  const med = (mode: string, label: string, k: "uploadMs" | "propMs") =>
    median(all(mode, label, k));
  /** `median (min..max) ms` of one mode's times. */
  const cell = (mode: string, label: string, k: "uploadMs" | "propMs") => {
    const xs = all(mode, label, k);
    return `${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}..${
      Math.max(...xs).toFixed(1)
    }) ms`;
  };
  const rows = [
    "| size | runs | upload, plain | upload, TLS | propagation to all 3, plain | propagation, TLS | TLS cost (propagation, medians) |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const [label, , n] of sizes) {
    const [pp, tp] = [med("plain", label, "propMs"), med("tls", label, "propMs")];
    rows.push(
      `| ${label} | ${n} | ${cell("plain", label, "uploadMs")} | ${
        cell("tls", label, "uploadMs")
      } | ` +
        `${cell("plain", label, "propMs")} | ${cell("tls", label, "propMs")} | ` +
        `${((tp / pp - 1) * 100).toFixed(0)}% |`,
    );
  }
  const rss = (mode: string) => {
    const r = out[mode];
    const c = r.client100MiB as { ms: number; peakRss: number };
    return `| ${mode} | ${(c.ms / 1000).toFixed(2)} s | ${mib(c.peakRss)} MiB | ` +
      `${(r.nodePeakRss as number[]).map(mib).join(", ")} MiB |`;
  };
  console.log(
    [
      ...rows,
      "",
      "| mode | 100 MiB by the client process | client peak RSS | nodes' peak RSS (a, b, c) |",
      "| --- | --- | --- | --- |",
      rss("plain"),
      rss("tls"),
    ].join("\n"),
  );
  return out;
}

async function main() {
  const { values } = parseArgs({
    args: Deno.args,
    options: Object.fromEntries(
      Object.entries(FLAGS).map(([k, f]) => [k, { ...f, help: undefined }]),
    ) as unknown as typeof FLAGS,
  });
  if (values.help) {
    console.log("Usage: deno run -A bench/upload/run.ts [options]\n");
    for (const [k, f] of Object.entries(FLAGS)) console.log(`  --${k}`.padEnd(14) + f.help);
    return;
  }
  const runs = Number(values.runs ?? "9");
  const bigSize = parseSize(values.big ?? "1GiB");
  const bigChunk = parseSize(values["big-chunk"] ?? "1MiB");
  const wires = (values.wire ?? "json,protobuf").split(",").map(parseWire);
  const dir = await Deno.makeTempDir({ prefix: "nearcast-bench-upload-" });
  const nodes: Node[] = [];
  const results: Record<string, unknown> = { cores: navigator.hardwareConcurrency };
  if (values.tls) {
    try {
      results.tls = await tlsCompare(dir, runs);
      await Deno.mkdir(`${ROOT}bench/.out`, { recursive: true });
      await Deno.writeTextFile(
        `${ROOT}bench/.out/upload_tls.json`,
        JSON.stringify(results, null, 2),
      );
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
    return;
  }
  try {
    const rows: string[] = [
      "| wire | size | runs | upload time (median) | upload throughput | propagation to all 3 (median) | (min..max) |",
      "| --- | --- | --- | --- | --- | --- | --- |",
    ];
    const sizes: [string, number, number][] = [
      ["1 KiB", 1024, runs],
      ["1 MiB", 1024 * 1024, runs],
      ["100 MiB", 100 * 1024 * 1024, Math.max(1, Math.floor(runs / 3))],
    ];
    for (const wire of runs > 0 ? wires : []) {
      nodeWire = wire;
      nodes.push(...await cluster(`${dir}/small-${wire}`));
      for (const [label, size, n] of sizes) {
        const { uploadMs, propMs } = await timeUploads(nodes, dir, size, n, wire);
        const up = median(uploadMs);
        results[`${wire} ${label}`] = { runs: n, uploadMs, propagationMs: propMs };
        rows.push(
          `| ${wire} | ${label} | ${n} | ${up.toFixed(1)} ms | ${
            (size / 1048576 / (up / 1000)).toFixed(1)
          } MiB/s | ` +
            `${median(propMs).toFixed(1)} ms | ${Math.min(...propMs).toFixed(1)}..${
              Math.max(...propMs).toFixed(1)
            } ms |`,
        );
        console.error(`upload bench: ${wire} ${label} done`);
      }
      await stopNodes(nodes.splice(0));
      await Deno.remove(`${dir}/small-${wire}`, { recursive: true });
    }
    if (runs > 0) console.log(rows.join("\n"));

    for (const wire of values["skip-big"] ? [] : wires) {
      // Fresh nodes, so their peak RSS is this upload's; they push in the same chunk size.
      nodeChunk = bigChunk;
      nodeWire = wire;
      if (values.v8 !== undefined) v8Args = [`--v8-flags=${values.v8}`];
      nodes.push(...await cluster(`${dir}/big-${wire}`));
      const file = `${dir}/big.bin`;
      await writeRandomFile(file, bigSize);
      const before = nodes.map((n) => peakRss(n.pid) ?? 0);
      const t0 = performance.now();
      const { peak: clientPeak, sha } = await clientRun(file, nodes[0].url, "big.bin", [
        "--chunk-bytes",
        String(bigChunk),
        "--wire",
        wire,
      ]);
      const t1 = performance.now();
      await until(() => hasEverywhere(nodes, "big.bin", sha));
      const t2 = performance.now();
      const nodePeaks = nodes.map((n) => peakRss(n.pid) ?? 0);
      results[`${wire} big`] = {
        size: bigSize,
        chunk: bigChunk,
        uploadMs: t1 - t0,
        propagationMs: t2 - t0,
        clientPeakRss: clientPeak,
        nodePeakRssBefore: before,
        nodePeakRss: nodePeaks,
      };
      console.log(
        `\n${wire}: ${mib(bigSize)} MiB upload: client ${((t1 - t0) / 1000).toFixed(1)} s ` +
          `(${
            (bigSize / 1048576 / ((t1 - t0) / 1000)).toFixed(1)
          } MiB/s, process start included), ` +
          `all 3 nodes after ${((t2 - t0) / 1000).toFixed(1)} s\n` +
          `peak RSS: client ${mib(clientPeak)} MiB; nodes ${nodePeaks.map(mib).join(", ")} MiB ` +
          `(receiving node first; before the upload: ${before.map(mib).join(", ")} MiB)`,
      );
      await stopNodes(nodes.splice(0));
      await Deno.remove(`${dir}/big-${wire}`, { recursive: true });
      await Deno.remove(file);
    }
    await Deno.mkdir(`${ROOT}bench/.out`, { recursive: true });
    await Deno.writeTextFile(`${ROOT}bench/.out/upload.json`, JSON.stringify(results, null, 2));
  } finally {
    await stopNodes(nodes);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main();

/**
 * The JSON vs Protobuf experiment of `docs/experiments/wire-formats.md` (read it first: the
 * questions, workloads, method and sanity checks are there). `deno task experiment:wire`
 * (`--runs N`, `--big` adds the 1 GiB cases, `--skip-e2e`; see --help). Prints markdown tables
 * and writes JSON to bench/.out/wire.json. Exits non-zero when a sanity check fails.
 *
 * @module
 */

import { type FlagTable, parseFlags, usage } from "../../lib/common/cli.ts";
import { chunkFrameLength } from "../../lib/wire/object_stream_pb.ts";
import type { WireEncoding } from "../../lib/wire/encoding.ts";
import { bytes, fmt, spread } from "./_stats.ts";
import {
  CHUNK,
  hashOnlyMs,
  headerOf,
  heartbeatOf,
  heavyMeta,
  manifestOf,
  measure,
  type Measured,
  randomBytes,
  type Workload,
} from "./_workloads.ts";
import {
  type Fleet,
  fleetPeaks,
  servedSha,
  startFleet,
  stopFleets,
  uploadOnce,
  writeFile,
} from "./_e2e.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const WIRES: WireEncoding[] = ["json", "protobuf"];
const KiB = 1024, MiB = 1024 * 1024;

const FLAGS = {
  runs: {
    type: "string",
    arg: "N",
    help: "Repetitions of each timed case (100 MiB: a third). Default 5.",
  },
  big: { type: "boolean", help: "Add the 1 GiB cases (in-process and end to end, 1 run each)." },
  "skip-e2e": { type: "boolean", help: "Only the in-process part (sizes, CPU)." },
  help: { type: "boolean", short: "h", help: "Show this help." },
} satisfies FlagTable;

/** Failed sanity checks; the run exits 1 when any. */
const failed: string[] = [];
function check(ok: boolean, what: string): void {
  console.error(`sanity: ${ok ? "ok" : "FAILED"}: ${what}`);
  if (!ok) failed.push(what);
}

function workloads(big: boolean): Workload[] {
  const obj = (label: string, size: number, seed: number, count?: number): Workload => {
    const body = randomBytes(size, seed);
    return { kind: "object", label, header: headerOf(`w/${label}`, body), body, count };
  };
  const heavyBody = randomBytes(16, 5);
  const list: Workload[] = [
    obj("object 0 B (null)", 0, 1),
    obj("object 1 KiB", KiB, 2),
    obj("object 1 MiB", MiB, 3),
    obj("object 100 MiB", 100 * MiB, 4),
    obj("1000 objects of 1 KiB", KiB, 6, 1000),
    {
      kind: "object",
      label: "metadata-heavy (64 pairs, 16 B body)",
      header: headerOf(`w/${"n".repeat(200)}`, heavyBody, heavyMeta()),
      body: heavyBody,
    },
    {
      kind: "message",
      label: "manifest of 10,000 files",
      message: "manifest",
      value: manifestOf(10_000),
    },
    { kind: "message", label: "heartbeat, 3 nodes", message: "heartbeat", value: heartbeatOf(3) },
    {
      kind: "message",
      label: "heartbeat, 1,000 nodes",
      message: "heartbeat",
      value: heartbeatOf(1000),
    },
  ];
  if (big) list.push(obj("object 1 GiB", 1024 * MiB, 7));
  return list;
}

/** Part 1: sizes, message counts, encode and decode CPU, interleaved JSON/Protobuf runs. */
async function inProcess(runs: number, big: boolean) {
  const rows = [
    "| workload | JSON bytes | Protobuf bytes | Protobuf/JSON | messages | encode ms JSON | encode ms Protobuf | decode ms JSON | decode ms Protobuf |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  const out: Record<string, unknown> = {};
  for (const w of workloads(big)) {
    const n = w.label.includes("GiB")
      ? 1
      : w.label.includes("100 MiB")
      ? Math.max(1, Math.ceil(runs / 3))
      : runs;
    const got: Record<WireEncoding, Measured[]> = { json: [], protobuf: [] };
    for (let i = 0; i < n; i++) {
      // Alternate which encoding goes first, so drift (other load, GC, JIT) hits both.
      for (const wire of i % 2 === 0 ? WIRES : [...WIRES].reverse()) {
        got[wire].push(await measure(w, wire));
      }
    }
    const [j, p] = [got.json[0], got.protobuf[0]];
    check(
      j.messages === p.messages,
      `${w.label}: same number of messages (${j.messages} and ${p.messages})`,
    );
    if (w.kind === "object") {
      check(j.sha256 === p.sha256, `${w.label}: same SHA-256 decoded from both`);
    }
    const s = (wire: WireEncoding, k: "encodeMs" | "decodeMs") =>
      spread(got[wire].map((m) => m[k]));
    const digits = w.label.includes("100 MiB") || w.label.includes("GiB") ? 0 : 2;
    rows.push(
      `| ${w.label} | ${bytes(j.bytes)} | ${bytes(p.bytes)} | ${
        (p.bytes / j.bytes).toFixed(3)
      } | ${j.messages} | ` +
        `${fmt(s("json", "encodeMs"), digits)} | ${fmt(s("protobuf", "encodeMs"), digits)} | ` +
        `${fmt(s("json", "decodeMs"), digits)} | ${fmt(s("protobuf", "decodeMs"), digits)} |`,
    );
    out[w.label] = { json: got.json, protobuf: got.protobuf };
    console.error(`wire experiment: ${w.label} done`);
  }
  // The floor under an object decode: SHA-256 of the body alone (100 MiB).
  const body = randomBytes(100 * MiB, 4);
  const floor = spread(
    Array.from({ length: Math.max(1, Math.ceil(runs / 3)) }, () => hashOnlyMs(body)),
  );
  // Null run of the timer: an empty async call measured the same way.
  const nulls: number[] = [];
  for (let i = 0; i < 1000; i++) {
    const t0 = performance.now();
    await Promise.resolve();
    nulls.push(performance.now() - t0);
  }
  return { rows, out, floor, timerNull: spread(nulls) };
}

/** The hand-computed sizes of one message, compared with what the encoders write. */
async function handComputed() {
  const body = randomBytes(KiB, 9);
  const frames: Record<WireEncoding, number[]> = { json: [], protobuf: [] };
  for (const wire of WIRES) {
    const { writeObjectStreamAs } = await import("../../lib/wire/object_stream.ts");
    await writeObjectStreamAs(wire, headerOf("h", body), [body], CHUNK, (f) => {
      frames[wire].push(f.length);
      return Promise.resolve();
    });
  }
  // Protobuf chunk frame of 1024 bytes at offset 0: Chunk.data = tag 1 + length varint 2 + 1024
  // = 1027; Frame.chunk = tag 1 + length varint 2 + 1027 = 1030; the frame's length prefix is
  // a 2-byte varint: 1032. JSON chunk line: `{"offset":0,"data":"` (20) + base64 of 1024 bytes
  // (4 * ceil(1024 / 3) = 1368) + `"}` and a newline (3) = 1391. End: 3 bytes and 13 bytes.
  const expected = { protobuf: [1032, 3], json: [1391, 13] };
  check(chunkFrameLength(0, KiB) === 1032, "chunkFrameLength(0, 1024) is the hand-computed 1032");
  for (const wire of WIRES) {
    const got = [frames[wire][1], frames[wire][2]];
    check(
      got[0] === expected[wire][0] && got[1] === expected[wire][1],
      `${wire}: 1 KiB chunk and end are ${got.join(" and ")} bytes, hand-computed ${
        expected[wire].join(" and ")
      }`,
    );
  }
  return { expected, measured: { json: frames.json, protobuf: frames.protobuf } };
}

/** Part 2: end to end on two fleets of two nodes, interleaved. */
async function endToEnd(runs: number, big: boolean) {
  const dir = await Deno.makeTempDir({ prefix: "nearcast-wire-" });
  const fleets: Fleet[] = [];
  const rows = [
    "| workload | runs | upload ms JSON | upload ms Protobuf | replicated ms JSON | replicated ms Protobuf |",
    "| --- | --- | --- | --- | --- | --- |",
  ];
  const out: Record<string, unknown> = {};
  try {
    for (const wire of WIRES) fleets.push(await startFleet(dir, wire));
    const cases: [string, number, number][] = [
      ["0 B (null run)", 0, runs],
      ["1 KiB", KiB, runs],
      ["1 MiB", MiB, runs],
      ["100 MiB", 100 * MiB, Math.max(1, Math.ceil(runs / 3))],
    ];
    if (big) cases.push(["1 GiB", 1024 * MiB, 1]);
    for (const [label, size, n] of cases) {
      const t: Record<WireEncoding, { uploadMs: number; replicationMs: number }[]> = {
        json: [],
        protobuf: [],
      };
      for (let i = 0; i < n; i++) {
        const file = `${dir}/f.bin`;
        const sha = await writeFile(file, size, i);
        for (const f of i % 2 === 0 ? fleets : [...fleets].reverse()) {
          const name = `e/${size}-${i}`;
          t[f.wire].push(await uploadOnce(f, file, name, sha));
          if (i === n - 1) {
            check(
              (await servedSha(f, name)) === sha,
              `${f.wire} ${label}: b serves the SHA-256 uploaded`,
            );
          }
        }
        await Deno.remove(file);
      }
      const s = (w: WireEncoding, k: "uploadMs" | "replicationMs") =>
        fmt(spread(t[w].map((x) => x[k])), 1);
      rows.push(
        `| ${label} | ${n} | ${s("json", "uploadMs")} | ${s("protobuf", "uploadMs")} | ${
          s("json", "replicationMs")
        } | ${s("protobuf", "replicationMs")} |`,
      );
      out[label] = t;
      console.error(`wire experiment: end to end ${label} done`);
    }
    // Many small files: 100 uploads of 1 KiB one after the other, then until b holds all.
    const many: Record<string, number[]> = { json: [], protobuf: [] };
    for (let i = 0; i < Math.max(1, Math.ceil(runs / 3)); i++) {
      for (const f of i % 2 === 0 ? fleets : [...fleets].reverse()) {
        const t0 = performance.now();
        for (let k = 0; k < 100; k++) {
          const file = `${dir}/s.bin`;
          const sha = await writeFile(file, KiB, k);
          await uploadOnce(f, file, `m/${i}-${k}`, sha);
        }
        many[f.wire].push(performance.now() - t0);
      }
    }
    rows.push(
      `| 100 files of 1 KiB, in sequence (total) | ${many.json.length} | ${
        fmt(spread(many.json), 0)
      } | ${fmt(spread(many.protobuf), 0)} | (each replicated before the next) | |`,
    );
    out.many = many;
    const peaks = Object.fromEntries(fleets.map((f) => [f.wire, fleetPeaks(f)]));
    return { rows, out, peaks };
  } finally {
    await stopFleets(fleets);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function main() {
  const f = parseFlags(Deno.args, FLAGS);
  if (f.bool("help")) {
    console.log(usage(["Usage: deno task experiment:wire [--runs N] [--big] [--skip-e2e]"], FLAGS));
    return;
  }
  const runs = f.int("runs", 5, 1);
  const big = f.bool("big");
  const load = Deno.loadavg();
  console.log(
    `machine: ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}, load average ${
      load.map((x) => x.toFixed(2)).join(" ")
    } at start`,
  );
  const hand = await handComputed();
  const cpu = await inProcess(runs, big);
  console.log("\n" + cpu.rows.join("\n"));
  console.log(
    `\nfloor: SHA-256 of 100 MiB alone ${fmt(cpu.floor, 0)} ms; timer null run ${
      fmt(cpu.timerNull, 4)
    } ms`,
  );
  let e2e = null;
  if (!f.bool("skip-e2e")) {
    e2e = await endToEnd(runs, big);
    console.log("\n" + e2e.rows.join("\n"));
    const mib = (n: number) => (n / MiB).toFixed(1);
    console.log(
      `\npeak RSS (MiB), receiving node a / replica b: ` +
        WIRES.map((w) => `${w} ${mib(e2e!.peaks[w].a)} / ${mib(e2e!.peaks[w].b)}`).join("; "),
    );
  }
  console.log(`load average at end: ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  await Deno.mkdir(`${ROOT}bench/.out`, { recursive: true });
  await Deno.writeTextFile(
    `${ROOT}bench/.out/wire.json`,
    JSON.stringify({ hand, cpu: cpu.out, e2e: e2e?.out, peaks: e2e?.peaks, failed }, null, 2),
  );
  if (failed.length > 0) {
    console.error(`sanity checks failed: ${failed.join("; ")}`);
    Deno.exit(1);
  }
}

if (import.meta.main) await main();

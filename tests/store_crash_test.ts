/**
 * Crash test: a real `deno run` child stores bodies in a loop and is killed with SIGKILL at a
 * seeded random moment, several rounds on the same directory. After each kill the store is
 * reopened here and must hold, for every key, either the last value the child saw acknowledged
 * or the value of the one operation in flight; every body must read back with the right hash;
 * no temporary or unreferenced file may remain. The last rounds kill the child only once a
 * streamed body is partly on disk (its temporary file holds part of it), so kills provably land
 * mid-write.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { openStore } from "../lib/store/sqlite_store.ts";
import { bytes, objectFiles, sha256, withTempDir } from "./_store_helpers.ts";

/** Rounds of start/kill/verify; each runs the child for up to MAX_RUN_MS. */
const ROUNDS = 8;
const MIN_RUN_MS = 30;
const MAX_RUN_MS = 700;
/** How long a child may take to open the store before the test gives up. */
const START_TIMEOUT_MS = 30_000;
const SEED = Number(Deno.env.get("STORE_CRASH_SEED") ?? 20261121);
/** The last rounds kill only once a streamed body is partly on disk (a kill mid-write). */
const MID_WRITE_ROUNDS = 3;
/** Smallest temporary file counted as "partly written". */
const PARTIAL_MIN = 64 * 1024;
/** Polls (about 1 ms apart) for a partly written body before killing anyway. */
const MID_WRITE_POLLS = 20_000;

type Op = { op: string; key: string; seed: number; size: number };
type Value = { seed: number; size: number } | null;

const CHILD = fileURLToPath(new URL("./_store_crash_child.ts", import.meta.url));

/** Runs the child until the kill; returns acknowledged state changes and the op in flight. */
async function runChild(dir: string, seed: number, runMs: number, midWrite: boolean) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", CHILD, dir, String(seed)],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const acked: Op[] = [];
  let inFlight: Op | null = null;
  let ready!: () => void;
  const isReady = new Promise<void>((r) => ready = r);
  const readLines = (async () => {
    let buf = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === "R") ready();
        else if (line === "D") {
          acked.push(inFlight!);
          inFlight = null;
        } else if (line.startsWith("B ")) {
          const [, op, key, s, n] = line.split(" ");
          inFlight = { op, key, seed: Number(s), size: Number(n) };
        }
      }
    }
  })();
  const stderr = new Response(child.stderr).text();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      isReady,
      child.status.then((s) => {
        throw new Error(`child exited early with ${s.code}`);
      }),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("child did not start")), START_TIMEOUT_MS);
      }),
    ]);
    await new Promise((r) => setTimeout(r, runMs));
    // A mid-write round: go on until a streamed body is on disk in part, then kill.
    for (let i = 0; midWrite && i < MID_WRITE_POLLS; i++) {
      const op = inFlight as Op | null;
      if (op !== null && op.op === "stream" && op.size >= 2 * PARTIAL_MIN) {
        const sizes = tempSizes(dir);
        if (sizes.some((n) => n >= PARTIAL_MIN && n < op.size)) break;
      }
      await new Promise((r) => setTimeout(r, 1));
    }
  } finally {
    clearTimeout(timer);
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
  }
  const status = await child.status;
  // What the kill left: the temporary files of the body being written.
  const leftTemp = tempSizes(dir);
  await readLines;
  const err = await stderr;
  assert.equal(status.signal, "SIGKILL", `child should die by SIGKILL; stderr: ${err}`);
  return { acked, inFlight: inFlight as Op | null, leftTemp };
}

/** Sizes of the store's temporary files in `dir`. */
function tempSizes(dir: string): number[] {
  const out: number[] = [];
  try {
    for (const e of Deno.readDirSync(`${dir}/objects/tmp`)) {
      try {
        out.push(Deno.statSync(`${dir}/objects/tmp/${e.name}`).size);
      } catch { /* renamed meanwhile */ }
    }
  } catch { /* not created yet */ }
  return out;
}

function apply(model: Map<string, Value>, op: Op): void {
  model.set(op.key, op.op === "delete" ? null : { seed: op.seed, size: op.size });
}

Deno.test("store: SIGKILL at random moments never loses an acknowledged put nor leaves a partial object", async () => {
  await withTempDir(async (dir) => {
    let rng = SEED >>> 0 || 1;
    const rand = (n: number) => {
      rng ^= rng << 13;
      rng ^= rng >>> 17;
      rng ^= rng << 5;
      return (rng >>> 0) % n;
    };
    const model = new Map<string, Value>();
    let totalOps = 0;
    let inFlightRounds = 0;
    let partialRounds = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const runMs = MIN_RUN_MS + rand(MAX_RUN_MS - MIN_RUN_MS);
      const midWrite = round >= ROUNDS - MID_WRITE_ROUNDS;
      const { acked, inFlight, leftTemp } = await runChild(
        dir,
        1 + rand(0x7fffffff),
        runMs,
        midWrite,
      );
      for (const op of acked) apply(model, op);
      totalOps += acked.length;
      if (inFlight) inFlightRounds++;
      const partial = inFlight !== null && inFlight.op === "stream" &&
        leftTemp.some((n) => n >= PARTIAL_MIN && n < inFlight.size);
      if (partial) partialRounds++;
      if (midWrite) {
        assert.ok(partial, `round ${round}: killed mid-write: ${leftTemp} of ${inFlight?.size}`);
      }
      const ctx = `round ${round} (seed ${SEED}, ${runMs} ms, ${acked.length} ops acknowledged)`;

      const store = openStore(dir);
      try {
        assert.deepEqual(
          objectFiles(dir).filter((f) => f.startsWith("tmp/")),
          [],
          `${ctx}: temporary files removed`,
        );
        const keys = new Set([...model.keys(), ...(inFlight ? [inFlight.key] : [])]);
        for (const e of store.entries()) assert.ok(keys.has(e.key), `${ctx}: unknown ${e.key}`);
        for (const key of keys) {
          const entry = store.head(key);
          const got: Value = entry ? JSON.parse(entry.meta) : null;
          const body = await store.read(key);
          assert.equal(body === null, entry === null, `${ctx}: ${key} readable iff present`);
          if (entry && body) {
            assert.equal(sha256(body), entry.sha256, `${ctx}: ${key} hash`);
            assert.equal(body.length, entry.size, `${ctx}: ${key} size`);
            const expected = bytes(entry.size, got!.seed);
            assert.equal(entry.sha256, sha256(expected), `${ctx}: ${key} is the body written`);
          }
          const acknowledged = model.get(key) ?? null;
          const gotSeed = got ? got.seed : null;
          const ackSeed = acknowledged ? acknowledged.seed : null;
          if (gotSeed !== ackSeed) {
            // Only the operation in flight at the kill may differ from the acknowledged state.
            assert.ok(inFlight && inFlight.key === key, `${ctx}: ${key} lost its acked value`);
            const flightSeed = inFlight.op === "delete" ? null : inFlight.seed;
            assert.equal(gotSeed, flightSeed, `${ctx}: ${key} holds neither old nor new`);
          }
          model.set(key, entry ? { seed: got!.seed, size: entry.size } : null);
        }
        // Every file left is referenced by a row (the store removed the rest at open).
        const referenced = new Set(
          [...store.entries()].map((e) => store.filePath(e.key)).filter((p) => p !== null),
        );
        for (const f of objectFiles(dir)) {
          if (f === "tmp") continue;
          assert.ok(referenced.has(`${dir}/objects/${f}`), `${ctx}: unreferenced file ${f}`);
        }
      } finally {
        store.close();
      }
    }
    assert.ok(totalOps > ROUNDS, `the children did work: ${totalOps} operations`);
    console.log(
      `crash test: ${ROUNDS} rounds, ${totalOps} acknowledged operations, ${inFlightRounds} kills mid-operation, ${partialRounds} with a body partly on disk`,
    );
  });
});

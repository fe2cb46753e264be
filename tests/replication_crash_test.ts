/**
 * End-to-end crash: a node is killed with SIGKILL while a big file is being replicated into
 * it, more files are uploaded to the others, and it restarts: its manifest converges to the
 * others' (same names and hashes) within a bounded time, and no reader ever got a partial
 * file from it (every 200 body matches its ETag's SHA-256).
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import {
  bytesOf,
  get,
  manifestOf,
  runUpload,
  sha256,
  startJoined,
  startNode,
  stopAll,
  type TestNode,
  tfetch,
  TOKEN,
  waitUntil,
  withTempDir,
} from "./_upload_cluster.ts";

/** Bound on convergence after the restart. */
const CONVERGE_MS = 20_000;
/** Size of the files replicated while the kill lands: big enough to take a while to stream. */
const BIG = 16 * 1024 * 1024;
/** Big uploads tried before giving up on landing a kill mid-replication. */
const KILL_TRIES = 4;

/** Reads `names` from `node` in a loop; records any 200 whose body does not match its ETag. */
function startReader(getNode: () => TestNode | null, names: string[]) {
  const bad: string[] = [];
  let served = 0;
  let stop = false;
  const done = (async () => {
    while (!stop) {
      const n = getNode();
      for (const name of names) {
        if (n === null || stop) break;
        try {
          const r = await get(`${n.url}/${name}`);
          if (r.status !== 200) continue;
          served++;
          const etag = r.headers.get("etag")?.replaceAll('"', "");
          if (etag !== await sha256(r.body)) bad.push(`${name}: ${r.body.length} bytes`);
        } catch { /* node down */ }
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    bad,
    served: () => served,
    stop: async () => {
      stop = true;
      await done;
    },
  };
}

Deno.test("replication: kill -9 mid-replication, restart, converge, never serve a partial file", async () => {
  await withTempDir(async (dir) => {
    const nodes: (TestNode | null)[] = [];
    let reader: ReturnType<typeof startReader> | null = null;
    try {
      const [a, b] = await startJoined(dir, nodes, ["a", "b", "c"], ["--chunk-bytes", "64KiB"]);
      await waitUntil(
        async () => {
          const list = await (await tfetch(`${a.url}/_cdn/servers`)).json();
          return list.length === 3;
        },
        CONVERGE_MS,
        "a to know b and c",
      );
      const names = Array.from({ length: KILL_TRIES }, (_, i) => `big${i}.bin`);
      reader = startReader(() => nodes[2], [...names, "after1.txt", "after2.bin"]);

      // Upload big files to a until one is caught streaming into c's temporary directory.
      const tmp = `${dir}/c/objects/tmp`;
      let killedMidway = false;
      for (let i = 0; i < KILL_TRIES && !killedMidway; i++) {
        await Deno.writeFile(`${dir}/${names[i]}`, bytesOf(BIG, 100 + i));
        const up = runUpload([`${dir}/${names[i]}`, "--to", a.url, "--token", TOKEN]);
        const deadline = Date.now() + 10_000;
        while (Date.now() < deadline) {
          if ([...Deno.readDirSync(tmp)].length > 0) {
            await nodes[2]!.proc.kill9();
            nodes[2] = null;
            killedMidway = true;
            break;
          }
          const m = await manifestOf(nodes[2]!.url).catch(() => null);
          if (m?.has(names[i])) break; // finished before we looked: try the next file
          await new Promise((r) => setTimeout(r, 2));
        }
        equal((await up).code, 0);
      }
      ok(killedMidway, "no kill landed while c was receiving a file");
      ok([...Deno.readDirSync(tmp)].length > 0, "c died with a partial temporary file");

      // More files while c is down, to both other nodes.
      await Deno.writeTextFile(`${dir}/after1.txt`, "uploaded while c was down");
      await Deno.writeFile(`${dir}/after2.bin`, bytesOf(500_000, 9));
      equal((await runUpload([`${dir}/after1.txt`, "--to", a.url, "--token", TOKEN])).code, 0);
      equal((await runUpload([`${dir}/after2.bin`, "--to", b.url, "--token", TOKEN])).code, 0);

      // Restart c on its old data. Its store drops the partial file at open.
      const c = await startNode("c", `${dir}/c`, ["--join", b.url]);
      nodes[2] = c;
      await waitUntil(
        async () => {
          const [ma, mb, mc] = await Promise.all([a, b, c].map((n) => manifestOf(n.url)));
          return ma.size > 0 && JSON.stringify([...ma].sort()) === JSON.stringify([...mc].sort()) &&
            JSON.stringify([...mb].sort()) === JSON.stringify([...mc].sort());
        },
        CONVERGE_MS,
        "c's manifest to equal a's and b's",
      );
      const ma = await manifestOf(a.url);
      const mc = await manifestOf(c.url);
      deepStrictEqual([...mc].sort(), [...ma].sort());
      for (const [name, hash] of mc) {
        const r = await get(`${c.url}/${name}`);
        equal(r.status, 200, name);
        equal(await sha256(r.body), hash, name);
      }
      await reader.stop();
      deepStrictEqual(reader.bad, [], "partial files served");
      ok(reader.served() > 0, "the reader saw files served by c");
    } finally {
      await reader?.stop();
      await stopAll(nodes);
    }
  });
});

/**
 * Child process of `store_crash_test.ts`: opens the store in DIR and runs seeded operations one
 * at a time until it is killed. Protocol on stdout, one line each:
 * - `R` once the store is open;
 * - `B put|stream|delete KEY SEED SIZE` before an operation starts;
 * - `D` after it resolved (for a put: durable).
 *
 * Usage: deno run -A tests/_store_crash_child.ts DIR SEED
 */

import { openStore } from "../lib/store/sqlite_store.ts";
import { bytes } from "./_store_helpers.ts";

/** Keys the child writes; few, so replaces, deletes and shared bodies happen often. */
const CRASH_KEYS = 6;
/** Largest body the child writes: several times the default file threshold. */
const CRASH_MAX_SIZE = 768 * 1024;

const [dir, seedArg] = Deno.args;
let x = Number(seedArg) >>> 0 || 1;
const rand = (n: number) => {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return (x >>> 0) % n;
};
const out = Deno.stdout;
const enc = new TextEncoder();
const say = async (line: string) => {
  const b = enc.encode(line + "\n");
  let off = 0;
  while (off < b.length) off += await out.write(b.subarray(off));
};

const store = openStore(dir);
await say("R");
const seeds: number[] = [];
for (let i = 0;; i++) {
  const key = `/k${rand(CRASH_KEYS)}`;
  const r = rand(10);
  if (r === 0) {
    await say(`B delete ${key} 0 0`);
    store.delete(key);
    await say("D");
    continue;
  }
  // One body in four reuses an earlier body, so files are shared between keys.
  const reuse = seeds.length > 0 && rand(4) === 0;
  const seed = reuse ? seeds[rand(seeds.length)] : 1 + rand(0x7fffffff);
  if (!reuse) seeds.push(seed);
  const size = seed % (CRASH_MAX_SIZE + 1);
  const body = bytes(size, seed);
  if (r < 5) {
    await say(`B put ${key} ${seed} ${size}`);
    await store.put(key, `{"seed":${seed}}`, body);
  } else {
    await say(`B stream ${key} ${seed} ${size}`);
    const chunk = 16 * 1024;
    let off = 0;
    const stream = new ReadableStream<Uint8Array>({
      async pull(c) {
        if (off >= body.length) return c.close();
        // A slow source, like an origin: the body is on disk in part for a while.
        if (off > 0) await new Promise((r) => setTimeout(r, 1));
        c.enqueue(body.slice(off, off + chunk));
        off += chunk;
      },
    });
    await store.putStream(key, `{"seed":${seed}}`, stream, { expectedSize: size });
  }
  await say("D");
}

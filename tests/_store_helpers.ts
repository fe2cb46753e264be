/** Helpers shared by the store tests: temp dirs, deterministic bytes, hashes, file listings. */

import { createHash } from "node:crypto";

/** Runs `fn` with a fresh temporary directory, removed afterwards even when `fn` throws. */
export async function withTempDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "nearcast_store_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** `n` deterministic pseudo-random bytes from `seed` (xorshift32). */
export function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = (seed >>> 0) || 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Hex SHA-256, computed independently of the store. */
export function sha256(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/** Every regular file under `dir/objects`, as paths relative to `dir/objects`. */
export function objectFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of Deno.readDirSync(`${dir}/objects${rel}`)) {
      if (e.isDirectory) walk(`${rel}/${e.name}`);
      else out.push(`${rel}/${e.name}`.slice(1));
    }
  };
  walk("");
  return out.sort();
}

/** A stream of `body` cut into chunks of `chunk` bytes, optionally failing after `failAfter`. */
export function streamOf(
  body: Uint8Array,
  chunk = 7919,
  failAfter?: number,
): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    pull(c) {
      if (failAfter !== undefined && off >= failAfter) {
        c.error(new Error("origin connection reset"));
        return;
      }
      if (off >= body.length) {
        c.close();
        return;
      }
      c.enqueue(body.slice(off, off + chunk));
      off += chunk;
    },
  });
}

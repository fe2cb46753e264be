/**
 * Compiles every AssemblyScript module in `wasm/` to `wasm/build/NAME.wasm`.
 *
 * Usage: `deno task build:wasm [--force]`. Without `--force`, a module whose source, compiler
 * version and flags hash to the stamp beside its `.wasm` is left alone; the test task always
 * passes `--force`, so tests never run against a stale module.
 */
import asc from "assemblyscript/asc";
import { parseArgs } from "node:util";

const FLAGS = ["-O3", "--runtime", "stub", "--use", "abort=", "--enable", "simd"];
const root = new URL("../wasm/", import.meta.url);
const out = new URL("build/", root);

/** Hex SHA-256 of a string. */
async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Modules are the top-level `.ts` files of `wasm/`; files starting with `_` are shared code. */
async function modules(): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(root)) {
    if (e.isFile && e.name.endsWith(".ts") && !e.name.startsWith("_")) names.push(e.name);
  }
  return names.sort();
}

/** The text the stamp hashes: every source in `wasm/` (modules share `_` files), flags, version. */
async function sourceText(): Promise<string> {
  // The compiler version (pinned in deno.json) is part of the stamp: a new compiler rebuilds.
  const parts: string[] = [asc.version, FLAGS.join(" ")];
  const files: string[] = [];
  for await (const e of Deno.readDir(root)) {
    if (e.isFile && (e.name.endsWith(".ts") || e.name === "asconfig.json")) files.push(e.name);
  }
  for (const f of files.sort()) parts.push(f, await Deno.readTextFile(new URL(f, root)));
  return parts.join("\n");
}

/** Builds the modules that are stale (all of them with `force`); returns the names built. */
export async function buildWasm(force = false): Promise<string[]> {
  await Deno.mkdir(out, { recursive: true });
  const stamp = await sha256(await sourceText());
  const built: string[] = [];
  for (const name of await modules()) {
    const base = name.slice(0, -3);
    const wasmUrl = new URL(`${base}.wasm`, out);
    const stampUrl = new URL(`${base}.stamp`, out);
    if (!force) {
      try {
        if ((await Deno.readTextFile(stampUrl)) === stamp) {
          await Deno.stat(wasmUrl);
          continue;
        }
      } catch { /* no stamp or no module: build it */ }
    }
    const tmp = new URL(`${base}.wasm.tmp`, out);
    const { error, stderr } = await asc.main([
      new URL(name, root).pathname,
      ...FLAGS,
      "--outFile",
      tmp.pathname,
      "--textFile",
      new URL(`${base}.wat`, out).pathname,
    ]);
    if (error) {
      throw new Error(`Cannot build wasm/${name}: ${error.message}\n${stderr.toString()}`);
    }
    await Deno.rename(tmp, wasmUrl);
    await Deno.writeTextFile(stampUrl, stamp);
    built.push(name);
  }
  return built;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { force: { type: "boolean", default: false }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    console.log("Usage: deno task build:wasm [--force]\n  --force  rebuild even if up to date");
    Deno.exit(0);
  }
  const built = await buildWasm(values.force);
  console.log(built.length ? `built ${built.join(", ")}` : "wasm up to date");
}

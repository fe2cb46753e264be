/**
 * The offline release: `deno task dist [--out DIR]` builds
 * `dist/nearcast-VERSION-linux-x64.tar.gz`, which runs on a Linux x86-64 machine with no Node,
 * no npm, no Deno and no network:
 *
 * - `runtime/deno`: the Deno binary from npm's `@deno/linux-x64-glibc`, the version `./deno`
 *   pins (checked with `--version`);
 * - `app/`: the processes' entry points (`main_*.ts`), `lib/`, the built `wasm/build/*.wasm`,
 *   `deno.json` and `deno.lock`;
 * - `cache/`: a `DENO_DIR` holding the npm packages the shipped code imports, fetched by the
 *   shipped runtime with `--frozen`. The release's `deno.json` keeps only the imports that code
 *   uses (not the build, test and benchmark tools) and its `deno.lock` is the repository's, cut
 *   to what those reach: the same versions and integrity hashes, and a package that does not
 *   match the lock stops the build;
 * - `bin/dnsserver`, `bin/httpserver`, `bin/upload`, `bin/price`, `bin/proxy`: shell scripts that
 *   run `runtime/deno run --cached-only --frozen -A app/main_X.ts "$@"` with `DENO_DIR=cache`,
 *   so they take exactly the flags of the tasks (`bin/dnsserver -p 5300 -n cdn.test`) and never
 *   download anything. They follow symlinks, so they can be linked from `/usr/local/bin`.
 *
 * `deno compile` (task `compile`) would make single binaries, but it downloads a runtime these
 * machines cannot fetch; this tarball is the offline way.
 *
 * @module
 */
import { parseArgs } from "node:util";

const ROOT = new URL("../", import.meta.url).pathname;

/** Executables of the release and the entry point each runs. */
export const EXECUTABLES: Record<string, string> = {
  dnsserver: "main_dns.ts",
  httpserver: "main_http.ts",
  upload: "main_upload.ts",
  get: "main_get.ts",
  price: "main_price.ts",
  proxy: "main_proxy.ts",
};

const HELP = `deno task dist [--out DIR]

Builds DIR/nearcast-VERSION-linux-x64.tar.gz (DIR defaults to dist/): the Deno runtime, the
code, the built WASM and every npm dependency, with bin/dnsserver, bin/httpserver, bin/upload,
bin/price and bin/proxy. Needs the npm registry (or npm's cache) at build time only.
`;

/** The release's name: `nearcast-VERSION-linux-x64`, VERSION from deno.json. */
export function releaseName(): string {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));
  if (typeof config.version !== "string") throw new Error('deno.json has no "version"');
  return `nearcast-${config.version}-linux-x64`;
}

/** The Deno version `./deno` pins (the one place it lives). */
export function pinnedDenoVersion(): string {
  const m = /^DENO_VERSION=(\S+)$/m.exec(Deno.readTextFileSync(`${ROOT}deno`));
  if (m === null) throw new Error("./deno has no DENO_VERSION= line");
  return m[1];
}

async function run(cmd: string, args: string[], opts: Deno.CommandOptions = {}): Promise<string> {
  const out = await new Deno.Command(cmd, { ...opts, args, stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (exit ${out.code}):\n${dec.decode(out.stderr)}`,
    );
  }
  return dec.decode(out.stdout);
}

async function copyTree(from: string, to: string, keep: (name: string) => boolean) {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyTree(`${from}/${e.name}`, `${to}/${e.name}`, keep);
    else if (e.isFile && keep(e.name)) await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

/** The runtime: `@deno/linux-x64-glibc@VERSION` from npm (its cache first), checked. */
async function fetchRuntime(version: string, tmp: string, to: string): Promise<void> {
  const pkg = `@deno/linux-x64-glibc@${version}`;
  const file = (await run("npm", ["pack", pkg, "--pack-destination", tmp, "--silent"], {
    env: { npm_config_yes: "true" },
  })).trim().split("\n").at(-1)!;
  await run("tar", ["-xzf", `${tmp}/${file}`, "-C", tmp, "package/deno"]);
  await Deno.copyFile(`${tmp}/package/deno`, to);
  await Deno.chmod(to, 0o755);
  const shown = await run(to, ["--version"]);
  if (!shown.startsWith(`deno ${version} `)) {
    throw new Error(`${pkg} reports ${shown.split("\n")[0]}, not deno ${version}`);
  }
}

/** `bin/NAME`: runs `app/MAIN` with the shipped runtime and cache, nothing downloaded. */
function launcher(main: string): string {
  return `#!/bin/sh
# Runs app/${main} with the release's own Deno and dependency cache; flags as the task's.
set -eu
self=$(readlink -f "$0")
root=$(cd "$(dirname "$self")/.." && pwd)
export DENO_DIR="$root/cache"
export DENO_NO_UPDATE_CHECK=1
export DENO_NO_PROMPT=1
exec "$root/runtime/deno" run --cached-only --frozen -A --config "$root/app/deno.json" \\
  "$root/app/${main}" "$@"
`;
}

/** Builds the release into `outDir`; returns the tarball's path and size. */
export async function buildRelease(outDir: string): Promise<{ path: string; bytes: number }> {
  const name = releaseName();
  const version = pinnedDenoVersion();
  const stage = `${outDir}/${name}`;
  await Deno.remove(stage, { recursive: true }).catch(() => {});
  await Deno.mkdir(`${stage}/bin`, { recursive: true });
  await Deno.mkdir(`${stage}/runtime`, { recursive: true });
  const tmp = await Deno.makeTempDir({ prefix: "nearcast-dist-" });
  try {
    await run(Deno.execPath(), ["run", "-A", "scripts/build_wasm.ts"], { cwd: ROOT });
    const mains = Object.entries(EXECUTABLES).filter(([, main]) => exists(`${ROOT}${main}`));
    await Deno.mkdir(`${stage}/app`, { recursive: true });
    for (const [, main] of mains) await Deno.copyFile(`${ROOT}${main}`, `${stage}/app/${main}`);
    await copyTree(`${ROOT}lib`, `${stage}/app/lib`, (n) => n.endsWith(".ts"));
    await copyTree(`${ROOT}wasm/build`, `${stage}/app/wasm/build`, (n) => n.endsWith(".wasm"));
    await writeTrimmedConfig(`${stage}/app`);
    await fetchRuntime(version, tmp, `${stage}/runtime/deno`);
    await run(`${stage}/runtime/deno`, [
      "cache",
      "--frozen",
      "--config",
      `${stage}/app/deno.json`,
      ...mains.map(([, main]) => `${stage}/app/${main}`),
      // Started as a Worker by URL, so not in the mains' module graph: cached by name.
      `${stage}/app/lib/image/_transcode_worker.ts`,
    ], { env: { DENO_DIR: `${stage}/cache`, DENO_NO_UPDATE_CHECK: "1" } });
    for (const [bin, main] of mains) {
      await Deno.writeTextFile(`${stage}/bin/${bin}`, launcher(main), { mode: 0o755 });
      await Deno.chmod(`${stage}/bin/${bin}`, 0o755);
    }
    await Deno.writeTextFile(
      `${stage}/VERSION`,
      `${name}\ndeno ${version}\nbuilt ${new Date().toISOString()}\n`,
    );
    const tarball = `${outDir}/${name}.tar.gz`;
    await run("tar", ["-czf", tarball, "-C", outDir, "--owner=0", "--group=0", name]);
    return { path: tarball, bytes: (await Deno.stat(tarball)).size };
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

/** Bare specifiers (`"name"`, `"name/sub"`) imported by the `.ts` files under `dir`. */
async function bareImports(dir: string, out = new Set<string>()): Promise<Set<string>> {
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) await bareImports(path, out);
    else if (e.name.endsWith(".ts")) {
      const text = await Deno.readTextFile(path);
      for (const m of text.matchAll(/(?:from|import\()\s*"([^".\/][^"]*)"/g)) {
        if (!m[1].startsWith("node:")) out.add(m[1]);
      }
    }
  }
  return out;
}

/** The parts of a `deno.lock` (version 5) that pruning reads. */
export interface Lock {
  version: string;
  specifiers: Record<string, string>;
  npm: Record<
    string,
    { integrity?: string; dependencies?: string[]; optionalDependencies?: string[] }
  >;
  workspace?: { dependencies?: string[] };
  [more: string]: unknown;
}

/** `lock` cut to the npm packages reachable from the `npm:` specifiers `keep`. */
export function pruneLock(lock: Lock, keep: string[]): Lock {
  const keys = Object.keys(lock.npm);
  const byName = (name: string) => keys.filter((k) => k.slice(0, k.indexOf("@", 1)) === name);
  const resolve = (dep: string): string => {
    if (dep.indexOf("@", 1) > 0) {
      const hit = keys.find((k) => k === dep || k.startsWith(`${dep}_`));
      if (hit !== undefined) return hit;
    }
    const named = byName(dep);
    if (named.length !== 1) throw new Error(`deno.lock: cannot resolve dependency ${dep}`);
    return named[0];
  };
  const seen = new Set<string>();
  const visit = (key: string) => {
    if (seen.has(key)) return;
    if (lock.npm[key] === undefined) throw new Error(`deno.lock: no package ${key}`);
    seen.add(key);
    const p = lock.npm[key];
    for (const d of [...p.dependencies ?? [], ...p.optionalDependencies ?? []]) visit(resolve(d));
  };
  const specifiers: Record<string, string> = {};
  for (const spec of keep) {
    const version = lock.specifiers[spec];
    if (version === undefined) throw new Error(`deno.lock has no ${spec}`);
    specifiers[spec] = version;
    visit(`${spec.slice(4, spec.lastIndexOf("@"))}@${version}`);
  }
  const npm = Object.fromEntries(keys.filter((k) => seen.has(k)).map((k) => [k, lock.npm[k]]));
  return {
    ...lock,
    specifiers,
    npm,
    workspace: { ...lock.workspace, dependencies: [...keep].sort() },
  };
}

/**
 * `deno.json` and `deno.lock` for the release in `app`: the imports the code under `app` uses,
 * the lock cut to them.
 */
async function writeTrimmedConfig(app: string): Promise<void> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const used = await bareImports(app);
  const imports: Record<string, string> = {};
  for (const [name, target] of Object.entries(config.imports as Record<string, string>)) {
    if ([...used].some((u) => u === name || u.startsWith(`${name}/`))) imports[name] = target;
  }
  const missing = [...used].filter((u) =>
    !Object.keys(imports).some((n) => u === n || u.startsWith(`${n}/`))
  );
  if (missing.length > 0) throw new Error(`not in deno.json's imports: ${missing.join(", ")}`);
  const trimmed = { version: config.version, unstable: config.unstable, imports };
  await Deno.writeTextFile(`${app}/deno.json`, JSON.stringify(trimmed, null, 2) + "\n");
  const lock = JSON.parse(await Deno.readTextFile(`${ROOT}deno.lock`)) as Lock;
  const pruned = pruneLock(lock, Object.values(imports).filter((t) => t.startsWith("npm:")));
  await Deno.writeTextFile(`${app}/deno.lock`, JSON.stringify(pruned, null, 2) + "\n");
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { out: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    console.log(HELP);
    Deno.exit(0);
  }
  const out = values.out ?? `${ROOT}dist`;
  await Deno.mkdir(out, { recursive: true });
  const { path, bytes } = await buildRelease(Deno.realPathSync(out));
  console.log(`dist: ${path} (${(bytes / 1048576).toFixed(1)} MiB)`);
}

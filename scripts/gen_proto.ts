/**
 * Generates the Protobuf code (`lib/wire/gen/*_pb.ts`) from `proto/*.proto` with protobuf-es:
 * buf (`npm:@bufbuild/buf`) compiles the schemas and runs the `protoc-gen-es` plugin, then
 * `deno fmt` formats the output, which is checked in. The generator's versions are the ones
 * pinned in deno.json's imports (`@bufbuild/buf`, `@bufbuild/protoc-gen-es`, the latter equal to
 * the runtime `@bufbuild/protobuf`: `tests/wire_gen_test.ts` checks both).
 *
 * `deno task gen:proto [--out DIR]`: DIR is the output base (default: the repository); the
 * staleness test generates into a temporary one and compares.
 *
 * @module
 */

import { parseArgs } from "node:util";

const ROOT = new URL("../", import.meta.url).pathname;

/** The npm specifiers pinned in deno.json's imports. */
export function pinned(): { buf: string; plugin: string; runtime: string } {
  const { imports } = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)) as {
    imports: Record<string, string>;
  };
  const get = (name: string) => {
    const v = imports[name];
    if (v === undefined) throw new Error(`deno.json imports must pin ${name}`);
    return v;
  };
  return {
    buf: get("@bufbuild/buf"),
    plugin: get("@bufbuild/protoc-gen-es"),
    runtime: get("@bufbuild/protobuf"),
  };
}

/** buf's generation template (v2), as JSON: `proto/` in, `lib/wire/gen` out (under `-o`). */
function template(plugin: string): string {
  return JSON.stringify({
    version: "v2",
    inputs: [{ directory: "proto" }],
    plugins: [{
      local: ["./deno", "run", "--allow-read", "--allow-env", plugin],
      out: "lib/wire/gen",
      opt: "target=ts,import_extension=ts",
    }],
  });
}

/** Runs buf into `outBase` (files land in `outBase/lib/wire/gen`), then formats them. */
export async function generate(outBase: string): Promise<string> {
  const deno = `${ROOT}deno`;
  const { buf, plugin } = pinned();
  const gen = await new Deno.Command(deno, {
    args: ["run", "-A", buf, "generate", "--template", template(plugin), "-o", outBase],
    cwd: ROOT,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!gen.success) throw new Error(`buf generate failed (exit ${gen.code})`);
  const dir = `${outBase}/lib/wire/gen`;
  const fmt = await new Deno.Command(deno, {
    args: ["fmt", "--quiet", "--config", `${ROOT}deno.json`, dir],
    cwd: ROOT,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!fmt.success) throw new Error(`deno fmt of ${dir} failed (exit ${fmt.code})`);
  return dir;
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { out: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    console.log("Usage: deno task gen:proto [--out DIR]  (default DIR: the repository)");
  } else {
    console.log(`generated ${await generate(values.out ?? ROOT.replace(/\/$/, ""))}`);
  }
}

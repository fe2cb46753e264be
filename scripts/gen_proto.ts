/**
 * Generates the Protobuf code (`lib/wire/gen/*_pb.ts`) from `proto/*.proto` with protobuf-es:
 * buf (`npm:@bufbuild/buf`) compiles the schemas and runs `protoc-gen-es` (template
 * `proto/buf.gen.yaml`), then `deno fmt` formats the output so it is checked in as generated.
 *
 * `deno task gen:proto [--out DIR]`: DIR is the output base (default: the repository); the
 * staleness test (`tests/wire_gen_test.ts`) generates into a temporary one and compares.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** Versions of the generator (the runtime `@bufbuild/protobuf` is pinned in deno.json). */
export const BUF = "npm:@bufbuild/buf@1.75.0";

const ROOT = new URL("../", import.meta.url).pathname;

/** Runs buf into `outBase` (files land in `outBase/lib/wire/gen`), then formats them. */
export async function generate(outBase: string): Promise<string> {
  const deno = `${ROOT}deno`;
  const gen = await new Deno.Command(deno, {
    args: ["run", "-A", BUF, "generate", "--template", "proto/buf.gen.yaml", "-o", outBase],
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

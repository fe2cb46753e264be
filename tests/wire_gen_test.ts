/**
 * The checked-in Protobuf code (`lib/wire/gen/`) is what `deno task gen:proto` makes from
 * `proto/*.proto` now: generated again into a temporary directory and compared file by file.
 * Fails after a schema edit without regenerating (run `deno task gen:proto`).
 */
import { deepStrictEqual, equal } from "node:assert/strict";
import { generate } from "../scripts/gen_proto.ts";

const GEN = new URL("../lib/wire/gen/", import.meta.url).pathname;

function files(dir: string): string[] {
  return [...Deno.readDirSync(dir)].filter((e) => e.isFile).map((e) => e.name).sort();
}

Deno.test("gen:proto: the checked-in generated code is up to date with proto/", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "nearcast-gen-" });
  try {
    const out = await generate(tmp);
    deepStrictEqual(files(out), files(GEN), "the same files (run deno task gen:proto)");
    for (const f of files(GEN)) {
      equal(
        Deno.readTextFileSync(`${out}/${f}`),
        Deno.readTextFileSync(`${GEN}/${f}`),
        `lib/wire/gen/${f} is stale: run deno task gen:proto`,
      );
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

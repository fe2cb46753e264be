/**
 * Figures in the docs can be checked: no doc cites a file under the ignored `bench/.out/` as the
 * source of a figure, every figure of the README's benchmark table is one of
 * `docs/benchmarks.md` (the one place for current figures), and every command that table of
 * benchmarks.md names exists (a `deno task` or a file).
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url).pathname;
const read = (p: string) => Deno.readTextFileSync(`${ROOT}${p}`);

function docs(): string[] {
  const out = ["README.md", "docs/benchmarks.md"];
  for (const e of Deno.readDirSync(`${ROOT}docs/notes`)) {
    if (e.name.endsWith(".md")) out.push(`docs/notes/${e.name}`);
  }
  return out;
}

/** The rows of the first markdown table after `heading`, as cells. */
function table(text: string, heading: string): string[][] {
  const at = text.indexOf(heading);
  assert.ok(at !== -1, `no heading ${heading}`);
  const rows: string[][] = [];
  for (const line of text.slice(at).split("\n").slice(1)) {
    if (!line.startsWith("|")) {
      if (rows.length) break;
      continue;
    }
    if (/^\|\s*-/.test(line)) continue;
    rows.push(line.split("|").slice(1, -1).map((c) => c.trim()));
  }
  return rows.slice(1);
}

Deno.test("no doc takes a figure from a scratch file under bench/.out/", () => {
  for (const p of docs()) {
    const bad = read(p).match(/bench\/\.out\/[^\s`)]*\.json/g);
    assert.equal(bad, null, `${p} cites ${bad}`);
  }
});

Deno.test("the README's benchmark figures are docs/benchmarks.md's", () => {
  const bench = read("docs/benchmarks.md").replaceAll(",", "");
  const rows = table(read("README.md"), "## Benchmarks");
  assert.ok(rows.length >= 7, `${rows.length} rows`);
  for (const [name, , result] of rows) {
    // Every number with a unit or a ratio in the result cell, e.g. 34.5×, 1.1 s, 69 MiB.
    for (const fig of result.matchAll(/(\d+(?:\.\d+)?)\s*(×|ms|s|MiB)\b|(\d+\.\d+)×/g)) {
      const n = fig[1] ?? fig[3];
      assert.ok(bench.includes(n), `README ${name}: ${fig[0]} is not in docs/benchmarks.md`);
    }
  }
});

Deno.test("the commands of docs/benchmarks.md's table exist", () => {
  const tasks = Object.keys(JSON.parse(read("deno.json")).tasks);
  const rows = table(read("docs/benchmarks.md"), "| benchmark ");
  assert.ok(rows.length >= 7);
  for (const [name, command] of rows) {
    for (const m of command.matchAll(/deno task ([\w:]+)/g)) {
      assert.ok(tasks.includes(m[1]), `${name}: no task ${m[1]}`);
    }
    for (const m of command.matchAll(/(bench\/[\w/]+\.ts)/g)) {
      assert.ok(Deno.statSync(`${ROOT}${m[1]}`).isFile, `${name}: no file ${m[1]}`);
    }
  }
});

/**
 * The adaptive-images experiment (docs/experiments/images.md): `deno task experiment:images`.
 *
 * 1. Network (needs root, `ip`, `tc`, curl; namespaces `img-x-*`): clients on 0.5, 2, 10 and
 *    100 Mbit/s links run a large photo, a page of 20 thumbnails and a Zipf stream against a
 *    fresh replica in each `--images` mode, `--runs` times: time to image and bytes sent.
 * 2. Ladders (in process): CPU and bytes of every precomputed rung of every corpus image.
 * 3. Streams (in process): a Zipf stream of hinted requests through a replica and its image
 *    layer per mode and cache budget: variant hit ratio, CPU on the fly and in the background.
 *
 * Prints markdown tables, checks its own figures (sanity checks; exit 1 when one fails), and
 * writes everything to bench/.out/image/experiment.json.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { makeCorpus, zipfSequence } from "./_corpus.ts";
import { ladderCosts, type StreamResult, zipfStream } from "./_cpu.ts";
import { type ClientRun, LINKS, networkRun, openLinks } from "./_network.ts";
import { tbfBurst } from "../../tests/tools/image_links.ts";
import type { ImageMode } from "../../lib/image/serve.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "2" },
    "no-network": { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(`Usage: deno task experiment:images [--runs N] [--no-network]
  --runs N        repetitions of each network mode and each stream (default 2)
  --no-network    skip the network namespaces part (no root needed)
Needs ImageMagick and Debian lomiri-wallpapers-16.04; the network part needs root, ip, tc, curl.`);
  Deno.exit(0);
}
const RUNS = Number(values.runs);
const MODES_NET = ["off", "on-the-fly", "precompute", "both"];
const MODES: ImageMode[] = ["on-the-fly", "precompute", "both"];
const BUDGETS = [64 * 1024 * 1024, 3 * 1024 * 1024];

const failures: string[] = [];
const check = (ok: boolean, what: string) => {
  if (!ok) failures.push(what);
};
const kb = (n: number) => (n / 1024).toFixed(0);
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const spread = (xs: number[], f: (x: number) => string) =>
  xs.length === 1 ? f(xs[0]) : `${f(med(xs))} [${f(Math.min(...xs))}–${f(Math.max(...xs))}]`;

const corpus = await makeCorpus();
const t0 = performance.now();
const results: Record<string, unknown> = { runs: RUNS, startedAt: new Date().toISOString() };

// 1. Network.
if (!values["no-network"]) {
  const zipf = zipfSequence(20, corpus.pages.length);
  const links = await openLinks();
  const net: Record<string, ClientRun[][]> = {};
  try {
    for (let r = 0; r < RUNS; r++) {
      for (const mode of MODES_NET) {
        console.error(`network: run ${r + 1}/${RUNS}, --images ${mode}`);
        (net[mode] ??= []).push(await networkRun(links, corpus, mode, zipf));
      }
    }
  } finally {
    await links.destroy();
  }
  results.network = net;
  const retried = Object.values(net).flat(2).reduce((n, c) => n + c.retries, 0);
  console.log(`\nFetches tried again after a connection did not open: ${retried}`);
  console.log("\n## Network: median [min–max] over runs\n");
  console.log(
    "| link | mode | photo 1st: s, KB | photo 3rd: s, KB, variant | page of 20: s, KB | Zipf 20: s, KB |",
  );
  console.log("|---|---|---|---|---|---|");
  for (const [i, l] of LINKS.entries()) {
    for (const mode of MODES_NET) {
      const runs = net[mode].map((run) => run[i]);
      const s = (f: (c: ClientRun) => number, fmt: (x: number) => string) =>
        spread(runs.map(f), fmt);
      const sec = (x: number) => x.toFixed(2);
      const variants = [...new Set(runs.map((c) => c.photo[2].variant || "-"))].join(", ");
      console.log(
        `| ${l.mbit} | ${mode} | ${s((c) => c.photo[0].seconds, sec)}, ${
          s((c) => c.photo[0].bytes, kb)
        } | ${s((c) => c.photo[2].seconds, sec)}, ${
          s((c) => c.photo[2].bytes, kb)
        }, ${variants} | ${s((c) => c.page.seconds, sec)}, ${s((c) => c.page.bytes, kb)} | ${
          s((c) => c.zipf.seconds, sec)
        }, ${s((c) => c.zipf.bytes, kb)} |`,
      );
      for (const c of runs) {
        const all = [...c.photo, ...c.page.got, ...c.zipf.got];
        check(all.every((f) => f.status === 200), `${mode} ${l.mbit}: a status was not 200`);
        // No fetch beats the link: what passes the bucket's depth takes its time at the rate.
        for (const f of c.photo) {
          const least = 0.9 * Math.max(0, f.bytes - tbfBurst(l.mbit)) * 8 / (l.mbit * 1e6);
          check(f.seconds >= least, `${mode} ${l.mbit} Mbit/s: ${f.bytes} B in ${f.seconds} s`);
        }
        const least = 0.9 * Math.max(0, c.page.bytes - tbfBurst(l.mbit)) * 8 / (l.mbit * 1e6);
        check(c.page.seconds >= least, `${mode} ${l.mbit}: page faster than the link`);
        if (mode === "off") {
          const sizes = (xs: number[]) => xs.sort((a, b) => a - b).join();
          check(
            c.photo.every((f) => f.bytes === corpus.photoBytes) &&
              sizes(c.page.got.map((f) => f.bytes)) ===
                sizes(corpus.pages.map((p) => corpus.bytes.get(p)!)),
            `off ${l.mbit}: bytes differ from the originals`,
          );
        }
      }
    }
  }
}

// 2. Ladders.
const ladders = await ladderCosts(corpus);
results.ladders = ladders;
console.log("\n## Ladder per image: CPU per variant (process CPU, ms) and storage\n");
console.log("| images | rung | CPU ms median [min–max] | bytes median |");
console.log("|---|---|---|---|");
for (
  const [label, group] of [["photo 1920 px", ladders.slice(0, 1)], [
    "page images 800 px",
    ladders.slice(1),
  ]] as const
) {
  const rungs = [...new Set(group.flatMap((l) => l.variants.map((v) => v.rung)))];
  for (const rung of rungs) {
    const vs = group.flatMap((l) => l.variants.filter((v) => v.rung === rung));
    console.log(
      `| ${label} | ${rung} | ${spread(vs.map((v) => v.cpuMs), (x) => x.toFixed(0))} | ${
        kb(med(vs.map((v) => v.bytes)))
      } KB |`,
    );
  }
  const ratio = group.map((l) => l.variants.reduce((a, v) => a + v.bytes, 0) / l.originalBytes);
  const cpu = group.map((l) => l.variants.reduce((a, v) => a + v.cpuMs, 0));
  console.log(
    `| ${label} | whole ladder | ${spread(cpu, (x) => x.toFixed(0))} | ${
      spread(ratio, (x) => `${(x * 100).toFixed(0)} %`)
    } of the original |`,
  );
}
for (const l of ladders) {
  for (const q of ["q=80;fmt=jpeg", "q=50;fmt=jpeg", "q=80;fmt=webp", "q=50;fmt=webp"]) {
    const sizes = l.variants.filter((v) => v.rung.endsWith(q) && !v.rung.startsWith("w=orig"))
      .map((v) => v.bytes);
    check(
      sizes.every((b, k) => k === 0 || b > sizes[k - 1]),
      `${l.path}: wider rungs are not larger`,
    );
  }
}

// 3. Streams.
const streams: StreamResult[] = [];
for (let r = 0; r < RUNS; r++) {
  for (const budget of BUDGETS) {
    for (const mode of MODES) {
      console.error(`stream: run ${r + 1}/${RUNS}, ${mode}, cache ${budget >> 20} MiB`);
      streams.push(await zipfStream(corpus, mode, budget, 300, 10));
    }
  }
}
results.streams = streams;
console.log(
  "\n## Zipf stream of 300 hinted requests (4 link classes): median [min–max] over runs\n",
);
console.log(
  "| cache | mode | variant hit ratio | computed | wall ms per variant (fly / background) | process CPU s | pending | served MB | p50 / p95 ms | variants held |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const budget of BUDGETS) {
  for (const mode of MODES) {
    const rs = streams.filter((s) => s.mode === mode && s.cacheBytes === budget);
    const per = (f: (s: StreamResult) => number, fmt: (x: number) => string) =>
      spread(rs.map(f), fmt);
    const ms = (x: number) => x.toFixed(0);
    const fly = (s: StreamResult) =>
      s.stats.computed - s.stats.precomputed === 0
        ? 0
        : s.stats.onTheFlyMs / (s.stats.computed - s.stats.precomputed);
    const bg = (s: StreamResult) =>
      s.stats.precomputed === 0 ? 0 : s.stats.precomputeMs / s.stats.precomputed;
    console.log(
      `| ${budget >> 20} MiB | ${mode} | ${per((s) => s.hitRatio, (x) => x.toFixed(2))} | ${
        per((s) => s.stats.computed, ms)
      } | ${per(fly, ms)} / ${per(bg, ms)} | ${per((s) => s.cpuMs / 1000, (x) => x.toFixed(1))} | ${
        per((s) => s.stats.pending, ms)
      } | ${per((s) => s.bytesServed / 1e6, (x) => x.toFixed(1))} | ${per((s) => s.p50Ms, ms)} / ${
        per((s) => s.p95Ms, ms)
      } | ${per((s) => s.variantBytesHeld / 1024, (x) => `${x.toFixed(0)} KB`)} |`,
    );
    for (const s of rs) {
      check(s.stats.timeouts === 0, `${mode} ${budget}: ${s.stats.timeouts} timeouts`);
      if (mode === "on-the-fly") check(s.stats.pending === 0, `on-the-fly had pending answers`);
      if (mode === "precompute") {
        check(s.stats.computed === s.stats.precomputed, "precompute computed for a request");
      }
      check(s.variantBytesHeld <= budget, `${mode}: variants held exceed the cache budget`);
    }
  }
}

results.minutes = (performance.now() - t0) / 60000;
results.failures = failures;
const out = new URL("../.out/image/experiment.json", import.meta.url).pathname;
await Deno.writeTextFile(out, JSON.stringify(results, null, 1));
console.log(`\nTook ${(results.minutes as number).toFixed(1)} min; details in ${out}`);
if (failures.length > 0) {
  console.log(`\nSanity checks FAILED:\n- ${failures.join("\n- ")}`);
  Deno.exit(1);
}
console.log("Sanity checks passed.");

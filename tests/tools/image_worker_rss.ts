/**
 * Resident memory of the image layer's transcoding worker (issue 12): this process's VmRSS
 * before any transcode, after two 1920×1080 JPEG transcodes (to 1280 px q50 and to the
 * original width q50) through a `TranscodePool` of one worker, and after the worker has been
 * idle for `--idle-ms` and is ended (then `malloc_trim`), `--cycles` times (default 2). Also prints what the memory allowance
 * reserved for each (`transcodeBytes`). Run from the repository:
 *
 * ```sh
 * ./deno run -A tests/tools/image_worker_rss.ts [--idle-ms 2000] [--cycles 2] [--photo FILE.jpg]
 * ```
 *
 * The photo defaults to Debian's `life_by_Aitzol_Berasategi.jpg` scaled and cropped to
 * 1920×1080 q90 by ImageMagick (`convert`), as `deno task bench:image` does.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { transcodeBytes } from "../../lib/image/memory.ts";
import { probeImage } from "../../lib/image/probe.ts";
import { TranscodePool } from "../../lib/image/transcode_pool.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "idle-ms": { type: "string" },
    photo: { type: "string" },
    cycles: { type: "string" },
  },
});
const idleMs = Number(values["idle-ms"] ?? 2000);
const cycles = Number(values.cycles ?? 2);

async function photo(): Promise<Uint8Array> {
  if (values.photo !== undefined) return await Deno.readFile(values.photo);
  const out = await new Deno.Command("convert", {
    args: [
      "/usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg",
      "-resize",
      "1920x1080^",
      "-gravity",
      "center",
      "-extent",
      "1920x1080",
      "-quality",
      "90",
      "jpg:-",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`convert failed: ${new TextDecoder().decode(out.stderr)}`);
  return out.stdout;
}

/** VmRSS of this process, MiB. */
function rssMiB(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
  return Number(m![1]) / 1024;
}

const jpeg = await photo();
const info = probeImage(jpeg)!;
await new Promise((r) => setTimeout(r, 200));
const before = rssMiB();
const pool = new TranscodePool(1, { idleMs });
const jobs = [{ width: 1280, quality: 50 }, { width: undefined, quality: 50 }];
for (let c = 1; c <= cycles; c++) {
  const outs = await Promise.all(jobs.map((o) => pool.transcode(jpeg, { ...o, format: "jpeg" })));
  const busy = rssMiB();
  if (c === 1) {
    for (const [i, o] of jobs.entries()) {
      const est = transcodeBytes(info, jpeg.length, o.width) / 2 ** 20;
      console.log(
        `transcode ${info.width}x${info.height} -> ${outs[i].width}x${outs[i].height} ` +
          `q${o.quality}: ${outs[i].bytes.length} bytes, reserved ${est.toFixed(1)} MiB`,
      );
    }
  }
  const end = Date.now() + idleMs + 10_000;
  while (pool.workers > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 500));
  const idle = rssMiB();
  console.log(
    `cycle ${c}: VmRSS before ${before.toFixed(1)} MiB, after the two transcodes ` +
      `${busy.toFixed(1)} MiB (+${(busy - before).toFixed(1)}), after the idle worker ended ` +
      `${idle.toFixed(1)} MiB (+${(idle - before).toFixed(1)}); workers alive ${pool.workers}, ` +
      `ended idle ${pool.counts.idleEnded}`,
  );
}
pool.close();

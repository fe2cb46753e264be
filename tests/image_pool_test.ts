/**
 * Transcodes in workers (`lib/image/transcode_pool.ts`): the same bytes as `transcode` in the
 * calling thread, errors with their names, and the calling thread's event loop kept running
 * while a large photo is transcoded (in-thread, the decode and resize hold it for their whole
 * length).
 */
import { equal, ok, rejects } from "node:assert/strict";
import { transcode } from "../lib/image/pipeline.ts";
import { TranscodePool } from "../lib/image/transcode_pool.ts";
import { magick, softScene } from "./_image_helpers.ts";

const W = 3000, H = 2000;

/** Longest pause between 2 ms timer ticks while `work` runs, and how long it ran (ms). */
async function longestPause(work: () => Promise<unknown>): Promise<{ gap: number; ms: number }> {
  let last = performance.now(), gap = 0, running = true;
  const tick = () => {
    const now = performance.now();
    gap = Math.max(gap, now - last);
    last = now;
    if (running) setTimeout(tick, 2);
  };
  setTimeout(tick, 2);
  const t0 = performance.now();
  await work();
  const ms = performance.now() - t0;
  running = false;
  await new Promise((r) => setTimeout(r, 5));
  return { gap, ms };
}

Deno.test("transcode pool: same bytes as in-thread, errors named, event loop free", async () => {
  const jpeg = await magick(
    ["-size", `${W}x${H}`, "-depth", "8", "rgba:-", "-quality", "90", "jpeg:-"],
    softScene(W, H),
  );
  const pool = new TranscodePool(2);
  try {
    const opts = { width: 640, quality: 50 } as const;
    const here = await transcode(jpeg, opts);
    await pool.transcode(jpeg, opts); // the worker's codecs are loaded
    const there = await pool.transcode(jpeg, opts);
    equal(
      `${there.format} ${there.width}x${there.height}`,
      `${here.format} ${here.width}x${here.height}`,
    );
    ok(
      there.bytes.length === here.bytes.length && there.bytes.every((b, i) => b === here.bytes[i]),
      "identical bytes",
    );
    ok(jpeg.length > 0, "the input is not detached");
    await rejects(pool.transcode(new Uint8Array(10)), SyntaxError);
    await rejects(pool.transcode(jpeg, { quality: 0 }), RangeError);

    const inThread = await longestPause(() => transcode(jpeg, { width: 1280 }));
    const inPool = await longestPause(() => pool.transcode(jpeg, { width: 1280 }));
    console.log(
      `in-thread: ${inThread.ms.toFixed(0)} ms, longest pause ${inThread.gap.toFixed(0)} ms; ` +
        `in the pool: ${inPool.ms.toFixed(0)} ms, longest pause ${inPool.gap.toFixed(0)} ms`,
    );
    ok(
      inPool.gap < inPool.ms / 2,
      `the event loop ran during the pool's transcode (longest pause ${inPool.gap} of ${inPool.ms} ms)`,
    );
  } finally {
    pool.close();
  }
  await rejects(pool.transcode(jpeg), /closed/);
});

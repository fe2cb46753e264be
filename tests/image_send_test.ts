/**
 * The drain measurement of `lib/image/_send.ts` on its own: a reader that takes 16 KiB every
 * 20 ms plays a link of about 6.5 Mbit/s. Time the event loop was held (here a 300 ms busy
 * loop in the middle of the transfer, as another request's work or the transcode workers
 * taking the CPU would) is the CPU's, not the link's, and is taken off the measured time; a
 * body that never waited is not reported.
 */
import { equal, ok } from "node:assert/strict";
import { activeSends, sendImage } from "../lib/image/_send.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reads `res`'s body a chunk at a time, `pauseMs` between reads (none if 0). */
async function drain(res: Response, pauseMs: number, during?: (reads: number) => void) {
  const reader = res.body!.getReader();
  let n = 0;
  for (;;) {
    const { done } = await reader.read();
    if (done) return;
    during?.(++n);
    if (pauseMs > 0) await sleep(pauseMs);
  }
}

Deno.test("image send: time the event loop was held is not counted as the link's", async () => {
  const body = new Uint8Array(40 * 16 * 1024);
  const got: { bytes: number; ms: number }[] = [];
  const res = sendImage(
    new Request("http://x/p.jpg"),
    body,
    new Headers({ "content-type": "image/jpeg" }),
    (bytes, ms) => got.push({ bytes, ms }),
  );
  const t0 = performance.now();
  await drain(res, 20, (n) => {
    if (n !== 10) return;
    setTimeout(() => {
      const end = performance.now() + 300;
      while (performance.now() < end) { /* the loop is held */ }
    }, 0);
  });
  const elapsed = performance.now() - t0;
  equal(got.length, 1, "one measurement");
  ok(got[0].bytes >= 30 * 16 * 1024, `most of the body is in the steady part: ${got[0].bytes}`);
  // About 40 × 20 ms of reading plus the 300 ms hold: the hold is taken off.
  ok(
    got[0].ms < elapsed - 200,
    `measured ${got[0].ms.toFixed(0)} ms of ${elapsed.toFixed(0)} ms elapsed`,
  );
  ok(got[0].ms > 400, `the reads' own pauses still count: ${got[0].ms.toFixed(0)} ms`);
});

Deno.test("image send: a body read without waiting is not reported", async () => {
  const got: number[] = [];
  const res = sendImage(
    new Request("http://x/p.jpg"),
    new Uint8Array(8 * 16 * 1024),
    new Headers({ "content-type": "image/jpeg" }),
    (bytes) => got.push(bytes),
  );
  await drain(res, 0);
  equal(got.length, 0);
  equal(activeSends(), 0, "the timer stopped");
});

Deno.test("image send: a cancelled body stops the lateness timer", async () => {
  const res = sendImage(
    new Request("http://x/p.jpg"),
    new Uint8Array(8 * 16 * 1024),
    new Headers({ "content-type": "image/jpeg" }),
    () => {},
  );
  const reader = res.body!.getReader();
  await reader.read();
  equal(activeSends(), 1);
  await reader.cancel();
  equal(activeSends(), 0, "the timer stopped");
});

/**
 * StreamFill (lib/http/fill_stream.ts) against the real store: a client that asks for the body
 * just before it grows past --max-object-bytes still gets all of it (the fill hands the rest of
 * the origin's body to that client). Before the fix, the reader was counted only once its file
 * was open, so a body that failed meanwhile cancelled the handoff and the client's stream broke
 * mid-body (`tests/http_fill_stream_test.ts` failed that way about one run in five on a loaded
 * machine).
 */
import { equal, ok } from "node:assert/strict";
import { StreamFill } from "../lib/http/fill_stream.ts";
import { openStore } from "../lib/store/sqlite_store.ts";

const KiB = 1024;
const MAX = 256 * KiB;

Deno.test("fill stream: a reader that asks as the body outgrows the cache gets all of it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nearcast_fill_race_" });
  const store = openStore(dir);
  try {
    for (let round = 0; round < 60; round++) {
      const first = new Uint8Array(192 * KiB).fill(1 + round % 200);
      const second = new Uint8Array(128 * KiB).fill(2 + round % 200);
      let ctl!: ReadableStreamDefaultController<Uint8Array>;
      const body = new ReadableStream<Uint8Array>({ start: (c) => void (ctl = c) });
      const fill = new StreamFill(store, `/k${round}`, "{}", [], body, {
        expectedSize: null,
        maxSize: MAX,
        idleMs: 10_000,
      });
      fill.done.catch(() => {});
      ctl.enqueue(first);
      while (fill.written < first.length) await new Promise((r) => setTimeout(r, 1));
      // Asked now; the chunk that makes the body too large arrives at once after.
      const pending = fill.tail();
      ctl.enqueue(second);
      ctl.close();
      const stream = await pending;
      ok(stream !== null, `round ${round}: a stream`);
      const got = new Uint8Array(await new Response(stream).arrayBuffer());
      equal(got.length, first.length + second.length, `round ${round}: every byte`);
      ok(got[0] === first[0] && got[got.length - 1] === second[0], `round ${round}: in order`);
      ok(fill.tooLarge, `round ${round}: not stored`);
    }
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

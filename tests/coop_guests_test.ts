/**
 * The copies a cooperating replica keeps of other members' objects (lib/coop/guests.ts), on a
 * real HttpCache: a copy whose fill is still running (a large body streaming to the store) is
 * not in the cache yet, and a sweep or another copy's arrival must not take it for evicted.
 * Before the fix, the coop test "a large object filled from A is kept on a first miss, as a
 * copy" failed on a loaded machine: a round's sweep ran while the body streamed, the copy was
 * forgotten, and it no longer counted toward --coop-copy-bytes.
 */
import { equal, ok } from "node:assert/strict";
import { Guests } from "../lib/coop/guests.ts";
import { storedParts as parts, testCache } from "./_http_parts.ts";

Deno.test("coop guests: a copy being filled survives sweeps and later copies, then counts", async () => {
  const cache = testCache("1.1 nearcast-g");
  const guests = new Guests(cache, () => 1 << 20);
  guests.add("/large");
  guests.sweep(); // a round while the body streams: not in the cache yet
  guests.add("/other"); // another copy arrives meanwhile
  guests.sweep();
  equal(guests.count, 2);
  ok(guests.has("/large"), "still counted as a copy");
  await cache.put("/large", new Headers(), parts(300_000));
  guests.done("/large");
  ok(guests.bytes >= 300_000, `its size counts once stored: ${guests.bytes}`);
  // A fill that stored nothing is forgotten when it ends.
  guests.done("/other");
  equal(guests.count, 1);
  ok(!guests.has("/other"));
  // An evicted copy is forgotten by the next sweep.
  cache.remove(cache.peek("/large")!);
  guests.sweep();
  equal(guests.count, 0);
  equal(guests.bytes, 0);
});

Deno.test("coop guests: past the budget the oldest stored copy goes, not one being filled", async () => {
  const cache = testCache("1.1 nearcast-g");
  const guests = new Guests(cache, () => 500_000);
  guests.add("/filling"); // older, still streaming
  // Each 100 kB body is accounted about twice over (body and hit template): three pass 500 kB.
  for (const url of ["/a", "/b", "/c"]) {
    guests.add(url);
    await cache.put(url, new Headers(), parts(100_000));
    guests.done(url);
  }
  guests.add("/d"); // the next copy trims the older ones to the budget
  ok(guests.has("/filling"), "the copy being filled is kept");
  ok(!guests.has("/a") && cache.peek("/a") === null, "the oldest stored copy went");
  for (const url of ["/b", "/c"]) ok(guests.has(url) && cache.peek(url) !== null, url);
  equal(guests.removed, 1);
});

/**
 * The simulator's reference policies on tiny traces checked by hand, plus properties every
 * policy must have (a cache that holds everything misses once per object; an object larger
 * than the cache is never held).
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { parseKeyTrace, parseTrace, type Policy, POLICY_NAMES, simulate } from "../scripts/sim.ts";
import { simulateArc } from "../scripts/sim/arc.ts";
import { simulateGdsf } from "../scripts/sim/gdsf.ts";
import { simulateS3Fifo } from "../scripts/sim/s3fifo.ts";
import { simulateSieve } from "../scripts/sim/sieve.ts";
import { simulateWTinyLfu } from "../scripts/sim/wtinylfu.ts";
import { simulateLru } from "../scripts/sim/lru.ts";
import { irmBound } from "../scripts/sim/irm_bound.ts";

const enc = new TextEncoder();
const assertEquals = <T>(actual: T, expected: T, msg?: string): void =>
  deepStrictEqual(actual, expected, msg);

/** A trace from "id:size" tokens (size 1 when omitted). */
function trace(spec: string) {
  const lines = spec.split(" ").map((tok, i) => {
    const [id, size] = tok.split(":");
    return `${i},${id.charCodeAt(0)},${size ?? 1}`;
  });
  return parseTrace(enc.encode(lines.join("\n")));
}

Deno.test("SIEVE keeps visited objects and moves its hand past them", () => {
  // a b c fill 3 slots; b and a are hit. d: the hand clears a and b, evicts c, and falls off
  // the head; e: the hand restarts at the tail and evicts a (cleared). b is still held.
  const t = trace("a b c b a d e b");
  assertEquals(simulateSieve(t, 3).misses, 5);
  assertEquals(simulateLru(t, 3).misses, 6, "LRU evicts b for e");
});

Deno.test("GDSF evicts by frequency per byte and inflates", () => {
  // capacity 10: a(2) b(8); a hit (priority 2/2 = 1); c(8) evicts b (1/8), L = 1/8;
  // c = 1/8 + 1/8; a hit; b(8) evicts c (0.25 < a's 1).
  const t = trace("a:2 b:8 a:2 c:8 a:2 b:8");
  const r = simulateGdsf(t, 10);
  assertEquals([r.misses, r.missBytes], [4, 26]);
  // With a large object that is hit, then small ones: GDSF drops the large one first.
  // x(6) x hit; y(2) z(2) fill 10; w(2) evicts x (2/6 < 1/2), not y.
  const u = trace("x:6 x:6 y:2 z:2 w:2 y:2 z:2");
  assertEquals(simulateGdsf(u, 10).misses, 4);
  assertEquals(simulateLru(u, 10).misses, 4, "LRU also evicts x here, by age");
});

Deno.test("ARC: a ghost hit in B1 grows T1's target", () => {
  // capacity 2: a b; a hit (T2); c evicts b to B1; a hit; b (B1 hit) sets p = 1 and, T1 being
  // at its target, evicts a from T2 to B2; a then misses and (B2 hit) p goes back to 0.
  const t = trace("a b a c a b a");
  assertEquals(simulateArc(t, 2).misses, 5);
});

Deno.test("S3-FIFO: one-hit wonders leave through the small queue and ghosts enter main", () => {
  // capacity 3 (small queue 0.3): a is hit twice in the small queue; d makes room: a moves to
  // main, b (never hit) goes to the ghost; b again is a ghost hit and enters main directly
  // (c goes to the ghost to make room); a is still held.
  const t = trace("a a a b c d b a");
  assertEquals(simulateS3Fifo(t, 3).misses, 5);
  assertEquals(simulateLru(t, 3).misses, 5, "LRU misses as often, but on a (evicted for d)");
});

Deno.test("W-TinyLFU admits the more frequent and refuses a one-hit wonder", () => {
  // capacity 2 (window 1 object): a is used 3 times; b, c, d, e arrive once: each loses the
  // duel against a in main, so a is always a hit.
  const t = trace("a a a b c d e a");
  const r = simulateWTinyLfu(t, 2);
  assertEquals(r.misses, 5);
});

Deno.test("every policy misses once per object when everything fits", () => {
  const t = trace("a:3 b:5 c:2 a:3 b:5 c:2 c:2 a:3");
  for (const p of POLICY_NAMES as readonly Policy[]) {
    const r = simulate(t, p, 10);
    assertEquals([r.misses, r.missBytes], [3, 10], p);
  }
});

Deno.test("no policy holds an object larger than the cache", () => {
  const t = trace("a:20 a:20 b:5 a:20 b:5");
  for (const p of POLICY_NAMES as readonly Policy[]) {
    const r = simulate(t, p, 10);
    assertEquals([r.misses, r.missBytes], [4, 65], p);
  }
});

Deno.test("parseKeyTrace reads big-endian u32 keys as unit-size requests", () => {
  const bytes = new Uint8Array([0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 7]);
  const t = parseKeyTrace(bytes);
  assertEquals([...t.obj], [0, 1, 0]);
  assertEquals([...t.size], [1, 1, 1]);
  assertEquals([...t.lo], [7, 0xffffffff]);
  let threw = false;
  try {
    parseKeyTrace(new Uint8Array(5));
  } catch (e) {
    threw = e instanceof SyntaxError;
  }
  assertEquals(threw, true);
});

Deno.test("the static oracle holds the highest count / size^beta that fits", async () => {
  const { simulateStaticOracle } = await import("../scripts/sim/static_oracle.ts");
  // capacity 10: a(8) requested 3 times, b(2) and c(2) twice each. beta = 0 keeps a (count 3)
  // and b (tie with c, first seen first); c no longer fits: misses a b c c = 4, 14 bytes.
  // beta = 1 keeps b and c (1 per byte), a does not fit: misses a a a b c = 5, 28 bytes.
  const t = trace("a:8 b:2 c:2 a:8 b:2 c:2 a:8");
  const r0 = simulateStaticOracle(t, 10, 0);
  assertEquals([r0.misses, r0.missBytes], [4, 14]);
  const r1 = simulateStaticOracle(t, 10, 1);
  assertEquals([r1.misses, r1.missBytes], [5, 28]);
});

Deno.test("perfect LFU keeps every count, also after eviction, and mixes objects and bytes", async () => {
  const { simulatePerfectLfu } = await import("../scripts/sim/perfect_lfu.ts");
  // capacity 2: b(2) is held and hit (count 2). lambda = 1 (per byte): a(1) at count 1 is worth
  // 1 = b's 2/2, refused; at count 2 it is worth 2 and evicts b. b comes back at count 3 (1.5,
  // refused), 4 (2 = a's, refused), 5 (2.5: evicts a), then hits: misses b a a b b b = 6 of 8,
  // 10 bytes of 14. With counts restarting at eviction b would stay out.
  const t = trace("b:2 b:2 a:1 a:1 b:2 b:2 b:2 b:2");
  const r1 = simulatePerfectLfu(t, 2, 1);
  assertEquals([r1.misses, r1.missBytes], [6, 10]);
  // lambda = 0 (per request, sizes ignored): a never outweighs b (2 against 2 at most), and b
  // is hit from its second request on: misses b a a = 3, 4 bytes.
  const r0 = simulatePerfectLfu(t, 2, 0);
  assertEquals([r0.misses, r0.missBytes], [3, 4]);
});

Deno.test("sim: the IRM bound holds the most probable objects, by density when sizes vary", () => {
  const w = new Float64Array([4, 2, 1, 1]);
  // Equal sizes, room for two: the two most probable (6 of 8).
  const eq = irmBound(w, new Uint32Array([1, 1, 1, 1]), 2);
  equal(eq.object, 0.25);
  equal(eq.byte, 0.25);
  // Sizes 4,1,1,1, room 2. Objects: by weight per size, object 1 (2) whole, then a quarter of
  // object 0 (the first of the ties): 2 + 1 of 8. Bytes: by weight, half of object 0: 8 of 20.
  const v = irmBound(w, new Uint32Array([4, 1, 1, 1]), 2);
  equal(v.object, 1 - 3 / 8);
  equal(v.byte, 1 - 8 / 20);
  // Uniform popularity: no policy beats capacity / objects.
  const u = irmBound(new Float64Array(10).fill(1), new Uint32Array(10).fill(7), 3 * 7);
  ok(Math.abs(u.object - 0.7) < 1e-12);
});

Deno.test("sim: the seen bound holds only objects already asked for", async () => {
  const { seenBlocks, seenJoint, seenWeightedBound } = await import(
    "../scripts/sim/seen_bound.ts"
  );
  // Two equally popular objects of size 1, room for one, requests 1 2 1 2, blocks of one
  // request (exact): request 0 can hold nothing, each later one at most one object (1/2).
  const ids = new Uint32Array([1, 2, 1, 2]);
  const w = new Float64Array([1, 1]);
  const eq = new Uint32Array([1, 1]);
  const exact = seenBlocks(ids, eq, 1, 1);
  assertEquals(Array.from(exact.ends), [1, 2, 3, 4]);
  ok(Math.abs(seenWeightedBound(exact, w, eq, 1, 1).bound - 0.375) < 1e-12);
  ok(Math.abs(seenWeightedBound(exact, w, eq, 1, 0).bound - 0.375) < 1e-12);
  // One block of four: charged with what was seen before its last request (both objects).
  ok(Math.abs(seenWeightedBound(seenBlocks(ids, eq, 9, 9), w, eq, 1, 1).bound - 0.5) < 1e-12);
  // Sizes 2 and 1, room 1: request 1 holds half of object 1 (1/4 of a hit), then object 2.
  const sized = new Uint32Array([2, 1]);
  const b = seenBlocks(ids, sized, 1, 1);
  ok(Math.abs(seenWeightedBound(b, w, sized, 1, 1).bound - 0.3125) < 1e-12);
  // Misses of 1/2 in objects and bytes at once are out of reach; 3/4 and 3/4 are not.
  ok(seenJoint(exact, w, eq, 1, 0.5, 0.5).slack < 0);
  ok(seenJoint(exact, w, eq, 1, 0.75, 0.75).slack >= 0);
});

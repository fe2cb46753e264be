/**
 * A replica's coop summary (lib/coop/summary.ts) on a real HttpCache: its version is what a
 * peer goes by to refetch it, so it must change whenever what the summary says changes, the
 * hot objects' scores included (to a power of two, so that steady traffic does not make every
 * round a new version). Before the fix it changed only with the filter or the list of
 * hot URLs: a peer that fetched the summary while an object had one hit kept that score while
 * the object took more hits, and never prefetched it (the coop test "B prefetches what is hot
 * on A" failed once on a loaded machine when the requests straddled a rebuild).
 */
import { equal, notEqual } from "node:assert/strict";
import { SummaryBuilder } from "../lib/coop/summary.ts";
import { storedParts as parts, testCache } from "./_http_parts.ts";

Deno.test("coop summary: the version changes when a hot object's score does, not otherwise", async () => {
  const cache = testCache("1.1 nearcast-s");
  await cache.put("/hot", new Headers(), parts(900));
  await cache.put("/cold", new Headers(), parts(900));
  const s = new SummaryBuilder(cache, "a", 16);
  const empty = s.rebuild();
  equal(empty.hot.length, 0);
  cache.get("/hot"); // one hit: listed with score 1
  const v1 = s.rebuild();
  equal(JSON.stringify(v1.hot.map((h) => [h.url, h.score])), '[["/hot",1]]');
  for (let i = 0; i < 3; i++) cache.get("/hot"); // same URLs listed, higher score
  const v2 = s.rebuild();
  equal(v2.hot[0].score, 3.5);
  notEqual(v2.version, v1.version, "a peer holding v1 must learn the new score");
  // With no more hits the score halves each rebuild (a new version each time) until it drops
  // out of the list; then nothing changes and neither does the version.
  const v3 = s.rebuild();
  equal(v3.hot[0].score, 1.75);
  notEqual(v3.version, v2.version);
  const v4 = s.rebuild();
  equal(v4.hot.length, 0);
  notEqual(v4.version, v3.version);
  equal(s.rebuild().version, v4.version, "nothing listed changed: same version");
});

Deno.test("coop summary: an object hit as often every round keeps the version once its score settles", async () => {
  const cache = testCache("1.1 nearcast-s");
  await cache.put("/steady", new Headers(), parts(900));
  const s = new SummaryBuilder(cache, "a", 16);
  s.rebuild();
  const versions: string[] = [];
  const scores: number[] = [];
  for (let round = 0; round < 8; round++) {
    for (let i = 0; i < 3; i++) cache.get("/steady");
    const v = s.rebuild();
    versions.push(v.version);
    scores.push(v.hot[0].score);
  }
  // 3, 4.5, 5.25, ... toward 6: a new version when the score enters [4, 8), then none.
  equal(JSON.stringify(scores.slice(0, 3)), "[3,4.5,5.25]");
  notEqual(versions[1], versions[0]);
  equal(new Set(versions.slice(1)).size, 1, `settled: ${versions.join(" ")}`);
});

import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  MAX_DELTA_SECONDS,
  parseCacheControl,
  parseDeltaSeconds,
} from "../lib/http/cache_control.ts";

Deno.test("cache-control: empty and null give no directives", () => {
  for (const v of [null, ""]) {
    const cc = parseCacheControl(v);
    assertEquals(cc.noStore || cc.noCache || cc.private || cc.public, false);
    assertEquals(cc.maxAge, undefined);
  }
});

Deno.test("cache-control: response directives, case-insensitive, with spaces", () => {
  const cc = parseCacheControl(
    "Public, MAX-AGE=60 , s-maxage=120, must-revalidate, proxy-revalidate, no-transform, immutable",
  );
  assertEquals([cc.public, cc.mustRevalidate, cc.proxyRevalidate, cc.noTransform, cc.immutable], [
    true,
    true,
    true,
    true,
    true,
  ]);
  assertEquals([cc.maxAge, cc.sMaxAge], [60, 120]);
});

Deno.test("cache-control: qualified no-cache and private with quoted commas", () => {
  const cc = parseCacheControl('no-cache="set-cookie, x-a", private="x-b", max-age=5');
  assertEquals([cc.noCache, cc.private, cc.maxAge], [true, true, 5]);
});

Deno.test("cache-control: request directives", () => {
  const cc = parseCacheControl("max-stale, min-fresh=10, only-if-cached, no-store");
  assertEquals([cc.maxStale, cc.minFresh, cc.onlyIfCached, cc.noStore], [Infinity, 10, true, true]);
  assertEquals(parseCacheControl("max-stale=30").maxStale, 30);
});

Deno.test("cache-control: RFC 5861 extensions", () => {
  const cc = parseCacheControl("max-age=1, stale-while-revalidate=30, stale-if-error=600");
  assertEquals([cc.staleWhileRevalidate, cc.staleIfError], [30, 600]);
});

Deno.test("cache-control: first duplicate wins, quoted and invalid values", () => {
  assertEquals(parseCacheControl("max-age=10, max-age=99").maxAge, 10);
  assertEquals(parseCacheControl('max-age="42"').maxAge, 42);
  assertEquals(parseCacheControl("max-age=abc").maxAge, 0);
  assertEquals(parseCacheControl("max-age=-5").maxAge, 0);
  assertEquals(parseCacheControl("max-age").maxAge, 0);
  assertEquals(parseCacheControl("max-age=99999999999999").maxAge, MAX_DELTA_SECONDS);
  assertEquals(parseCacheControl("unknown-ext=1, ,,max-age=3").maxAge, 3);
});

Deno.test("cache-control: delta-seconds", () => {
  assertEquals(parseDeltaSeconds("0"), 0);
  assertEquals(parseDeltaSeconds("123"), 123);
  assertEquals(parseDeltaSeconds("1.5"), 0);
  assertEquals(parseDeltaSeconds(undefined), 0);
});

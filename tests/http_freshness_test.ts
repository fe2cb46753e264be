import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { parseCacheControl } from "../lib/http/cache_control.ts";
import {
  correctedInitialAge,
  currentAge,
  evaluateFreshness,
  freshnessLifetime,
  HEURISTIC_MAX_SECONDS,
  parseHttpDate,
  type ResponseFacts,
  unstorableReason,
} from "../lib/http/freshness.ts";

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
const http = (ms: number) => new Date(ms).toUTCString();

type Over = Partial<Omit<ResponseFacts, "cc">> & { cc?: string };
function facts(over: Over = {}): ResponseFacts {
  return {
    status: over.status ?? 200,
    cc: parseCacheControl(over.cc ?? null),
    expires: over.expires ?? null,
    date: over.date ?? http(T0),
    lastModified: over.lastModified ?? null,
    vary: over.vary ?? null,
  };
}
const noReq = parseCacheControl(null);

Deno.test("freshness: HTTP dates in the three formats", () => {
  assertEquals(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), Date.UTC(1994, 10, 6, 8, 49, 37));
  assertEquals(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"), Date.UTC(1994, 10, 6, 8, 49, 37));
  assertEquals(parseHttpDate("Sun Nov  6 08:49:37 1994"), Date.UTC(1994, 10, 6, 8, 49, 37));
  assertEquals(parseHttpDate("garbage"), null);
  assertEquals(parseHttpDate(null), null);
});

Deno.test("freshness: lifetime precedence s-maxage > max-age > Expires > heuristic", () => {
  const base = { expires: http(T0 + 300_000), lastModified: http(T0 - 1000_000) };
  assertEquals(freshnessLifetime(facts({ ...base, cc: "max-age=60, s-maxage=90" }), T0), 90);
  assertEquals(freshnessLifetime(facts({ ...base, cc: "max-age=60" }), T0), 60);
  assertEquals(freshnessLifetime(facts(base), T0), 300);
  assertEquals(freshnessLifetime(facts({ lastModified: base.lastModified }), T0), 100);
  assertEquals(freshnessLifetime(facts(), T0), 0);
});

Deno.test("freshness: invalid or past Expires is stale", () => {
  assertEquals(freshnessLifetime(facts({ expires: "0" }), T0), 0);
  assertEquals(freshnessLifetime(facts({ expires: http(T0 - 5000) }), T0), 0);
});

Deno.test("freshness: heuristic is 10% of the age since Last-Modified, capped", () => {
  const tenDays = 10 * 86_400_000;
  assertEquals(freshnessLifetime(facts({ lastModified: http(T0 - tenDays) }), T0), 86_400);
  const year = 365 * 86_400_000;
  assertEquals(
    freshnessLifetime(facts({ lastModified: http(T0 - year) }), T0),
    HEURISTIC_MAX_SECONDS,
  );
  // Not for a status that is not heuristically cacheable.
  assertEquals(freshnessLifetime(facts({ status: 302, lastModified: http(T0 - tenDays) }), T0), 0);
  // Missing Date: the response time stands in.
  assertEquals(
    freshnessLifetime({ ...facts({ lastModified: http(T0 - 100_000) }), date: null }, T0),
    10,
  );
});

Deno.test("freshness: age calculation (RFC 9111 §4.2.3)", () => {
  // Origin said Age 100; the request took 2 s; Date equals the response time.
  assertEquals(correctedInitialAge("100", http(T0), T0 - 2000, T0), 102);
  // A Date 30 s in the past (apparent age) wins over a small Age.
  assertEquals(correctedInitialAge("5", http(T0 - 30_000), T0, T0), 30);
  // Bad Age values are ignored.
  assertEquals(correctedInitialAge("abc", http(T0), T0, T0), 0);
  assertEquals(currentAge(10, T0, T0 + 5500), 15);
  assertEquals(currentAge(0, T0, T0 - 1000), 0);
});

Deno.test("freshness: storability", () => {
  const ok = (over: Over, auth = false, req = noReq, m = "GET") =>
    unstorableReason(m, req, auth, facts(over));
  assertEquals(ok({ cc: "max-age=60" }), null);
  assertEquals(ok({ cc: "max-age=60" }, false, noReq, "POST"), "method");
  assertEquals(ok({ cc: "no-store" }), "no-store");
  assertEquals(ok({ cc: "private, max-age=60" }), "private");
  assertEquals(ok({ cc: "max-age=60" }, false, parseCacheControl("no-store")), "request no-store");
  assertEquals(ok({ cc: "max-age=60", vary: "Accept, *" }), "vary *");
  assertEquals(ok({ status: 206, cc: "max-age=60" }), "status");
  assertEquals(ok({ status: 304 }), "status");
  assertEquals(ok({ status: 500 }), "status not cacheable");
  assertEquals(ok({ status: 302 }), "status not cacheable");
  assertEquals(ok({ status: 302, cc: "max-age=5" }), null);
  assertEquals(ok({ status: 404 }), null);
  assertEquals(ok({ status: 410 }), null);
  assertEquals(ok({ cc: "max-age=60" }, true), "authorization");
  assertEquals(ok({ cc: "public, max-age=60" }, true), null);
  assertEquals(ok({ cc: "s-maxage=60" }, true), null);
  assertEquals(ok({ cc: "must-revalidate, max-age=60" }, true), null);
});

function stored(cc: string, lifetime: number, initialAge = 0) {
  return { cc: parseCacheControl(cc), lifetime, initialAge, responseTime: T0 };
}
const at = (s: number) => T0 + s * 1000;

Deno.test("freshness: fresh then stale at the lifetime", () => {
  const s = stored("max-age=10", 10);
  assertEquals(evaluateFreshness(s, noReq, at(9)).state, "fresh");
  assertEquals(evaluateFreshness(s, noReq, at(10)).state, "revalidate");
  assertEquals(evaluateFreshness(s, noReq, at(9)).age, 9);
  assertEquals(evaluateFreshness(stored("max-age=10", 10, 8), noReq, at(3)).state, "revalidate");
});

Deno.test("freshness: response no-cache always revalidates", () => {
  assertEquals(
    evaluateFreshness(stored("no-cache, max-age=60", 60), noReq, at(0)).state,
    "revalidate",
  );
});

Deno.test("freshness: request no-cache, max-age, min-fresh, max-stale", () => {
  const s = stored("max-age=60", 60);
  assertEquals(evaluateFreshness(s, parseCacheControl("no-cache"), at(1)).state, "revalidate");
  assertEquals(evaluateFreshness(s, parseCacheControl("max-age=0"), at(0)).state, "revalidate");
  assertEquals(evaluateFreshness(s, parseCacheControl("max-age=5"), at(4)).state, "fresh");
  assertEquals(evaluateFreshness(s, parseCacheControl("max-age=5"), at(6)).state, "revalidate");
  assertEquals(evaluateFreshness(s, parseCacheControl("min-fresh=30"), at(20)).state, "fresh");
  assertEquals(evaluateFreshness(s, parseCacheControl("min-fresh=30"), at(40)).state, "revalidate");
  assertEquals(evaluateFreshness(s, parseCacheControl("max-stale=10"), at(65)).state, "stale-ok");
  assertEquals(evaluateFreshness(s, parseCacheControl("max-stale=10"), at(75)).state, "revalidate");
  assertEquals(evaluateFreshness(s, parseCacheControl("max-stale"), at(9999)).state, "stale-ok");
});

Deno.test("freshness: stale-while-revalidate window", () => {
  const s = stored("max-age=10, stale-while-revalidate=20", 10);
  assertEquals(evaluateFreshness(s, noReq, at(15)).state, "stale-while-revalidate");
  assertEquals(evaluateFreshness(s, noReq, at(30)).state, "stale-while-revalidate");
  assertEquals(evaluateFreshness(s, noReq, at(31)).state, "revalidate");
});

Deno.test("freshness: stale-if-error window from response or request", () => {
  const s = stored("max-age=10, stale-if-error=20", 10);
  assertEquals(evaluateFreshness(s, noReq, at(25)).staleIfError, true);
  assertEquals(evaluateFreshness(s, noReq, at(31)).staleIfError, false);
  const plain = stored("max-age=10", 10);
  assertEquals(evaluateFreshness(plain, noReq, at(25)).staleIfError, false);
  assertEquals(
    evaluateFreshness(plain, parseCacheControl("stale-if-error=60"), at(25)).staleIfError,
    true,
  );
});

Deno.test("freshness: must-revalidate, proxy-revalidate, s-maxage forbid stale", () => {
  for (const cc of ["max-age=10, must-revalidate", "max-age=10, proxy-revalidate", "s-maxage=10"]) {
    const s = stored(`${cc}, stale-while-revalidate=60, stale-if-error=60`, 10);
    const v = evaluateFreshness(s, parseCacheControl("max-stale=100"), at(15));
    assertEquals([v.state, v.staleIfError], ["revalidate", false], cc);
  }
});

/**
 * End-to-end: `Age` with list values and repeated lines (RFC 9111 §5.1), strict HTTP-date
 * parsing of `Expires` (invalid = already expired, §5.3) and of `If-Modified-Since`; unit
 * checks of the date parser's three forms and RFC 850 two-digit years (RFC 9110 §5.6.7).
 */
import { deepStrictEqual as assertEquals, equal } from "node:assert/strict";
import { parseHttpDate, rfc850Year } from "../lib/http/http_date.ts";
import { rawResponse, startRawOrigin } from "./_http_raw_origin.ts";
import { startReplica } from "./_http_replica.ts";

const DAY = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_DAY = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MON = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const p2 = (n: number) => String(n).padStart(2, "0");

/** `when` written in a form of the test's choosing (valid or not). */
function dateForms(when: number) {
  const d = new Date(when);
  const [wd, day, mon, year] = [d.getUTCDay(), d.getUTCDate(), d.getUTCMonth(), d.getUTCFullYear()];
  const time = `${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())}`;
  return {
    imf: d.toUTCString(),
    rfc850: `${LONG_DAY[wd]}, ${p2(day)}-${MON[mon]}-${p2(year % 100)} ${time} GMT`,
    asctime: `${DAY[wd]} ${MON[mon]} ${String(day).padStart(2, " ")} ${time} ${year}`,
    utc: `${DAY[wd]}, ${p2(day)} ${MON[mon]} ${year} ${time} UTC`,
    noComma: `${DAY[wd]} ${p2(day)} ${MON[mon]} ${year} ${time} GMT`,
    doubleSpaces: `${DAY[wd]}, ${p2(day)}  ${MON[mon]}  ${year} ${time} GMT`,
    dashes: `${DAY[wd]}, ${p2(day)}-${MON[mon]}-${year} ${time} GMT`,
    oneDigitHour: `${DAY[wd]}, ${p2(day)} ${MON[mon]} ${year} 2:${time.slice(3)} GMT`,
    iso: d.toISOString(),
  };
}

Deno.test("http date parser: the three forms, and nothing lenient", () => {
  const t = Date.UTC(1994, 10, 6, 8, 49, 37);
  assertEquals(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), t);
  assertEquals(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT", Date.UTC(2026, 0, 1)), t);
  assertEquals(parseHttpDate("Sun Nov  6 08:49:37 1994"), t);
  for (
    const bad of [
      "Sun, 06 Nov 1994 08:49:37 UTC",
      "Sun 06 Nov 1994 08:49:37 GMT",
      "Sun, 06  Nov 1994 08:49:37 GMT",
      "Sun, 06-Nov-1994 08:49:37 GMT",
      "Sun, 06 Nov 1994 8:49:37 GMT",
      "Sun, 06 Nov 1994 08:49:37 gmt",
      "Sun, 06 NOV 1994 08:49:37 GMT",
      "Sun, 31 Feb 1994 08:49:37 GMT",
      "Sun, 06 Nov 1994 24:00:00 GMT",
      "Sun Nov 6 08:49:37 1994",
      "1994-11-06T08:49:37Z",
      "0",
      "",
    ]
  ) equal(parseHttpDate(bad), null, bad);
});

Deno.test("http date parser: RFC 850 two-digit years are never more than 50 years ahead", () => {
  const now = Date.UTC(2026, 5, 1);
  assertEquals([rfc850Year(26, now), rfc850Year(76, now), rfc850Year(77, now)], [2026, 2076, 1977]);
  assertEquals(rfc850Year(94, now), 1994);
  assertEquals(rfc850Year(0, Date.UTC(2099, 0, 1)), 2100);
});

Deno.test("http Age and Expires parsing through a replica", async (t) => {
  const now = Date.now();
  const inHour = dateForms(now + 3_600_000);
  const routes: Record<string, [string, string][]> = {
    // Age: the first member counts, a repeated line included; a bad first member is ignored.
    "/age-list": [["cache-control", "max-age=3600"], ["age", "7200, 0"]],
    "/age-two-lines": [["cache-control", "max-age=3600"], ["age", "7200"], ["age", "0"]],
    "/age-first-zero": [["cache-control", "max-age=3600"], ["age", "0, 7200"]],
    "/age-float": [["cache-control", "max-age=3600"], ["age", "7200.0"]],
    "/age-negative": [["cache-control", "max-age=3600"], ["age", "-7200"]],
  };
  for (const [form, value] of Object.entries(inHour)) {
    routes[`/expires-${form}`] = [["expires", value]];
  }
  const origin = startRawOrigin((r) => {
    const headers = routes[r.path];
    if (headers === undefined) return rawResponse("404 Not Found", [["cache-control", "no-store"]]);
    return rawResponse("200 OK", [["date", new Date().toUTCString()], ...headers], r.path);
  });
  const replica = await startReplica(["-o", origin.url, "--id", "agedate", "--index", "ts"]);
  const xcache = async (path: string, init?: RequestInit) => {
    const res = await fetch(replica.url + path, init);
    await res.body?.cancel();
    return [res.status, res.headers.get("x-cache")];
  };
  const twice = async (path: string) => {
    await xcache(path);
    return (await xcache(path))[1];
  };
  try {
    await t.step(
      "Age list or two Age lines: the first value (7200 > max-age) makes it stale",
      async () => {
        equal(await twice("/age-list"), "MISS");
        equal(await twice("/age-two-lines"), "MISS");
        equal(await twice("/age-first-zero"), "HIT");
      },
    );
    await t.step("a malformed Age is ignored", async () => {
      equal(await twice("/age-float"), "HIT");
      equal(await twice("/age-negative"), "HIT");
    });
    await t.step("Expires in the three HTTP-date forms is honoured", async () => {
      for (const form of ["imf", "rfc850", "asctime"]) {
        equal(await twice(`/expires-${form}`), "HIT", form);
      }
    });
    await t.step(
      "Expires that Date.parse would accept but HTTP does not: already expired",
      async () => {
        for (const form of ["utc", "noComma", "doubleSpaces", "dashes", "oneDigitHour", "iso"]) {
          equal(await twice(`/expires-${form}`), "MISS", form);
        }
      },
    );
    await t.step(
      "If-Modified-Since without Last-Modified compares with Date, strictly parsed",
      async () => {
        const later = dateForms(now + 86_400_000);
        const earlier = dateForms(now - 86_400_000);
        const ims = (v: string) => xcache("/expires-imf", { headers: { "if-modified-since": v } });
        assertEquals(await ims(later.imf), [304, "HIT"]);
        assertEquals(await ims(later.asctime), [304, "HIT"]);
        assertEquals(await ims(earlier.imf), [200, "HIT"]);
        assertEquals(await ims(later.utc), [200, "HIT"]);
        assertEquals(await ims(later.noComma), [200, "HIT"]);
      },
    );
  } finally {
    await replica.close();
    await origin.close();
  }
});

import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  ifRangeHolds,
  isNotModified,
  parseETag,
  parseETagList,
  strongMatch,
  weakMatch,
} from "../lib/http/conditional.ts";

const LM = "Mon, 05 Jan 2026 10:00:00 GMT";
const LATER = "Tue, 06 Jan 2026 10:00:00 GMT";
const EARLIER = "Sun, 04 Jan 2026 10:00:00 GMT";

Deno.test("conditional: entity-tag parsing", () => {
  assertEquals(parseETag('"abc"'), { weak: false, opaque: '"abc"' });
  assertEquals(parseETag(' W/"abc" '), { weak: true, opaque: '"abc"' });
  assertEquals(parseETag("abc"), null);
  assertEquals(parseETag('"a"b"'), null);
  assertEquals(parseETagList("*"), "*");
  assertEquals(parseETagList('"a", W/"b", junk').length, 2);
});

Deno.test("conditional: weak and strong comparison (RFC 9110 §8.8.3.2 table)", () => {
  const t = (s: string) => parseETag(s)!;
  assertEquals([weakMatch(t('W/"1"'), t('W/"1"')), strongMatch(t('W/"1"'), t('W/"1"'))], [
    true,
    false,
  ]);
  assertEquals([weakMatch(t('W/"1"'), t('W/"2"')), strongMatch(t('W/"1"'), t('W/"2"'))], [
    false,
    false,
  ]);
  assertEquals([weakMatch(t('W/"1"'), t('"1"')), strongMatch(t('W/"1"'), t('"1"'))], [true, false]);
  assertEquals([weakMatch(t('"1"'), t('"1"')), strongMatch(t('"1"'), t('"1"'))], [true, true]);
});

Deno.test("conditional: If-None-Match uses weak comparison and wins over If-Modified-Since", () => {
  const v = { etag: '"v1"', lastModified: LM };
  assertEquals(isNotModified('W/"v1"', null, v), true);
  assertEquals(isNotModified('"x", "v1"', null, v), true);
  assertEquals(isNotModified("*", null, v), true);
  assertEquals(isNotModified('"v2"', null, v), false);
  assertEquals(isNotModified('"v2"', LATER, v), false);
  assertEquals(isNotModified('"v1"', null, { etag: null, lastModified: LM }), false);
});

Deno.test("conditional: If-Modified-Since", () => {
  const v = { etag: null, lastModified: LM };
  assertEquals(isNotModified(null, LM, v), true);
  assertEquals(isNotModified(null, LATER, v), true);
  assertEquals(isNotModified(null, EARLIER, v), false);
  assertEquals(isNotModified(null, "not a date", v), false);
  assertEquals(isNotModified(null, LATER, { etag: null, lastModified: null }), false);
});

Deno.test("conditional: If-Range", () => {
  const v = { etag: '"v1"', lastModified: LM };
  assertEquals(ifRangeHolds(null, v, LATER), true);
  assertEquals(ifRangeHolds('"v1"', v, LATER), true);
  assertEquals(ifRangeHolds('W/"v1"', v, LATER), false);
  assertEquals(ifRangeHolds('"v2"', v, LATER), false);
  assertEquals(ifRangeHolds(LM, v, LATER), true);
  assertEquals(ifRangeHolds(LATER, v, LATER), false);
  // A Last-Modified equal to Date is weak: the date form does not hold.
  assertEquals(ifRangeHolds(LM, v, LM), false);
});

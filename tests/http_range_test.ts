import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { buildMultipart, contentRange, MAX_RANGES, parseRange } from "../lib/http/range.ts";

Deno.test("range: single, open-ended and suffix ranges", () => {
  assertEquals(parseRange("bytes=0-4", 26), { kind: "ranges", ranges: [{ start: 0, end: 4 }] });
  assertEquals(parseRange("bytes=20-", 26), { kind: "ranges", ranges: [{ start: 20, end: 25 }] });
  assertEquals(parseRange("bytes=-3", 26), { kind: "ranges", ranges: [{ start: 23, end: 25 }] });
  assertEquals(parseRange("bytes=-100", 26), { kind: "ranges", ranges: [{ start: 0, end: 25 }] });
  assertEquals(parseRange("bytes=10-1000", 26), {
    kind: "ranges",
    ranges: [{ start: 10, end: 25 }],
  });
  assertEquals(parseRange("Bytes = 1-2", 26), { kind: "ranges", ranges: [{ start: 1, end: 2 }] });
});

Deno.test("range: several ranges keep their order, unsatisfiable ones are dropped", () => {
  assertEquals(parseRange("bytes=5-6, 0-1, 100-200", 26), {
    kind: "ranges",
    ranges: [{ start: 5, end: 6 }, { start: 0, end: 1 }],
  });
});

Deno.test("range: unsatisfiable", () => {
  assertEquals(parseRange("bytes=26-30", 26).kind, "unsatisfiable");
  assertEquals(parseRange("bytes=-0", 26).kind, "unsatisfiable");
  assertEquals(parseRange("bytes=0-1", 0).kind, "unsatisfiable");
});

Deno.test("range: bad syntax, other units and too many ranges are ignored", () => {
  for (const h of [null, "bytes=5-1", "bytes=a-b", "items=0-1", "bytes", "bytes=", "bytes=1-2-3"]) {
    assertEquals(parseRange(h, 26).kind, "none", String(h));
  }
  const many = "bytes=" + Array.from({ length: MAX_RANGES + 1 }, (_, i) => `${i}-${i}`).join(",");
  assertEquals(parseRange(many, 1000).kind, "none");
  assertEquals(parseRange("bytes=" + "0-0,".repeat(5000), 1000).kind, "none");
});

Deno.test("range: multipart/byteranges body", () => {
  const body = new TextEncoder().encode("abcdefghijklmnopqrstuvwxyz");
  const out = new TextDecoder().decode(
    buildMultipart(body, [{ start: 0, end: 2 }, { start: 24, end: 25 }], "text/plain", "B"),
  );
  assertEquals(
    out,
    "--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-2/26\r\n\r\nabc\r\n" +
      "--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 24-25/26\r\n\r\nyz\r\n--B--\r\n",
  );
  assertEquals(contentRange({ start: 3, end: 9 }, 10), "bytes 3-9/10");
});

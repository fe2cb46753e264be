/**
 * Unit tests of the replica's dispatch table and request limits (lib/http/dispatch.ts,
 * lib/http/limits.ts); the end-to-end behaviour is in http_forwarding_test.ts and
 * http_failure_test.ts.
 */
import { deepStrictEqual, equal, match } from "node:assert/strict";
import { routeOf } from "../lib/http/dispatch.ts";
import {
  headerSectionError,
  MAX_HEADER_BYTES,
  MAX_HEADER_FIELD_BYTES,
  requestTarget,
} from "../lib/http/limits.ts";

Deno.test("dispatch: each method and target goes where the table says", () => {
  const cases: [string, string, string][] = [
    ["GET", "/a", "cache"],
    ["HEAD", "/a?b=1", "cache"],
    ["GET", "/_cdn/health", "api"],
    ["POST", "/_cdn/purge", "api"],
    ["DELETE", "/_cdn/files/x", "api"],
    ["POST", "/a", "forward"],
    ["PUT", "/a", "forward"],
    ["PATCH", "/a", "forward"],
    ["DELETE", "/a", "forward"],
    ["OPTIONS", "/a", "forward"],
    ["OPTIONS", "/*", "options"],
    ["CONNECT", "/", "unsupported"],
    ["TRACE", "/a", "unsupported"],
    ["TRACK", "/_cdn/health", "unsupported"],
    ["PROPFIND", "/a", "forward"],
  ];
  deepStrictEqual(
    cases.map(([m, u]) => [m, u, routeOf(m, u)]),
    cases,
  );
});

Deno.test("limits: request target and header section", () => {
  equal(requestTarget("http://127.0.0.1:8080/a/b?c=d"), "/a/b?c=d");
  equal(requestTarget("http://example.com:443"), "/"); // CONNECT example.com:443
  equal(requestTarget("https://h/"), "/");
  equal(headerSectionError(new Headers({ a: "b" })), null);
  const big = "x".repeat(MAX_HEADER_FIELD_BYTES);
  match(headerSectionError(new Headers({ "x-big": big }))!, /header field x-big is larger/);
  const many = new Headers();
  const value = "v".repeat(MAX_HEADER_FIELD_BYTES - 100);
  for (let i = 0; i * (MAX_HEADER_FIELD_BYTES - 90) <= MAX_HEADER_BYTES; i++) {
    many.set(`x-h${i}`, value);
  }
  match(headerSectionError(many)!, /request headers larger than/);
});

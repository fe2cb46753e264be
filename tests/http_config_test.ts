/**
 * The replica's command line as a pure function: argv -> config or a UsageError naming the
 * flag and the value; the origin forms people type; the one id rule.
 */
import assert from "node:assert/strict";
import { UsageError } from "../lib/common/cli.ts";
import {
  type HttpConfig,
  httpUsage,
  parseHttpConfig,
  parseOrigin,
  replicaId,
} from "../lib/http/config.ts";

function parse(argv: string[], env: Record<string, string> = {}): HttpConfig {
  const c = parseHttpConfig(argv, env);
  assert.notEqual(c, "help");
  return c as HttpConfig;
}

function refused(argv: string[], message: RegExp): void {
  assert.throws(
    () => parseHttpConfig(argv),
    (e) => e instanceof UsageError && message.test(e.message),
  );
}

Deno.test("http config: defaults", () => {
  const c = parse(["-o", "127.0.0.1:8000"]);
  assert.equal(c.origin, "http://127.0.0.1:8000");
  assert.equal(c.port, 8080);
  assert.equal(c.host, "0.0.0.0");
  assert.equal(c.cacheBytes, 64 * 1024 * 1024);
  assert.equal(c.maxObjectBytes, c.cacheBytes);
  assert.equal(c.originTimeoutMs, 10_000);
  assert.equal(c.coalesceTimeoutMs, 11_000);
  assert.equal(c.index, "wasm");
  assert.equal(c.adminToken, null);
  assert.equal(c.fleet, null);
  assert.equal(c.wire, "json");
  assert.equal(parse(["-o", "o", "--wire", "protobuf"]).wire, "protobuf");
  assert.equal(parseHttpConfig(["-h"]), "help");
});

Deno.test("http config: origin as URL, HOST:PORT or HOST", () => {
  assert.equal(parseOrigin("http://127.0.0.1:8000"), "http://127.0.0.1:8000");
  assert.equal(parseOrigin("http://127.0.0.1:8000/"), "http://127.0.0.1:8000");
  assert.equal(parseOrigin("127.0.0.1:8000"), "http://127.0.0.1:8000");
  assert.equal(parseOrigin("localhost:8000"), "http://localhost:8000");
  assert.equal(parseOrigin("origin.example.com"), "http://origin.example.com");
  assert.equal(parseOrigin("https://origin.example.com"), "https://origin.example.com");
  assert.equal(parseOrigin("[::1]:8000"), "http://[::1]:8000");
  assert.throws(
    () => parseOrigin("http://o.example/static"),
    /path prefix \(\/static\) is not supported/,
  );
  assert.throws(() => parseOrigin("o.example/static/"), /path prefix/);
  assert.throws(() => parseOrigin("ftp://o.example"), /must be http or https/);
  assert.throws(() => parseOrigin("http://u:p@o.example"), /credentials/);
  assert.throws(() => parseOrigin("o.example?x=1"), /query/);
  assert.throws(() => parseOrigin("::1"), /not a URL or HOST\[:PORT\]/);
});

Deno.test("http config: errors name the flag and the value", () => {
  refused([], /--origin is required/);
  refused(["-o", "o", "--bogus"], /Unknown option '--bogus'/);
  refused(["-o", "o", "-p", "70000"], /--port must be a port number in 0\.\.65535: received 70000/);
  refused(["-o", "o", "--cache-bytes", "lots"], /--cache-bytes: not a size/);
  refused(["-o", "o", "--cache-bytes", "0"], /--cache-bytes must be in 1\.\./);
  refused(
    ["-o", "o", "--heartbeat", "0s"],
    /--heartbeat: duration must be in 1 ms\.\.24 days: received 0s/,
  );
  refused(["-o", "o", "--index", "btree"], /--index must be wasm or ts: received btree/);
  refused(["-o", "o", "--wire", "xml"], /--wire must be json or protobuf: received xml/);
  refused(
    ["-o", "o", "--peers", "a.example"],
    /--peers: not an http\(s\) URL: received a\.example/,
  );
  refused(
    ["-o", "o", "--preload-concurrency", "0"],
    /--preload-concurrency must be an integer >= 1/,
  );
  refused(["-o", "o", "--id", "a.b"], /--id must be 1 to 63 of/);
  refused(["-o", "o", "--join", "http://x:1"], /need --data DIR/);
  refused(["-o", "o", "--chunk-bytes", "9MiB"], /--chunk-bytes must be in 1\.\.8388608 bytes/);
  refused(["-o", "o", "--lat", "10"], /need --announce/);
  assert.equal(parse(["-o", "o", "--provider", "aws"]).provider, "aws", "--provider alone");
  assert.equal(parse(["-o", "o"]).provider, "");
  refused(["-o", "o", "--announce", "a:1", "--announce", "a:1"], /--announce: a:1 is given twice/);
  refused(
    ["-o", "o", "--announce", "127.0.0.1:5380", "--lat", "100", "--lon", "0"],
    /--lat must be/,
  );
});

Deno.test("http config: --announce repeated or comma-separated names several DNS servers", () => {
  const c = parse(["-o", "o", "--announce", "127.0.0.1:5380,127.0.0.2:5380", "--announce", "h:1"]);
  assert.deepEqual(c.fleet!.announce, ["127.0.0.1:5380", "127.0.0.2:5380", "h:1"]);
  assert.equal(parse(["-o", "o"]).fleet, null);
  // The deploy scripts read "repeat" in --announce's help, up to the next line starting with "-".
  const lines = httpUsage().split("\n");
  const at = lines.findIndex((l) => l.includes("--announce"));
  const end = lines.findIndex((l, i) => i > at && /^ *-/.test(l));
  assert.match(lines.slice(at, end).join(" "), /repeat/i);
});

Deno.test("http config: admin token from the flag or the environment", () => {
  assert.equal(parse(["-o", "o"], { NEARCAST_ADMIN_TOKEN: "t" }).adminToken, "t");
  assert.equal(
    parse(["-o", "o", "--admin-token", "f"], { NEARCAST_ADMIN_TOKEN: "t" }).adminToken,
    "f",
  );
  assert.equal(
    parse(["-o", "o", "--admin-token", ""], { NEARCAST_ADMIN_TOKEN: "t" }).adminToken,
    null,
  );
});

Deno.test("http config: one id rule (--id, else the stored node id, else HOST-PORT)", () => {
  assert.equal(replicaId(parse(["-o", "o", "--id", "nyc"]), 8080, "abcd1234"), "nyc");
  assert.equal(replicaId(parse(["-o", "o", "--data", "d"]), 8080, "abcd1234"), "abcd1234");
  assert.equal(replicaId(parse(["-o", "o", "--host", "127.0.0.11"]), 41234), "127-0-0-11-41234");
  assert.equal(replicaId(parse(["-o", "o", "--host", "::1"]), 80), "1-80");
});

/**
 * The DNS server's and the upload client's command lines as pure functions: argv -> config
 * or a UsageError naming the flag and the value; and the shared usage text.
 */
import assert from "node:assert/strict";
import { parseFlags, usage, UsageError } from "../lib/common/cli.ts";
import { type DnsFlagsConfig, parseDnsFlags } from "../lib/dns/flags.ts";
import { DEFAULT_POLICY } from "../lib/dns/policy.ts";
import { DEFAULT_CONTROL_PORT } from "../lib/fleet/protocol.ts";
import { parseUploadConfig } from "../lib/upload/config.ts";

function dns(argv: string[], env: Record<string, string> = {}): DnsFlagsConfig {
  const c = parseDnsFlags(argv, env);
  assert.notEqual(c, "help");
  return c as DnsFlagsConfig;
}

function refused(f: () => unknown, message: RegExp): void {
  assert.throws(f, (e) => e instanceof UsageError && message.test(e.message));
}

Deno.test("dns flags: defaults and the control port rule", () => {
  const c = dns(["-p", "5300", "-n", "cdn.test."]);
  assert.equal(c.name, "cdn.test");
  assert.equal(c.host, "127.0.0.1");
  assert.equal(c.controlPort, DEFAULT_CONTROL_PORT);
  assert.equal(c.policy, DEFAULT_POLICY);
  assert.equal(c.codec, "wasm");
  assert.deepEqual(c.weights, { latency: 1, load: 1, price: 1 });
  assert.equal(c.adminToken, null);
  assert.equal(dns(["-p", "0", "-n", "z"]).controlPort, 0, "-p 0: a free control port too");
  assert.equal(dns(["-p", "0", "-n", "z", "--control", "off"]).controlPort, null);
  assert.equal(dns(["-p", "0", "-n", "z"], { NEARCAST_ADMIN_TOKEN: "t" }).adminToken, "t");
  assert.deepEqual(dns(["-p", "0", "-n", "z", "--weights", "load=2"]).weights, {
    latency: 1,
    load: 2,
    price: 1,
  });
  assert.equal(parseDnsFlags(["--help"]), "help");
});

Deno.test("dns flags: errors name the flag and the value", () => {
  refused(() => parseDnsFlags(["-n", "z"]), /--port is required/);
  refused(() => parseDnsFlags(["-p", "0"]), /--name is required/);
  refused(() => parseDnsFlags(["-p", "x", "-n", "z"]), /--port must be a port number.*received x/);
  refused(() => parseDnsFlags(["-p", "0", "-n", "a..b"]), /--name: zone label 2 of "a\.\.b"/);
  refused(() => parseDnsFlags(["-p", "0", "-n", "z", "--control", "on"]), /--control must be/);
  refused(
    () => parseDnsFlags(["-p", "0", "-n", "z", "--policy", "fastest"]),
    /--policy must be one of .*: received fastest/,
  );
  refused(() => parseDnsFlags(["-p", "0", "-n", "z", "--short-ttl", "1.5"]), /whole seconds/);
  refused(() => parseDnsFlags(["-p", "0", "-n", "z", "--weights", "cpu=1"]), /--weights/);
  refused(() => parseDnsFlags(["-p", "0", "-n", "z", "--rtt-ttl", "soon"]), /--rtt-ttl/);
});

Deno.test("upload config: upload, delete, errors", () => {
  const up = parseUploadConfig(["a.txt", "--meta", "k=v", "--meta", "x=1=2"], {
    NEARCAST_URL: "http://n:1",
    NEARCAST_TOKEN: "t",
  });
  assert.deepEqual(up, {
    mode: "upload",
    file: "a.txt",
    to: "http://n:1",
    token: "t",
    name: undefined,
    meta: { k: "v", x: "1=2" },
    contentType: undefined,
    chunkBytes: 1024 * 1024,
    wire: "json",
    quiet: false,
  });
  const pb = parseUploadConfig(["a.txt", "--wire", "protobuf"]);
  assert.equal(pb !== "help" && pb.mode === "upload" && pb.wire, "protobuf");
  assert.deepEqual(parseUploadConfig(["--delete", "a.txt"]), {
    mode: "delete",
    name: "a.txt",
    to: "http://127.0.0.1:8080",
    token: undefined,
  });
  refused(() => parseUploadConfig([]), /give exactly one FILE/);
  refused(() => parseUploadConfig(["a", "--meta", "novalue"]), /--meta must be key=value/);
  refused(() => parseUploadConfig(["a", "--to", "n:1"]), /--to: not an http\(s\) URL/);
  refused(() => parseUploadConfig(["a", "--chunk-bytes", "0"]), /--chunk-bytes must be in 1\.\./);
  refused(() => parseUploadConfig(["--delete", "a", "b"]), /--delete takes a NAME/);
  refused(() => parseUploadConfig(["a", "--wire", "xml"]), /--wire must be json or protobuf/);
});

Deno.test("cli: unknown flags and missing values name the flag; usage lists every flag", () => {
  const table = {
    port: { type: "string", short: "p", arg: "PORT", help: "the port" },
    quiet: { type: "boolean", help: "no output" },
  } as const;
  refused(() => parseFlags(["--prot", "1"], table), /Unknown option '--prot'/);
  refused(() => parseFlags(["-p"], table), /--port <value>' argument missing/);
  const text = usage(["Usage: x"], table, ["Exit codes: 0"]);
  assert.match(text, /-p, --port PORT +the port/);
  assert.match(text, /--quiet +no output/);
  assert.match(text, /Exit codes: 0$/);
});

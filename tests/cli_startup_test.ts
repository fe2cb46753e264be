/**
 * Start-up failures of the real processes: one line naming the flag and the value, no stack
 * trace, and the exit code the README documents.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url).pathname;

async function run(main: string, args: string[]): Promise<{ code: number; err: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, err: new TextDecoder().decode(out.stderr) };
}

/** One line, no stack frames. */
function oneLine(err: string): void {
  const lines = err.trim().split("\n");
  assert.equal(lines.length, 1, err);
  assert.doesNotMatch(err, /^\s+at /m, err);
}

Deno.test("startup failures: one line naming the flag, documented exit codes", async (t) => {
  const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const busy = (tcp.addr as Deno.NetAddr).port;
  try {
    await t.step("replica on a port in use: exit 4", async () => {
      const r = await run("main_http.ts", ["--host", "127.0.0.1", "-p", `${busy}`, "-o", "o"]);
      assert.equal(r.code, 4, r.err);
      oneLine(r.err);
      assert.match(r.err, new RegExp(`--port ${busy}: address already in use`));
    });
    await t.step("replica on an address this machine does not have: exit 4", async () => {
      // 192.0.2.1 is TEST-NET-1 (RFC 5737): never local, and binding sends nothing.
      const r = await run("main_http.ts", ["--host", "192.0.2.1", "-p", "0", "-o", "o"]);
      assert.equal(r.code, 4, r.err);
      oneLine(r.err);
      assert.match(r.err, /--host 192\.0\.2\.1 --port 0: address not available/);
    });
    await t.step("replica with an unreadable --preload file: exit 2", async () => {
      const r = await run("main_http.ts", ["-p", "0", "-o", "o", "--preload", "/nonexistent"]);
      assert.equal(r.code, 2, r.err);
      oneLine(r.err);
      assert.match(r.err, /--preload: cannot read \/nonexistent/);
    });
    await t.step("replica -o with a path: refused, exit 2", async () => {
      const r = await run("main_http.ts", ["-p", "0", "-o", "127.0.0.1:8000/static"]);
      assert.equal(r.code, 2, r.err);
      oneLine(r.err);
      assert.match(r.err, /--origin: a path prefix \(\/static\) is not supported yet/);
    });
    await t.step("DNS server on a busy control port: exit 4, names --control", async () => {
      const r = await run("main_dns.ts", ["-p", "0", "-n", "cdn.test", "--control", `${busy}`]);
      assert.equal(r.code, 4, r.err);
      oneLine(r.err);
      assert.match(r.err, new RegExp(`--control ${busy} \\(control API.*address already in use`));
    });
    await t.step("DNS server on a busy DNS port: exit 4, names --port", async () => {
      const args = ["-p", `${busy}`, "-n", "cdn.test", "--control", "off", "--io", "portable"];
      const r = await run("main_dns.ts", args);
      assert.equal(r.code, 4, r.err);
      oneLine(r.err);
      assert.match(r.err, new RegExp(`--port ${busy} \\(DNS.*address already in use`));
    });
    await t.step("replica with an unusable --data directory: exit 3", async () => {
      const r = await run("main_http.ts", ["-p", "0", "-o", "o", "--data", "/proc/nearcast"]);
      assert.equal(r.code, 3, r.err);
      oneLine(r.err);
      assert.match(r.err, /--data \/proc\/nearcast: cannot open the store/);
    });
    await t.step("DNS server with an unusable --data directory: exit 3", async () => {
      const r = await run("main_dns.ts", ["-p", "0", "-n", "z", "--data", "/proc/nearcast"]);
      assert.equal(r.code, 3, r.err);
      oneLine(r.err);
      assert.match(r.err, /--data \/proc\/nearcast: /);
    });
    await t.step("demo with a bad flag: exit 2", async () => {
      const r = await run("scripts/demo.ts", ["--dns-port", "99999"]);
      assert.equal(r.code, 2, r.err);
      oneLine(r.err);
      assert.match(r.err, /--dns-port must be a port number in 0\.\.65535: received 99999/);
    });
    await t.step("upload client on an unreadable file: exit 2", async () => {
      // Mode 0200 in /proc/sys is enforced even for root: open for reading fails.
      const file = "/proc/sys/vm/drop_caches";
      const r = await run("main_upload.ts", [file, "--to", "http://127.0.0.1:9", "-q"]);
      assert.equal(r.code, 2, r.err);
      oneLine(r.err);
      assert.match(r.err, /cannot read \/proc\/sys\/vm\/drop_caches: Permission denied/);
    });
    await t.step("upload client on a missing file: exit 2", async () => {
      const r = await run("main_upload.ts", ["/nonexistent", "-q"]);
      assert.equal(r.code, 2, r.err);
      oneLine(r.err);
    });
  } finally {
    tcp.close();
  }
});

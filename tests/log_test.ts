/**
 * Logs: `--log json` on every process writes one JSON event a line (time, level, process, pid,
 * msg); text stays the default; the replica's access log (`--access-log FILE|-`, combined or
 * JSON) carries the cache status and the origin time; a 502 is logged with its cause without
 * an access log. The shared logger (`lib/common/log.ts`) strips ANSI colour.
 */
import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { Logger, takeLogFlag, withLogUsage } from "../lib/common/log.ts";
import { startDns } from "../lib/fleet/_testing.ts";
import { startOrigin } from "./_http_origin.ts";
import { startReplica } from "./_http_replica.ts";
import { startPrice } from "./_price_service.ts";
import { startProxyProc } from "./_proxy_procs.ts";

/** Every non-empty line of `text` is a JSON event of `process`. */
function allJson(text: string, process: string): Record<string, unknown>[] {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  ok(lines.length > 0, `no output from ${process}`);
  return lines.map((l) => {
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(l);
    } catch {
      throw new Error(`${process}: not a JSON line: ${l}`);
    }
    equal(e.process, process, l);
    equal(typeof e.pid, "number", l);
    match(String(e.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, l);
    ok(["info", "warn", "error"].includes(String(e.level)), l);
    equal(typeof e.msg, "string", l);
    return e;
  });
}

Deno.test("log: Logger text and json, fields, no ANSI, --log parsing", () => {
  const out: string[] = [];
  const now = () => new Date("2026-12-03T20:00:00Z");
  const json = new Logger({ process: "dns", format: "json", write: (l) => out.push(l), now });
  json.line("fleet: probe r1 -> 10.0.0.1 failed: \x1b[31mtimeout\x1b[0m");
  json.info("hello", { n: 1 });
  deepEqual(JSON.parse(out[0]), {
    time: "2026-12-03T20:00:00.000Z",
    level: "warn",
    process: "dns",
    pid: Deno.pid,
    msg: "probe r1 -> 10.0.0.1 failed: timeout",
    component: "fleet",
  });
  equal(JSON.parse(out[1]).n, 1);
  const text = new Logger({ process: "dns", write: (l) => out.push(l) });
  text.line("dns: \x1b[1mserving\x1b[0m");
  text.info("done", { path: "/a b", n: 2 });
  deepEqual(out.slice(2), ["dns: serving", 'done path="/a b" n=2']);
  deepEqual(takeLogFlag(["-p", "1", "--log", "json"]), { format: "json", rest: ["-p", "1"] });
  deepEqual(takeLogFlag(["--log=text"]), { format: "text", rest: [] });
  let message = "";
  try {
    takeLogFlag(["--log", "xml"]);
  } catch (e) {
    message = (e as Error).message;
  }
  equal(message, "--log must be text or json: received xml");
  const usage = withLogUsage(
    "Usage: x\n  -p, --port N    Port.\n  -h, --help      Show this help.",
  );
  deepEqual(usage.split("\n").slice(2, 5), [
    "  --log FORMAT    Log format: text (default: one human line each) or json",
    "                  (one object a line: time, level, process, pid, msg, fields).",
    "  -h, --help      Show this help.",
  ]);
});

Deno.test({
  name: "log: --log json on every process; replica access log and origin failures",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "nearcast_log_" });
    const origin = await startOrigin({
      "/a.txt": { body: "alpha\n", headers: { "cache-control": "max-age=60" } },
      "/bad.txt": { status: 502, body: "x".repeat(100_000) },
    });
    const access = `${dir}/access.log`;
    const stops: (() => Promise<void>)[] = [() => origin.close()];
    try {
      const r = await startReplica([
        "-o",
        origin.url,
        "--log",
        "json",
        "--access-log",
        access,
        "--access-log-format",
        "json",
      ]);
      stops.push(() => r.close());
      for (let i = 0; i < 2; i++) {
        const res = await fetch(`${r.url}/a.txt`, { headers: { "user-agent": "log-test" } });
        equal(await res.text(), "alpha\n");
      }
      const rows = (await Deno.readTextFile(access)).trim().split("\n").map((l) => JSON.parse(l));
      equal(rows.length, 2, JSON.stringify(rows));
      equal(rows[0].cache, "MISS");
      equal(rows[0].status, 200);
      equal(rows[0].target, "/a.txt");
      equal(rows[0].userAgent, "log-test");
      equal(rows[0].remote, "127.0.0.1");
      equal(typeof rows[0].upstreamSeconds, "number", JSON.stringify(rows[0]));
      equal(rows[1].cache, "HIT");
      equal(rows[1].upstreamSeconds, null);
      // The origin's own 502 is relayed as it is and logged as the origin's answer.
      const relayed = await fetch(`${r.url}/bad.txt`);
      equal(relayed.status, 502);
      equal((await relayed.text()).length, 100_000);
      await r.waitFor(
        /"level":"warn",.*"msg":"origin failure: 502 GET \/bad\.txt: the origin answered 502"/,
        10_000,
      );
      const events = allJson(r.lines.join("\n"), "http");
      ok(events.some((e) => /^listening on http/.test(String(e.msg))), JSON.stringify(events));

      // No origin (port 9): a 502, logged with its cause; combined access lines on stdout.
      const down = await startReplica(["-o", "http://127.0.0.1:9", "--access-log", "-"]);
      stops.push(() => down.close());
      const res = await fetch(`${down.url}/gone.txt`);
      equal(res.status, 502);
      await res.body?.cancel();
      await down.waitFor(/^http: origin failure: 502 GET \/gone\.txt: origin unreachable/, 10_000);
      const line = await down.waitFor(/"GET \/gone\.txt HTTP\/1\.1" 502/, 10_000);
      match(
        line,
        /^127\.0\.0\.1 - - \[\d\d\/[A-Z][a-z]{2}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET \/gone\.txt HTTP\/1\.1" 502 (\d+|-) "-" "[^"]*" - \d/,
      );

      const dns = await startDns(["-n", "cdn.test", "--log", "json", "--probe-port", "9"]);
      stops.push(() => dns.stop());
      allJson(dns.output(), "dns");
      const price = await startPrice(["--log", "json"]);
      stops.push(() => price.close());
      allJson(price.output(), "price");
      const proxy = await startProxyProc(["--node", r.url, "--name", "cdn.test", "--log", "json"]);
      stops.push(() => proxy.close());
      allJson(proxy.output(), "proxy");
      await rejects(startPrice(["--log", "xml"]), /--log must be text or json: received xml/);
    } finally {
      for (const s of stops.reverse()) await s();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * `deno task demo`: starts the real processes, the dig commands it prints work and give the
 * answers it promises, the pricing service holds each replica's provider and its printed PATCH
 * line changes a price the DNS server's explanation then shows, the printed curl and wget lines
 * through the routing proxy are answered by the server they name (X-Nearcast-Server) and flip
 * with the price, its failover step (kill -9 of a replica) leaves the demo and the other
 * processes running while DNS stops answering the dead one, its restart command brings the
 * replica back, and SIGTERM stops everything. It prints the dashboard's URL first, which serves
 * the dashboard, and `--open` hands that URL to xdg-open (a stand-in on PATH that records it);
 * without xdg-open, `--open` says what is missing.
 */
import assert from "node:assert/strict";
import { parseDig, runClient, within } from "../lib/dns/_testing.ts";
import { openInBrowser } from "../scripts/demo.ts";

const DEMO = new URL("../scripts/demo.ts", import.meta.url).pathname;
const READY_MS = 90_000; // generous: the whole fleet starts on a loaded 2-core machine in CI

/** A port free for both UDP and TCP right now (the demo takes a fixed port). */
function freePort(): number {
  for (;;) {
    const udp = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    const port = (udp.addr as Deno.NetAddr).port;
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch {
      /* taken for TCP: try another */
    } finally {
      udp.close();
    }
  }
}

/** Runs the upload client as the demo's printed command does (`deno task upload ARGS`). */
async function runUpload(args: string[]): Promise<Deno.CommandOutput> {
  const root = new URL("../", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}main_upload.ts`, ...args],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) console.error(new TextDecoder().decode(out.stderr));
  return out;
}

/** Polls `f` every 100 ms until it returns non-null, for at most 10 s (then the last null). */
async function poll<T>(f: () => Promise<T | null>): Promise<T | null> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const v = await f();
    if (v !== null || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A TCP port free on 127.0.0.1 and the replicas' addresses right now. */
function freeHttpPort(): number {
  for (;;) {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    try {
      for (const ip of ["127.0.0.11", "127.0.0.12", "127.0.0.13"]) {
        Deno.listen({ hostname: ip, port }).close();
      }
      return port;
    } catch { /* taken on a replica address: try another */ }
  }
}

/**
 * Free ports for each of the demo's processes, the demo's flags that name them, and every TCP
 * address they make the demo listen on.
 */
function demoPorts() {
  const p = {
    port: freePort(),
    httpPort: freeHttpPort(),
    originPort: freeHttpPort(),
    controlPort: freePort(),
    pricePort: freeHttpPort(),
    proxyPort: freeHttpPort(),
  };
  const flags = [
    ...["--dns-port", String(p.port), "--http-port", String(p.httpPort)],
    ...["--origin-port", String(p.originPort), "--control-port", String(p.controlPort)],
    ...["--price-port", String(p.pricePort), "--proxy-port", String(p.proxyPort)],
  ];
  const tcpPorts: [string, number][] = [["127.0.0.1", p.originPort], ["127.0.0.1", p.controlPort]];
  tcpPorts.push(["127.0.0.1", p.pricePort], ["127.0.0.1", p.proxyPort]);
  for (const ip of ["127.0.0.11", "127.0.0.12", "127.0.0.13"]) tcpPorts.push([ip, p.httpPort]);
  return { ...p, flags, tcpPorts };
}

Deno.test("demo: starts origin, replicas and DNS; its printed commands work; SIGTERM stops it", async () => {
  const { port, httpPort, originPort, controlPort, pricePort, proxyPort, tcpPorts, flags } =
    demoPorts();
  // --open: a stand-in xdg-open first on PATH records the URL it was asked to open.
  const bin = await Deno.makeTempDir({ prefix: "nearcast-demo-bin-" });
  await Deno.writeTextFile(`${bin}/xdg-open`, `#!/bin/sh\necho "$@" > ${bin}/opened\n`, {
    mode: 0o755,
  });
  const child = new Deno.Command(Deno.execPath(), {
    env: { PATH: `${bin}:${Deno.env.get("PATH") ?? ""}` },
    args: [
      "run",
      "-A",
      DEMO,
      "--open",
      ...flags,
    ],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    // Its own process group, stopped below as Ctrl-C or `deno task` would: SIGTERM to the group.
    detached: true,
  }).spawn();
  let out = "";
  /** Standard output alone: its lines are whole (stderr chunks may land mid-line in `out`). */
  let stdout = "";
  let up: () => void = () => {};
  const isUp = new Promise<void>((r) => (up = r));
  const pump = async (s: ReadableStream<Uint8Array>, isStdout: boolean) => {
    for await (const t of s.pipeThrough(new TextDecoderStream())) {
      out += t;
      if (isStdout) stdout += t;
      if (out.includes("Ctrl-C stops everything")) up();
    }
  };
  const pumps = Promise.all([pump(child.stdout, true), pump(child.stderr, false)]);
  try {
    await within(Promise.race([isUp, child.status]), READY_MS, "demo start");
    assert.match(out, /Ctrl-C stops everything/, out);
    // The dashboard's URL comes first, before any process's output, and serves the dashboard.
    const dashboard = `http://127.0.0.1:${controlPort}/dashboard`;
    assert.equal(
      stdout.split("\n")[0],
      `demo: dashboard ${dashboard} (live once everything has started)`,
    );
    assert.match(stdout, new RegExp(`^Dashboard: ${dashboard} `, "m"));
    const page = await fetch(dashboard);
    assert.match(await page.text(), /<title>Nearcast dashboard<\/title>/);
    const opened = await poll(() => Deno.readTextFile(`${bin}/opened`).catch(() => null));
    assert.equal(opened?.trim(), dashboard, "--open hands the dashboard's URL to xdg-open");
    // Every printed dig line with an expected address after "->" or ":" is run and checked.
    const lines = out.split("\n").filter((l) => l.trim().startsWith("dig "));
    assert.ok(lines.length >= 10, out);
    let checked = 0;
    for (const line of lines) {
      const [cmd, comment] = line.trim().split("#");
      const r = parseDig((await runClient("dig", cmd.trim().split(/\s+/).slice(1))).stdout);
      const want = /127\.0\.0\.1\d/.exec(comment)?.[0];
      if (want) {
        assert.deepEqual(r.answer.map((a) => a.data), [want], `${line}\n${r.raw}`);
        checked++;
      } else if (/NXDOMAIN/.test(comment)) {
        assert.equal(r.status, "NXDOMAIN", r.raw);
      } else if (/REFUSED/.test(comment)) {
        assert.equal(r.status, "REFUSED", r.raw);
      } else if (/NODATA/.test(comment)) {
        assert.deepEqual([r.status, r.answer.length, r.authority[0]?.type], ["NOERROR", 0, "SOA"]);
      } else {
        assert.equal(r.status, "NOERROR", r.raw);
      }
    }
    assert.ok(checked >= 7, `only ${checked} answers checked`);
    // Through the CDN: the replica the DNS answer names serves the origin's page, MISS then HIT.
    const ip =
      parseDig((await runClient("dig", ["@127.0.0.1", "-p", String(port), "cdn.test"])).stdout)
        .answer[0].data;
    const origin = await (await fetch(`http://127.0.0.1:${originPort}/index.html`)).text();
    const seen: string[] = [];
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`http://${ip}:${httpPort}/index.html`, {
        headers: { host: `cdn.test:${httpPort}` },
      });
      assert.equal(await res.text(), origin);
      seen.push(res.headers.get("x-cache") ?? "");
    }
    assert.deepEqual(seen, ["MISS", "HIT"]);
    // The printed upload command stores a file on one replica; every replica serves its bytes;
    // the printed delete removes it from every replica.
    const upload = out.split("\n").find((l) => l.includes("deno task upload scripts/"))!;
    const del = out.split("\n").find((l) => l.includes("deno task upload --delete"))!;
    const uploadArgs = (line: string) => line.trim().split(/\s+/).slice(3);
    const file = await Deno.readFile(new URL("../scripts/demo/site/logo.png", import.meta.url));
    assert.equal((await runUpload(uploadArgs(upload))).code, 0, upload);
    for (const ip of ["127.0.0.11", "127.0.0.12", "127.0.0.13"]) {
      const got = await poll(async () => {
        const res = await fetch(`http://${ip}:${httpPort}/uploads/logo.png`);
        const body = await res.bytes();
        return res.status === 200 ? body : null;
      });
      assert.deepEqual(got, file, `${ip} serves the uploaded bytes`);
    }
    assert.equal((await runUpload(uploadArgs(del))).code, 0, del);
    for (const ip of ["127.0.0.11", "127.0.0.12", "127.0.0.13"]) {
      const status = await poll(async () => {
        const res = await fetch(`http://${ip}:${httpPort}/uploads/logo.png`);
        await res.body?.cancel();
        return res.status === 404 ? res.status : null;
      });
      assert.equal(status, 404, `${ip} dropped the deleted file`);
    }
    // The replicas registered themselves: the control API lists all three alive.
    const fleet = await (await fetch(`http://127.0.0.1:${controlPort}/replicas`)).json();
    assert.deepEqual(
      fleet.replicas.map((r: { id: string; state: string }) => `${r.id} ${r.state}`).sort(),
      ["lon alive", "nyc alive", "tok alive"],
    );
    // Prices: the pricing service holds the three providers, the DNS server's explanation shows
    // the cost of each replica's provider, and the printed PATCH line changes one.
    const providers = await (await fetch(`http://127.0.0.1:${pricePort}/providers`)).json();
    assert.deepEqual(
      providers.providers.map((p: { name: string }) => p.name),
      ["alpha", "beta", "gamma"],
    );
    const costs = async () => {
      const url = `http://127.0.0.1:${controlPort}/explain?client=127.0.0.1`;
      const ex = await (await fetch(url)).json();
      return Object.fromEntries(
        ex.replicas.map((r: { id: string; costPerGiB: number }) => [r.id, r.costPerGiB]),
      );
    };
    assert.deepEqual(await costs(), { nyc: 0.095, lon: 0.054, tok: 0.012 });
    const servers = await (await fetch(`http://127.0.0.11:${httpPort}/_cdn/servers`)).json();
    assert.deepEqual(
      servers.map((s: { id: string; provider: string }) => `${s.id} ${s.provider}`).sort(),
      ["lon beta", "nyc alpha", "tok gamma"],
    );
    // The proxy lines, in the order printed: each curl/wget through the proxy is answered by the
    // server its comment names (X-Nearcast-Server), and the PATCH lines flip the choice.
    const printed = stdout.split("\n").map((l) => l.trim());
    const flow = printed.filter((l) =>
      l.includes(`-x http://127.0.0.1:${proxyPort} `) || l.includes("http_proxy=") ||
      l.includes("-X PATCH")
    );
    let routed = 0;
    for (const line of flow) {
      const sh = () => new Deno.Command("sh", { args: ["-c", line], stdout: "piped" }).output();
      if (line.includes("-X PATCH")) {
        assert.equal((await sh()).code, 0, line);
        continue;
      }
      const want = /# server (\w+)/.exec(line)?.[1];
      if (want === undefined) continue;
      const got = await poll(async () => {
        const text = new TextDecoder().decode((await sh()).stdout);
        const id = /x-nearcast-server: (\S+)/i.exec(text)?.[1];
        return id === want ? text : null;
      });
      assert.ok(got, `${line}: not answered by ${want}`);
      assert.match(got, /x-nearcast-reason: .+/i, line);
      routed++;
    }
    assert.equal(routed, 3, flow.join("\n"));
    const explainLine = printed.find((l) => l.includes("/_proxy/explain"))!;
    const ex = await new Deno.Command("sh", { args: ["-c", explainLine], stdout: "piped" })
      .output();
    assert.match(new TextDecoder().decode(ex.stdout), /tok/, explainLine);
    const patch = printed.find((l) => l.includes('"egressPerGiB":0.2'))!;
    assert.equal((await new Deno.Command("sh", { args: ["-c", patch] }).output()).code, 0);
    assert.equal(
      await poll(async () => (await costs()).tok === 0.202 ? true : null),
      true,
      "the DNS server saw the new price",
    );
    // The printed failover step: kill -9 of lon's pid. The demo reports it and keeps running,
    // nyc and tok keep serving, and the DNS answers stop naming 127.0.0.12.
    const dig = async (source: string) =>
      parseDig(
        (await runClient("dig", ["@127.0.0.1", "-p", String(port), "-b", source, "cdn.test"]))
          .stdout,
      ).answer[0]?.data ?? "";
    assert.equal(await dig("127.0.0.1"), "127.0.0.12", "from Amsterdam: London");
    const pid = Number(/^\s*kill -9 (\d+)/m.exec(out)?.[1]);
    Deno.kill(pid, "SIGKILL");
    const died = /demo: lon \(pid \d+\) exited \(killed by SIGKILL\); the other processes keep/;
    const notice = await poll(() => Promise.resolve(died.test(out) ? true : null));
    assert.ok(notice, out);
    const next = await poll(async () => {
      const a = await dig("127.0.0.1");
      return a !== "127.0.0.12" && a !== "" ? a : null;
    });
    assert.match(next ?? "", /^127\.0\.0\.1[13]$/, "another replica answers for London");
    for (const ip of ["127.0.0.11", "127.0.0.13"]) {
      const res = await fetch(`http://${ip}:${httpPort}/_cdn/health`);
      await res.body?.cancel();
      assert.equal(res.status, 200, `${ip} keeps serving`);
    }
    const alive = await Promise.race([
      child.status.then(() => false),
      new Promise((r) => setTimeout(() => r(true), 500)),
    ]);
    assert.ok(alive, `the demo exited after a replica died:\n${out}`);
    // The printed restart command brings lon back: answered again from Amsterdam.
    const restart = /^ {2}\.\/deno run -A (main_http\.ts .*)$/m.exec(out)?.[1];
    assert.ok(restart, out);
    const root = new URL("../", import.meta.url).pathname;
    const lon = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", ...restart.split(" ")],
      cwd: root,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      assert.equal(
        await poll(async () => (await dig("127.0.0.1")) === "127.0.0.12" ? true : null),
        true,
        "lon answered again after the restart",
      );
    } finally {
      lon.kill("SIGTERM");
      await lon.status;
    }
  } finally {
    try {
      Deno.kill(-child.pid, "SIGTERM");
    } catch { /* exited */ }
    const status = await within(child.status, 10_000, "demo exit").catch(() => {
      child.kill("SIGKILL");
      return child.status;
    });
    await pumps;
    await Deno.remove(bin, { recursive: true });
    assert.equal(status.code, 0, out);
    // Nothing outlives the demo: every port it used is free again.
    for (const [hostname, p] of tcpPorts) {
      await assert.rejects(
        Deno.connect({ hostname, port: p }).then((c) => c.close()),
        `${hostname}:${p} still answers after the demo exited`,
      );
    }
  }
  assert.match(out, /\[dns\] dns: stopped/, out);
  // Only the demo got the group's SIGTERM: it stopped the replicas before the DNS server, so
  // each one deregistered (before, every process got the signal at once and the DNS server was
  // gone before the replicas' deregistrations reached it).
  assert.doesNotMatch(out, /cannot deregister/, out);
  // The DNS child is gone: its port can be bound again.
  Deno.listenDatagram({ hostname: "127.0.0.1", port, transport: "udp" }).close();
});

Deno.test("demo on a terminal: 'restart lon' brings a killed replica back; closing the terminal stops everything", async () => {
  const { port, tcpPorts, flags } = demoPorts();
  const demo = [Deno.execPath(), "run", "-A", DEMO, ...flags].join(" ");
  // script(1) runs the demo on a pseudo-terminal: its stdin is a terminal, and killing script
  // closes that terminal (SIGHUP to the demo and its children).
  const term = new Deno.Command("script", {
    args: ["-qfec", demo, "/dev/null"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const t of s.pipeThrough(new TextDecoderStream())) out += t.replaceAll("\r", "");
  };
  const pumps = Promise.all([pump(term.stdout), pump(term.stderr)]);
  const writer = term.stdin.getWriter();
  const seen = (re: RegExp) =>
    within(
      (async () => {
        while (!re.test(out)) await new Promise((r) => setTimeout(r, 50));
      })(),
      READY_MS,
      `${re} in the demo's output`,
    );
  const dig = async () =>
    parseDig((await runClient("dig", ["@127.0.0.1", "-p", String(port), "cdn.test"])).stdout)
      .answer[0]?.data ?? "";
  try {
    await seen(/Ctrl-C stops everything/);
    Deno.kill(Number(/^\s*kill -9 (\d+)/m.exec(out)?.[1]), "SIGKILL");
    await seen(/to restart it, type "restart lon" here/);
    await writer.write(new TextEncoder().encode("restart lon\n"));
    await seen(/demo: lon restarted \(pid \d+\)/);
    assert.equal(
      await poll(async () => (await dig()) === "127.0.0.12" ? true : null),
      true,
      "lon answered again",
    );
  } finally {
    term.kill("SIGKILL");
    await term.status;
    await writer.close().catch(() => {});
    await pumps.catch(() => {});
  }
  // The terminal is gone: the demo stops every process it started, the restarted one too.
  for (const [hostname, p] of tcpPorts) {
    const closed = await poll(() =>
      Deno.connect({ hostname, port: p }).then((c) => (c.close(), null), () => true)
    );
    assert.equal(closed, true, `${hostname}:${p} still answers after the terminal closed\n${out}`);
  }
});

Deno.test("demo --open without xdg-open: says what is missing and the URL to open", async () => {
  const empty = await Deno.makeTempDir({ prefix: "nearcast-demo-nopath-" });
  const path = Deno.env.get("PATH") ?? "";
  const said: string[] = [];
  const error = console.error;
  console.error = (...a: unknown[]) => said.push(a.join(" "));
  try {
    Deno.env.set("PATH", empty);
    await openInBrowser("http://127.0.0.1:1/dashboard");
  } finally {
    Deno.env.set("PATH", path);
    console.error = error;
    await Deno.remove(empty);
  }
  assert.deepEqual(said, [
    "demo: --open needs xdg-open (apt-get install xdg-utils); open http://127.0.0.1:1/dashboard by hand",
  ]);
});

/**
 * Images over a long round trip (issue 12): this kernel has no `netem`, so the delay comes from
 * the user-space link emulator (`tests/tools/topology.ts`, docs/notes/netemu.md) and the
 * bandwidth from `tbf`. Two clients without hints on 10 Mbit/s links fetch a photo through a
 * replica with `--images both`: one 300 ms away (Akamai's threshold), one next to it. The
 * replica alone measures no RTT (that needs the fleet's probes), so its rule works from the
 * drain rate: over 300 ms a TCP connection's window grows one round trip at a time, a 475 KB
 * photo drains far below 5 Mbit/s, and the far client gets the constrained rung (quality 50, at
 * most 1280 px) from its second response on, while the near one, on the same bandwidth, keeps
 * the original. An `RTT: 300` hint gives the constrained rung at once. In a fleet, the RTT the
 * replica's probes measured for a DNS server gives it at once too. Needs root, `ip`, `tc`, `dig`
 * and `/dev/net/tun`. Namespaces `img-d-*` and `img-f-*`.
 */
import { equal, ok } from "node:assert/strict";
import { magick } from "./_image_helpers.ts";
import { startImageServers, startIn } from "./_image_links_helpers.ts";
import { curlFetch, type Fetched } from "./tools/image_links.ts";
import { sysctl } from "./tools/netns.ts";
import { createTopology, denoRun } from "./tools/topology.ts";

const PHOTO = "/usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg";

/** Width and quality a variant header names (the original counts as the widest). */
function rung(v: string): { width: number; quality: number } {
  const m = /^w=(\d+|orig);q=(\d+)/.exec(v);
  if (m === null) return { width: NaN, quality: NaN };
  return { width: m[1] === "orig" ? Infinity : Number(m[1]), quality: Number(m[2]) };
}

Deno.test("a client 300 ms away without hints gets the constrained rung; one on the same bandwidth nearby keeps the original", async () => {
  const dir = await Deno.makeTempDir({ prefix: "img-d-" });
  const photo = await magick([PHOTO, "-resize", "1600x", "-quality", "75", "jpg:-"]);
  await Deno.writeFile(`${dir}/photo.jpg`, photo);
  const topo = await createTopology({
    prefix: "img-d-",
    hosts: [{ name: "server" }, { name: "far" }, { name: "near" }],
    delays: { far: { server: 300 } },
  });
  let servers: Awaited<ReturnType<typeof startImageServers>> | undefined;
  try {
    for (const c of ["far", "near"]) await topo.setBandwidth(c, 10_000);
    // As in the shaped-link scenario: the socket holds little unsent, so draining is measured.
    await sysctl(topo.hosts.server.ns, { "net.ipv4.tcp_notsent_lowat": "16384" });
    servers = await startImageServers(
      { execServer: (cmd, o) => topo.exec("server", cmd, o) },
      dir,
      ["--images", "both"],
    );
    const base = `http://${topo.address("server")}:${servers.port}`;
    const fetchFrom = async (c: string, headers: string[] = []) =>
      (await curlFetch(topo.hosts[c].ns, base, ["/photo.jpg"], { headers })).got[0];
    const seen = new Map<string, Fetched[]>();
    await Promise.all(["far", "near"].map(async (c) => {
      const got: Fetched[] = [];
      for (let i = 0; i < 4; i++) got.push(await fetchFrom(c));
      seen.set(c, got);
    }));
    const report = [...seen].map(([n, g]) =>
      `${n}: ${g.map((f) => `${f.variant} ${f.bytes}B ${f.seconds.toFixed(2)}s`).join(" | ")}`
    ).join("\n");
    console.log(report);
    const far = seen.get("far")!, near = seen.get("near")!;
    ok([...far, ...near].every((f) => f.status === 200), report);
    equal(far[0].variant, "w=orig;q=80;fmt=jpeg", `nothing measured at first:\n${report}`);
    for (const f of far.slice(1)) {
      const r = rung(f.variant);
      ok(r.quality === 50 && r.width <= 1280, `far: the constrained rung:\n${report}`);
      ok(f.bytes < photo.length / 2, report);
    }
    ok(near.every((f) => f.variant === "w=orig;q=80;fmt=jpeg"), `near: the original:\n${report}`);
    ok(near[0].seconds < far[0].seconds, `the far client's fetch took longer:\n${report}`);

    // The RTT hint decides at the first response, whatever was measured.
    const hinted = await fetchFrom("near", ["RTT: 300"]);
    equal(hinted.variant, "w=1280;q=50;fmt=jpeg");
  } finally {
    await servers?.stop();
    await topo.destroy();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("in a fleet, the RTT the replica measured for its DNS server gives the constrained rung at the first response", async () => {
  const dir = await Deno.makeTempDir({ prefix: "img-f-" });
  const photo = await magick([PHOTO, "-resize", "1600x", "-quality", "75", "jpg:-"]);
  await Deno.writeFile(`${dir}/photo.jpg`, photo);
  const topo = await createTopology({
    prefix: "img-f-",
    hosts: [{ name: "server" }, { name: "dns" }, { name: "far" }],
    delays: { far: { server: 300 } },
  });
  const token = "img-fleet-token";
  const stops: (() => Promise<void>)[] = [];
  try {
    const dnsAddr = topo.address("dns");
    const dns = await startIn({ execServer: (cmd, o) => topo.exec("dns", cmd, o) }, [
      ...denoRun("main_dns.ts"),
      ...["-p", "53", "-n", "img.test", "--host", "0.0.0.0", "--control", "5380"],
      ...["--policy", "latency", "--admin-token", token, "--rtt-refresh", "1s"],
      ...["--probe-port", "9", "--data", dir],
    ], /dns: serving/);
    stops.push(async () => {
      dns.proc.kill("SIGTERM");
      await dns.proc.status;
    });
    const servers = await startImageServers(
      { execServer: (cmd, o) => topo.exec("server", cmd, o) },
      dir,
      ["--images", "both", "--announce", `${dnsAddr}:5380`, "--admin-token", token],
    );
    stops.push(() => servers.stop());
    const run = async (cmd: string[]) => {
      const r = await topo.run("far", cmd);
      if (r.code !== 0) throw new Error(`${cmd.join(" ")}: ${r.stdout}${r.stderr}`);
      return r.stdout;
    };
    const control = `http://${dnsAddr}:5380`;
    const until = async (what: string, f: () => Promise<boolean>) => {
      const end = Date.now() + 30_000;
      while (!(await f())) {
        if (Date.now() > end) {
          throw new Error(
            `not within 30 s: ${what}\n${[...dns.lines, ...servers.lines].join("\n")}`,
          );
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    await until("the replica alive at the DNS server", async () => {
      const rows = JSON.parse(await run(["curl", "-sS", "-m", "5", `${control}/replicas`]));
      return rows.replicas.some((r: { state: string }) => r.state === "alive");
    });
    // A DNS query from the client's /24 makes the DNS server ask the replica to probe it.
    let rtt = NaN;
    await until("the replica's probe of the client", async () => {
      await run(["dig", "+short", "+time=1", "+tries=1", `@${dnsAddr}`, "img.test", "A"]);
      const ex = JSON.parse(
        await run(["curl", "-sS", "-m", "5", `${control}/explain?client=${topo.address("far")}`]),
      );
      rtt = ex.replicas?.[0]?.rttMs ?? NaN;
      return rtt >= 0;
    });
    ok(rtt >= 300, `measured ${rtt} ms`);
    const base = `http://${topo.address("server")}:${servers.port}`;
    const first = (await curlFetch(topo.hosts.far.ns, base, ["/photo.jpg"])).got[0];
    console.log(`probe RTT ${rtt} ms; first response ${first.variant} ${first.bytes}B`);
    equal(first.variant, "w=1280;q=50;fmt=jpeg", "RTT ≥ 300 ms: constrained at once");
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    await topo.destroy();
    await Deno.remove(dir, { recursive: true });
  }
});

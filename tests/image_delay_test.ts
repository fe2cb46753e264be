/**
 * Images over a long round trip (issue 12): this kernel has no `netem`, so the delay comes from
 * the user-space link emulator (`tests/tools/topology.ts`, docs/notes/netemu.md) and the
 * bandwidth from `tbf`. Two clients without hints on 10 Mbit/s links fetch a photo through a
 * replica with `--images both`: one 300 ms away (Akamai's threshold), one next to it. The
 * replica alone measures no RTT (that needs the fleet's probes), so its rule works from the
 * drain rate: over 300 ms a TCP connection's window grows one round trip at a time, a 475 KB
 * photo drains far below 5 Mbit/s, and the far client gets the constrained rung (quality 50, at
 * most 1280 px) from its second response on, while the near one, on the same bandwidth, keeps
 * the original. An `RTT: 300` hint gives the constrained rung at once. Needs root, `ip`, `tc` and
 * `/dev/net/tun`. Namespaces `img-d-*`.
 */
import { equal, ok } from "node:assert/strict";
import { magick } from "./_image_helpers.ts";
import { startImageServers } from "./_image_links_helpers.ts";
import { curlFetch, type Fetched } from "./tools/image_links.ts";
import { sysctl } from "./tools/netns.ts";
import { createTopology } from "./tools/topology.ts";

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

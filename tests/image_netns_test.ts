/**
 * Images on shaped links (issue 12): clients in their own network namespaces on 0.5, 2, 10
 * and 100 Mbit/s links (token bucket) fetch a photo through a replica with
 * `--images both`, with and without Client Hints. Without hints the first response is the
 * original (nothing measured yet); within three responses the replica's estimate makes the slow
 * client's variant smaller, while the fast ones keep the original. Needs root, `ip` and `tc`.
 * Namespaces `img-n-*`.
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { magick } from "./_image_helpers.ts";
import { startImageServers } from "./_image_links_helpers.ts";
import { createImageLinks, type Fetched } from "./tools/image_links.ts";

const PREFIX = "img-n-";
const PHOTO = "/usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg";
const LINKS = [
  { name: "c05", mbit: 0.5 },
  { name: "c2", mbit: 2 },
  { name: "c10", mbit: 10 },
  { name: "c100", mbit: 100 },
];

/** The width a variant header names (the original counts as the largest). */
function width(v: string): number {
  const m = /^w=(\d+|orig)/.exec(v);
  return m === null ? NaN : m[1] === "orig" ? Infinity : Number(m[1]);
}

Deno.test("shaped links: slow clients get smaller variants, fast ones the original; hints at once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "img-n-" });
  const photo = await magick([PHOTO, "-resize", "1600x", "-quality", "75", "jpg:-"]);
  await Deno.writeFile(`${dir}/photo.jpg`, photo);
  const links = await createImageLinks(PREFIX, LINKS, { notsentLowat: 16384 });
  const servers = await startImageServers(links, dir, ["--images", "both"]);
  try {
    // No hints: four responses per client, all clients at once.
    const seen = new Map<string, Fetched[]>();
    await Promise.all(LINKS.map(async (l) => {
      const got: Fetched[] = [];
      for (let i = 0; i < 4; i++) got.push(await links.fetch(l.name, servers.port, "/photo.jpg"));
      seen.set(l.name, got);
    }));
    const report = [...seen].map(([n, g]) =>
      `${n}: ${g.map((f) => `${f.variant} ${f.bytes}B ${f.seconds.toFixed(2)}s`).join(" | ")}`
    ).join("\n");
    console.log(report);
    for (const [name, got] of seen) {
      equal(got[0].variant, "w=orig;q=80;fmt=jpeg", `${name}: nothing measured at first`);
      ok(got.every((f) => f.status === 200), report);
    }
    const last = (n: string) => seen.get(n)!.at(-1)!;
    ok(width(last("c05").variant) <= 640, `0.5 Mbit/s converges to ≤ 640 px:\n${report}`);
    ok(last("c05").bytes < photo.length / 4, report);
    ok(seen.get("c05")!.slice(1, 3).some((f) => width(f.variant) < Infinity), report);
    ok(width(last("c2").variant) >= width(last("c05").variant), report);
    for (const n of ["c10", "c100"]) {
      ok(seen.get(n)!.every((f) => f.variant === "w=orig;q=80;fmt=jpeg"), report);
    }

    // Hints decide at the first response, whatever was measured.
    const hinted = await Promise.all(
      LINKS.map((l) =>
        links.fetch(l.name, servers.port, "/photo.jpg", [
          `Downlink: ${l.mbit}`,
          "Sec-CH-Viewport-Width: 1600",
        ])
      ),
    );
    console.log(hinted.map((f) => f.variant).join(" | "));
    deepStrictEqual(hinted.map((f) => f.variant), [
      "w=640;q=50;fmt=jpeg",
      "w=1280;q=50;fmt=jpeg",
      "w=orig;q=80;fmt=jpeg",
      "w=orig;q=80;fmt=jpeg",
    ]);
  } finally {
    await servers.stop();
    await links.destroy();
    await Deno.remove(dir, { recursive: true });
  }
});

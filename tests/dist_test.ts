/**
 * The offline release (`deno task dist`, scripts/dist.ts): built into a temporary folder,
 * unpacked into an empty one, and run in a network namespace that has only loopback, with an
 * empty HOME and a PATH holding nothing but `sh`, `dirname` and `readlink` (no node, npx or deno):
 * the DNS server answers, a replica registers with it, is answered by DNS and serves (miss then
 * hit) from an origin, and the other executables start. Needs root (unshare) and, to build, the
 * npm registry or npm's cache.
 */
import { magick, softScene } from "./_image_helpers.ts";
import assert from "node:assert/strict";
import { buildRelease, EXECUTABLES, pruneLock, releaseName } from "../scripts/dist.ts";

const MiB = 1024 * 1024;

Deno.test("pruneLock keeps what the kept specifiers reach, with the lock's versions", () => {
  const lock = {
    version: "5",
    specifiers: { "npm:a@1.0.0": "1.0.0", "npm:tool@2.0.0": "2.0.0" },
    npm: {
      "a@1.0.0": { integrity: "x", dependencies: ["b", "c@2.0.0"] },
      "b@1.1.0": { integrity: "y", optionalDependencies: ["c@1.0.0"] },
      "c@1.0.0": { integrity: "z" },
      "c@2.0.0": { integrity: "w" },
      "tool@2.0.0": { integrity: "v", dependencies: ["big"] },
      "big@9.0.0": { integrity: "u" },
    },
    workspace: { dependencies: ["npm:a@1.0.0", "npm:tool@2.0.0"] },
  };
  const p = pruneLock(lock, ["npm:a@1.0.0"]);
  assert.deepEqual(Object.keys(p.specifiers), ["npm:a@1.0.0"]);
  assert.deepEqual(Object.keys(p.npm).sort(), ["a@1.0.0", "b@1.1.0", "c@1.0.0", "c@2.0.0"]);
  assert.deepEqual(p.workspace?.dependencies, ["npm:a@1.0.0"]);
  assert.throws(() => pruneLock(lock, ["npm:gone@1.0.0"]), /no npm:gone@1.0.0/);
});

Deno.test({
  name: "release: unpacked in an empty folder, runs offline with no node, npx or HOME",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const work = await Deno.makeTempDir({ prefix: "nearcast-dist-test-" });
    try {
      const { path, bytes } = await buildRelease(work);
      console.log(`release ${path}: ${(bytes / MiB).toFixed(1)} MiB`);
      assert.ok(bytes > 10 * MiB && bytes < 200 * MiB, `archive size ${bytes}`);
      const site = `${work}/site`;
      const home = `${work}/home`;
      const bin = `${work}/path`;
      const unpacked = `${work}/unpacked`;
      for (const d of [site, home, bin, unpacked]) await Deno.mkdir(d);
      await Deno.writeTextFile(`${site}/hello.txt`, "hello from the origin\n");
      // Modified a day ago: the origin sends no Cache-Control, so the replica's heuristic
      // freshness (a tenth of the age of Last-Modified) keeps it fresh for the second GET.
      const dayAgo = new Date(Date.now() - 86_400_000);
      await Deno.utime(`${site}/hello.txt`, dayAgo, dayAgo);
      // An image: its variant is made in the image layer's worker (started by URL), whose
      // module and codecs must load offline from the release.
      await Deno.writeFile(
        `${site}/photo.png`,
        await magick(["-size", "800x600", "-depth", "8", "rgba:-", "png:-"], softScene(800, 600)),
      );
      for (const tool of ["sh", "dirname", "readlink"]) {
        await Deno.symlink((await which(tool))!, `${bin}/${tool}`);
      }
      const tar = await new Deno.Command("tar", { args: ["-xzf", path, "-C", unpacked] }).output();
      assert.ok(tar.success, "tar -x");
      const root = `${unpacked}/${releaseName()}`;
      for (const name of Object.keys(EXECUTABLES)) {
        const st = await Deno.stat(`${root}/bin/${name}`);
        assert.ok((st.mode! & 0o111) !== 0, `bin/${name} is executable`);
      }
      const script = `
set -u
ip link set lo up
cd ${site} && python3 -m http.server 8000 --bind 127.0.0.1 >${work}/origin.log 2>&1 &
O=$!
E="env -i HOME=${home} PATH=${bin}"
$E ${root}/bin/dnsserver -p 5300 -n cdn.test --control 5380 --admin-token t0ken >${work}/dns.log 2>&1 &
D=$!
$E ${root}/bin/httpserver -p 8080 --host 127.0.0.11 -o 127.0.0.1:8000 --admin-token t0ken \\
  --announce 127.0.0.1:5380 --lat=40.7 --lon=-74.0 >${work}/http.log 2>&1 &
H=$!
for i in $(seq 1 100); do
  grep -q "registered as" ${work}/http.log 2>/dev/null && break
  sleep 0.3
done
echo "A=$(dig +short +time=2 +tries=2 @127.0.0.1 -p 5300 cdn.test A)"
echo "GET1=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -D ${work}/h1 http://127.0.0.11:8080/hello.txt)"
echo "GET2=$(curl -s -m 5 http://127.0.0.11:8080/hello.txt)"
curl -s -m 5 -D ${work}/h2 -o /dev/null http://127.0.0.11:8080/hello.txt
echo "VARIANT=$(curl -s -m 20 -o /dev/null -D - 'http://127.0.0.11:8080/photo.png?w=320' | tr -d '\r' | sed -n 's/^x-nearcast-variant: //ip')"
echo "HEALTH=$(curl -s -m 5 -o /dev/null -w '%{http_code}' http://127.0.0.11:8080/_cdn/health)"
for b in upload price proxy get; do
  $E ${root}/bin/$b --help >/dev/null 2>&1 && echo "HELP_$b=ok" || echo "HELP_$b=fail"
done
kill $D $H $O
wait
`;
      const out = await new Deno.Command("unshare", {
        args: ["-n", "sh", "-c", script],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      const logs = async () =>
        `${text}\n--- dns\n${await read(`${work}/dns.log`)}\n--- http\n${await read(
          `${work}/http.log`,
        )}\n${new TextDecoder().decode(out.stderr)}`;
      const field = (k: string) => new RegExp(`^${k}=(.*)$`, "m").exec(text)?.[1];
      assert.equal(field("A"), "127.0.0.11", await logs());
      assert.equal(field("GET1"), "200", await logs());
      assert.equal(field("GET2"), "hello from the origin", await logs());
      assert.match(await read(`${work}/h2`), /^x-cache: HIT/im, await logs());
      assert.equal(field("HEALTH"), "200", await logs());
      assert.match(field("VARIANT") ?? "", /^w=320;/, await logs());
      for (const b of ["upload", "price", "proxy", "get"]) assert.equal(field(`HELP_${b}`), "ok");
      assert.match(await read(`${work}/http.log`), /heap compact/);
      // Nothing was written to HOME: the release needs none.
      assert.deepEqual([...Deno.readDirSync(home)], []);
    } finally {
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
});

async function read(path: string): Promise<string> {
  return await Deno.readTextFile(path).catch(() => "");
}

async function which(tool: string): Promise<string | null> {
  for (const dir of ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]) {
    try {
      await Deno.stat(`${dir}/${tool}`);
      return await Deno.realPath(`${dir}/${tool}`);
    } catch { /* next */ }
  }
  return null;
}

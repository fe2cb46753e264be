/**
 * scripts/deployCDN.sh, runCDN.sh and stopCDN.sh against real OpenSSH servers: one network
 * namespace per host (dpl-h1 two DNS servers on two addresses, dpl-h2 and dpl-h3 replicas), each
 * with its own sshd (test-only config, generated keys), bridged to an operator namespace (dpl-op) that holds the
 * origin and runs the scripts as an operator would. Needs root, sshd, ip, dig and curl; reuses
 * dist/'s release when it is there (else builds it), or env NEARCAST_TEST_RELEASE.
 */
import assert from "node:assert/strict";
import { parseFleet } from "../scripts/fleet_file.ts";
import { releaseName } from "../scripts/dist.ts";
import {
  createSshLab,
  inNs,
  releaseTarball,
  sh,
  type ShResult,
  type SshLab,
  waitFor,
} from "./tools/ssh_hosts.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const OP = "dpl-op";
const HOSTS = [1, 2, 3];
const PORT = 8053;

Deno.test("fleet file: errors name their key, defaults are filled in", () => {
  const hosts = parseFleet({
    dns: [{ ssh: "10.0.0.1", address: "10.0.0.1" }],
    replicas: [{ ssh: "r1", address: "10.0.0.2", lon: -74.01, id: "nyc", sshPort: 2222 }],
    controlPort: 5390,
  });
  assert.equal(hosts[0].dir, "~/nearcast");
  assert.equal(hosts[0].controlPort, 5390);
  assert.equal(hosts[1].sshPort, 2222);
  assert.throws(
    () =>
      parseFleet({
        dns: [{ ssh: "a", address: "b", colour: 1 }],
        replicas: [{ ssh: "a b", address: "c", lat: 91 }],
      }),
    (e: Error) =>
      /dns\[0\]\.colour: unknown key/.test(e.message) &&
      /replicas\[0\]\.ssh: required/.test(e.message) &&
      /replicas\[0\]\.lat: must be a number from -90 to 90/.test(e.message),
  );
  assert.throws(() => parseFleet({ dns: [] }), /dns: must be a non-empty list/);
});

Deno.test({
  name: "deploy, run, serve, upload, failover, stop over SSH (sshd in 3 namespaces)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const work = await Deno.makeTempDir({ prefix: "nearcast-deploy-test-" });
    const t0 = Date.now();
    const phase = (what: string) =>
      console.log(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);
    const tarball = await releaseTarball();
    // The scripts, run in the operator's namespace; env: e.g. NEARCAST_COPY.
    function ops(script: string, ...args: string[]): Promise<ShResult>;
    function ops(env: Record<string, string>, script: string, ...args: string[]): Promise<ShResult>;
    function ops(first: string | Record<string, string>, ...rest: string[]) {
      const [env, script, args] = typeof first === "string"
        ? [{}, first, rest]
        : [first, rest[0], rest.slice(1)];
      return sh("ip", ["netns", "exec", OP, "sh", `${ROOT}scripts/${script}`, ...args], { env });
    }
    let lab: SshLab | undefined;
    try {
      lab = await createSshLab({
        prefix: "dpl",
        subnet: "10.77.0",
        hosts: HOSTS.length,
        work,
        extraAddresses: { 1: ["10.77.0.11"] },
      });
      const site = `${work}/site`;
      await Deno.mkdir(site);
      await Deno.writeTextFile(`${site}/hello.txt`, "hello from the origin\n");
      const origin = lab.serveDir(site, 8000);
      const fleet = {
        dns: [
          { ssh: "10.77.0.1", address: "10.77.0.1", dir: `${work}/h1` },
          // A second DNS server on the same host (its own address and install folder).
          { ssh: "10.77.0.1", address: "10.77.0.11", dir: `${work}/h1b` },
        ],
        replicas: [
          {
            ssh: "10.77.0.2",
            address: "10.77.0.2",
            dir: `${work}/h2`,
            id: "r2",
            lat: 40.7,
            lon: -74,
          },
          {
            ssh: "10.77.0.3",
            address: "10.77.0.3",
            dir: `${work}/h3`,
            id: "r3",
            lat: 51.5,
            lon: -0.1,
          },
        ],
      };
      await Deno.writeTextFile(`${work}/fleet.json`, JSON.stringify(fleet));
      await Deno.writeTextFile(`${work}/websites.txt`, "/hello.txt\n");
      const common = [
        "-p",
        String(PORT),
        "-o",
        "http://10.77.0.254:8000",
        "-n",
        "cdn.test",
        "-u",
        "root",
        "-i",
        `${work}/key`,
        "-f",
        `${work}/fleet.json`,
        "-r",
        tarball,
      ];
      const show = (r: ShResult) => `exit ${r.code}\n${r.out}\n${r.err}`;

      // A fleet file error names its key and touches no host.
      await Deno.writeTextFile(
        `${work}/bad.json`,
        JSON.stringify({ ...fleet, dns: [{ ssh: "x", address: "y", port: 1 }] }),
      );
      let r = await ops("deployCDN.sh", ...common, "-f", `${work}/bad.json`);
      assert.equal(r.code, 2, show(r));
      assert.match(r.err, /dns\[0\]\.port: unknown key/);
      // A wrong key and an unreachable host: clear messages, nothing changed.
      r = await ops("deployCDN.sh", ...common, "-i", `${work}/wrong_key`);
      assert.equal(r.code, 2, show(r));
      assert.match(r.out, /SSH refused the key .*wrong_key for root@10\.77\.0\.1/, show(r));
      await Deno.writeTextFile(
        `${work}/far.json`,
        JSON.stringify({
          ...fleet,
          dns: [{ ssh: "10.77.0.9", address: "10.77.0.9", dir: `${work}/h9` }],
        }),
      );
      r = await ops("deployCDN.sh", ...common, "-f", `${work}/far.json`);
      assert.equal(r.code, 2, show(r));
      assert.match(
        r.out,
        /dns\[0\] 10\.77\.0\.9: FAILED\n {2}unreachable: 10\.77\.0\.9 port 22/,
        show(r),
      );
      assert.match(r.err, /nothing was changed/);

      // run before deploy, or with a host unreachable: nothing is started.
      r = await ops("runCDN.sh", ...common, "-f", `${work}/far.json`);
      assert.equal(r.code, 2, show(r));
      assert.match(r.err, /dns\[0\] 10\.77\.0\.9: FAILED\n {2}unreachable: /, show(r));
      assert.match(r.err, /not installed in .*\/h2: run deployCDN\.sh first/, show(r));
      assert.match(r.err, /nothing was started/, show(r));
      phase("errors checked");
      // Deploy twice: the first with rsync (here on both ends) sends every file of the release,
      // the second copies nothing.
      r = await ops("deployCDN.sh", ...common);
      assert.equal(r.code, 0, show(r));
      assert.equal(
        r.out.match(
          /copied with rsync \((\d+) of \1 files sent, \d+ MiB\), websites\.txt copied, admin token written/g,
        )?.length,
        4,
        show(r),
      );
      const token = (await Deno.readTextFile(`${work}/h1/admin_token`)).trim();
      assert.match(token, /^[0-9a-f]{48}$/);
      assert.equal((await Deno.readTextFile(`${work}/h3/admin_token`)).trim(), token);
      r = await ops("deployCDN.sh", ...common);
      assert.equal(r.code, 0, show(r));
      assert.equal(r.out.match(/up to date in .*: nothing copied/g)?.length, 4, show(r));
      assert.doesNotMatch(r.out, /copied \(|copied with|websites\.txt copied|token written/);

      phase("deployed twice");
      // Run: DNS, then replicas; each healthy.
      r = await ops("runCDN.sh", ...common);
      assert.equal(r.code, 0, show(r));
      assert.equal(r.out.match(/started \(pid \d+\), healthy/g)?.length, 4, show(r));
      // A second run leaves the running processes alone.
      r = await ops("runCDN.sh", ...common);
      assert.equal(r.code, 0, show(r));
      assert.equal(r.out.match(/already running \(pid \d+\), left as it is/g)?.length, 4, show(r));
      r = await ops("statusCDN.sh", ...common);
      assert.equal(r.code, 0, show(r));
      assert.equal(r.out.match(/running \(pid \d+\), healthy/g)?.length, 4, show(r));

      const dig = async (server = "10.77.0.1") =>
        (await inNs(
          OP,
          "dig",
          "+short",
          "+time=2",
          "+tries=1",
          `@${server}`,
          "-p",
          String(PORT),
          "cdn.test",
          "A",
        )).out.trim();
      const answer = await waitFor("a DNS answer", 30_000, async () => {
        const a = await dig();
        return /^10\.77\.0\.[23]$/.test(a) ? a : null;
      });
      // Replicas announce to both DNS servers once the release's --announce is repeatable
      // (else to the first only: the second then answers nothing).
      const help = await inNs(OP, `${work}/h2/${releaseName()}/bin/httpserver`, "--help");
      const toAll = /--announce[\s\S]*repeat/i.test(help.out.split(/\n\s+--lat/)[0]);
      phase(`replicas announce to every DNS server: ${toAll}`);
      if (toAll) {
        await waitFor(
          "an answer from the second DNS server",
          30_000,
          async () => /^10\.77\.0\.[23]$/.test(await dig("10.77.0.11")) ? true : null,
        );
      }
      const curl = async (url: string) => (await inNs(OP, "curl", "-s", "-m", "5", url)).out;
      // websites.txt was the replicas' --preload: the first request finds it held (a hit, or
      // revalidated: the origin sends no freshness).
      const head = await inNs(
        OP,
        "curl",
        "-s",
        "-m",
        "5",
        "-D",
        "-",
        `http://${answer}:${PORT}/hello.txt`,
      );
      assert.match(head.out, /^x-cache: (HIT|REVALIDATED)/im, head.out);
      assert.match(head.out, /hello from the origin\n$/);

      phase("run, dig, curl");
      // An upload to one replica reaches both.
      await Deno.writeTextFile(`${work}/up.txt`, "uploaded once, served by all\n");
      r = await inNs(
        OP,
        `${work}/h2/${releaseName()}/bin/upload`,
        `${work}/up.txt`,
        "--to",
        `http://10.77.0.2:${PORT}`,
        "--name",
        "up.txt",
        "--token",
        token,
        "-q",
      );
      assert.equal(r.code, 0, show(r));
      for (const host of ["10.77.0.2", "10.77.0.3"]) {
        await waitFor(
          `up.txt on ${host}`,
          20_000,
          async () =>
            (await curl(`http://${host}:${PORT}/up.txt`)) === "uploaded once, served by all\n"
              ? true
              : null,
        );
      }

      phase("upload replicated");
      // A killed replica is dropped from the answers.
      const pid3 = Number((await Deno.readTextFile(`${work}/h3/run/httpserver.pid`)).trim());
      Deno.kill(pid3, "SIGKILL");
      await waitFor("r3 dropped from answers", 30_000, async () => {
        for (let k = 0; k < 5; k++) {
          if ((await dig()) !== "10.77.0.2") return null;
          if (toAll && (await dig("10.77.0.11")) !== "10.77.0.2") return null;
        }
        return true;
      });
      r = await ops("runCDN.sh", "--status", ...common);
      assert.equal(r.code, 3, show(r));
      assert.match(
        r.out,
        /replica\[1\] 10\.77\.0\.3 \(r3\): ok\n {2}httpserver: not running \(stale pid file/,
        show(r),
      );

      phase("killed replica dropped");
      // Stop: each host reports; the dead one's pid file is stale.
      r = await ops("stopCDN.sh", ...common);
      assert.equal(r.code, 0, show(r));
      assert.match(r.out, /httpserver stopped/);
      assert.match(r.out, /httpserver: not running \(stale pid file/);
      assert.match(r.out, /dnsserver stopped/);

      // A pid file naming someone else's process (a reused pid): removed, nothing killed.
      await Deno.writeTextFile(`${work}/h3/run/httpserver.pid`, `${origin.pid}\n`);
      r = await ops("stopCDN.sh", ...common);
      assert.equal(r.code, 0, show(r));
      assert.match(
        r.out,
        new RegExp(`httpserver: not running \\(stale pid file, pid ${origin.pid}, removed\\)`),
        show(r),
      );
      assert.equal(await curl("http://10.77.0.254:8000/hello.txt"), "hello from the origin\n");
      phase("stopped");
      // A port in use: run fails, names it, and stops what it started (the DNS server).
      const squatter = lab.spawn(
        "dpl-h2",
        "python3",
        "-c",
        `import socket,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("10.77.0.2", ${PORT})); s.listen(); time.sleep(300)`,
      );
      await new Promise((res) => setTimeout(res, 500));
      r = await ops("runCDN.sh", ...common);
      assert.equal(r.code, 1, show(r));
      assert.match(r.out + r.err, /httpserver exited at start/, show(r));
      assert.match(r.out + r.err, /in use/i, show(r));
      assert.match(r.err, /stopping what this run started:[\s\S]*dnsserver stopped/, show(r));
      squatter.kill("SIGKILL");

      // Nothing of ours left running or listening (sshd aside).
      for (const i of HOSTS) {
        const ss = await inNs(`dpl-h${i}`, "ss", "-Htulnp");
        const left = ss.out.split("\n").filter((l) => l.trim() && !/sshd/.test(l));
        assert.deepEqual(left, [], `dpl-h${i} still listens:\n${ss.out}`);
      }
      const ours = [];
      for await (const e of Deno.readDir("/proc")) {
        if (!/^\d+$/.test(e.name)) continue;
        const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(() => "");
        if (cmd.includes(`${work}/h`)) ours.push(`${e.name}: ${cmd.replaceAll("\0", " ")}`);
      }
      assert.deepEqual(ours, []);

      phase("nothing left");

      // New releases: B by rsync sends only what changed (the rest is hard-linked from the
      // current release), C over ssh (the whole tarball); each deploy keeps the current and the
      // previous release and removes older ones; going back to B copies nothing.
      const b = await variant(tarball, work, "b");
      const c = await variant(tarball, work, "c");
      const nameA = releaseName();
      r = await ops({ NEARCAST_COPY: "rsync" }, "deployCDN.sh", ...common, "-r", b);
      assert.equal(r.code, 0, show(r));
      // Sent: the added file, and the few files of the runtime's cache (cache/) that the host's
      // copy changed while it ran; not the runtime or the code (hard-linked).
      const sent = [
        ...r.out.matchAll(/-b copied with rsync \((\d+) of (\d+) files sent, (\d+) MiB\) in /g),
      ].map((m) => m.slice(1).map(Number));
      assert.equal(sent.length, 4, show(r));
      assert.ok(
        sent.every(([n, all, mib]) => n >= 1 && n <= 10 && all > 1000 && mib <= 5),
        show(r),
      );
      assert.doesNotMatch(r.out, /removed/, show(r));
      const ino = async (p: string) => (await Deno.stat(p)).ino;
      assert.equal(
        await ino(`${work}/h2/${nameA}-b/runtime/deno`),
        await ino(`${work}/h2/${nameA}/runtime/deno`),
      );
      const links = async (
        h: string,
      ) => [
        await Deno.readLink(`${work}/${h}/current`),
        await Deno.readLink(`${work}/${h}/previous`),
      ];
      assert.deepEqual(await links("h2"), [`${nameA}-b`, nameA]);
      // On h2 a process of the install (its pid file) still runs from the first release.
      const user = lab.spawn("dpl-h2", "sh", "-c", "sleep 120; :", `${work}/h2/${nameA}/bin/x`);
      await Deno.writeTextFile(`${work}/h2/run/httpserver.pid`, `${user.pid}\n`);
      r = await ops({ NEARCAST_COPY: "ssh" }, "deployCDN.sh", ...common, "-r", c);
      assert.equal(r.code, 0, show(r));
      assert.equal(
        r.out.match(
          new RegExp(
            `-c copied \\(\\d+ MiB\\) and unpacked, old release ${nameA} removed in `,
            "g",
          ),
        )?.length,
        3,
        show(r),
      );
      assert.match(
        r.out,
        new RegExp(
          `-c copied \\(\\d+ MiB\\) and unpacked, old release ${nameA} kept \\(a process runs from it\\) in .*/h2\n`,
        ),
        show(r),
      );
      user.kill("SIGKILL");
      await user.status;
      const releases = async (h: string) => {
        const names = [];
        for await (const e of Deno.readDir(`${work}/${h}`)) {
          if (e.isDirectory && e.name.startsWith("nearcast-")) names.push(e.name);
        }
        return names.sort();
      };
      assert.deepEqual(await releases("h3"), [`${nameA}-b`, `${nameA}-c`]);
      assert.deepEqual(await links("h3"), [`${nameA}-c`, `${nameA}-b`]);
      // Rollback: B is still there; it becomes current again, nothing copied; h2 now removes
      // the first release (its process is gone).
      r = await ops({}, "deployCDN.sh", ...common, "-r", b);
      assert.equal(r.code, 0, show(r));
      assert.equal(
        r.out.match(/-b already there \(nothing copied\), now current in /g)?.length,
        3,
        show(r),
      );
      assert.match(
        r.out,
        new RegExp(
          `-b already there \\(nothing copied\\), now current, old release ${nameA} removed in .*/h2\n`,
        ),
        show(r),
      );
      assert.deepEqual(await releases("h2"), [`${nameA}-b`, `${nameA}-c`]);
      assert.deepEqual(await links("h1b"), [`${nameA}-b`, `${nameA}-c`]);
      assert.deepEqual(await releases("h1b"), [`${nameA}-b`, `${nameA}-c`]);
      phase("releases rotated");

      // A host whose key changed is refused, with its own message.
      await Deno.writeTextFile(`${work}/.nearcast_known_hosts`, `10.77.0.1 ${lab.wrongPublic}\n`);
      r = await ops("runCDN.sh", "--status", ...common);
      assert.equal(r.code, 1, show(r));
      assert.match(
        r.out,
        /host key of 10\.77\.0\.1 differs from the one in .*\.nearcast_known_hosts/,
        show(r),
      );
      phase("done");
    } catch (e) {
      // The end of every process's log, to tell why.
      for (const h of ["h1", "h1b", "h2", "h3"]) {
        for (const k of ["dnsserver", "httpserver"]) {
          const log = await Deno.readTextFile(`${work}/${h}/logs/${k}.log`).catch(() => null);
          if (log !== null) {
            console.error(`--- ${h} ${k}.log\n${log.split("\n").slice(-15).join("\n")}`);
          }
        }
      }
      throw e;
    } finally {
      await lab?.close();
      // Anything the scripts started that a failed assertion left behind, outside the namespaces.
      for await (const e of Deno.readDir("/proc")) {
        if (!/^\d+$/.test(e.name)) continue;
        const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(() => "");
        if (cmd.includes(`${work}/h`)) {
          try {
            Deno.kill(Number(e.name), "SIGKILL");
          } catch { /* gone */ }
        }
      }
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
});

/** Release TAG: `tarball` renamed NAME-TAG with one file added (app/NOTE), mtimes kept. */
async function variant(tarball: string, work: string, tag: string): Promise<string> {
  const dir = `${work}/rel-${tag}`;
  const name = `${releaseName()}-${tag}`;
  await Deno.mkdir(dir);
  await sh("tar", ["-xzf", tarball, "-C", dir], { ok: true });
  await Deno.rename(`${dir}/${releaseName()}`, `${dir}/${name}`);
  await Deno.writeTextFile(`${dir}/${name}/app/NOTE`, `release ${tag}\n`);
  await sh("tar", ["-I", "gzip -1", "-cf", `${work}/${name}.tar.gz`, "-C", dir, name], {
    ok: true,
  });
  await Deno.remove(dir, { recursive: true });
  return `${work}/${name}.tar.gz`;
}

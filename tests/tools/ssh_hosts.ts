/**
 * Test hosts reached over SSH, for the deploy scripts (`scripts/deployCDN.sh` and the rest): one
 * network namespace per host (`PREFIX-hN`, address `SUBNET.N`), each running OpenSSH's `sshd`
 * with a test-only config and generated keys, all bridged to an operator namespace (`PREFIX-op`,
 * `SUBNET.254`) that runs the scripts as an operator would. Used by tests/deploy_test.ts and
 * scripts/scenario_fleet.ts. Needs root, `ip`, `/usr/sbin/sshd` and `ssh-keygen`.
 *
 * @example
 * ```ts ignore
 * const lab = await createSshLab({ prefix: "dpl", subnet: "10.77.0", hosts: 3, work });
 * try {
 *   const r = await lab.op("sh", "scripts/deployCDN.sh", "-u", "root", "-i", lab.key, ...);
 * } finally {
 *   await lab.close();
 * }
 * ```
 */
import { buildRelease, releaseName } from "../../scripts/dist.ts";
import { addNamespace, ip, removeNamespacesByPrefix } from "./netns.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const dec = new TextDecoder();

/** A finished command: exit code and output. */
export interface ShResult {
  code: number;
  out: string;
  err: string;
}

/** Runs a command to completion (from the repository's root); `ok` throws on a non-zero exit. */
export async function sh(
  cmd: string,
  args: string[],
  opts: { ok?: boolean; cwd?: string; env?: Record<string, string> } = {},
): Promise<ShResult> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: opts.cwd ?? ROOT,
    env: opts.env,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const r = { code: out.code, out: dec.decode(out.stdout), err: dec.decode(out.stderr) };
  if (opts.ok && out.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")}: exit ${out.code}\n${r.out}\n${r.err}`);
  }
  return r;
}

/** Runs a command in namespace `ns`. */
export function inNs(ns: string, cmd: string, ...args: string[]): Promise<ShResult> {
  return sh("ip", ["netns", "exec", ns, cmd, ...args]);
}

/** Polls `f` every 300 ms until it returns non-null; throws after `ms`. */
export async function waitFor<T>(what: string, ms: number, f: () => Promise<T | null>): Promise<T> {
  const end = Date.now() + ms;
  while (true) {
    const v = await f();
    if (v !== null) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** The release tarball: env NEARCAST_TEST_RELEASE, else dist/'s (built when missing). */
export async function releaseTarball(): Promise<string> {
  const given = Deno.env.get("NEARCAST_TEST_RELEASE");
  if (given) return given;
  const path = `${ROOT}dist/${releaseName()}.tar.gz`;
  try {
    await Deno.stat(path);
    return path;
  } catch {
    return (await buildRelease(`${ROOT}dist`)).path;
  }
}

/** Options of {@linkcode createSshLab}. */
export interface SshLabOptions {
  /** Short prefix of every namespace and link name (3 letters: link names have 15 bytes). */
  prefix: string;
  /** First three octets of the hosts' /24, e.g. `10.77.0`. */
  subnet: string;
  /** How many hosts (1 to 200). */
  hosts: number;
  /** Folder for keys and sshd configs (the caller's, removed by the caller). */
  work: string;
  /** Extra addresses of a host (by number), e.g. `{ 1: ["10.77.0.11"] }`. */
  extraAddresses?: Record<number, string[]>;
}

/** Hosts with sshd in their own namespaces, an operator namespace, keys. */
export interface SshLab {
  /** The operator's namespace. */
  opNs: string;
  /** The operator's address on the bridge (`SUBNET.254`). */
  opAddress: string;
  /** The operator's private key (authorized on every host, for root). */
  key: string;
  /** Another private key, not authorized. */
  wrongKey: string;
  /** Public half of the wrong key (`ssh-ed25519 AAAA...`), e.g. as a changed host key. */
  wrongPublic: string;
  /** Namespace of host `i`. */
  ns(i: number): string;
  /** Address of host `i`. */
  address(i: number): string;
  /** Runs a command in the operator's namespace. */
  op(cmd: string, ...args: string[]): Promise<ShResult>;
  /** Starts a long-running command in namespace `ns`, killed by close(). */
  spawn(ns: string, cmd: string, ...args: string[]): Deno.ChildProcess;
  /** Serves `dir` over HTTP from the operator's namespace: its URL and the server's pid. */
  serveDir(dir: string, port: number): { url: string; pid: number };
  /** Kills what it started and everything in its namespaces, removes the namespaces. */
  close(): Promise<void>;
}

/** Sets up the hosts, each with sshd listening on port 22, and waits until each accepts. */
export async function createSshLab(o: SshLabOptions): Promise<SshLab> {
  const { prefix, subnet, work } = o;
  if (o.hosts < 1 || o.hosts > 200) throw new RangeError(`hosts: 1 to 200, not ${o.hosts}`);
  const opNs = `${prefix}-op`;
  const opAddress = `${subnet}.254`;
  const ns = (i: number) => `${prefix}-h${i}`;
  const address = (i: number) => `${subnet}.${i}`;
  const children: Deno.ChildProcess[] = [];
  const spawn = (where: string, cmd: string, ...args: string[]) => {
    const c = new Deno.Command("ip", {
      args: ["netns", "exec", where, cmd, ...args],
      stdout: "null",
      stderr: "null",
      stdin: "null",
    }).spawn();
    children.push(c);
    return c;
  };
  const close = async () => {
    for (const c of children) {
      try {
        c.kill("SIGKILL");
      } catch { /* gone */ }
      await c.status;
    }
    children.length = 0;
    // Every process left in a namespace (what the scripts started there) dies with it.
    await removeNamespacesByPrefix(`${prefix}-`);
  };
  await removeNamespacesByPrefix(`${prefix}-`);
  try {
    await addNamespace(opNs);
    const br = `${prefix}br`;
    await ip(opNs, "link", "add", br, "type", "bridge");
    await ip(opNs, "addr", "add", `${opAddress}/24`, "dev", br);
    await ip(opNs, "link", "set", br, "up");
    for (const k of ["key", "wrong_key", "host_key"]) {
      await sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", `${work}/${k}`], { ok: true });
    }
    await Deno.copyFile(`${work}/key.pub`, `${work}/authorized_keys`);
    await Deno.mkdir("/run/sshd", { recursive: true });
    for (let i = 1; i <= o.hosts; i++) {
      await addNamespace(ns(i));
      const dev = `${prefix}${i}`;
      await ip(
        undefined,
        "link",
        "add",
        dev,
        "netns",
        ns(i),
        "type",
        "veth",
        "peer",
        "name",
        `${prefix}p${i}`,
        "netns",
        opNs,
      );
      await ip(opNs, "link", "set", `${prefix}p${i}`, "master", br, "up");
      for (const a of [address(i), ...(o.extraAddresses?.[i] ?? [])]) {
        await ip(ns(i), "addr", "add", `${a}/24`, "dev", dev);
      }
      await ip(ns(i), "link", "set", dev, "up");
      const conf = `${work}/sshd_${i}.conf`;
      await Deno.writeTextFile(
        conf,
        [
          "Port 22",
          `ListenAddress ${address(i)}`,
          `HostKey ${work}/host_key`,
          `AuthorizedKeysFile ${work}/authorized_keys`,
          "PermitRootLogin prohibit-password",
          "PasswordAuthentication no",
          "KbdInteractiveAuthentication no",
          "UsePAM no",
          "StrictModes no",
          "PidFile none",
          "MaxStartups 100",
          "",
        ].join("\n"),
      );
      spawn(ns(i), "/usr/sbin/sshd", "-D", "-e", "-f", conf);
    }
    for (let i = 1; i <= o.hosts; i++) {
      await waitFor(
        `sshd on ${ns(i)}`,
        10_000,
        async () =>
          (await inNs(opNs, "bash", "-c", `exec 3<>/dev/tcp/${address(i)}/22`)).code === 0
            ? true
            : null,
      );
    }
  } catch (e) {
    await close();
    throw e;
  }
  const wrongPublic = (await Deno.readTextFile(`${work}/wrong_key.pub`)).split(" ").slice(0, 2)
    .join(" ");
  return {
    opNs,
    opAddress,
    key: `${work}/key`,
    wrongKey: `${work}/wrong_key`,
    wrongPublic,
    ns,
    address,
    op: (cmd, ...args) => inNs(opNs, cmd, ...args),
    spawn,
    serveDir: (dir, port) => {
      const args = ["-m", "http.server", String(port), "--bind", opAddress, "--directory", dir];
      const c = spawn(opNs, "python3", ...args);
      return { url: `http://${opAddress}:${port}`, pid: c.pid };
    },
    close,
  };
}

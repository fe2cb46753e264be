/**
 * Network namespaces for scenario tests, driven through iproute2 (`ip`): create and destroy
 * namespaces, veth links, addresses and routes; run commands inside a namespace; remove
 * everything left under a name prefix by a crashed run. Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN).
 *
 * @example
 * ```ts ignore
 * import { addNamespace, execIn, removeNamespacesByPrefix } from "./netns.ts";
 * await removeNamespacesByPrefix("nc-demo-");
 * await addNamespace("nc-demo-a");
 * const child = execIn("nc-demo-a", ["ip", "addr"], { stdout: "piped" });
 * console.log(new TextDecoder().decode((await child.output()).stdout));
 * await removeNamespacesByPrefix("nc-demo-");
 * ```
 */

/** Output of a finished command. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Environment added to commands run in a namespace: Deno's update check would otherwise send a
 * DNS query towards the host's resolver (the router drops it, as it has no way out).
 */
export const QUIET_ENV: Record<string, string> = { DENO_NO_UPDATE_CHECK: "1" };

/** Runs a command to completion and collects its output (no exception on failure). */
export async function run(cmd: string[]): Promise<RunResult> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd[0], { args: cmd.slice(1), stdin: "null", env: QUIET_ENV })
      .output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`Cannot run ${cmd[0]}: not installed (iproute2 provides ip)`);
    }
    throw e;
  }
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Runs a command and throws with its stderr when it fails; returns stdout. */
export async function mustRun(cmd: string[]): Promise<string> {
  const r = await run(cmd);
  if (r.code !== 0) {
    throw new Error(`Command failed (exit ${r.code}): ${cmd.join(" ")}: ${r.stderr.trim()}`);
  }
  return r.stdout;
}

/** `ip` with `-n NS` when a namespace is given. */
export function ip(ns: string | undefined, ...args: string[]): Promise<string> {
  return mustRun(ns ? ["ip", "-n", ns, ...args] : ["ip", ...args]);
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function checkName(name: string, what: string): string {
  if (!NAME.test(name)) {
    throw new TypeError(`Cannot use ${what}: names are [A-Za-z0-9_.-], 1-64: received "${name}"`);
  }
  return name;
}

/** The names of every network namespace. */
export async function listNamespaces(): Promise<string[]> {
  const out = await mustRun(["ip", "netns", "list"]);
  return out.split("\n").map((l) => l.trim().split(/\s+/)[0]).filter((n) => n);
}

/** Creates a namespace with its loopback up. */
export async function addNamespace(name: string): Promise<void> {
  checkName(name, "namespace");
  await mustRun(["ip", "netns", "add", name]);
  await ip(name, "link", "set", "lo", "up");
}

/** Process ids running in a namespace. */
export async function namespacePids(name: string): Promise<number[]> {
  const r = await run(["ip", "netns", "pids", name]);
  if (r.code !== 0) return [];
  return r.stdout.split(/\s+/).filter((s) => s).map(Number);
}

/**
 * Deletes a namespace: first kills (SIGKILL, by pid) the processes still inside it, which
 * our tests started there, since a namespace with live processes outlives `ip netns del`.
 */
export async function removeNamespace(name: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const pids = await namespacePids(name);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* exited meanwhile */ }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const r = await run(["ip", "netns", "del", name]);
  if (r.code !== 0 && (await listNamespaces()).includes(name)) {
    throw new Error(`Cannot delete namespace ${name}: ${r.stderr.trim()}`);
  }
}

/** Removes every namespace whose name starts with `prefix` (leftovers of a crashed run). */
export async function removeNamespacesByPrefix(prefix: string): Promise<string[]> {
  if (prefix.length < 3) {
    throw new RangeError(`Cannot remove namespaces: prefix too short: received "${prefix}"`);
  }
  const names = (await listNamespaces()).filter((n) => n.startsWith(prefix));
  for (const n of names) await removeNamespace(n);
  return names;
}

/**
 * Creates a veth pair with one end `nameA` in namespace `nsA` and the other `nameB` in `nsB`,
 * both up. Nothing is created in the caller's own namespace.
 */
export async function addVethPair(
  nsA: string,
  nameA: string,
  nsB: string,
  nameB: string,
): Promise<void> {
  for (const n of [nameA, nameB]) {
    if (n.length > 15) throw new RangeError(`Cannot create veth: name over 15 bytes: "${n}"`);
  }
  await ip(nsA, "link", "add", nameA, "type", "veth", "peer", "name", nameB, "netns", nsB);
  await ip(nsA, "link", "set", nameA, "up");
  await ip(nsB, "link", "set", nameB, "up");
}

/** Adds an address (CIDR form, e.g. `10.77.1.2/24`) to a device. */
export function addAddress(ns: string, dev: string, cidr: string): Promise<string> {
  return ip(ns, "addr", "add", cidr, "dev", dev);
}

/** Adds a route: `ip route add DEST ...args`, e.g. `addRoute(ns, "default", "via", "10.77.1.1")`. */
export function addRoute(ns: string, dest: string, ...args: string[]): Promise<string> {
  return ip(ns, "route", "add", dest, ...args);
}

/** Sets sysctls inside a namespace, e.g. `{ "net.ipv4.ip_forward": "1" }`. */
export async function sysctl(ns: string, values: Record<string, string>): Promise<void> {
  const args = Object.entries(values).map(([k, v]) => `${k}=${v}`);
  await mustRun(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", ...args]);
}

/** Starts `cmd` inside namespace `ns` (`ip netns exec NS ...`). */
export function execIn(
  ns: string,
  cmd: string[],
  options: Omit<Deno.CommandOptions, "args"> = {},
): Deno.ChildProcess {
  checkName(ns, "namespace");
  return new Deno.Command("ip", {
    stdin: "null",
    ...options,
    env: { ...QUIET_ENV, ...options.env },
    args: ["netns", "exec", ns, ...cmd],
  }).spawn();
}

/** Runs `cmd` inside namespace `ns` to completion. */
export function runIn(ns: string, cmd: string[]): Promise<RunResult> {
  return run(["ip", "netns", "exec", checkName(ns, "namespace"), ...cmd]);
}

/**
 * Throws a clear error when this machine cannot host the emulated topology: not Linux, no TUN
 * device node (`tunPath`, default /dev/net/tun), or no working `ip netns` (iproute2, root).
 */
export async function checkEnvironment(
  options: { tunPath?: string } = {},
): Promise<void> {
  const tunPath = options.tunPath ?? "/dev/net/tun";
  if (Deno.build.os !== "linux") throw new Error("netemu needs Linux network namespaces");
  try {
    const st = await Deno.stat(tunPath);
    if (!st.isCharDevice) throw new Error("not a character device");
  } catch (e) {
    throw new Error(
      `netemu needs ${tunPath} (the TUN driver): ${e instanceof Error ? e.message : e}; ` +
        "create it with `mkdir -p /dev/net && mknod /dev/net/tun c 10 200` or load module tun",
    );
  }
  const r = await run(["ip", "netns", "list"]).catch((e) => ({
    code: -1,
    stdout: "",
    stderr: `${e}`,
  }));
  if (r.code !== 0) {
    throw new Error(`netemu needs iproute2 with netns support and root: ${r.stderr.trim()}`);
  }
}

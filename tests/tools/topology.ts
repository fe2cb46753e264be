/**
 * A star of network namespaces joined by a router namespace whose forwarded traffic goes
 * through the user-space link emulator, so every host-to-host path has a real, changeable
 * delay for all IP traffic (TCP handshakes and RSTs, UDP, ICMP).
 *
 * Host number i (1-based, in the order given) lives in namespace `PREFIX + name`, with
 * address 10.77.i.2/24 on `eth0` and a default route via the router's 10.77.i.1 on veth `h<i>`.
 * In the router namespace (`PREFIX + "router"`), a policy rule per host veth sends everything
 * that arrives from a host into TUN device `tun0` (table 100: `default dev tun0`); the emulator
 * holds each packet for its pair's one-way delay and writes it back to `tun0`, and the main
 * table forwards it to the destination host. Traffic to the router's own addresses is not
 * delayed.
 *
 * @example
 * ```ts ignore
 * import { createTopology } from "./topology.ts";
 * const topo = await createTopology({
 *   prefix: "nc-demo-",
 *   hosts: [{ name: "client" }, { name: "r1" }, { name: "r2" }],
 *   delays: { client: { r1: 10, r2: 40 } }, // round trips in ms
 * });
 * try {
 *   const child = topo.exec("r1", ["ip", "addr"], { stdout: "piped" });
 *   await child.output();
 *   await topo.setDelay("client", "r1", 80); // flip the choice mid-test
 * } finally {
 *   await topo.destroy();
 * }
 * ```
 */
import { EmulatorProcess, type EmulatorStats } from "./link_emulator.ts";
import {
  addAddress,
  addNamespace,
  addRoute,
  addVethPair,
  checkEnvironment,
  execIn,
  ip,
  listNamespaces,
  mustRun,
  removeNamespace,
  removeNamespacesByPrefix,
  run,
  runIn,
  type RunResult,
  sysctl,
} from "./netns.ts";

/** A host of the topology. */
export interface HostSpec {
  /** Short name, e.g. `client` or `r1`; the namespace is `PREFIX + name`. */
  name: string;
}

/** Options of `createTopology`. */
export interface TopologyOptions {
  /**
   * Namespace name prefix; default `nc-`. Give each test file its own (e.g. `nc-dns4-`) so
   * that test files running in parallel never touch each other's namespaces.
   */
  prefix?: string;
  /**
   * The namespaces this topology would create are always removed first (leftovers of a
   * crashed run, processes inside included). With `cleanupPrefix: true`, every namespace
   * starting with `prefix` is removed too.
   */
  cleanupPrefix?: boolean;
  hosts: HostSpec[];
  /** Round-trip times in ms: `{ client: { r1: 10 } }` delays client<->r1 by 5 ms each way. */
  delays?: Record<string, Record<string, number>>;
  /** Round trip for pairs not listed in `delays`; default 0. */
  defaultRttMs?: number;
}

/** A host as created. */
export interface Host {
  name: string;
  /** Its network namespace. */
  ns: string;
  /** Its IPv4 address, e.g. `10.77.1.2`. */
  address: string;
  /** Its /24, e.g. `10.77.1.0/24`. */
  subnet: string;
  /** The router's address on its link (its default gateway). */
  gateway: string;
}

/** A running topology; see `createTopology`. */
export interface Topology {
  hosts: Record<string, Host>;
  /** The router namespace, which runs the emulator. */
  routerNs: string;
  /** The address of host `name`. */
  address(name: string): string;
  /** Starts `cmd` inside host `name` (via `ip netns exec`). */
  exec(
    name: string,
    cmd: string[],
    options?: Omit<Deno.CommandOptions, "args">,
  ): Deno.ChildProcess;
  /** Runs `cmd` inside host `name` to completion. */
  run(name: string, cmd: string[]): Promise<RunResult>;
  /** Sets the round trip between hosts `a` and `b` (half each way), effective immediately. */
  setDelay(a: string, b: string, rttMs: number): Promise<void>;
  /** Sets the one-way delay of packets from host `from` to host `to`. */
  setOneWayDelay(from: string, to: string, ms: number): Promise<void>;
  /**
   * Limits the bandwidth of host `name`'s link, both ways, with a `tbf` qdisc on each end of
   * its veth (host egress and router egress towards it); null removes the limit. This shapes
   * the host's whole link, not one pair.
   */
  setBandwidth(name: string, kbit: number | null): Promise<void>;
  /** Drops packets between hosts `a` and `b` with probability `rate`; 1 partitions them. */
  setLoss(a: string, b: string, rate: number): Promise<void>;
  /** The emulator's counters. */
  stats(): Promise<EmulatorStats>;
  /** Stops the emulator and every process in the namespaces, and deletes the namespaces. */
  destroy(): Promise<void>;
}

/** The command that runs a Deno script with this Deno: `[deno, "run", "-A", ...args]`. */
export function denoRun(...args: string[]): string[] {
  return [Deno.execPath(), "run", "-A", ...args];
}

/** What `waitForLine` found. */
export interface LineWait {
  /** The first line that matched. */
  line: string;
  /** All the output, once the stream ends (it keeps being read, so the child never blocks). */
  drained: Promise<string>;
}

/**
 * Reads a child's output (e.g. `child.stdout`) until a line matches `pattern`, typically a
 * server's "listening" line, and keeps draining it in the background. Rejects on timeout or
 * when the stream ends first, with the output so far. Await `drained` after the child exits.
 */
export async function waitForLine(
  stream: ReadableStream<Uint8Array>,
  pattern: RegExp,
  timeoutMs = 30_000,
): Promise<LineWait> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let settled = false;
  let onMatch: (line: string) => void = () => {};
  let onEnd: (e: Error) => void = () => {};
  const matched = new Promise<string>((resolve, reject) => {
    onMatch = resolve;
    onEnd = reject;
  });
  matched.catch(() => {}); // a timeout may win the race; never leave this one unhandled
  const drained = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (!done) text += value;
      if (!settled) {
        const lines = text.split("\n");
        if (!done) lines.pop(); // only complete lines, until the end
        const line = lines.find((l) => pattern.test(l));
        if (line !== undefined) {
          settled = true;
          onMatch(line);
        }
      }
      if (done) break;
    }
    if (!settled) onEnd(new Error(`Output ended before a line matched ${pattern}: ${text}`));
    return text;
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new Error(`No line matched ${pattern} in ${timeoutMs} ms: ${text.slice(-2000)}`)),
      timeoutMs,
    );
  });
  try {
    return { line: await Promise.race([matched, timeout]), drained };
  } finally {
    clearTimeout(timer);
  }
}

const TABLE = "100";
const TUN = "tun0";

/** Builds the namespaces, links, routes and the emulator; see the module comment. */
export async function createTopology(options: TopologyOptions): Promise<Topology> {
  const prefix = options.prefix ?? "nc-";
  const names = options.hosts.map((h) => h.name);
  if (names.length === 0 || names.length > 250) {
    throw new RangeError(`Cannot create topology: 1-250 hosts: received ${names.length}`);
  }
  if (new Set(names).size !== names.length || names.includes("router")) {
    throw new TypeError(`Cannot create topology: host names must be unique and not "router"`);
  }
  await checkEnvironment();
  const routerNs = `${prefix}router`;
  if (options.cleanupPrefix) await removeNamespacesByPrefix(prefix);
  const existing = new Set(await listNamespaces());
  for (const ns of [routerNs, ...names.map((n) => prefix + n)]) {
    if (existing.has(ns)) await removeNamespace(ns);
  }

  const hosts: Record<string, Host> = {};
  names.forEach((name, i) => {
    const net = `10.77.${i + 1}`;
    hosts[name] = {
      name,
      ns: `${prefix}${name}`,
      address: `${net}.2`,
      subnet: `${net}.0/24`,
      gateway: `${net}.1`,
    };
  });
  const host = (name: string): Host => {
    const h = hosts[name];
    if (!h) throw new TypeError(`Unknown host: received "${name}"`);
    return h;
  };

  let emulator: EmulatorProcess | undefined;
  const created: string[] = [];
  const destroy = async () => {
    const em = emulator;
    emulator = undefined;
    await em?.close().catch(() => {});
    // The router last: its emulator must not outlive the hosts' links.
    for (const ns of created.splice(0).reverse()) await removeNamespace(ns);
  };

  try {
    await addNamespace(routerNs);
    created.push(routerNs);
    await sysctl(routerNs, {
      "net.ipv4.ip_forward": "1",
      "net.ipv4.conf.all.rp_filter": "0",
      "net.ipv4.conf.default.rp_filter": "0",
      "net.ipv4.conf.all.send_redirects": "0",
      "net.ipv4.conf.default.send_redirects": "0",
      "net.ipv6.conf.all.disable_ipv6": "1",
      "net.ipv6.conf.default.disable_ipv6": "1",
    });
    emulator = await EmulatorProcess.start(["ip", "netns", "exec", routerNs], {
      tun: TUN,
      defaultOneWayMs: (options.defaultRttMs ?? 0) / 2,
    });
    await ip(routerNs, "link", "set", TUN, "up");
    await addRoute(routerNs, "default", "dev", TUN, "table", TABLE);

    for (const [i, name] of names.entries()) {
      const h = hosts[name];
      await addNamespace(h.ns);
      created.push(h.ns);
      const rdev = `h${i + 1}`;
      await addVethPair(routerNs, rdev, h.ns, "eth0");
      await addAddress(routerNs, rdev, `${h.gateway}/24`);
      await addAddress(h.ns, "eth0", `${h.address}/24`);
      await addRoute(h.ns, "default", "via", h.gateway);
      await ip(routerNs, "rule", "add", "iif", rdev, "lookup", TABLE, "pref", String(1000 + i));
    }
    for (const [a, row] of Object.entries(options.delays ?? {})) {
      for (const [b, rtt] of Object.entries(row)) {
        await emulator.setDelay(host(a).address, host(b).address, rtt);
      }
    }
  } catch (e) {
    await destroy();
    throw e;
  }

  const em = () => {
    if (!emulator) throw new Error("Cannot use topology: destroyed");
    return emulator;
  };
  return {
    hosts,
    routerNs,
    address: (name) => host(name).address,
    exec: (name, cmd, opts) => execIn(host(name).ns, cmd, opts),
    run: (name, cmd) => runIn(host(name).ns, cmd),
    setDelay: (a, b, rttMs) => em().setDelay(host(a).address, host(b).address, rttMs),
    setOneWayDelay: (from, to, ms) => em().setOneWayDelay(host(from).address, host(to).address, ms),
    setBandwidth: async (name, kbit) => {
      const h = host(name);
      const ends: [string, string][] = [[h.ns, "eth0"], [routerNs, `h${names.indexOf(name) + 1}`]];
      for (const [ns, dev] of ends) {
        if (kbit === null) {
          await run(["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"]);
          continue;
        }
        if (!(kbit >= 8 && kbit <= 10_000_000)) {
          throw new RangeError(`Cannot set bandwidth: 8-10000000 kbit/s: received ${kbit}`);
        }
        // A bucket of 20 ms at the rate (at least a few MTUs); packets queue up to 400 ms.
        const burst = Math.max(4 * 1514, Math.round((kbit * 1000) / 8 / 50));
        await mustRun([
          "tc",
          "-n",
          ns,
          "qdisc",
          "replace",
          "dev",
          dev,
          "root",
          "tbf",
          "rate",
          `${kbit}kbit`,
          "burst",
          String(burst),
          "latency",
          "400ms",
        ]);
      }
    },
    setLoss: (a, b, rate) => em().setLoss(host(a).address, host(b).address, rate),
    stats: () => em().stats(),
    destroy,
  };
}

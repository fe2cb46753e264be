/**
 * Shaped client links for the image scenarios (issue 12): a server namespace (origin and
 * replica) and one namespace per client, each joined to the server by its own veth pair on its
 * own /24, so the replica's per-prefix throughput estimate sees each client apart. The server's
 * end of each link is shaped with a token bucket (`tc qdisc ... tbf`: the download direction).
 * No delay is added: this kernel has no `netem` (`tests/tools/link_emulator.ts` is the way to
 * delays), so a link's round trip is the veth's, well under a millisecond. Clients fetch with
 * curl. Needs root and iproute2's `ip` and `tc`.
 *
 * Client i (1-based) has address 10.12.i.2/24; the server is 10.12.i.1 on that link.
 *
 * @module
 */
import {
  addAddress,
  addNamespace,
  addVethPair,
  execIn,
  mustRun,
  removeNamespacesByPrefix,
  runIn,
  sysctl,
} from "./netns.ts";

/** One client link. */
export interface LinkSpec {
  /** Short name, e.g. `c05`; the namespace is prefix + name. */
  name: string;
  /** Download rate, Mbit/s. */
  mbit: number;
}

/** What one curl fetch saw. */
export interface Fetched {
  status: number;
  bytes: number;
  seconds: number;
  variant: string;
  contentType: string;
}

/** The built namespaces; {@link destroy} removes them. */
export interface ImageLinks {
  server: string;
  /** The server's address on a client's link. */
  serverIp(client: string): string;
  /** Starts `cmd` in the server namespace. */
  execServer(cmd: string[], options?: Omit<Deno.CommandOptions, "args">): Deno.ChildProcess;
  /** GETs `path` from `client` at `port` of the server; `headers` as `name: value`. */
  fetch(client: string, port: number, path: string, headers?: string[]): Promise<Fetched>;
  /** GETs every path (`parallel` at once, curl's `--parallel`); `seconds` is the wall time. */
  fetchAll(
    client: string,
    port: number,
    paths: string[],
    headers?: string[],
    parallel?: number,
  ): Promise<{ got: Fetched[]; seconds: number }>;
  /** Changes a client's download rate. */
  setRate(client: string, mbit: number): Promise<void>;
  destroy(): Promise<void>;
}

/** The token bucket's depth, bytes: 10 ms of the rate, at least 16 KiB. */
export function tbfBurst(mbit: number): number {
  return Math.max(16 * 1024, Math.round(mbit * 1e6 / 8 / 100));
}

/** Token bucket of a link: {@link tbfBurst}, 200 ms of queue. */
function tbf(mbit: number): string[] {
  return ["tbf", "rate", `${mbit}mbit`, "burst", String(tbfBurst(mbit)), "latency", "200ms"];
}

/**
 * Builds the namespaces under `prefix` (removing leftovers first). `notsentLowat`, when given,
 * sets `net.ipv4.tcp_notsent_lowat` in the server namespace (bytes a socket holds unsent).
 */
export async function createImageLinks(
  prefix: string,
  links: LinkSpec[],
  opts: { notsentLowat?: number } = {},
): Promise<ImageLinks> {
  await removeNamespacesByPrefix(prefix);
  const server = `${prefix}s`;
  const index = new Map(links.map((l, i) => [l.name, i + 1]));
  const dev = (name: string) => `${prefix}v${index.get(name)}`;
  try {
    await addNamespace(server);
    if (opts.notsentLowat !== undefined) {
      await sysctl(server, { "net.ipv4.tcp_notsent_lowat": String(opts.notsentLowat) });
    }
    for (const l of links) {
      const i = index.get(l.name)!;
      const ns = `${prefix}${l.name}`;
      await addNamespace(ns);
      await addVethPair(server, dev(l.name), ns, "eth0");
      await addAddress(server, dev(l.name), `10.12.${i}.1/24`);
      await addAddress(ns, "eth0", `10.12.${i}.2/24`);
      await mustRun([
        "tc",
        "-n",
        server,
        "qdisc",
        "add",
        "dev",
        dev(l.name),
        "root",
        ...tbf(l.mbit),
      ]);
    }
  } catch (e) {
    await removeNamespacesByPrefix(prefix);
    throw e;
  }
  const made: ImageLinks = {
    server,
    serverIp: (client) => `10.12.${index.get(client)}.1`,
    execServer: (cmd, options) => execIn(server, cmd, options),
    async fetch(client, port, path, headers = []) {
      return (await made.fetchAll(client, port, [path], headers, 1)).got[0];
    },
    fetchAll: (client, port, paths, headers = [], parallel = 1) =>
      curlFetch(`${prefix}${client}`, `http://10.12.${index.get(client)}.1:${port}`, paths, {
        headers,
        parallel,
      }),
    async setRate(client, mbit) {
      await mustRun([
        "tc",
        "-n",
        server,
        "qdisc",
        "replace",
        "dev",
        dev(client),
        "root",
        ...tbf(mbit),
      ]);
    },
    async destroy() {
      await removeNamespacesByPrefix(prefix);
    },
  };
  return made;
}

/**
 * GETs every path under `base` with curl in namespace `ns` (`parallel` at once, curl's
 * `--parallel`); `seconds` is the wall time of the whole run.
 */
export async function curlFetch(
  ns: string,
  base: string,
  paths: string[],
  o: { headers?: string[]; parallel?: number } = {},
): Promise<{ got: Fetched[]; seconds: number }> {
  const parallel = o.parallel ?? 1;
  const format = "%{http_code} %{size_download} %{time_total} " +
    "[%header{x-nearcast-variant}] [%{content_type}]\n";
  const t0 = performance.now();
  const r = await runIn(ns, [
    "curl",
    "-s",
    ...(parallel > 1 ? ["--parallel", "--parallel-max", String(parallel)] : []),
    "--connect-timeout",
    "15",
    "--max-time",
    "300",
    "-w",
    format,
    ...(o.headers ?? []).flatMap((h) => ["-H", h]),
    ...paths.flatMap((p) => ["-o", "/dev/null", `${base}${p}`]),
  ]);
  const seconds = (performance.now() - t0) / 1000;
  const got = r.stdout.trim().split("\n").map((line) => {
    const m = /^(\d+) (\d+) ([0-9.]+) \[(.*)\] \[(.*)\]$/.exec(line);
    if (m === null) throw new Error(`curl from ${ns}: cannot read ${JSON.stringify(line)}`);
    return {
      status: Number(m[1]),
      bytes: Number(m[2]),
      seconds: Number(m[3]),
      variant: m[4],
      contentType: m[5],
    };
  });
  if (r.code !== 0 || got.length !== paths.length) {
    throw new Error(`curl ${base} from ${ns} failed (${r.code}): ${r.stdout}${r.stderr}`);
  }
  return { got, seconds };
}

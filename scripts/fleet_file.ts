/**
 * The fleet file of `scripts/deployCDN.sh`, `runCDN.sh` and `stopCDN.sh`: checked before any host
 * is touched, then printed one host per line for the shell scripts.
 *
 * ```json
 * {
 *   "controlPort": 5380,
 *   "dns": [{ "ssh": "203.0.113.1", "address": "203.0.113.1" }],
 *   "replicas": [
 *     { "ssh": "nyc.example.net", "sshPort": 22, "address": "198.51.100.7", "dir": "~/nearcast",
 *       "id": "nyc", "lat": 40.71, "lon": -74.01, "provider": "acme" }
 *   ]
 * }
 * ```
 *
 * `deno run --allow-read scripts/fleet_file.ts FILE` prints, per host, a tab-separated line:
 * `ROLE INDEX SSH SSHPORT ADDRESS DIR ID LAT LON PROVIDER CONTROLPORT` (`-` for an absent optional
 * field), DNS servers first. An invalid file exits 2 with one line per error, naming the key.
 *
 * @module
 */

/** One host of the fleet, with its defaults filled in. */
export interface FleetHost {
  role: "dns" | "replica";
  index: number;
  ssh: string;
  sshPort: number;
  address: string;
  dir: string;
  id: string | null;
  lat: number | null;
  lon: number | null;
  provider: string | null;
  controlPort: number;
}

const HOST_KEYS = [
  "ssh",
  "sshPort",
  "address",
  "dir",
  "id",
  "lat",
  "lon",
  "provider",
  "controlPort",
];
const TOP_KEYS = ["dns", "replicas", "controlPort"];
const ID = /^[A-Za-z0-9_-]{1,63}$/;
// What may appear unquoted on a remote command line: no quotes, spaces or shell syntax.
const SAFE = /^[A-Za-z0-9._:@\[\]%-]+$/;
const SAFE_DIR = /^(~\/)?[A-Za-z0-9._\/-]+$/;

function isPort(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 65535;
}

/** Checks a parsed fleet file; throws an Error listing every problem, each naming its key. */
export function parseFleet(data: unknown): FleetHost[] {
  const errors: string[] = [];
  const out: FleetHost[] = [];
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new Error('fleet file: must be a JSON object {"dns": [...], "replicas": [...]}');
  }
  const top = data as Record<string, unknown>;
  for (const k of Object.keys(top)) {
    if (!TOP_KEYS.includes(k)) errors.push(`${k}: unknown key (known: ${TOP_KEYS.join(", ")})`);
  }
  let controlPort = 5380;
  if (top.controlPort !== undefined) {
    if (isPort(top.controlPort)) controlPort = top.controlPort;
    else errors.push("controlPort: must be a port number (1-65535)");
  }
  const seenIds = new Map<string, string>();
  const seenBinds = new Map<string, string>();
  for (const role of ["dns", "replicas"] as const) {
    const list = top[role];
    if (!Array.isArray(list) || list.length === 0) {
      errors.push(`${role}: must be a non-empty list of hosts`);
      continue;
    }
    list.forEach((h, i) => {
      const at = `${role}[${i}]`;
      if (h === null || typeof h !== "object" || Array.isArray(h)) {
        errors.push(`${at}: must be an object with "ssh" and "address"`);
        return;
      }
      const o = h as Record<string, unknown>;
      const before = errors.length;
      for (const k of Object.keys(o)) {
        if (!HOST_KEYS.includes(k)) {
          errors.push(`${at}.${k}: unknown key (known: ${HOST_KEYS.join(", ")})`);
        }
      }
      for (const k of ["ssh", "address"]) {
        if (typeof o[k] !== "string" || !SAFE.test(o[k] as string)) {
          errors.push(`${at}.${k}: required, a host name or address`);
        }
      }
      for (const k of ["id", "provider"]) {
        if (o[k] !== undefined && (typeof o[k] !== "string" || !ID.test(o[k] as string))) {
          errors.push(`${at}.${k}: must be 1 to 63 of A-Z a-z 0-9 - _`);
        }
      }
      if (o.dir !== undefined && (typeof o.dir !== "string" || !SAFE_DIR.test(o.dir))) {
        errors.push(`${at}.dir: must be a path (A-Z a-z 0-9 . _ - /, may start with ~/)`);
      }
      for (const k of ["sshPort", "controlPort"]) {
        if (o[k] !== undefined && !isPort(o[k])) errors.push(`${at}.${k}: must be a port number`);
      }
      if (o.controlPort !== undefined && role !== "dns") {
        errors.push(`${at}.controlPort: only DNS servers have a control port`);
      }
      for (const [k, lim] of [["lat", 90], ["lon", 180]] as const) {
        const v = o[k];
        if (v !== undefined && (typeof v !== "number" || !(Math.abs(v) <= lim))) {
          errors.push(`${at}.${k}: must be a number from -${lim} to ${lim}`);
        }
      }
      if (errors.length > before) return;
      const host: FleetHost = {
        role: role === "dns" ? "dns" : "replica",
        index: i,
        ssh: o.ssh as string,
        sshPort: (o.sshPort as number | undefined) ?? 22,
        address: o.address as string,
        dir: (o.dir as string | undefined) ?? "~/nearcast",
        id: (o.id as string | undefined) ?? null,
        lat: (o.lat as number | undefined) ?? null,
        lon: (o.lon as number | undefined) ?? null,
        provider: (o.provider as string | undefined) ?? null,
        controlPort: (o.controlPort as number | undefined) ?? controlPort,
      };
      if (host.id !== null) {
        const prev = seenIds.get(host.id);
        if (prev) errors.push(`${at}.id: "${host.id}" is also ${prev}.id`);
        seenIds.set(host.id, at);
      }
      // Two processes of one role on one address and install folder would share pid files.
      const bind = `${host.role} ${host.address} ${host.ssh} ${host.dir}`;
      const prev = seenBinds.get(bind);
      if (prev) errors.push(`${at}.address: same address, ssh and dir as ${prev}`);
      seenBinds.set(bind, at);
      out.push(host);
    });
  }
  if (errors.length > 0) throw new Error(errors.map((e) => `fleet file: ${e}`).join("\n"));
  return out;
}

/** The tab-separated line of a host (`-` for an absent field). */
export function hostLine(h: FleetHost): string {
  const f = (v: string | number | null) => v === null ? "-" : String(v);
  return [
    h.role,
    h.index,
    h.ssh,
    h.sshPort,
    h.address,
    h.dir,
    f(h.id),
    f(h.lat),
    f(h.lon),
    f(h.provider),
    h.controlPort,
  ].join("\t");
}

if (import.meta.main) {
  const file = Deno.args[0];
  if (!file) {
    console.error("usage: fleet_file.ts FILE");
    Deno.exit(2);
  }
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    console.error(`fleet file ${file}: cannot read it (${(e as Error).message})`);
    Deno.exit(2);
  }
  try {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new Error(`fleet file: not JSON (${(e as Error).message})`);
    }
    console.log(parseFleet(data).map(hostLine).join("\n"));
  } catch (e) {
    console.error(`${file}: ${(e as Error).message.replaceAll("\n", `\n${file}: `)}`);
    Deno.exit(2);
  }
}

/**
 * The DNS server's JSON config file: parse, validate every key (reporting the file and the key
 * path of each problem), and return a typed config with the defaults filled in.
 *
 * @module
 */
import { type Cidr, type IpAddr, parseCidr, parseIp } from "../common/ip.ts";
import { MAX_GEO_ENTRIES } from "./geo.ts";
import { ConfigError, loadConfigFile } from "../common/config_file.ts";
import { MAX_PROVIDER_LENGTH } from "../fleet/protocol.ts";
import { MAX_NS_HOSTS } from "../dnswire/types.ts";

/** A replica the server may answer with. */
export interface ReplicaConfig {
  /** Unique name, 1..63 of `[A-Za-z0-9_-]`. */
  id: string;
  ipv4: IpAddr | null;
  ipv6: IpAddr | null;
  lat: number;
  lon: number;
  /** The cloud provider it runs on, as the pricing service names it ("" or absent: unknown). */
  provider?: string;
}

/** A name server host of the zone: `LABEL.ZONE` and its addresses (glue). */
export interface NsConfig {
  label: string;
  ipv4: IpAddr | null;
  ipv6: IpAddr | null;
}

/** A geo table row: clients in `cidr` are at (`lat`, `lon`). */
export interface GeoConfig {
  cidr: Cidr;
  lat: number;
  lon: number;
}

/** The typed config, every field filled. */
export interface DnsConfig {
  /** TTL of steered A/AAAA answers, seconds. */
  ttl: number;
  /** Replicas per A/AAAA answer, best first. */
  answers: number;
  replicas: ReplicaConfig[];
  geo: GeoConfig[];
  /**
   * The zone's name server hosts `LABEL.ZONE` with their addresses, at least one: all of them
   * are answered in NS queries, the first is the SOA MNAME, and its addresses default to the
   * server's own (null elsewhere: no address record).
   */
  ns: NsConfig[];
  soa: {
    /** First label of the RNAME mailbox (`hostmaster` → hostmaster.ZONE). */
    mailbox: string;
    serial: number;
    refresh: number;
    retry: number;
    expire: number;
    /** Negative-caching TTL (RFC 2308). */
    minimum: number;
    /** TTL of the SOA and NS records and of the name server's address records. */
    ttl: number;
  };
  tcp: {
    /** Close a TCP connection after this long without a complete query (RFC 7766 §6.2.3). */
    idleTimeoutMs: number;
    /** Concurrent TCP connections; further ones are closed at once (RFC 7766 §6.2.2). */
    maxConnections: number;
  };
}

/** RFC 2181 §8: a TTL is an unsigned 31-bit number. */
export const MAX_TTL = 2 ** 31 - 1;
/**
 * Most replicas per answer: 64 AAAA records (28 octets each) already exceed the 1232-octet
 * EDNS UDP size, so more only lengthens TCP answers and the per-query work.
 */
export const MAX_ANSWERS = 64;
/** Most replicas in a config: steering ranks replicas per location in `Uint16Array`s. */
export const MAX_REPLICAS = 1024;
/** Longest idle timeout: a minute keeps a stuck client from holding a slot for long. */
export const MAX_IDLE_TIMEOUT_MS = 60_000;
/** Most concurrent TCP connections: each may hold a 64 KiB read buffer. */
export const MAX_TCP_CONNECTIONS = 10_000;
/** Largest config file we read: keeps a wrong path (a disk image) from exhausting memory. */
export const MAX_CONFIG_BYTES = 64 * 1024 * 1024;

/** Defaults, documented in docs/notes/dns.md. */
export const DEFAULTS = {
  ttl: 20,
  answers: 1,
  nsLabel: "ns1",
  mailbox: "hostmaster",
  serial: 1,
  refresh: 3600,
  retry: 600,
  expire: 86400,
  minimum: 60,
  soaTtl: 3600,
  idleTimeoutMs: 10_000,
  maxConnections: 256,
} as const;

export { ConfigError };

/** The config with no file: no replicas (A/AAAA at the apex are NODATA), default SOA and TCP. */
export function defaultConfig(): DnsConfig {
  return {
    ttl: DEFAULTS.ttl,
    answers: DEFAULTS.answers,
    replicas: [],
    geo: [],
    ns: [{ label: DEFAULTS.nsLabel, ipv4: null, ipv6: null }],
    soa: {
      mailbox: DEFAULTS.mailbox,
      serial: DEFAULTS.serial,
      refresh: DEFAULTS.refresh,
      retry: DEFAULTS.retry,
      expire: DEFAULTS.expire,
      minimum: DEFAULTS.minimum,
      ttl: DEFAULTS.soaTtl,
    },
    tcp: { idleTimeoutMs: DEFAULTS.idleTimeoutMs, maxConnections: DEFAULTS.maxConnections },
  };
}

type Obj = Record<string, unknown>;

const ID = /^[A-Za-z0-9_-]{1,63}$/;
/** A DNS label we can put in a name: letters, digits, hyphen, underscore (1..63). */
const LABEL = /^[A-Za-z0-9_-]{1,63}$/;

/** Collects problems while walking the JSON. */
class Checker {
  readonly problems: string[] = [];
  constructor(readonly file: string) {}

  fail(path: string, message: string): undefined {
    this.problems.push(
      path === "" ? `${this.file}: ${message}` : `${this.file}: ${path}: ${message}`,
    );
    return undefined;
  }

  object(v: unknown, path: string, keys: readonly string[]): Obj | undefined {
    if (v === null || typeof v !== "object" || Array.isArray(v)) {
      return this.fail(
        path,
        `${path === "" ? "the top level " : ""}must be an object: received ${show(v)}`,
      );
    }
    for (const k of Object.keys(v)) {
      if (!keys.includes(k)) {
        this.fail(join(path, k), `unknown key (known keys: ${keys.join(", ")})`);
      }
    }
    return v as Obj;
  }

  integer(o: Obj, key: string, path: string, min: number, max: number, dflt: number): number {
    const v = o[key];
    if (v === undefined) return dflt;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      this.fail(join(path, key), `must be an integer from ${min} to ${max}: received ${show(v)}`);
      return dflt;
    }
    return v;
  }

  degrees(o: Obj, key: string, path: string, limit: number): number {
    const v = o[key];
    if (typeof v !== "number" || !Number.isFinite(v) || v < -limit || v > limit) {
      this.fail(
        join(path, key),
        v === undefined
          ? `is required (a number from -${limit} to ${limit})`
          : `must be a number from -${limit} to ${limit}: received ${show(v)}`,
      );
      return 0;
    }
    return v;
  }

  label(o: Obj, key: string, path: string, dflt: string): string {
    const v = o[key];
    if (v === undefined) return dflt;
    if (typeof v !== "string" || !LABEL.test(v)) {
      this.fail(
        join(path, key),
        `must be one DNS label of 1 to 63 letters, digits, "-" or "_": received ${show(v)}`,
      );
      return dflt;
    }
    return v;
  }

  address(o: Obj, key: string, path: string, family: 4 | 6): IpAddr | null {
    const v = o[key];
    if (v === undefined || v === null) return null;
    const a = typeof v === "string" && !v.includes("%") ? parseIp(v) : null;
    if (a === null || a.family !== family) {
      this.fail(join(path, key), `must be an IPv${family} address string: received ${show(v)}`);
      return null;
    }
    return a;
  }
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  if (s === undefined) return String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

const TOP_KEYS = ["ttl", "answers", "replicas", "geo", "ns", "soa", "tcp"] as const;
const REPLICA_KEYS = ["id", "ipv4", "ipv6", "lat", "lon", "provider"] as const;
const GEO_KEYS = ["cidr", "lat", "lon"] as const;
const NS_KEYS = ["label", "ipv4", "ipv6"] as const;
/** Most name server hosts (the codec's limit: NS answers stay well within 512 octets). */
export const MAX_NS = MAX_NS_HOSTS;
const SOA_KEYS = ["mailbox", "serial", "refresh", "retry", "expire", "minimum", "ttl"] as const;
const TCP_KEYS = ["idleTimeoutMs", "maxConnections"] as const;

function list(c: Checker, v: unknown, path: string, max: number): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    c.fail(path, `must be an array: received ${show(v)}`);
    return [];
  }
  if (v.length > max) {
    c.fail(path, `must have at most ${max} entries: received ${v.length}`);
    return [];
  }
  return v;
}

function parseReplicas(c: Checker, v: unknown): ReplicaConfig[] {
  const out: ReplicaConfig[] = [];
  const seen = new Map<string, number>();
  list(c, v, "replicas", MAX_REPLICAS).forEach((r, i) => {
    const path = `replicas[${i}]`;
    const o = c.object(r, path, REPLICA_KEYS);
    if (!o) return;
    let id = "";
    if (typeof o.id !== "string" || !ID.test(o.id)) {
      c.fail(
        `${path}.id`,
        o.id === undefined
          ? `is required (1 to 63 letters, digits, "-" or "_")`
          : `must be 1 to 63 letters, digits, "-" or "_": received ${show(o.id)}`,
      );
    } else if (seen.has(o.id.toLowerCase())) {
      c.fail(
        `${path}.id`,
        `repeats the id of replicas[${seen.get(o.id.toLowerCase())}]: "${o.id}"`,
      );
    } else {
      id = o.id;
      seen.set(id.toLowerCase(), i);
    }
    const ipv4 = c.address(o, "ipv4", path, 4);
    const ipv6 = c.address(o, "ipv6", path, 6);
    if (o.ipv4 == null && o.ipv6 == null) {
      c.fail(path, "needs an address: give ipv4, ipv6 or both");
    }
    const lat = c.degrees(o, "lat", path, 90);
    const lon = c.degrees(o, "lon", path, 180);
    let provider = "";
    if (typeof o.provider === "string" && o.provider.length <= MAX_PROVIDER_LENGTH) {
      provider = o.provider;
    } else if (o.provider !== undefined) {
      c.fail(
        `${path}.provider`,
        `must be a string of at most ${MAX_PROVIDER_LENGTH} characters: received ${
          show(o.provider)
        }`,
      );
    }
    out.push({ id, ipv4, ipv6, lat, lon, provider });
  });
  return out;
}

function parseGeo(c: Checker, v: unknown): GeoConfig[] {
  const out: GeoConfig[] = [];
  const seen = new Map<string, number>();
  list(c, v, "geo", MAX_GEO_ENTRIES).forEach((g, i) => {
    const path = `geo[${i}]`;
    const o = c.object(g, path, GEO_KEYS);
    if (!o) return;
    let cidr: Cidr | null = null;
    if (typeof o.cidr !== "string") {
      c.fail(
        `${path}.cidr`,
        o.cidr === undefined
          ? "is required (ADDRESS/PREFIX)"
          : `must be a string ADDRESS/PREFIX: received ${show(o.cidr)}`,
      );
    } else {
      try {
        cidr = parseCidr(o.cidr);
        const key = `${cidr.family}/${cidr.bytes.join(".")}/${cidr.prefix}`;
        if (seen.has(key)) {
          c.fail(`${path}.cidr`, `repeats the prefix of geo[${seen.get(key)}]: "${o.cidr}"`);
          cidr = null;
        } else {
          seen.set(key, i);
        }
      } catch (e) {
        c.fail(`${path}.cidr`, (e as Error).message);
      }
    }
    const lat = c.degrees(o, "lat", path, 90);
    const lon = c.degrees(o, "lon", path, 180);
    if (cidr) out.push({ cidr, lat, lon });
  });
  return out;
}

/**
 * `ns`: a list of name server hosts (`[{label, ipv4, ipv6}, ...]`, labels `ns1`, `ns2`, ... by
 * default), or one object (the older form, the same as a list of one).
 */
function parseNs(c: Checker, v: unknown): NsConfig[] {
  const single = !Array.isArray(v);
  const items = single ? [v] : list(c, v, "ns", MAX_NS);
  if (Array.isArray(v) && v.length === 0) c.fail("ns", "must list at least one name server");
  const out: NsConfig[] = [];
  const seen = new Map<string, number>();
  items.forEach((item, i) => {
    const path = single ? "ns" : `ns[${i}]`;
    const o = c.object(item, path, NS_KEYS);
    if (!o) return;
    const label = c.label(o, "label", path, `ns${i + 1}`);
    const key = label.toLowerCase();
    if (seen.has(key)) {
      c.fail(`${path}.label`, `repeats the label of ns[${seen.get(key)}]: "${label}"`);
    }
    seen.set(key, i);
    out.push({ label, ipv4: c.address(o, "ipv4", path, 4), ipv6: c.address(o, "ipv6", path, 6) });
  });
  return out;
}

/**
 * Parses and validates config text. `file` names the file in messages. Throws a
 * {@link ConfigError} listing every problem (`cdn.json: replicas[1].lat: must be ...`).
 */
export function parseConfig(text: string, file: string): DnsConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError([`${file}: not valid JSON: ${(e as Error).message}`]);
  }
  const c = new Checker(file);
  const d = defaultConfig();
  const top = c.object(json, "", TOP_KEYS);
  if (!top) throw new ConfigError(c.problems);
  const ttl = c.integer(top, "ttl", "", 0, MAX_TTL, d.ttl);
  const answers = c.integer(top, "answers", "", 1, MAX_ANSWERS, d.answers);
  const replicas = parseReplicas(c, top.replicas);
  const geo = parseGeo(c, top.geo);
  const ns = top.ns === undefined ? d.ns : parseNs(c, top.ns);
  const soa = d.soa;
  if (top.soa !== undefined) {
    const o = c.object(top.soa, "soa", SOA_KEYS);
    if (o) {
      soa.mailbox = c.label(o, "mailbox", "soa", soa.mailbox);
      soa.serial = c.integer(o, "serial", "soa", 0, 0xffffffff, soa.serial);
      soa.refresh = c.integer(o, "refresh", "soa", 0, MAX_TTL, soa.refresh);
      soa.retry = c.integer(o, "retry", "soa", 0, MAX_TTL, soa.retry);
      soa.expire = c.integer(o, "expire", "soa", 0, MAX_TTL, soa.expire);
      soa.minimum = c.integer(o, "minimum", "soa", 0, MAX_TTL, soa.minimum);
      soa.ttl = c.integer(o, "ttl", "soa", 0, MAX_TTL, soa.ttl);
    }
  }
  const tcp = d.tcp;
  if (top.tcp !== undefined) {
    const o = c.object(top.tcp, "tcp", TCP_KEYS);
    if (o) {
      tcp.idleTimeoutMs = c.integer(
        o,
        "idleTimeoutMs",
        "tcp",
        1,
        MAX_IDLE_TIMEOUT_MS,
        tcp.idleTimeoutMs,
      );
      tcp.maxConnections = c.integer(
        o,
        "maxConnections",
        "tcp",
        1,
        MAX_TCP_CONNECTIONS,
        tcp.maxConnections,
      );
    }
  }
  if (c.problems.length) throw new ConfigError(c.problems);
  return { ttl, answers, replicas, geo, ns, soa, tcp };
}

/** Reads and parses a config file; problems (including a missing file) throw {@link ConfigError}. */
export function loadConfig(path: string): Promise<DnsConfig> {
  return loadConfigFile(path, MAX_CONFIG_BYTES, parseConfig);
}

/**
 * The replica's fleet flags (`--announce`, `--lat`, `--lon`, `--provider`) checked and turned
 * into {@link AgentOptions} fields, kept out of `main_http.ts` so it only wires them.
 *
 * @module
 */
import { isUnspecified, parseIp, unbracket } from "../../common/ip.ts";
import { nameToPath } from "../../upload/validate.ts";
import { MAX_HELD_PATHS, MAX_PROVIDER_LENGTH, parseHostPort } from "../protocol.ts";

/** The raw flag values. */
export interface FleetFlagText {
  /** Each `--announce` given (repeated); each may list several, comma-separated. */
  announce?: string | string[];
  lat?: string;
  lon?: string;
  provider?: string;
  /** `--host`: advertised unless it is a wildcard. */
  host: string;
  /** `--advertise`: a base URL (replication's flag) or a bare address; wins over `--host`. */
  advertise?: string;
}

/** What the agent needs from the flags. */
export interface FleetFlags {
  /** The DNS control APIs, `HOST:PORT` or `https://HOST:PORT`, in the order given. */
  announce: string[];
  address: string;
  lat: number | null;
  lon: number | null;
  provider: string;
}

function isWildcard(addr: string): boolean {
  const ip = parseIp(unbracket(addr));
  return ip !== null && isUnspecified(ip);
}

/**
 * Null without `--announce`; otherwise the checked values. Throws a `SyntaxError` or
 * `RangeError` naming the flag. The advertised address is `--advertise` (its host when it is a
 * URL), else `--host` unless a wildcard, else empty: the DNS server then uses the address the
 * registration came from.
 */
export function parseFleetFlags(f: FleetFlagText): FleetFlags | null {
  const given = [f.lat, f.lon].some((v) => v !== undefined);
  const announce = parseAnnounce(f.announce);
  if (announce.length === 0) {
    if (given) throw new SyntaxError("--lat and --lon need --announce HOST:PORT");
    checkProvider(f.provider ?? "");
    return null;
  }
  const deg = (flag: string, text: string | undefined, limit: number) => {
    if (text === undefined) return null;
    const n = Number(text);
    if (text.trim() === "" || !Number.isFinite(n) || n < -limit || n > limit) {
      throw new RangeError(
        `--${flag} must be a number from -${limit} to ${limit}: received ${text}`,
      );
    }
    return n;
  };
  const lat = deg("lat", f.lat, 90), lon = deg("lon", f.lon, 180);
  if ((lat === null) !== (lon === null)) {
    throw new SyntaxError("give both --lat and --lon, or neither");
  }
  const provider = checkProvider(f.provider ?? "");
  let address = "";
  if (f.advertise !== undefined) {
    address = URL.canParse(f.advertise) && f.advertise.includes("://")
      ? new URL(f.advertise).hostname
      : f.advertise;
    address = unbracket(address);
    if (parseIp(address) === null) {
      throw new SyntaxError(
        `--advertise: the DNS answers need an IP address: received ${f.advertise}`,
      );
    }
  } else if (!isWildcard(f.host)) {
    address = unbracket(f.host);
    if (parseIp(address) === null) {
      throw new SyntaxError(
        `--host: the DNS answers need an IP address, or give --advertise ADDR: received ${f.host}`,
      );
    }
  }
  return { announce, address, lat, lon, provider };
}

/** `--provider`'s value when valid (it also names the node in every server list). */
export function checkProvider(provider: string): string {
  if (provider.length > MAX_PROVIDER_LENGTH) {
    throw new RangeError(`--provider: at most ${MAX_PROVIDER_LENGTH} characters`);
  }
  return provider;
}

/**
 * The DNS servers of `--announce` (repeated, each possibly a comma-separated list), checked
 * (`HOST:PORT` or `https://HOST:PORT`) and without repeats. Throws a `SyntaxError` naming the
 * value at fault.
 */
export function parseAnnounce(given: string | string[] | undefined): string[] {
  const texts = given === undefined ? [] : typeof given === "string" ? [given] : given;
  const out: string[] = [];
  const seen = new Set<string>();
  for (const text of texts) {
    const parts = text.split(",").map((s) => s.trim());
    for (const part of parts) {
      if (part === "") {
        throw new SyntaxError(`--announce: an empty DNS server in the list: received ${text}`);
      }
      const hp = parseHostPort(part.replace(/^https:\/\//i, "")); // https://: a TLS control API
      const key = `${hp.host.toLowerCase()}:${hp.port}`;
      if (seen.has(key)) throw new SyntaxError(`--announce: ${part} is given twice`);
      seen.add(key);
      out.push(part);
    }
  }
  return out;
}

/**
 * The paths a replica reports as held (what `/locate` answers for): its uploaded files first
 * (from their names), then the URLs in its cache, without duplicates and at most
 * {@link MAX_HELD_PATHS} in all.
 */
export function heldPaths(
  files: { name: string; deleted: boolean }[],
  cached: string[] = [],
): string[] {
  const held = new Set(files.filter((f) => !f.deleted).map((f) => nameToPath(f.name)));
  for (const url of cached) {
    if (held.size >= MAX_HELD_PATHS) break;
    held.add(url);
  }
  return [...held].slice(0, MAX_HELD_PATHS);
}

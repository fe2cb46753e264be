/**
 * The fleet protocol between replicas and the DNS server's control API: the registration body,
 * the UDP heartbeat and its reply, with the limits and validation both sides share.
 *
 * - `POST /register` (HTTP, JSON {@link Registration}, signed with the replica's key: see
 *   `credentials.ts`) answers {@link RegisterReply}: a session
 *   token that every heartbeat and held-paths report carries, and where to send heartbeats.
 * - Heartbeat: one UDP datagram of JSON {@link Heartbeat} every `intervalMs` to the control
 *   port; the server answers {@link HeartbeatReply} with the known-servers list when it changed.
 *   Both are sealed ({@link sealDatagram}): `nc1 HEX\nJSON`, HEX the HMAC-SHA256 of the JSON
 *   bytes keyed with the session token (the token itself is never sent again after the
 *   registration). A `register` reply (the server does not know the id, or the MAC is wrong) is
 *   signed with the DNS server's key instead ({@link signDatagram}), since the server has no
 *   session token to use. The
 *   server refuses a heartbeat whose `ts` is more than {@link MAX_DATAGRAM_SKEW_MS} from its
 *   clock or whose `seq` is not above the last accepted one; the replica takes a reply only
 *   with a valid MAC and a `seq` it sent and has not had answered yet.
 *
 * @module
 */

import { createHash, createHmac } from "node:crypto";
import { sameSecret } from "../common/auth.ts";
import { validPublicKey } from "../replication/trust.ts";

/** Default control API port (HTTP on TCP; heartbeats on UDP, same number). */
export const DEFAULT_CONTROL_PORT = 5380;
/** Heartbeat period the server asks for: one second, as the spec says. */
export const HEARTBEAT_INTERVAL_MS = 1000;
/** Heartbeats missed before a replica is dead. */
export const MISSED_HEARTBEATS_DEAD = 3;
/**
 * Largest heartbeat or reply datagram: under the 65507-byte UDP payload limit of IPv4. A
 * known-servers list that does not fit is left out and the replica fetches `GET /servers`.
 */
export const MAX_DATAGRAM_BYTES = 60_000;
/** Largest registration or held-paths body: 10 000 paths of up to 200 bytes. */
export const MAX_BODY_BYTES = 2 * 1024 * 1024;
/** Most paths a replica reports as held (`/locate`): bounds the index per replica. */
export const MAX_HELD_PATHS = 10_000;
/** Longest held path: the replica's URL limit. */
export const MAX_PATH_LENGTH = 8192;
/** Longest provider name. */
export const MAX_PROVIDER_LENGTH = 63;

/** Replica ids: the DNS config's rule (1..63 of `A-Za-z0-9_-`). */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,63}$/;

/** Load a replica reports with each heartbeat. */
export interface Load {
  /** Requests per second over the last heartbeat interval. */
  rps: number;
  /** Bytes held by its cache. */
  cacheBytes: number;
  /** Cache hits / (hits + misses) since start, 0..1 (0 before any request). */
  hitRatio: number;
}

/** What a replica registers. */
export interface Registration {
  id: string;
  /** IPv4 or IPv6 address clients use; empty: the address the request came from. */
  address: string;
  /** HTTP port of the replica (health checks and RTT probes go there). */
  port: number;
  /**
   * True when the port speaks HTTPS only (`--tls`), false when plain HTTP: the DNS server's
   * health checks and probes use that scheme. Absent (older replicas): https when the DNS server
   * has `--ca`, else http.
   */
  tls?: boolean;
  lat: number | null;
  lon: number | null;
  provider: string;
  /**
   * The replica's Ed25519 public key (base64 SPKI, its `DIR/node_key.json`): admitted with the
   * admin token at the first registration; later ones are signed with it.
   */
  key?: string;
  /**
   * An X25519 public key (base64 SPKI) made for this registration: with the server's (`dh` of
   * the answer) it derives the session token, which then never travels (`credentials.ts`).
   */
  dh?: string;
}

/** A known server as shared with replicas. */
export interface KnownServer {
  id: string;
  address: string;
  port: number;
  state: string;
  provider: string;
}

/** The answer to a registration. */
export interface RegisterReply {
  id: string;
  /**
   * Session token: heartbeats, held reports and the server's probe requests carry its MAC.
   * Empty when the registration gave `dh`: both sides derive it instead.
   */
  token: string;
  /** The server's X25519 public key for this registration (when the registration gave `dh`). */
  dh?: string;
  /** The address the server will answer with. */
  address: string;
  heartbeatPort: number;
  intervalMs: number;
  servers: KnownServer[];
  version: number;
  /** The DNS server's Ed25519 public key: it signs registration answers and `register` replies. */
  serverKey: string;
  /**
   * The zone the DNS server serves (`-n NAME`): the CDN's name, which the replica reports in
   * `/_cdn/health` as `cdnName`. Absent from older servers.
   */
  zone?: string;
}

/** One UDP heartbeat. */
export interface Heartbeat {
  id: string;
  /** The session token; not on the wire (the MAC proves it), set by the receiver. */
  token: string;
  seq: number;
  /** Sender's clock, ms since the epoch (0: not given, as in the registry's unit calls). */
  ts?: number;
  load: Load;
  /** The known-servers version the replica has (the reply carries the list when it differs). */
  known: number;
}

/** The server's reply to a heartbeat. */
export interface HeartbeatReply {
  seq: number;
  /** `ok`, or `register`: the server does not know this id/token (register again). */
  status: "ok" | "register";
  version: number;
  /** The list when `version` differs from the replica's `known`; null otherwise or too large. */
  servers: KnownServer[] | null;
  /** The replica the reply is for (`register` replies, which are signed, not MAC'd). */
  id?: string;
}

/** Largest difference between a heartbeat's `ts` and the server's clock. */
export const MAX_DATAGRAM_SKEW_MS = 60_000;
/**
 * Header of a control API answer MAC'd for a replica: `POST /register` (keyed with the admin
 * token) and `GET /servers?replica=ID&nonce=HEX` (keyed with the session token, over
 * `NONCE\nBODY`).
 */
export const MAC_HEADER = "x-nearcast-mac";
/** First bytes of a sealed datagram (format version 1). */
const SEAL_PREFIX = "nc1 ";
/** First bytes of a datagram signed by the DNS server's key. */
const SIGNED_PREFIX = "ns1 ";
/** Length of a base64 Ed25519 signature. */
const SIG_LENGTH = 88;
/**
 * Header of a registration's node signature: `id=ID, ts=MS, nonce=HEX, sig=BASE64`, the
 * replica's Ed25519 signature of `nearcast-req-v1\nPOST\n/register\nMS\nNONCE\nDIGEST`
 * (`replication/trust.ts`'s request text) with `x-nearcast-digest: DIGEST` of the body.
 */
export const NODE_SIGNATURE_HEADER = "x-nearcast-node-signature";

/** The text a signed datagram's signature covers. */
export function signedDatagramText(body: string): string {
  return `nearcast-datagram-v1\n${body}`;
}

/**
 * Signs a JSON datagram with `sign` (the DNS server's key): `ns1 SIG\nJSON`, SIG the base64
 * Ed25519 signature of {@link signedDatagramText}.
 */
export function signDatagram(sign: (text: string) => string, value: unknown): Uint8Array {
  const body = JSON.stringify(value);
  return new TextEncoder().encode(`${SIGNED_PREFIX}${sign(signedDatagramText(body))}\n${body}`);
}

/** Seals a JSON datagram: `nc1 HEX\nJSON`, HEX = HMAC-SHA256(key, JSON bytes). */
export function sealDatagram(key: string, value: unknown): Uint8Array {
  const body = JSON.stringify(value);
  return new TextEncoder().encode(`${SEAL_PREFIX}${macOf(key, body)}\n${body}`);
}

/**
 * Splits a sealed (`nc1`) or signed (`ns1`) datagram into its MAC or signature, JSON text and
 * parsed value; throws a `TypeError` on another shape. Check the MAC ({@link sealValid}) or
 * the signature before trusting the value.
 */
export function openDatagram(
  data: Uint8Array,
): { signed: boolean; mac: string; body: string; value: unknown } {
  if (data.length > MAX_DATAGRAM_BYTES) throw new RangeError("datagram too large");
  const text = new TextDecoder().decode(data);
  const nl = text.indexOf("\n");
  const signed = text.startsWith(SIGNED_PREFIX) && nl === SIGNED_PREFIX.length + SIG_LENGTH;
  if (!signed && (!text.startsWith(SEAL_PREFIX) || nl !== SEAL_PREFIX.length + 64)) {
    throw new TypeError("not a sealed datagram (nc1 MAC\\nJSON or ns1 SIG\\nJSON)");
  }
  const body = text.slice(nl + 1);
  return { signed, mac: text.slice(SEAL_PREFIX.length, nl), body, value: JSON.parse(body) };
}

/** True when `mac` is the MAC of `body` with `key` (compared in constant time). */
export function sealValid(key: string, body: string, mac: string): boolean {
  return sameSecret(mac, macOf(key, body));
}

/** Authorization scheme of HTTP calls between a replica and the DNS server (session MAC). */
export const SESSION_SCHEME = "Nearcast-Session";
/** Header of a request body's digest (`sha256=HEX`), covered by the session MAC. */
export const SESSION_DIGEST_HEADER = "x-nearcast-digest";

/** The text a session MAC covers. */
function sessionText(m: string, pathQuery: string, ts: number, nonce: string, digest: string) {
  return `nearcast-session-v1\n${m}\n${pathQuery}\n${ts}\n${nonce}\n${digest}`;
}

/** A fresh nonce: 16 random bytes, hex. */
export function newNonce(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** The digest header value of a body: `sha256=HEX` (of no bytes when empty). */
export function bodyDigest(body: string): string {
  return "sha256=" + createHash("sha256").update(body).digest("hex");
}

/**
 * Headers that authenticate an HTTP call with a session token without sending it:
 * `authorization: Nearcast-Session id=ID, ts=MS, nonce=HEX, mac=HEX` (MAC: HMAC-SHA256 of
 * `nearcast-session-v1\nMETHOD\nPATH?QUERY\nMS\nNONCE\nDIGEST` keyed with the token) and
 * `x-nearcast-digest: DIGEST`. The nonce also keys the answer's MAC ({@link answerMac}).
 */
export function sessionHeaders(
  token: string,
  id: string,
  method: string,
  pathQuery: string,
  body = "",
): { headers: Record<string, string>; nonce: string } {
  const ts = Date.now(), nonce = newNonce(), digest = bodyDigest(body);
  const mac = macOf(token, sessionText(method, pathQuery, ts, nonce, digest));
  return {
    nonce,
    headers: {
      authorization: `${SESSION_SCHEME} id=${
        encodeURIComponent(id)
      }, ts=${ts}, nonce=${nonce}, mac=${mac}`,
      [SESSION_DIGEST_HEADER]: digest,
    },
  };
}

/** The fields of a `Nearcast-Session` authorization, or null when it is not one. */
export function parseSession(
  req: Request,
): { id: string; ts: number; nonce: string; mac: string } | null {
  const h = req.headers.get("authorization") ?? "";
  if (!h.startsWith(`${SESSION_SCHEME} `)) return null;
  const f: Record<string, string> = {};
  for (const part of h.slice(SESSION_SCHEME.length + 1).split(",")) {
    const m = /^\s*([a-z]+)=([^\s,]*)\s*$/.exec(part);
    if (m === null) return null;
    f[m[1]] = m[2];
  }
  if (!f.id || !f.ts || !f.nonce || !f.mac) return null;
  let id: string;
  try {
    id = decodeURIComponent(f.id);
  } catch {
    return null;
  }
  return { id, ts: Number(f.ts), nonce: f.nonce, mac: f.mac };
}

/**
 * Checks a session-MAC'd request against `token`: the MAC, a time within
 * {@link MAX_DATAGRAM_SKEW_MS} and a nonce not seen before (`seen`). The body's digest is
 * checked by the caller once read (against the `x-nearcast-digest` header the MAC covers).
 */
export function sessionValid(
  req: Request,
  f: { ts: number; nonce: string; mac: string },
  token: string,
  seen: NonceSet,
): boolean {
  const u = new URL(req.url);
  const digest = req.headers.get(SESSION_DIGEST_HEADER) ?? "";
  const text = sessionText(req.method, u.pathname + u.search, f.ts, f.nonce, digest);
  return token !== "" && sealValid(token, text, f.mac) && seen.fresh(f.nonce, f.ts);
}

/** The MAC of an answer to a session-MAC'd request: HMAC-SHA256(token, NONCE\nBODY), hex. */
export function answerMac(token: string, nonce: string, body: string): string {
  return macOf(token, `${nonce}\n${body}`);
}

/** Nonces seen within the skew window (replays are refused). */
export class NonceSet {
  #seen = new Map<string, number>();
  /** True once per nonce, and only for a time within the skew of now. */
  fresh(nonce: string, ts: number, now = Date.now()): boolean {
    if (!Number.isSafeInteger(ts) || Math.abs(now - ts) > MAX_DATAGRAM_SKEW_MS) return false;
    if (!/^[0-9a-f]{32}$/.test(nonce) || this.#seen.has(nonce)) return false;
    if (this.#seen.size >= 100_000) {
      for (const [n, t] of this.#seen) if (now - t > MAX_DATAGRAM_SKEW_MS) this.#seen.delete(n);
      if (this.#seen.size >= 100_000) return false;
    }
    this.#seen.set(nonce, ts);
    return true;
  }
}

/** HMAC-SHA256 of `body` keyed with `key`, hex: the MAC of datagrams and control answers. */
export function macOf(key: string, body: string): string {
  return createHmac("sha256", key).update(body).digest("hex");
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function num(o: Obj, key: string, min: number, max: number, what: string): number {
  const v = o[key];
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
    throw new RangeError(`${what}: ${key} must be a number from ${min} to ${max}: received ${v}`);
  }
  return v;
}

/** Validates a registration body; throws `TypeError`/`RangeError` naming the bad field. */
export function parseRegistration(v: unknown): Registration {
  const what = "Cannot register";
  if (!isObj(v)) throw new TypeError(`${what}: the body must be a JSON object`);
  const known = ["id", "address", "port", "tls", "lat", "lon", "provider", "key", "dh"];
  for (const k of Object.keys(v)) {
    if (!known.includes(k)) throw new TypeError(`${what}: unknown field ${k} (known: ${known})`);
  }
  if (typeof v.id !== "string" || !ID_PATTERN.test(v.id)) {
    throw new TypeError(`${what}: id must be 1 to 63 of A-Z a-z 0-9 - _: received ${v.id}`);
  }
  const address = v.address ?? "";
  if (typeof address !== "string") throw new TypeError(`${what}: address must be a string`);
  const port = num(v, "port", 1, 65535, what);
  if (!Number.isInteger(port)) throw new RangeError(`${what}: port must be an integer`);
  const hasLat = v.lat !== undefined && v.lat !== null;
  const hasLon = v.lon !== undefined && v.lon !== null;
  if (hasLat !== hasLon) throw new TypeError(`${what}: give both lat and lon, or neither`);
  const lat = hasLat ? num(v, "lat", -90, 90, what) : null;
  const lon = hasLon ? num(v, "lon", -180, 180, what) : null;
  const provider = v.provider ?? "";
  if (typeof provider !== "string" || provider.length > MAX_PROVIDER_LENGTH) {
    throw new TypeError(`${what}: provider must be a string of at most ${MAX_PROVIDER_LENGTH}`);
  }
  const reg: Registration = { id: v.id, address, port, lat, lon, provider };
  if (v.tls !== undefined) {
    if (typeof v.tls !== "boolean") throw new TypeError(`${what}: tls must be true or false`);
    reg.tls = v.tls;
  }
  if (v.key !== undefined) {
    if (!validPublicKey(v.key)) {
      throw new TypeError(`${what}: key must be an Ed25519 public key (base64 SPKI)`);
    }
    reg.key = v.key;
  }
  if (v.dh !== undefined) {
    if (typeof v.dh !== "string" || !/^[A-Za-z0-9+/=]{40,100}$/.test(v.dh)) {
      throw new TypeError(`${what}: dh must be an X25519 public key (base64 SPKI)`);
    }
    reg.dh = v.dh;
  }
  return reg;
}

/** Validates a heartbeat datagram's JSON; throws on a bad shape. */
export function parseHeartbeat(v: unknown): Heartbeat {
  const what = "Bad heartbeat";
  if (!isObj(v)) throw new TypeError(`${what}: not a JSON object`);
  if (typeof v.id !== "string" || !ID_PATTERN.test(v.id)) throw new TypeError(`${what}: id`);
  const token = v.token ?? "";
  if (typeof token !== "string" || token.length > 128) throw new TypeError(`${what}: token`);
  if (!isObj(v.load)) throw new TypeError(`${what}: load must be an object`);
  const load: Load = {
    rps: num(v.load, "rps", 0, 1e9, what),
    cacheBytes: num(v.load, "cacheBytes", 0, Number.MAX_SAFE_INTEGER, what),
    hitRatio: num(v.load, "hitRatio", 0, 1, what),
  };
  return {
    id: v.id,
    token,
    ts: v.ts === undefined ? 0 : num(v, "ts", 0, Number.MAX_SAFE_INTEGER, what),
    seq: num(v, "seq", 0, Number.MAX_SAFE_INTEGER, what),
    known: num(v, "known", -1, Number.MAX_SAFE_INTEGER, what),
    load,
  };
}

/** Validates a held-paths report: a list of absolute paths. */
export function parseHeld(v: unknown): string[] {
  const what = "Bad held report";
  if (!isObj(v) || !Array.isArray(v.paths)) throw new TypeError(`${what}: {"paths": [...]} needed`);
  if (v.paths.length > MAX_HELD_PATHS) {
    throw new RangeError(`${what}: at most ${MAX_HELD_PATHS} paths: received ${v.paths.length}`);
  }
  for (const p of v.paths) {
    if (typeof p !== "string" || !p.startsWith("/") || p.length > MAX_PATH_LENGTH) {
      throw new TypeError(`${what}: each path must start with / (at most ${MAX_PATH_LENGTH})`);
    }
  }
  return v.paths as string[];
}

/**
 * Parses `HOST:PORT` (`[v6]:PORT` for IPv6) as given to `--announce`; throws a `SyntaxError`
 * saying what is wrong.
 */
export function parseHostPort(text: string, flag = "--announce"): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:\[\]]+)):([0-9]{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new SyntaxError(`${flag}: HOST:PORT (or [IPv6]:PORT) expected: received ${text}`);
  }
  return { host: m[1] ?? m[2], port };
}

/**
 * The DNS server's control API: HTTP on `--control PORT` and UDP heartbeats on the same port
 * number.
 *
 * | route | what |
 * | --- | --- |
 * | `GET /replicas` | every replica: state and why, last heartbeat, load, held paths count |
 * | `GET /servers` | the known-servers list (what heartbeat replies carry) |
 * | `GET /metrics` | Prometheus text format (`metrics.ts`) |
 * | `GET /explain?client=IP[&type=A\|AAAA]` | every replica's score and why the answer was chosen |
 * | `GET /locate/PATH[?client=IP]` | the live replicas that hold PATH, best first (404 names those not live) |
 * | `POST /register` | a replica registers (admin token with its key, or signed by its admitted key) |
 * | `DELETE /replicas/ID` | forget a replica (admin, or the replica's own session token) |
 * | `DELETE /replicas/ID/credential` | revoke a replica's key and drop it (admin) |
 * | `PUT /replicas/ID/held` | a replica reports the paths it holds (its session token) |
 * | `GET /dashboard`, `/dashboard/...` | the live dashboard and its actions (`dashboard/`) |
 *
 * Admin routes need `Authorization: Bearer TOKEN` when the server has `--admin-token`; without
 * one they are accepted from loopback clients only. The credential is checked before a body is
 * read; bodies are capped at `MAX_BODY_BYTES` while they are read (413). 401 answers a missing
 * or wrong token, 403 a valid token without the right (a session token on an admin route, or
 * on another replica's route).
 *
 * @module
 */
import { bearerToken, REALM, sameSecret } from "../../common/auth.ts";
import { BodyTooLarge, readBodyText } from "../../common/body.ts";
import {
  defaultMaxConns,
  type LimitedServer,
  type ListenerLimits,
  serveLimited,
} from "../../common/http_server.ts";
import { isLoopback, parseClientIp } from "../../common/ip.ts";
import type { FleetMonitor } from "./monitor.ts";
import type { SteeringEngine } from "../../dns/policy.ts";
import {
  bodyDigest,
  type HeartbeatReply,
  MAC_HEADER,
  macOf,
  MAX_BODY_BYTES,
  MAX_DATAGRAM_BYTES,
  MAX_DATAGRAM_SKEW_MS,
  NODE_SIGNATURE_HEADER,
  NonceSet,
  openDatagram,
  parseHeartbeat,
  parseHeld,
  parseRegistration,
  parseSession,
  type RegisterReply,
  sealDatagram,
  sealValid,
  SESSION_DIGEST_HEADER,
  sessionValid,
  signDatagram,
} from "../protocol.ts";
import {
  answerHeaders,
  dhSession,
  digestMatches,
  newDhKey,
  nodeSignature,
  SERVER_SIGNER_ID,
  signedBy,
} from "../credentials.ts";
import { Signer } from "../../replication/trust.ts";
import { type FleetRegistry, replicaScheme } from "./registry.ts";
import { controlMetrics } from "./metrics.ts";
import { controlRootPage } from "./root_page.ts";
import { wantsHtml } from "../../common/status_page.ts";
import type { Exposition } from "../../common/prometheus.ts";
import type { TlsKeyPair } from "../../tls/listen.ts";
import { ownError } from "../../common/error_body.ts";
import type { Dashboard } from "./dashboard/dashboard.ts";

/** Most signed `register` heartbeat replies per second (each costs an Ed25519 signature). */
export const MAX_REGISTER_REPLIES_PER_S = 200;

/** Attempts to find a port free for both TCP and UDP when asked for port 0. */
export const BIND_ATTEMPTS = 20;

/** Options of {@link startControl}. */
export interface ControlOptions {
  hostname: string;
  port: number;
  registry: FleetRegistry;
  policy: SteeringEngine;
  monitor: FleetMonitor;
  /** Replicas per answer (what `/explain` shows as the answer). */
  answers: number;
  adminToken: string | null;
  /** The zone served (`-n NAME`), sent in every registration answer (the CDN's name). */
  zone?: string;
  /** Clock of heartbeat times (tests); default `Date.now`. */
  now?: () => number;
  /** Limits of the HTTP listener; the connection cap defaults to {@link DEFAULT_CONTROL_MAX_CONNS}. */
  limits?: ListenerLimits;
  /** Serve HTTPS only with this certificate (`--cert`/`--key`). */
  tls?: TlsKeyPair;
  /** Writes the DNS server's figures into `GET /metrics` (`metrics.ts`). */
  metrics?: (e: Exposition) => void;
  /** Serves `/dashboard` (absent: those routes answer 404). */
  dashboard?: Dashboard;
  log?: (line: string) => void;
}

/**
 * Default connection cap of the control API: 512, or less under a low open-file limit
 * ({@link defaultMaxConns}), leaving descriptors for the DNS sockets and health checks.
 */
export const DEFAULT_CONTROL_MAX_CONNS = 512;

/** A running control API. */
export interface ControlServer {
  readonly port: number;
  readonly stats: { heartbeats: number; rejectedHeartbeats: number; badDatagrams: number };
  close(): Promise<void>;
}

const JSON_HEADERS = { "content-type": "application/json", "cache-control": "no-store" };

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body, null, 2) + "\n", { status, headers: JSON_HEADERS });
}

function error(status: number, message: string): Response {
  return ownError(json({ error: message }, status), message);
}

/** Whether a peer address (as the socket reports it, IPv4-mapped or not) is loopback. */
function fromLoopback(addr: string): boolean {
  const ip = parseClientIp(addr);
  return ip !== null && isLoopback(ip);
}

function unauthorized(message: string): Response {
  const res = error(401, message);
  res.headers.set("www-authenticate", `Bearer realm="${REALM}"`);
  return res;
}

function tooLarge(e: BodyTooLarge): Response {
  return error(413, e.message);
}

/** Who may call a control route (the checks are in the route's handler, named by `auth`). */
export type ControlAuth =
  | "open"
  | "admin"
  | "admin, or signed by the replica's admitted key"
  | "the replica's session"
  | "admin, or the replica's session";

/** One route of the control API. */
export interface ControlRoute {
  method: string;
  /** The path as shown to users (`ID`, `PATH`: a name; `[...]`: optional query). */
  path: string;
  pattern: RegExp;
  auth: ControlAuth;
}

/**
 * Every route of the control API, with its method and who may call it: a path no route matches
 * is 404 (naming these), a method the matching routes do not list is 405 with `Allow`. Bodies
 * are read only after the route's auth (`readBody*`, capped at {@link MAX_BODY_BYTES}).
 */
export const CONTROL_ROUTES: readonly ControlRoute[] = [
  { method: "GET", path: "/", pattern: /^\/$/, auth: "open" },
  { method: "GET", path: "/replicas", pattern: /^\/replicas$/, auth: "open" },
  { method: "GET", path: "/servers", pattern: /^\/servers$/, auth: "open" },
  { method: "GET", path: "/metrics", pattern: /^\/metrics$/, auth: "open" },
  {
    method: "GET",
    path: "/explain?client=IP[&type=A|AAAA]",
    pattern: /^\/explain$/,
    auth: "open",
  },
  { method: "GET", path: "/locate/PATH[?client=IP]", pattern: /^\/locate\/./, auth: "open" },
  {
    method: "POST",
    path: "/register",
    pattern: /^\/register$/,
    auth: "admin, or signed by the replica's admitted key",
  },
  {
    method: "DELETE",
    path: "/replicas/ID/credential",
    pattern: /^\/replicas\/[^/]+\/credential$/,
    auth: "admin",
  },
  {
    method: "PUT",
    path: "/replicas/ID/held",
    pattern: /^\/replicas\/[^/]+\/held$/,
    auth: "the replica's session",
  },
  {
    method: "DELETE",
    path: "/replicas/ID",
    pattern: /^\/replicas\/[^/]+$/,
    auth: "admin, or the replica's session",
  },
  { method: "GET", path: "/dashboard", pattern: /^\/dashboard$/, auth: "open" },
  { method: "GET", path: "/dashboard/events", pattern: /^\/dashboard\/events$/, auth: "open" },
  { method: "POST", path: "/dashboard/purge", pattern: /^\/dashboard\/purge$/, auth: "admin" },
  ...["POST", "DELETE"].map((method) => ({
    method,
    path: "/dashboard/replicas/ID/drain",
    pattern: /^\/dashboard\/replicas\/[^/]+\/drain$/,
    auth: "admin" as const,
  })),
];

const ROUTES = CONTROL_ROUTES.map((r) => `${r.method} ${r.path} (${r.auth})`);

/** Starts the HTTP API and the heartbeat socket; see the module doc. */
export async function startControl(o: ControlOptions): Promise<ControlServer> {
  const { registry, policy, monitor } = o;
  const log = o.log ?? (() => {});
  const stats = { heartbeats: 0, rejectedHeartbeats: 0, badDatagrams: 0 };
  const ac = new AbortController();

  /** A session token of some registered replica (valid, but not for admin routes). */
  function isSessionToken(token: string): boolean {
    let found = false;
    for (const e of registry.entries()) {
      if (e.token !== "" && sameSecret(token, e.token)) found = true;
    }
    return found;
  }

  function admin(req: Request, remote: string): Response | null {
    if (o.adminToken === null) {
      return fromLoopback(remote)
        ? null
        : error(403, "mutations are accepted from loopback only: start with --admin-token");
    }
    const given = bearerToken(req);
    if (given === null) return unauthorized("Authorization: Bearer ADMIN_TOKEN required");
    if (sameSecret(given, o.adminToken)) return null;
    if (isSessionToken(given)) return error(403, "a replica session token cannot do this");
    return unauthorized("wrong admin token");
  }

  const nonces = new NonceSet();
  const serverKey = registry.serverKey();
  const signer = new Signer(SERVER_SIGNER_ID, serverKey);
  /** Signed `register` replies left this second (signing costs CPU: bounded). */
  let registerBudget = { second: 0, left: MAX_REGISTER_REPLIES_PER_S };

  /**
   * True when `req` carries a valid session MAC of replica `id` (`Nearcast-Session`, see
   * `protocol.ts`): the token itself is not sent.
   */
  function sessionMac(req: Request, id: string): boolean {
    const f = parseSession(req);
    const token = registry.sessionToken(id);
    return f !== null && f.id === id && token !== null && sessionValid(req, f, token, nonces);
  }

  /**
   * Checks replica `id`'s credential before its body is read: a session MAC, or (older
   * replicas, tests) `Authorization: Bearer SESSION_TOKEN`.
   */
  function session(req: Request, id: string): Response | null {
    if (parseSession(req) !== null) {
      return sessionMac(req, id)
        ? null
        : unauthorized(`unknown replica ${id}, wrong session MAC, or a replay: register again`);
    }
    const given = bearerToken(req);
    if (given === null) return unauthorized("Authorization: Bearer SESSION_TOKEN required");
    if (registry.tokenMatches(id, given)) return null;
    if (isSessionToken(given) || (o.adminToken !== null && sameSecret(given, o.adminToken))) {
      return error(403, `this token is not replica ${id}'s session token`);
    }
    return unauthorized(`unknown replica ${id} or wrong session token: register again`);
  }

  /**
   * `POST /register`: admits the replica's key with the admin token (or from loopback without
   * one), or takes a registration signed by its admitted key alone (`credentials.ts`).
   */
  async function register(req: Request, remote: string): Promise<Response> {
    const sig = nodeSignature(req);
    let known = sig !== null && bearerToken(req) === null ? registry.credential(sig.id) : null;
    const byKnown = known !== null && signedBy(req, sig!, known, nonces);
    // Without --admin-token, a loopback client is the admin: a replica restarted there with a
    // new key (no --data) has it admitted, as before credentials.
    if (!byKnown && o.adminToken === null && fromLoopback(remote)) known = null;
    if (known === null) {
      if (sig !== null && bearerToken(req) === null && o.adminToken !== null) {
        return unauthorized(
          `replica ${sig.id} has no admitted key (new, or revoked): register once with the ` +
            "admin token",
        );
      }
      const denied = admin(req, remote);
      if (denied) return denied;
    } else if (!byKnown) {
      return unauthorized(`bad signature of ${sig!.id}, stale time or replayed nonce`);
    }
    const text = await readBodyText(req, MAX_BODY_BYTES, "registration body");
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (e) {
      throw new SyntaxError(`registration body is not JSON: ${(e as Error).message}`);
    }
    const reg = parseRegistration(body);
    let admitting: string | null = null;
    if (sig !== null) {
      if (!digestMatches(req, text)) {
        return error(400, "the body differs from the digest the signature covers");
      }
      if (sig.id !== reg.id) return unauthorized(`signed as ${sig.id}, registering ${reg.id}`);
      const key = known ?? reg.key;
      if (key === undefined) {
        throw new TypeError("Cannot register: a signed registration needs key");
      }
      if (reg.key !== undefined && reg.key !== key) {
        return unauthorized(
          `another key is admitted for ${reg.id}: only the admin token replaces it`,
        );
      }
      if (known === null && !signedBy(req, sig, key, nonces)) {
        return unauthorized(`bad signature of ${reg.id}, stale time or replayed nonce`);
      }
      if (registry.isRevoked(key)) {
        return unauthorized(
          `the key of ${reg.id} was revoked: make a new one (delete node_key.json)`,
        );
      }
      if (known === null) admitting = key;
    } else if (reg.key !== undefined) {
      throw new TypeError(
        `Cannot register: a key needs ${NODE_SIGNATURE_HEADER} (proof of the key)`,
      );
    }
    // With an X25519 exchange the session token is derived on both sides, never sent.
    let dh: { publicKey: string; token: string } | null = null;
    if (reg.dh !== undefined) {
      if (sig === null) throw new TypeError(`Cannot register: dh needs ${NODE_SIGNATURE_HEADER}`);
      const mine = newDhKey();
      dh = {
        publicKey: mine.publicKey,
        token: dhSession(mine.privateKey, reg.dh, reg.id, sig.nonce),
      };
    }
    const e = dh === null
      ? registry.register(reg, remote)
      : registry.register(reg, remote, dh.token);
    if (admitting !== null) registry.admit(reg.id, admitting); // once the registration is valid
    monitor.tick(); // check it now: it is answered as soon as the check passes
    const reply: RegisterReply = {
      id: e.id,
      token: dh === null ? e.token : "",
      ...(dh === null ? {} : { dh: dh.publicKey }),
      address: e.address,
      heartbeatPort: udpPort,
      intervalMs: registry.intervalMs,
      servers: registry.servers(),
      version: registry.version,
      serverKey: serverKey.publicKey,
      ...(o.zone === undefined ? {} : { zone: o.zone.toLowerCase().replace(/\.$/, "") }),
    };
    const out = JSON.stringify(reply);
    const headers: Record<string, string> = { ...JSON_HEADERS };
    // MAC'd with the admin token: a replica holding it learns the server's key from this answer;
    // signed with the server's key for the request's nonce: a replica that pinned the key knows
    // the session token came from this server, now.
    if (o.adminToken !== null) headers[MAC_HEADER] = macOf(o.adminToken, out);
    if (sig !== null) Object.assign(headers, answerHeaders(signer, sig.nonce, 200, out));
    return new Response(out, { headers });
  }

  function clientOf(url: URL, remote: string) {
    const text = url.searchParams.get("client") ?? remote;
    const ip = parseClientIp(text.replace(/^\[|\]$/g, ""));
    if (ip === null) throw new TypeError(`client must be an IP address: received ${text}`);
    return { family: ip.family, bytes: ip.bytes, bits: ip.family === 4 ? 32 : 128 };
  }

  function familyOf(url: URL, clientFamily: 4 | 6): 4 | 6 {
    const t = (url.searchParams.get("type") ?? "").toUpperCase();
    if (t === "") return clientFamily;
    if (t === "A") return 4;
    if (t === "AAAA") return 6;
    throw new TypeError(`type must be A or AAAA: received ${t}`);
  }

  async function route(req: Request, remote: string): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname;
    const m = req.method;
    const matching = CONTROL_ROUTES.filter((r) => r.pattern.test(path));
    if (matching.length === 0) {
      return error(404, `no such route: ${m} ${path} (routes: ${ROUTES.join("; ")})`);
    }
    if (!matching.some((r) => r.method === m)) {
      const allow = matching.map((r) => r.method).join(", ");
      const res = error(405, `use ${allow}`);
      res.headers.set("allow", allow);
      return res;
    }
    if (path === "/" && m === "GET") {
      return wantsHtml(req) ? controlRootPage(registry, policy) : json({ routes: ROUTES });
    }
    if (path === "/metrics") return controlMetrics(o, stats, http);
    if (path.startsWith("/dashboard")) {
      if (o.dashboard === undefined) return error(404, "this server has no dashboard");
      return await o.dashboard.handle(req, path, (r) => admin(r, remote));
    }
    if (path === "/replicas" && m === "GET") {
      return json({
        policy: policy.mode,
        intervalMs: registry.intervalMs,
        version: registry.version,
        monitor: monitor.stats,
        heartbeats: stats,
        listener: { ...http?.stats, maxConns: http?.limits.maxConns },
        replicas: registry.view(),
      });
    }
    if (path === "/servers" && m === "GET") {
      const body = { version: registry.version, servers: registry.servers() };
      // A replica asks with its id and a nonce: the answer is MAC'd with its session token.
      const id = url.searchParams.get("replica"), nonce = url.searchParams.get("nonce") ?? "";
      const token = id === null ? null : registry.sessionToken(id);
      if (token === null || !/^[0-9a-f]{32}$/.test(nonce)) return json(body);
      const text = JSON.stringify(body);
      return new Response(text, {
        headers: { ...JSON_HEADERS, [MAC_HEADER]: macOf(token, `${nonce}\n${text}`) },
      });
    }
    if (path === "/explain" && m === "GET") {
      const client = clientOf(url, remote);
      return json(policy.explain(client, familyOf(url, client.family), o.answers));
    }
    if (path.startsWith("/locate/") && m === "GET") {
      const want = decodeURIComponent(path.slice("/locate".length));
      const client = clientOf(url, remote);
      const ex = policy.explain(client, familyOf(url, client.family), Infinity);
      const holders = ex.replicas.filter((r) =>
        r.rank !== null && registry.get(r.id)?.held.includes(want)
      ).sort((a, b) => a.rank! - b.rank!);
      if (holders.length === 0) {
        // Replicas that hold it but are not answered now (dead, pending, draining).
        const notLive = registry.entries().filter((e) => e.held.includes(want)).map((e) => e.id);
        const message = `no live replica holds ${want}`;
        return ownError(json({ error: message, notLive }, 404), message);
      }
      const urls = holders.map((h) => {
        const e = registry.get(h.id)!;
        const host = e.address.includes(":") ? `[${e.address}]` : e.address;
        return `${replicaScheme(e, "http")}://${host}:${e.port}${want}`;
      });
      return json({
        path: want,
        id: holders[0].id,
        url: urls[0],
        holders: holders.map((h) => h.id),
        urls,
        policy: policy.mode,
      });
    }
    if (path === "/register") {
      return await register(req, remote);
    }
    const cred = /^\/replicas\/([^/]+)\/credential$/.exec(path);
    if (cred) {
      const denied = admin(req, remote);
      if (denied) return denied;
      const id = decodeURIComponent(cred[1]);
      return registry.revoke(id)
        ? json({ revoked: id })
        : error(404, `no replica ${id} and no key admitted for it`);
    }
    const held = /^\/replicas\/([^/]+)\/held$/.exec(path);
    if (held) {
      const id = decodeURIComponent(held[1]);
      const mac = parseSession(req) !== null;
      const denied = session(req, id);
      if (denied) return denied;
      const text = await readBodyText(req, MAX_BODY_BYTES, "held-paths body");
      if (mac && bodyDigest(text) !== req.headers.get(SESSION_DIGEST_HEADER)) {
        return error(400, "the body differs from the digest the session MAC covers");
      }
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch (e) {
        throw new SyntaxError(`held-paths body is not JSON: ${(e as Error).message}`);
      }
      const paths = parseHeld(body);
      const token = mac ? registry.sessionToken(id) ?? "" : bearerToken(req) ?? "";
      if (!registry.setHeld(id, token, paths)) {
        return unauthorized(`unknown replica ${id} or wrong session token: register again`);
      }
      return json({ id, held: paths.length });
    }
    const one = /^\/replicas\/([^/]+)$/.exec(path);
    if (one) {
      const id = decodeURIComponent(one[1]);
      // A replica may remove itself with its session token: deregistration at shutdown.
      const self = parseSession(req) !== null
        ? sessionMac(req, id)
        : registry.tokenMatches(id, bearerToken(req) ?? "");
      const denied = self ? null : admin(req, remote);
      if (denied) return denied;
      return registry.remove(id) ? json({ removed: id }) : error(404, `no replica ${id}`);
    }
    return error(404, `no such route: ${m} ${path} (routes: ${ROUTES.join("; ")})`);
  }

  const handler = async (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => {
    try {
      return await route(req, info.remoteAddr.hostname);
    } catch (e) {
      if (e instanceof BodyTooLarge) return tooLarge(e);
      if (
        e instanceof TypeError || e instanceof RangeError || e instanceof SyntaxError ||
        e instanceof URIError
      ) {
        return error(400, e.message);
      }
      throw e;
    }
  };
  let http: LimitedServer | null = null;
  let udp: Deno.DatagramConn | null = null;
  for (let attempt = 1; udp === null; attempt++) {
    http = serveLimited({
      maxConns: Math.min(DEFAULT_CONTROL_MAX_CONNS, defaultMaxConns()),
      ...o.limits,
      hostname: o.hostname,
      port: o.port,
      tls: o.tls,
      signal: ac.signal,
      name: "control",
      log,
      onListen: () => {},
      onError: (e) => {
        log(`control: internal error: ${(e as Error)?.stack ?? e}`);
        return error(500, "internal error");
      },
    }, handler);
    const port = http.addr.port;
    try {
      udp = Deno.listenDatagram({ hostname: o.hostname, port, transport: "udp" });
    } catch (e) {
      await http.shutdown();
      if (o.port !== 0 || !(e instanceof Deno.errors.AddrInUse) || attempt >= BIND_ATTEMPTS) {
        throw e;
      }
    }
  }
  const sock = udp!;
  const udpPort = (sock.addr as Deno.NetAddr).port;
  const now = o.now ?? Date.now;

  /**
   * Checks one sealed heartbeat (`protocol.ts`) and makes the sealed answer, or null for no
   * answer: not a heartbeat, a stale time or a replayed sequence number.
   */
  function answer(data: Uint8Array): Uint8Array | null {
    const d = openDatagram(data);
    const raw = d.value as { id?: unknown };
    const token = typeof raw?.id === "string" ? registry.sessionToken(raw.id) : null;
    const known = token !== null && sealValid(token, d.body, d.mac);
    const hb = parseHeartbeat({ ...(d.value as object), token: known ? token : "" });
    if (known) {
      if (Math.abs(now() - (hb.ts ?? 0)) > MAX_DATAGRAM_SKEW_MS) {
        throw new RangeError(`heartbeat of ${hb.id}: ts ${hb.ts} is off by more than the skew`);
      }
      if (hb.seq <= (registry.get(hb.id)?.seq ?? 0)) {
        throw new RangeError(`heartbeat of ${hb.id}: seq ${hb.seq} replayed`);
      }
    }
    const status = known ? registry.heartbeat(hb) : "register";
    if (status === "ok") stats.heartbeats++;
    else stats.rejectedHeartbeats++;
    const reply: HeartbeatReply = { seq: hb.seq, status, version: registry.version, servers: null };
    if (status === "ok" && hb.known !== registry.version) {
      const servers = registry.servers();
      const size = JSON.stringify(servers).length;
      if (size < MAX_DATAGRAM_BYTES - 200) reply.servers = servers;
    }
    if (status === "ok" && registry.get(hb.id)?.state !== "alive") monitor.tick();
    if (status === "ok") return sealDatagram(token!, reply);
    // A `register` answer cannot use a session token the server does not have: it is signed
    // with the server's key (which the replica pinned), for this id, within a budget.
    const second = Math.floor(now() / 1000);
    if (registerBudget.second !== second) {
      registerBudget = { second, left: MAX_REGISTER_REPLIES_PER_S };
    }
    if (registerBudget.left <= 0) return null;
    registerBudget.left--;
    return signDatagram((t) => signer.sign(t), { ...reply, id: hb.id });
  }

  const loop = (async () => {
    for (;;) {
      let data: Uint8Array, from: Deno.Addr;
      try {
        [data, from] = await sock.receive();
      } catch (e) {
        if (ac.signal.aborted || e instanceof Deno.errors.BadResource) return; // closed
        log(`control: heartbeat socket: ${(e as Error).message}`);
        continue;
      }
      let reply: Uint8Array | null;
      try {
        reply = answer(data);
      } catch (e) {
        stats.badDatagrams++;
        if (!(e instanceof TypeError || e instanceof RangeError || e instanceof SyntaxError)) {
          // The edge of one datagram: a bug must not stop the heartbeat loop; it is logged.
          log(`control: heartbeat handling failed: ${(e as Error)?.stack ?? e}`);
        }
        continue; // not a valid heartbeat: no answer (no reflection of junk)
      }
      if (reply === null) continue;
      try {
        await sock.send(reply, from);
      } catch (e) {
        // The replica went away (ICMP unreachable surfaces here); it retries.
        if (
          !(e instanceof Deno.errors.ConnectionRefused ||
            e instanceof Deno.errors.NetworkUnreachable)
        ) {
          log(`control: cannot answer a heartbeat: ${(e as Error).message}`);
        }
      }
    }
  })();

  let closing: Promise<void> | null = null;
  return {
    port: udpPort,
    stats,
    close() {
      closing ??= (async () => {
        ac.abort();
        sock.close();
        await Promise.allSettled([loop, http!.shutdown()]);
      })();
      return closing;
    },
  };
}

/**
 * The replica's side of the fleet: registers with the DNS server's control API (`--announce
 * HOST:PORT`) signed with its node key, presenting the admin token only to have that key admitted
 * (`credentials.ts`), sends a UDP heartbeat with its load every interval sealed
 * with the session token (`protocol.ts`), keeps the known-servers list the replies carry (only
 * replies sealed by the DNS server count: forged or replayed ones are dropped), reports the
 * paths it holds, and tells whether a probe request (`GET /_cdn/probe`) is authenticated with
 * the session token of its registration ({@link FleetAgent.session}).
 *
 * One agent talks to one DNS server; a replica announcing to several runs one per server
 * (`fleet.ts`), each with its own registration, session and heartbeats.
 *
 * @module
 */
import { bearerToken, sameSecret } from "../../common/auth.ts";
import {
  type HeartbeatReply,
  type KnownServer,
  MAC_HEADER,
  NonceSet,
  openDatagram,
  parseHostPort,
  parseSession,
  type RegisterReply,
  type Registration,
  sealDatagram,
  sealValid,
  sessionHeaders,
  sessionValid,
  signedDatagramText,
} from "../protocol.ts";
import {
  answerSigned,
  dhSession,
  newDhKey,
  readPin,
  registrationHeaders,
  writePin,
} from "../credentials.ts";
import {
  newKey,
  Signer,
  type StoredKey,
  validPublicKey,
  verifySignature,
} from "../../replication/trust.ts";
import { peerFetch } from "../../tls/client.ts";

/** First delay before retrying a failed registration; doubled up to {@link REGISTER_BACKOFF_MAX_MS}. */
export const REGISTER_BACKOFF_MS = 250;
/** Longest delay between registration attempts. */
export const REGISTER_BACKOFF_MAX_MS = 5_000;
/** Time allowed for a registration or held-paths request. */
export const REQUEST_TIMEOUT_MS = 5_000;
/** How often the held paths are compared with what was last reported. */
export const HELD_INTERVAL_MS = 5_000;
/**
 * Heartbeats without an authentic reply, while replies this agent cannot verify arrive, after
 * which it registers again: the DNS server restarted without its data, and its `register`
 * replies are signed with a key this replica has not pinned.
 */
export const SILENT_BEATS_REREGISTER = 5;
/**
 * Heartbeats without any reply after which the agent registers again (the server moved its
 * heartbeat port, or lost this replica): long enough that a DNS server restarted on its data
 * finds the replica's heartbeats again without a registration.
 */
export const MUTE_BEATS_REREGISTER = 30;
/** Time allowed for deregistration at shutdown: a stopping replica must not hang on it. */
export const DEREGISTER_TIMEOUT_MS = 1_000;

/** Counters the replica reads its load from. */
export interface LoadSource {
  requests: number;
  hits: number;
  misses: number;
  cacheBytes: number;
}

/** Options of {@link FleetAgent}: what the replica registers, and how the agent runs. */
export interface AgentOptions extends Registration {
  /** The control API, `HOST:PORT`. */
  announce: string;
  /**
   * The admin token (`--admin-token`): presented only to admit this replica's key (first
   * registration, or when the DNS server no longer knows the key), never otherwise.
   */
  adminToken: string | null;
  /** This replica's key pair (`DIR/node_key.json`); without one, a key made for this process. */
  nodeKey?: StoredKey;
  /** Where the DNS server's key is pinned (`DIR/fleet_server.json`); null: in memory only. */
  pinFile?: string | null;
  load: () => LoadSource;
  /** Paths held (uploads, cached URLs), reported for `/locate`. */
  held?: () => string[];
  /** Called with the zone (the CDN's name) a registration answer names. */
  onZone?: (zone: string, announce: string) => void;
  log?: (line: string) => void;
}

/**
 * True for the failures a request to the DNS server can meet: unreachable or cut (`TypeError`
 * from fetch), timed out or aborted (`DOMException`), an answer that is not JSON.
 */
function expected(e: unknown): boolean {
  return e instanceof TypeError || e instanceof DOMException || e instanceof SyntaxError ||
    e instanceof RefusedError;
}

/** The DNS server refused (`status`), or its answer is not authentic (status 0). */
class RefusedError extends Error {
  constructor(message: string, readonly status = 0) {
    super(message);
  }
}

/** See the module doc. */
export class FleetAgent {
  /** The known-servers list from the latest heartbeat reply (or registration). */
  servers: KnownServer[] = [];
  version = -1;
  registered = false;
  readonly stats = {
    registrations: 0,
    heartbeats: 0,
    replies: 0,
    /** Datagrams dropped: not sealed by the DNS server, replayed, or not a reply. */
    badReplies: 0,
    heldReports: 0,
  };
  readonly #o: AgentOptions;
  readonly #dns: { host: string; port: number };
  readonly #log: (line: string) => void;
  readonly #ac = new AbortController();
  #token = "";
  #heartbeatPort = 0;
  #seq = 0;
  readonly #nodeKey: StoredKey;
  readonly #signer: Signer;
  /** The DNS server's key (pinned): it signs registration answers and `register` replies. */
  #serverKey: string | null;
  /** The DNS server refused the key (not admitted, or forgotten): admit it with the token. */
  #keyRefused = false;
  /** A heartbeat could not be sent (logged once). */
  #sendFailed = false;
  /** Nonces of probe requests seen (replays are refused). */
  #nonces = new NonceSet();
  /** Highest `seq` answered so far (replies at or below it are replays). */
  #answered = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #intervalMs = 1000;
  /** When the latest authentic reply (or the registration) arrived (performance.now). */
  #lastReply = 0;
  /** A reply this agent could not verify arrived since the latest authentic one. */
  #unverified = false;
  #heldTimer: ReturnType<typeof setInterval> | undefined;
  #heldSent = "";
  #sock: Deno.DatagramConn | null = null;
  #registering: Promise<void> | null = null;
  #last = { at: performance.now(), requests: 0 };
  readonly #tasks = new Set<Promise<unknown>>();

  constructor(o: AgentOptions) {
    this.#o = o;
    this.#dns = parseHostPort(o.announce.replace(/^https:\/\//i, ""));
    this.#log = o.log ?? (() => {});
    this.#nodeKey = o.nodeKey ?? newKey();
    this.#signer = new Signer(o.id, this.#nodeKey);
    this.#serverKey = readPin(o.pinFile ?? null, o.announce);
  }

  get #base(): string {
    const h = this.#dns.host;
    // `--announce https://HOST:PORT`: a control API served with --cert (verified with --ca).
    const scheme = /^https:\/\//i.test(this.#o.announce) ? "https" : "http";
    return `${scheme}://${h.includes(":") ? `[${h}]` : h}:${this.#dns.port}`;
  }

  /**
   * Keeps a background task for {@link close} to wait on. The tasks handle the failures they
   * expect (network, refusals); anything else is a bug, logged here, at the edge.
   */
  #track(p: Promise<unknown>): void {
    const t = p.then(() => {}, (e) => {
      this.#log(`fleet: background task failed: ${(e as Error)?.stack ?? e}`);
    }).finally(() => this.#tasks.delete(t));
    this.#tasks.add(t);
  }

  /** The local UDP port heartbeats leave from and replies come to (0 before start). */
  get localPort(): number {
    return (this.#sock?.addr as Deno.NetAddr | undefined)?.port ?? 0;
  }

  /** Registers (retrying in the background until it succeeds), then heartbeats. */
  start(): void {
    const v6 = this.#dns.host.includes(":");
    this.#sock = Deno.listenDatagram({
      hostname: v6 ? "::" : "0.0.0.0",
      port: 0,
      transport: "udp",
    });
    this.#track(this.#receive(this.#sock));
    this.#register();
    this.#heldTimer = setInterval(() => this.#track(this.#reportHeld()), HELD_INTERVAL_MS);
  }

  #register(): void {
    this.registered = false;
    this.#registering ??= (async () => {
      let delay = REGISTER_BACKOFF_MS;
      while (!this.#ac.signal.aborted) {
        // The admin token goes only where the key is not admitted (or the server's key is not
        // known yet): a replica that registered once comes back by its key alone.
        const admin = this.#o.adminToken;
        const admitting = admin !== null && (this.#serverKey === null || this.#keyRefused);
        try {
          await this.#registerOnce(admitting ? admin : null);
          this.#keyRefused = false;
          return;
        } catch (e) {
          if (this.#ac.signal.aborted) return;
          if (!expected(e)) throw e;
          this.#log(`fleet: cannot register with ${this.#base}: ${(e as Error).message}`);
          if (e instanceof RefusedError && e.status === 401 && !admitting && admin !== null) {
            this.#keyRefused = true; // not admitted (any more): admit it now with the token
            continue;
          }
          await new Promise<void>((r) => {
            const t = setTimeout(r, delay);
            this.#ac.signal.addEventListener("abort", () => {
              clearTimeout(t);
              r();
            }, { once: true });
          });
          delay = Math.min(delay * 2, REGISTER_BACKOFF_MAX_MS);
        }
      }
    })().finally(() => this.#registering = null);
    this.#track(this.#registering);
  }

  /** One registration, signed with the node key (and `admin` when admitting the key). */
  async #registerOnce(admin: string | null): Promise<void> {
    const dh = newDhKey();
    const body = JSON.stringify(
      {
        id: this.#o.id,
        address: this.#o.address,
        port: this.#o.port,
        tls: this.#o.tls ?? false,
        lat: this.#o.lat,
        lon: this.#o.lon,
        provider: this.#o.provider,
        key: this.#nodeKey.publicKey,
        dh: dh.publicKey,
      } satisfies Registration,
    );
    const { headers, nonce } = registrationHeaders(this.#signer, "/register", body, admin);
    const res = await peerFetch(`${this.#base}/register`, {
      method: "POST",
      headers,
      body,
      signal: AbortSignal.any([this.#ac.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
    });
    const text = await res.text();
    if (res.status !== 200) {
      throw new RefusedError(`HTTP ${res.status}: ${text.trim()}`, res.status);
    }
    const r = JSON.parse(text) as RegisterReply;
    // Whose key signs the answer. Admitting: the key the answer names, MAC'd with the admin
    // token (a server without one sends no MAC: it admits from loopback only, and its key is
    // taken as it comes, as its answers were before keys). By the key alone: the pinned key.
    const mac = res.headers.get(MAC_HEADER);
    let key: string;
    if (admin !== null) {
      if (mac !== null && !sealValid(admin, text, mac)) {
        throw new RefusedError("the answer's MAC is not the admin token's: not our DNS server?");
      }
      key = r.serverKey;
    } else if (this.#serverKey !== null) key = this.#serverKey;
    else if (mac === null) key = r.serverKey;
    else {throw new RefusedError(
        "no pinned key to check the DNS server's answer: admin token needed",
      );}
    if (!validPublicKey(key) || !answerSigned(key, nonce, res.status, res.headers, text)) {
      // By the key alone, a server with a new key looks like a refusal: admit again (token).
      throw new RefusedError("the answer is not signed by the DNS server's key", admin ? 0 : 401);
    }
    if (key !== this.#serverKey) {
      this.#serverKey = key;
      writePin(this.#o.pinFile ?? null, this.#o.announce, key);
    }
    // The session token: derived from the X25519 exchange (never sent), or (an older server)
    // the one in the answer.
    this.#token = typeof r.dh === "string"
      ? dhSession(dh.privateKey, r.dh, this.#o.id, nonce)
      : r.token;
    this.#heartbeatPort = r.heartbeatPort;
    this.servers = r.servers;
    this.version = r.version;
    if (typeof r.zone === "string" && r.zone !== "") this.#o.onZone?.(r.zone, this.#o.announce);
    this.registered = true;
    this.stats.registrations++;
    this.#log(
      `fleet: registered as ${r.id} (${r.address}) with ${this.#base}` +
        (admin === null ? " by its key" : ", key admitted with the admin token"),
    );
    clearInterval(this.#timer);
    this.#intervalMs = r.intervalMs;
    this.#lastReply = performance.now();
    this.#unverified = false;
    this.#timer = setInterval(() => this.#beat(), r.intervalMs);
    this.#beat();
    this.#heldSent = "";
    this.#track(this.#reportHeld());
  }

  #beat(): void {
    const sock = this.#sock;
    if (sock === null || !this.registered) return;
    const now = performance.now();
    const beats = this.#unverified ? SILENT_BEATS_REREGISTER : MUTE_BEATS_REREGISTER;
    if (now - this.#lastReply > beats * this.#intervalMs) {
      this.#log(
        `fleet: no authentic reply from ${this.#base} for ${beats} heartbeats` +
          `${this.#unverified ? " (unverified ones came)" : ""}: registering again`,
      );
      this.#unverified = false;
      clearInterval(this.#timer);
      this.#register();
      return;
    }
    const l = this.#o.load();
    const secs = (now - this.#last.at) / 1000;
    const rps = secs > 0 ? Math.max(0, l.requests - this.#last.requests) / secs : 0;
    this.#last = { at: now, requests: l.requests };
    const lookups = l.hits + l.misses;
    const msg = {
      id: this.#o.id,
      ts: Date.now(),
      seq: ++this.#seq,
      known: this.version,
      load: {
        rps: Math.round(rps * 10) / 10,
        cacheBytes: l.cacheBytes,
        hitRatio: lookups === 0 ? 0 : Math.round((l.hits / lookups) * 1000) / 1000,
      },
    };
    this.stats.heartbeats++;
    sock.send(sealDatagram(this.#token, msg), {
      transport: "udp",
      hostname: this.#dns.host,
      port: this.#heartbeatPort,
    }).then(() => {
      this.#sendFailed = false;
    }, (e) => {
      // Unreachable (ICMP errors surface here): the DNS server will notice the silence.
      if (e instanceof Deno.errors.BadResource && this.#ac.signal.aborted) return; // closed
      if (!this.#sendFailed) this.#log(`fleet: cannot send a heartbeat: ${(e as Error).message}`);
      this.#sendFailed = true;
    });
  }

  /**
   * The reply in `data` when it is sealed by the DNS server: with this session's token and for
   * a heartbeat sent and not answered yet, or (`register`) with the admin token. Null otherwise.
   */
  #authentic(data: Uint8Array): HeartbeatReply | null {
    let d;
    try {
      d = openDatagram(data);
    } catch (e) {
      if (e instanceof TypeError || e instanceof RangeError || e instanceof SyntaxError) {
        return null;
      }
      throw e;
    }
    const r = d.value as HeartbeatReply;
    if (typeof r !== "object" || r === null || typeof r.seq !== "number") return null;
    if (r.status === "register") {
      // Signed by the DNS server's key, for this replica and a heartbeat not answered yet.
      const key = this.#serverKey;
      if (
        !d.signed || key === null || r.id !== this.#o.id ||
        !verifySignature(key, signedDatagramText(d.body), d.mac)
      ) {
        return null;
      }
    } else if (d.signed || this.#token === "" || !sealValid(this.#token, d.body, d.mac)) {
      return null;
    }
    if (r.seq <= this.#answered || r.seq > this.#seq) return null; // replayed or never sent
    this.#answered = r.seq;
    return r;
  }

  async #receive(sock: Deno.DatagramConn): Promise<void> {
    for (;;) {
      let data: Uint8Array;
      try {
        [data] = await sock.receive();
      } catch (e) {
        if (this.#ac.signal.aborted || e instanceof Deno.errors.BadResource) return; // closed
        this.#log(`fleet: heartbeat socket: ${(e as Error).message}`);
        continue;
      }
      const r = this.#authentic(data);
      if (r === null) {
        this.stats.badReplies++;
        this.#unverified = true;
        continue;
      }
      this.stats.replies++;
      this.#lastReply = performance.now();
      this.#unverified = false;
      if (r.status === "register") {
        this.#log("fleet: the DNS server does not know this replica: registering again");
        clearInterval(this.#timer);
        this.#register();
        continue;
      }
      if (Array.isArray(r.servers)) {
        this.servers = r.servers;
        this.version = r.version;
      } else if (r.version !== this.version) {
        this.#track(this.#fetchServers());
      }
    }
  }

  /** Fetches the known-servers list, MAC'd with the session token over a fresh nonce. */
  async #fetchServers(): Promise<void> {
    const nonce = [...crypto.getRandomValues(new Uint8Array(16))]
      .map((b) => b.toString(16).padStart(2, "0")).join("");
    const q = `replica=${encodeURIComponent(this.#o.id)}&nonce=${nonce}`;
    try {
      const res = await peerFetch(`${this.#base}/servers?${q}`, {
        signal: AbortSignal.any([this.#ac.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
      });
      const text = await res.text();
      if (!sealValid(this.#token, `${nonce}\n${text}`, res.headers.get(MAC_HEADER) ?? "")) {
        this.stats.badReplies++;
        this.#log(`fleet: ${this.#base}/servers answered ${res.status} without a valid MAC`);
        return;
      }
      const body = JSON.parse(text) as { version: number; servers: KnownServer[] };
      this.servers = body.servers;
      this.version = body.version;
    } catch (e) {
      if (!expected(e)) throw e;
      // The next heartbeat reply tries again.
      if (!this.#ac.signal.aborted) {
        this.#log(`fleet: cannot fetch servers: ${(e as Error).message}`);
      }
    }
  }

  async #reportHeld(): Promise<void> {
    if (!this.registered || this.#o.held === undefined) return;
    const paths = this.#o.held().slice(0, 10_000);
    const text = JSON.stringify({ paths });
    if (text === this.#heldSent) return;
    const path = `/replicas/${encodeURIComponent(this.#o.id)}/held`;
    const { headers } = sessionHeaders(this.#token, this.#o.id, "PUT", path, text);
    try {
      const res = await peerFetch(`${this.#base}${path}`, {
        method: "PUT",
        headers: { "content-type": "application/json", ...headers },
        body: text,
        signal: AbortSignal.any([this.#ac.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
      });
      await res.body?.cancel();
      if (res.status === 200) {
        this.#heldSent = text;
        this.stats.heldReports++;
      }
    } catch (e) {
      if (!expected(e)) throw e; // else retried on the next round
    }
  }

  /** The DNS control API this agent registers with, as given to `--announce`. */
  get announce(): string {
    return this.#o.announce;
  }

  /**
   * The session of a request the DNS server signed for this replica (`Nearcast-Session` MAC
   * with this registration's token, or an older server's bearer token), or null when it is not
   * this agent's server's. `nonce` (null for a bearer token) is what the answer's MAC covers.
   */
  session(req: Request): { token: string; nonce: string | null } | null {
    const f = parseSession(req);
    if (f !== null) {
      return f.id === this.#o.id && sessionValid(req, f, this.#token, this.#nonces)
        ? { token: this.#token, nonce: f.nonce }
        : null;
    }
    const given = bearerToken(req);
    return this.#token !== "" && given !== null && sameSecret(given, this.#token)
      ? { token: this.#token, nonce: null }
      : null;
  }

  /**
   * Stops heartbeats, then asks the DNS server to forget this replica (`DELETE /replicas/ID`
   * with the session token) so it is no longer answered, within {@link DEREGISTER_TIMEOUT_MS}.
   * True when the server confirmed; the agent is closed either way.
   */
  async deregister(): Promise<boolean> {
    const token = this.#token, registered = this.registered;
    await this.close();
    if (!registered) return false;
    const url = `${this.#base}/replicas/${encodeURIComponent(this.#o.id)}`;
    try {
      const path = new URL(url).pathname;
      const res = await peerFetch(url, {
        method: "DELETE",
        headers: sessionHeaders(token, this.#o.id, "DELETE", path).headers,
        signal: AbortSignal.timeout(DEREGISTER_TIMEOUT_MS),
      });
      await res.body?.cancel();
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      this.#log(`fleet: deregistered ${this.#o.id} from ${this.#base}`);
      return true;
    } catch (e) {
      this.#log(`fleet: cannot deregister from ${this.#base}: ${(e as Error).message}`);
      return false;
    }
  }

  /** Stops heartbeats and background requests; resolves when they have ended. */
  async close(): Promise<void> {
    this.#ac.abort();
    clearInterval(this.#timer);
    clearInterval(this.#heldTimer);
    this.#sock?.close();
    this.#sock = null;
    await Promise.allSettled([...this.#tasks]);
  }
}

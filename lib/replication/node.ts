/**
 * The replication side of a node: accepts uploads and deletes, stores them durably (pinned in
 * the cache, `state.ts`), pushes them to every known node (`push.ts`), keeps the server list
 * (`membership.ts`) in sync through heartbeats (`heartbeat.ts`), repairs divergence by comparing manifests
 * (`sync.ts`; at start-up before it reports ready, and on every heartbeat), and authenticates
 * every node-to-node call both ways (`trust.ts`, `peer_auth.ts`).
 *
 * Encodings: every route that takes or answers a record or an object stream reads a body as
 * JSON or Protobuf by its `Content-Type` and answers in the encoding `Accept` asks for
 * (`lib/wire/`); what this node sends to others is `wire` (`--wire`, JSON by default).
 *
 * Routes (all under `/_cdn/`): "admin" needs `Authorization: Bearer ADMIN_TOKEN`, "node" a
 * node signature (`trust.ts`; answered with the node's signature).
 *
 * | route | who | what |
 * | --- | --- | --- |
 * | `POST /_cdn/upload` | admin | an upload in the wire format (`lib/upload/wire.ts`) |
 * | `GET /_cdn/files`, `GET /_cdn/files/NAME` | anyone | what is held (metadata, JSON) |
 * | `DELETE /_cdn/files/NAME` | admin | delete everywhere, leaving a tombstone |
 * | `POST /_cdn/credentials` | admin | admit a node's public key (a joining node calls it) |
 * | `GET/POST /_cdn/servers`, `DELETE /_cdn/servers/ID` | anyone / admin | the server list; DELETE also revokes |
 * | `GET /_cdn/manifest` | anyone (signed when a node asks) | names, versions, hashes, digest |
 * | `POST /_cdn/replicate` | node | one versioned object or tombstone |
 * | `GET /_cdn/export?name=NAME` | node | one object or tombstone in the wire format (pulls) |
 * | `POST /_cdn/heartbeat` | node | server list and manifest digest, both ways |
 * | `POST /_cdn/purge-peer` | node | a purge accepted on another node, applied here only (`purge.ts`) |
 *
 * @module
 */

import { allowOf, findRoute, type Route } from "../common/routes.ts";
import type { ObjectStore } from "../store/types.ts";
import type { HttpCache } from "../http/cache.ts";
import { WireError } from "../upload/wire.ts";
import { decodeObjectStreamAs } from "../wire/object_stream.ts";
import {
  answerEncoding,
  bodyEncoding,
  contentTypeOf,
  streamTypeOf,
  type WireEncoding,
} from "../wire/encoding.ts";
import { encodeMessage } from "../wire/messages.ts";
import { checkHeader, nameError, nameToPath } from "../upload/validate.ts";
import { HybridClock, type Version } from "./version.ts";
import type { ReplicationDb } from "./db.ts";
import { bodyRefusal, drain, encoded, json, Refusal, text } from "./_http.ts";
import { HeldState, sameContent, tombstone, type VersionedHeader } from "./state.ts";
export type { HeldEntry } from "./state.ts";
import { Membership } from "./membership.ts";
import { AuthRefusal, type Caller, type CertCredential, PeerAuth } from "./peer_auth.ts";
import { AntiEntropy } from "./sync.ts";
import { PushQueues } from "./push.ts";
import { exportStream, serveMiss } from "./serve.ts";
import { futureVersionError, objectDigest, Signer, type StoredKey } from "./trust.ts";
import { AdminRoutes } from "./admin.ts";
import { CatchUp, type CatchUpView } from "./catch_up.ts";
import { Heartbeats } from "./heartbeat.ts";
import { PURGE_PEER_PATH, PurgePeers } from "./purge.ts";
import type { PurgeFanOut, PurgeTarget } from "../http/purge.ts";
import { Cooperation, type CoopOptions, SUMMARY_PATH } from "../coop/coop.ts";

/** Options of {@link ReplicationNode}. */
export interface ReplicationOptions {
  /** Node id, stable across restarts (versions and the server list use it). */
  id: string;
  /** This node's key pair (`DIR/node_key.json`). */
  key: StoredKey;
  /**
   * The key was created at this start: no node can know it yet, so with the admin token this
   * node asks each server for admission before its first heartbeat there, instead of sending a
   * heartbeat the server must refuse (and log as refused).
   */
  newKey?: boolean;
  store: ObjectStore;
  db: ReplicationDb;
  cache: HttpCache;
  /**
   * The operator's token: uploads, deletes and server-list changes, and admitting this node at
   * its seeds the first time. Null disables them (node-to-node traffic does not need it).
   */
  adminToken: string | null;
  /** This node's cloud provider (`--provider`), shown in every node's server list. */
  provider?: string;
  /** Largest upload accepted (413 beyond). */
  maxUploadBytes: number;
  /** Heartbeat period, ms. */
  heartbeatMs: number;
  /** Time allowed for a heartbeat, manifest or server probe, ms. */
  requestTimeoutMs: number;
  /** Chunk size of pushes and exports. */
  chunkBytes: number;
  /** Server URLs to contact at start (`--servers`, `--join`). */
  seeds: string[];
  /**
   * More server URLs learned elsewhere, asked on every heartbeat round: the replicas the DNS
   * servers this node announces to list (`--announce`), so one membership serves both.
   */
  discover?: () => string[];
  /**
   * Applies a purge to this node's cache (how many entries it removed): the purges other
   * members push. Without it, `POST /_cdn/purge-peer` purges nothing.
   */
  applyPurge?: (t: PurgeTarget) => number;
  /** Encoding of what this node sends (pushes, heartbeats, manifest and pull requests). */
  wire?: WireEncoding;
  /** Cooperative caching (`--coop`, lib/coop/): its settings, or none. */
  coop?: Pick<CoopOptions, "top" | "prefetchRate" | "prefetchBytes" | "copyBytes" | "prefetch">;
  /**
   * `--node-auth cert|both`: the TLS certificate as node-to-node credential; the seeds are then
   * listed by the id they report over verified TLS. None: the node key alone.
   */
  cert?: CertCredential;
  now?: () => number;
  log?: (line: string) => void;
}

type Defaulted =
  & Required<Omit<ReplicationOptions, "discover" | "applyPurge" | "provider" | "coop" | "cert">>
  & Pick<ReplicationOptions, "discover" | "applyPurge" | "provider" | "coop" | "cert">;

/** Counters shown in `/_cdn/health`. */
export interface ReplicationStats {
  uploads: number;
  pushes: number;
  pushFailures: number;
  pulls: number;
  rejected: number;
  /** Authorized requests whose body was Protobuf (by `Content-Type`). */
  protobufBodies: number;
  /** Authorized requests that asked for a Protobuf answer (by `Accept`). */
  protobufAnswers: number;
}

/** The replication side of one node. */
export class ReplicationNode {
  readonly id: string;
  readonly stats: ReplicationStats = {
    uploads: 0,
    pushes: 0,
    pushFailures: 0,
    pulls: 0,
    rejected: 0,
    protobufBodies: 0,
    protobufAnswers: 0,
  };
  #o: Defaulted;
  #clock: HybridClock;
  #state: HeldState;
  #members: Membership;
  #auth: PeerAuth;
  #sync: AntiEntropy;
  #push: PushQueues;
  #admin: AdminRoutes;
  #catchUp: CatchUp;
  #beats: Heartbeats;
  #purge: PurgePeers;
  #coop: Cooperation | null = null;
  #closed = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #ac = new AbortController();
  #tasks = new Set<Promise<unknown>>();
  /** The last manifest encoded, per encoding, with its digest ({@link #manifestBytes}). */
  #manifests = new Map<WireEncoding, { digest: string; bytes: Uint8Array<ArrayBuffer> }>();
  /** The start-up sequence while it runs ({@link close} waits for it). */
  #starting: Promise<void> | null = null;

  constructor(opts: ReplicationOptions) {
    this.#o = {
      now: Date.now,
      log: (l: string) => console.error(l),
      wire: "json",
      newKey: false,
      ...opts,
    };
    const { now, log } = this.#o;
    this.id = opts.id;
    this.#clock = new HybridClock(opts.id, now);
    this.#state = new HeldState({ ...opts, clock: this.#clock, log });
    this.#members = new Membership({
      selfId: opts.id,
      db: opts.db,
      clock: this.#clock,
      heartbeatMs: opts.heartbeatMs,
      now,
      log,
    });
    for (const s of opts.seeds) this.#members.seeds.add(new URL(s).origin);
    this.#auth = new PeerAuth(
      new Signer(opts.id, opts.key),
      this.#members,
      now,
      log,
      opts.cert ?? null,
    );
    this.#sync = new AntiEntropy({
      state: this.#state,
      auth: this.#auth,
      requestTimeoutMs: opts.requestTimeoutMs,
      maxUploadBytes: opts.maxUploadBytes,
      signal: this.#ac.signal,
      now,
      log,
      onPulled: () => this.stats.pulls++,
      wire: this.#o.wire,
    });
    this.#push = new PushQueues({
      state: this.#state,
      members: this.#members,
      auth: this.#auth,
      chunkBytes: opts.chunkBytes,
      signal: this.#ac.signal,
      log,
      stats: this.stats,
      wire: this.#o.wire,
    });
    this.#admin = new AdminRoutes({
      id: opts.id,
      key: opts.key.publicKey,
      adminToken: opts.adminToken,
      provider: opts.provider,
      members: this.#members,
      clock: this.#clock,
      requestTimeoutMs: opts.requestTimeoutMs,
      signal: this.#ac.signal,
      log,
      onRemoved: (id) => {
        this.#push.forget(id);
        this.#purge.forget(id);
      },
      onAdded: () => this.#track(this.#heartbeatRound(true)),
    });
    this.#catchUp = new CatchUp(this.#sync, this.#ac.signal, log);
    this.#beats = new Heartbeats({
      id: opts.id,
      state: this.#state,
      members: this.#members,
      auth: this.#auth,
      admin: this.#admin,
      requestTimeoutMs: opts.requestTimeoutMs,
      signal: this.#ac.signal,
      now,
      log,
      discover: opts.discover,
      wire: this.#o.wire,
      listSeeds: opts.cert !== undefined,
      admitFirst: this.#o.newKey,
      summaryVersion: () => this.#coop?.version ?? "",
    });
    this.#purge = new PurgePeers({
      members: this.#members,
      db: opts.db,
      auth: this.#auth,
      requestTimeoutMs: opts.requestTimeoutMs,
      signal: this.#ac.signal,
      apply: opts.applyPurge ?? (() => 0),
      log,
    });
    if (opts.coop !== undefined) {
      this.#coop = new Cooperation({
        ...opts.coop,
        id: opts.id,
        cache: opts.cache,
        auth: this.#auth,
        members: this.#members,
        requestTimeoutMs: opts.requestTimeoutMs,
        signal: this.#ac.signal,
        now,
        log,
      });
    }
  }

  /** When a peer's digest was first seen to differ from ours, since they last all matched. */
  #divergedSince: number | null = null;

  /**
   * Replication lag, seconds: how long some peer's manifest digest has differed from ours (as
   * heartbeats see it), 0 while every answering peer has the same.
   */
  lagSeconds(now = Date.now()): number {
    return this.#divergedSince === null ? 0 : Math.max(0, now - this.#divergedSince) / 1000;
  }

  /** True once the start-up catch-up is done. */
  get ready(): boolean {
    return this.#catchUp.done;
  }

  /** How the start-up catch-up stands (for `/_cdn/health`). */
  catchUp(): CatchUpView {
    return this.#catchUp.view();
  }

  /** Live (not deleted) entries. */
  files() {
    return this.#state.files();
  }

  /** A digest of the manifest: equal digests mean equal names, versions and hashes. */
  digest(): string {
    return this.#state.digest();
  }

  /** Every name held with its version, hash and size, tombstones included. */
  manifest() {
    return this.#state.manifest(this.id);
  }

  /** Serves an uploaded file the cache index had no room for (a miss), else null. */
  serveMiss(req: Request, url: string): Promise<Response> | null {
    return serveMiss(this.#state, this.#o.store, req, url);
  }

  /** URLs of the members that answered lately, not this node (asked by cache peering). */
  aliveMemberUrls(): string[] {
    return this.#members.alivePeers().map((e) => e.url);
  }

  /** With `--coop`: the cooperation (its hooks on the miss path); null without. */
  get coop(): Cooperation | null {
    return this.#coop;
  }

  /** With `--coop`: its state and counters (for `/_cdn/health`); null without. */
  coopView(): Record<string, unknown> | null {
    return this.#coop?.view() ?? null;
  }

  /** Pushes a purge applied here to every other member (signed); how they answered. */
  purgeMembers(t: PurgeTarget): Promise<PurgeFanOut> {
    return this.#purge.fanOut(t);
  }

  // ---- routes ----------------------------------------------------------------------------

  /** Answers a `/_cdn/` route of {@link REPLICATION_ROUTES}, or returns null. */
  handle(req: Request, path: string): Promise<Response> | null {
    const route = replicationRoute(path);
    if (route === null) return null;
    const rest = route.prefix ? path.slice(route.path.length) : "";
    return this.#guard(req, route, (caller) => this.#run(route.path, req, caller, rest));
  }

  /** Runs the route at `path` (auth and method already checked); `rest` follows a prefix. */
  #run(path: string, req: Request, caller: Caller | null, rest: string): Promise<Response> {
    const admin = this.#admin;
    const m = req.method;
    switch (path) {
      case "/_cdn/upload":
        return this.#upload(req);
      case "/_cdn/replicate":
        return this.#replicate(req, caller!);
      case "/_cdn/manifest":
        return this.#manifest(req);
      case "/_cdn/export":
        return this.#export(req, caller!);
      case "/_cdn/heartbeat":
        return this.#beats.handle(req, caller!);
      case PURGE_PEER_PATH:
        return this.#purge.handle(req, caller!);
      case SUMMARY_PATH:
        if (this.#coop === null) throw new Refusal(404, "cooperative caching is off (--coop)");
        return Promise.resolve(this.#coop.handle(caller!));
      case "/_cdn/credentials":
        return admin.admit(req);
      case "/_cdn/servers":
        return m === "POST" ? admin.addServer(req) : Promise.resolve(admin.list(req));
      case "/_cdn/servers/":
        return Promise.resolve(admin.removeServer(decodedName(rest, "server id")));
      case "/_cdn/files":
        return encoded(req, "files", this.files());
      case "/_cdn/files/": {
        const name = decodedName(rest, "file name");
        return m === "DELETE" ? this.#delete(name) : Promise.resolve(this.#fileInfo(req, name));
      }
    }
    throw new Error(`no handler for route ${path}`);
  }

  async #guard(
    req: Request,
    route: Route,
    fn: (caller: Caller | null) => Promise<Response>,
  ): Promise<Response> {
    const who = route.methods[req.method];
    if (who === undefined) {
      await req.body?.cancel();
      return text(405, `use ${Object.keys(route.methods).join(" or ")}`, [[
        "allow",
        allowOf(route),
      ]]);
    }
    const checked = who === "node" ? this.#auth.check(req) : null;
    const caller = checked instanceof AuthRefusal ? null : checked;
    const refused = who === "admin"
      ? this.#admin.authorize(req)
      : checked instanceof AuthRefusal
      ? text(checked.status, checked.message, [["www-authenticate", "Nearcast-Node"]])
      : null;
    if (refused !== null) {
      await req.body?.cancel();
      this.stats.rejected++;
      return refused;
    }
    if (bodyEncoding(req.headers) === "protobuf") this.stats.protobufBodies++;
    if (answerEncoding(req.headers) === "protobuf") this.stats.protobufAnswers++;
    try {
      return await fn(caller);
    } catch (e) {
      if (e instanceof Refusal || e instanceof WireError) {
        // A malformed body is the sender's fault wherever it was noticed: a 400, never a 500.
        this.stats.rejected++;
        return text(e instanceof Refusal ? e.status : 400, e.message);
      }
      this.#o.log(`replication: ${req.method} ${new URL(req.url).pathname}: ${(e as Error).stack}`);
      return text(500, `internal error: ${(e as Error).message}`);
    }
  }

  /** Decodes and validates a wire stream's header; refuses with 400/413. */
  async #decode(req: Request, replicated: boolean) {
    if (req.body === null) throw new Refusal(400, "empty body: expected the upload stream");
    let decoded;
    try {
      // The body goes to the store's putStream, done with a chunk before it reads the next.
      decoded = await decodeObjectStreamAs(bodyEncoding(req.headers), req.body, {
        reuseBuffers: true,
      });
    } catch (e) {
      if (e instanceof WireError) throw new Refusal(400, e.message);
      throw new Refusal(400, `cannot read the body: ${(e as Error).message}`);
    }
    const h = checkHeader(decoded.header, replicated);
    const refuse = async (status: number, msg: string) => {
      await decoded.body.cancel();
      return new Refusal(status, msg);
    };
    if (typeof h === "string") throw await refuse(400, h);
    if (!h.deleted && h.size > this.#o.maxUploadBytes) {
      throw await refuse(
        413,
        `${h.name} is ${h.size} bytes, larger than this node's limit of ${this.#o.maxUploadBytes} bytes`,
      );
    }
    if (h.version !== undefined) {
      const future = futureVersionError(h.version, this.#o.now());
      if (future !== null) throw await refuse(400, future);
    }
    return { header: h, body: decoded.body, refuse };
  }

  async #upload(req: Request): Promise<Response> {
    const { header, body } = await this.#decode(req, false);
    if (header.deleted) {
      await body.cancel();
      throw new Refusal(400, "an upload cannot be a delete: use DELETE /_cdn/files/NAME");
    }
    const cur = this.#state.get(header.name);
    const path = nameToPath(header.name);
    if (cur !== undefined && !cur.deleted && sameContent(cur, header)) {
      // The same content: the body is still read to its end and checked (a malformed one is a
      // 400, not an "unchanged").
      await drain(body).catch((e) => {
        throw bodyRefusal(e);
      });
      const v = { status: "unchanged", name: header.name, path, version: cur.version };
      return encoded(req, "uploadAnswer", v, 200);
    }
    const version = this.#clock.next();
    await this.#state.apply({ ...header, version }, body);
    this.stats.uploads++;
    this.#o.log(`upload: stored ${header.name} (${header.size} bytes, ${header.sha256})`);
    this.#push.pushAll(header.name);
    return encoded(req, "uploadAnswer", {
      status: "stored",
      name: header.name,
      path,
      size: header.size,
      sha256: header.sha256,
      version,
      pushingTo: this.#members.peers().length,
    }, 201);
  }

  /**
   * Deletes `name` everywhere: a tombstone newer than any version seen here, even when this
   * node has not received the file yet (the tombstone then wins when the file arrives).
   */
  async #delete(name: string): Promise<Response> {
    const err = nameError(name);
    if (err !== null) throw new Refusal(400, err);
    const held = this.#state.get(name);
    const version = this.#clock.next();
    await this.#state.apply({ ...tombstone(name, version), deleted: true }, null);
    this.#o.log(`upload: deleted ${name}${held === undefined ? " (not received here yet)" : ""}`);
    this.#push.pushAll(name);
    return json({ status: "deleted", name, version, wasHeld: held !== undefined && !held.deleted });
  }

  #fileInfo(req: Request, name: string): Promise<Response> | Response {
    const e = this.#state.get(name);
    if (e === undefined) return text(404, `no such file: ${name}`);
    return encoded(req, "file", { ...e, path: nameToPath(name) }, e.deleted ? 410 : 200);
  }

  async #replicate(req: Request, caller: Caller): Promise<Response> {
    const { header, body, refuse } = await this.#decode(req, true);
    if (objectDigest(header) !== caller.digest) {
      throw await refuse(400, "the stream's header differs from the signed digest");
    }
    const result = await this.#state.apply(header as VersionedHeader, body);
    this.#members.seen(caller.id);
    const enc = answerEncoding(req.headers);
    const answer = await encodeMessage(
      "replicateAnswer",
      { result, node: this.id, digest: this.digest() },
      enc,
    );
    return this.#auth.signed(caller, 200, answer, undefined, [[
      "content-type",
      contentTypeOf(enc),
    ]]);
  }

  async #manifest(req: Request): Promise<Response> {
    const enc = answerEncoding(req.headers);
    const type: [string, string] = ["content-type", contentTypeOf(enc)];
    if (!req.headers.has("authorization")) {
      return new Response(await this.#manifestBytes(enc), {
        headers: [type, ["cache-control", "no-store"]],
      });
    }
    const caller = this.#auth.check(req);
    if (caller instanceof AuthRefusal) {
      this.stats.rejected++;
      return text(caller.status, caller.message);
    }
    return this.#auth.signed(caller, 200, await this.#manifestBytes(enc), undefined, [type]);
  }

  /**
   * The manifest encoded in `enc`, kept until the digest changes (every change of a name makes
   * a new version, so a new digest): peers that differ ask for it on every heartbeat, and
   * encoding 10,000 entries costs tens of ms in JSON and more in Protobuf.
   */
  async #manifestBytes(enc: WireEncoding): Promise<Uint8Array<ArrayBuffer>> {
    this.#state.checkStore();
    const digest = this.digest();
    const kept = this.#manifests.get(enc);
    if (kept?.digest === digest) return kept.bytes;
    const bytes = await encodeMessage("manifest", this.manifest(), enc);
    this.#manifests.set(enc, { digest, bytes });
    return bytes;
  }

  async #export(req: Request, caller: Caller): Promise<Response> {
    const name = new URL(req.url).searchParams.get("name");
    if (name === null || nameError(name) !== null) {
      throw new Refusal(400, `export needs ?name=NAME: ${nameError(name)}`);
    }
    const enc = answerEncoding(req.headers);
    const out = await exportStream(this.#state, name, this.#o.chunkBytes, enc);
    if (out === null) return this.#auth.signed(caller, 404, `no such file: ${name}\n`);
    return this.#auth.signed(
      caller,
      200,
      null,
      objectDigest(out.header),
      [["content-type", streamTypeOf(enc)]],
      out.stream,
    );
  }

  // ---- heartbeats ------------------------------------------------------------------------

  /** One heartbeat round; with `sync`, anti-entropy with each node whose digest differs. */
  async #heartbeatRound(sync: boolean): Promise<{ url: string; id: string }[]> {
    this.#state.checkStore();
    const answered = await this.#beats.round();
    // Members that were down when a purge was pushed are told now that they answer.
    this.#track(this.#purge.deliver(answered.map((a) => a.id)));
    if (this.#coop !== null) this.#track(this.#coop.round(answered));
    const differs = answered.some((a) => a.digest !== this.digest());
    if (!differs) this.#divergedSince = null;
    else this.#divergedSince ??= Date.now();
    if (sync) {
      for (const a of answered) {
        if (a.digest !== this.digest()) this.#track(this.#sync.sync(a.url, a.id));
      }
    }
    return answered;
  }

  /**
   * Keeps a background task for {@link close} to wait on. Its failure is a bug (the tasks
   * handle the failures they expect): logged here, at the edge, with its stack.
   */
  #track(p: Promise<unknown>): void {
    const t = p.then(() => {}, (e) => {
      if (!this.#closed) this.#o.log(`replication: background task failed: ${(e as Error).stack}`);
    }).finally(() => this.#tasks.delete(t));
    this.#tasks.add(t);
  }

  // ---- lifecycle -------------------------------------------------------------------------

  /**
   * Records this node at `selfUrl`, gets admitted at its seeds, learns the server list, pulls
   * everything the peers that answered hold and it lacks, then reports ready and heartbeats.
   */
  start(selfUrl: string): Promise<void> {
    this.#starting = this.#start(selfUrl);
    return this.#starting;
  }

  async #start(selfUrl: string): Promise<void> {
    this.#admin.setSelf(new URL(selfUrl).origin);
    this.#beats.setSelf(this.#admin.selfUrl);
    const answered = await this.#heartbeatRound(false);
    const tried = new Set(this.#beats.lastTargets);
    // A second round reaches the servers the first one taught us.
    const more = await this.#heartbeatRound(false);
    for (const url of this.#beats.lastTargets) tried.add(url);
    const all = [...answered, ...more];
    for (const a of all) tried.delete(a.url);
    if (this.#closed) return;
    // Known servers and seeds that did not answer are shown as unreachable in health.
    await this.#catchUp.run(all, [...tried]);
    if (this.#closed) return;
    this.#o.log(
      `replication: ready: ${this.files().length} files, ${this.#members.peers().length} peers, ` +
        `digest ${this.digest().slice(0, 12)}`,
    );
    const tick = () => {
      if (this.#closed) return;
      // A failed round is logged by #track; the next one is scheduled either way.
      const round = this.#heartbeatRound(true).finally(() => {
        if (!this.#closed) this.#timer = setTimeout(tick, this.#o.heartbeatMs);
      });
      this.#track(round);
    };
    this.#timer = setTimeout(tick, this.#o.heartbeatMs);
  }

  /** Stops heartbeats and transfers, waits for them, closes the database. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#ac.abort();
    await this.#starting?.catch(() => {}); // its failure was reported to start()'s caller
    await Promise.allSettled([...this.#tasks]);
    await Promise.allSettled([this.#push.idle(), this.#sync.idle(), this.#catchUp.idle()]);
    await this.#state.idle();
    this.#o.db.close();
  }
}

export type { Version };

const OPEN_READ = { GET: "open", HEAD: "open" } as const;

/**
 * Every route of the replication API (uploads, files, membership, node-to-node), with who may
 * call each method: auth is checked from this table before any body is read, a method not
 * listed gets 405 with `Allow`. Part of the replica's one table (`lib/http/routes.ts`).
 */
export const REPLICATION_ROUTES: readonly Route[] = [
  { path: "/_cdn/upload", prefix: false, methods: { POST: "admin" } },
  { path: "/_cdn/files", prefix: false, methods: OPEN_READ },
  { path: "/_cdn/files/", prefix: true, methods: { ...OPEN_READ, DELETE: "admin" } },
  { path: "/_cdn/credentials", prefix: false, methods: { POST: "admin" } },
  { path: "/_cdn/servers", prefix: false, methods: { ...OPEN_READ, POST: "admin" } },
  { path: "/_cdn/servers/", prefix: true, methods: { DELETE: "admin" } },
  { path: "/_cdn/manifest", prefix: false, methods: OPEN_READ },
  { path: "/_cdn/replicate", prefix: false, methods: { POST: "node" } },
  { path: "/_cdn/export", prefix: false, methods: { GET: "node" } },
  { path: "/_cdn/heartbeat", prefix: false, methods: { POST: "node" } },
  { path: PURGE_PEER_PATH, prefix: false, methods: { POST: "node" } },
  { path: SUMMARY_PATH, prefix: false, methods: { GET: "node" } },
];

/** The route of {@link REPLICATION_ROUTES} that `path` names, or null. */
export function replicationRoute(path: string): Route | null {
  return findRoute(REPLICATION_ROUTES, path);
}

/** A percent-encoded name from a route's path; a 400 refusal when it does not decode. */
function decodedName(raw: string, what: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new Refusal(400, `${what} is not valid percent-encoding`);
  }
}

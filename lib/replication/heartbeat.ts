/**
 * Heartbeats between nodes (`POST /_cdn/heartbeat`, signed both ways): each carries the
 * sender's server list and manifest digest, and the answer the receiver's. A round calls every
 * listed peer and every seed (`--join`, `--servers`, and the replicas the DNS servers list);
 * where this node is not admitted yet, it presents the admin token (admission, `admin.ts`) and
 * tries again.
 *
 * @module
 */

import type { AdminRoutes } from "./admin.ts";
import { MAX_API_BODY } from "./admin.ts";
import type { HeldState } from "./state.ts";
import type { Membership } from "./membership.ts";
import { type Caller, type PeerAuth, PeerError } from "./peer_auth.ts";
import { bodyDigest } from "./trust.ts";
import { readJsonObject, Refusal, serverUrl } from "./_http.ts";
import { answerEncoding, contentTypeOf, type WireEncoding } from "../wire/encoding.ts";
import { encodeMessage } from "../wire/messages.ts";

/** Least time between two admission attempts at a node that refused the last one. */
export const ADMIT_RETRY_MS = 30_000;

/** A node that answered a heartbeat: where, its id, its manifest digest. */
export interface Answer {
  url: string;
  id: string;
  digest: string;
  /** Its cooperative-caching summary version (lib/coop/), null when it announced none. */
  summary: string | null;
}

/** Heartbeat answer header carrying the cooperative-caching summary version (lib/coop/). */
export const SUMMARY_HEADER = "x-nearcast-summary";

/** Options of {@link Heartbeats}. */
export interface HeartbeatOptions {
  id: string;
  state: HeldState;
  members: Membership;
  auth: PeerAuth;
  admin: AdminRoutes;
  requestTimeoutMs: number;
  signal: AbortSignal;
  now: () => number;
  log: (line: string) => void;
  /** More server URLs, asked on every round (see `ReplicationOptions.discover`). */
  discover?: () => string[];
  /** Encoding of the heartbeats this node sends (it answers in the one it is asked in). */
  wire: WireEncoding;
  /**
   * `--node-auth cert`: a seed is listed by the id it reports over verified TLS before it is
   * called ({@link AdminRoutes.listSeed}), so that nodes that list each other's URLs need no
   * admission.
   */
  listSeeds?: boolean;
  /** This node's summary version, sent in its answers (`--coop`); none without. */
  summaryVersion?: () => string;
  /**
   * This node's key is new (created at this start): with the admin token, ask a server for
   * admission before the first heartbeat to it (once per URL), since it would refuse the key.
   */
  admitFirst?: boolean;
}

/** See the module doc. */
export class Heartbeats {
  /** URLs the last round called. */
  lastTargets: string[] = [];
  #o: HeartbeatOptions;
  /** URLs that answered as a listed node (a discovered URL is not a new seed then). */
  #aliases = new Set<string>();
  /** When an admission was last refused, per URL. */
  #admitRefused = new Map<string, number>();
  /** URLs whose last heartbeat failed (logged once until they answer again). */
  #failing = new Set<string>();
  /** URLs asked for admission before a first heartbeat (`admitFirst`). */
  #admitTried = new Set<string>();

  constructor(o: HeartbeatOptions) {
    this.#o = o;
  }

  /** Records this node's own URL (a discovered copy of it is not called). */
  setSelf(url: string): void {
    this.#aliases.add(url);
  }

  #body(wire: WireEncoding): Promise<Uint8Array<ArrayBuffer>> {
    return encodeMessage("heartbeat", {
      from: { id: this.#o.id, url: this.#o.admin.selfUrl },
      servers: this.#o.members.entries(),
      digest: this.#o.state.digest(),
    }, wire);
  }

  /** `POST /_cdn/heartbeat` from an authenticated node: merges its list, answers ours. */
  async handle(req: Request, caller: Caller): Promise<Response> {
    const { raw, value } = await readJsonObject(req, MAX_API_BODY, "heartbeat");
    if (bodyDigest(raw) !== caller.digest) {
      throw new Refusal(400, "body differs from the signed digest");
    }
    this.#o.members.mergeList(value.servers, caller.id);
    this.#o.members.seen(caller.id);
    const enc = answerEncoding(req.headers);
    const headers: [string, string][] = [["content-type", contentTypeOf(enc)]];
    const summary = this.#o.summaryVersion?.();
    if (summary) headers.push([SUMMARY_HEADER, summary]);
    return this.#o.auth.signed(caller, 200, await this.#body(enc), undefined, headers);
  }

  /** Heartbeats every peer and seed at once; resolves with the nodes that answered. */
  async round(): Promise<Answer[]> {
    const { members, admin } = this.#o;
    const targets = new Map<string, string>(); // url -> id, "" for a seed
    for (const e of members.peers()) targets.set(e.url, e.id);
    for (const raw of this.#o.discover?.() ?? []) {
      const url = serverUrl(raw);
      if (url !== null && !targets.has(url) && !this.#aliases.has(url)) members.seeds.add(url);
    }
    for (const s of members.seeds) {
      if (!targets.has(s) && s !== admin.selfUrl) targets.set(s, "");
    }
    this.lastTargets = [...targets.keys()];
    const answered: Answer[] = [];
    await Promise.all([...targets].map(async ([url, id]) => {
      const r = await this.#to(url, id);
      if (r !== null && r.id !== this.#o.id) answered.push({ url, ...r });
    }));
    return answered;
  }

  /**
   * One heartbeat to `url` (`id` "" for a seed); the peer's id and digest, or null. When the
   * node answers but does not know this node's key (401), or this node cannot verify its answer
   * yet (a new node), this node presents the admin token there (admission) and tries again;
   * after a refused admission, not again for {@link ADMIT_RETRY_MS}. With a new key
   * (`admitFirst`), the admission comes before the first heartbeat to each URL.
   */
  async #to(url: string, id: string): Promise<Omit<Answer, "url"> | null> {
    const { admin, now } = this.#o;
    if (id === "" && this.#o.listSeeds) {
      const listed = await admin.listSeed(url);
      if (typeof listed !== "string") return this.#failed(url, listed.why);
      if (listed === this.#o.id) {
        this.#aliases.add(url);
        this.#o.members.seeds.delete(url);
        return null;
      }
      id = listed;
    }
    if (this.#o.admitFirst && admin.canAdmit && !this.#admitTried.has(url)) {
      this.#admitTried.add(url);
      const err = await admin.admitAt(url);
      if (err?.refused) this.#admitRefused.set(url, now());
    }
    try {
      return await this.#once(url, id);
    } catch (e) {
      if (!(e instanceof PeerError)) throw e;
      const refusedAt = this.#admitRefused.get(url) ?? -Infinity;
      if (e.status === 0 || !admin.canAdmit || now() - refusedAt < ADMIT_RETRY_MS) {
        return this.#failed(url, e.message);
      }
      const err = await admin.admitAt(url);
      if (err !== null) {
        if (err.refused) this.#admitRefused.set(url, now());
        return this.#failed(url, `${e.message}; ${err.why}`);
      }
      this.#admitRefused.delete(url);
      try {
        return await this.#once(url, id);
      } catch (e2) {
        if (!(e2 instanceof PeerError)) throw e2;
        return this.#failed(url, e2.message);
      }
    }
  }

  async #once(url: string, id: string): Promise<Omit<Answer, "url">> {
    const { members } = this.#o;
    const r = await this.#o.auth.json(url, "/_cdn/heartbeat", {
      method: "POST",
      body: await this.#body(this.#o.wire),
      wire: this.#o.wire,
      kind: "heartbeat",
      signal: AbortSignal.any([AbortSignal.timeout(this.#o.requestTimeoutMs), this.#o.signal]),
      expect: id === "" ? undefined : id,
    });
    if (r.status !== 200) throw new PeerError(`${url} answered ${r.status}`, r.status);
    members.mergeList(r.value.servers, r.id);
    members.seen(r.id);
    members.seeds.delete(url);
    this.#aliases.add(url); // answered: known by its id from now on
    this.#failing.delete(url);
    return { id: r.id, digest: String(r.value.digest), summary: r.headers.get(SUMMARY_HEADER) };
  }

  /** Logs a failed heartbeat once until `url` answers again; null. */
  #failed(url: string, why: string): null {
    if (!this.#failing.has(url) && !this.#o.signal.aborted) {
      this.#failing.add(url);
      this.#o.log(`heartbeat: ${url}: ${why}`);
    }
    return null;
  }
}

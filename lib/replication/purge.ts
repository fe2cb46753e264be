/**
 * Purges across the membership: a purge accepted on one node (`POST /_cdn/purge`, admin
 * token) is applied there and pushed to every other listed member as a signed node-to-node
 * call, `POST /_cdn/purge-peer` (at most {@link PURGE_ATTEMPTS} tries each, a few at once);
 * a member applies it to its own cache only and never pushes it on, so a purge cannot loop.
 * A member that did not acknowledge is told later: the purge is queued for it in the
 * replication database (so the queue survives a restart of either node) and delivered, in
 * order, as soon as it answers a heartbeat again.
 *
 * @module
 */

import { MAX_PURGE_BODY } from "../http/api.ts";
import type { PurgeFanOut, PurgeTarget } from "../http/purge.ts";
import { purgeTarget } from "../http/purge.ts";
import { readJsonObject, Refusal } from "./_http.ts";
import type { ReplicationDb } from "./db.ts";
import type { Membership } from "./membership.ts";
import type { Caller, PeerAuth } from "./peer_auth.ts";
import { bodyDigest } from "./trust.ts";
import { sleep } from "../common/sleep.ts";

/** The signed route a member receives a purge on. */
export const PURGE_PEER_PATH = "/_cdn/purge-peer";
/** Tries per member before it is reported as failed. */
export const PURGE_ATTEMPTS = 3;
/** Wait before the first retry, ms; doubled before each next one. */
export const PURGE_RETRY_MS = 200;
/** Members called at once. */
export const PURGE_CONCURRENCY = 16;
/**
 * Most purges queued for one member; past it the queue becomes one purge of everything
 * (`{"prefix": "/"}`), which covers every purge it replaces.
 */
export const MAX_QUEUED_PURGES = 1000;
/** Key prefix of the queues in the replication database's key-value table. */
const QUEUE_KEY = "purge-queue:";

/** Options of {@link PurgePeers}. */
export interface PurgePeersOptions {
  members: Membership;
  auth: PeerAuth;
  /** Where the queues of members that missed a purge are kept. */
  db: ReplicationDb;
  /** Time allowed for one try, ms. */
  requestTimeoutMs: number;
  /** Aborted when the node closes. */
  signal: AbortSignal;
  /** Applies a purge to this node's cache; how many entries it removed. */
  apply: (t: PurgeTarget) => number;
  log: (line: string) => void;
}

/** See the module doc. */
export class PurgePeers {
  #o: PurgePeersOptions;
  /** Members whose queue is being delivered now. */
  #delivering = new Set<string>();

  constructor(o: PurgePeersOptions) {
    this.#o = o;
  }

  /** Answers `POST /_cdn/purge-peer` from `caller` (signed): applies it here only. */
  async handle(req: Request, caller: Caller): Promise<Response> {
    const { raw, value } = await readJsonObject(req, MAX_PURGE_BODY);
    if (bodyDigest(raw) !== caller.digest) {
      throw new Refusal(400, "body differs from the signed digest");
    }
    const t = purgeTarget(value);
    if (typeof t === "string") throw new Refusal(400, t);
    const purged = this.#o.apply(t);
    this.#o.members.seen(caller.id);
    this.#o.log(`purge: ${JSON.stringify(t)} from ${caller.id}: ${purged} entries`);
    return this.#o.auth.signed(caller, 200, JSON.stringify({ purged }));
  }

  /**
   * Pushes `t` to every listed member but this node; how they answered. A member with purges
   * still queued gets this one queued behind them (order is kept), and its queue delivered.
   */
  async fanOut(t: PurgeTarget): Promise<PurgeFanOut> {
    const targets = this.#o.members.peers();
    const out: PurgeFanOut = { asked: targets.length, acknowledged: [], purgedBy: {}, failed: [] };
    const body = JSON.stringify(t);
    let next = 0;
    const worker = async () => {
      while (next < targets.length) {
        const m = targets[next++];
        if (this.#queue(m.id).length > 0) {
          this.#enqueue(m.id, t);
          out.failed.push({ id: m.id, url: m.url, error: "earlier purges pending", queued: true });
          this.deliver([m.id]);
          continue;
        }
        const r = await this.#push(m.url, m.id, body);
        if (typeof r === "number") {
          out.acknowledged.push(m.id);
          out.purgedBy[m.id] = r;
        } else {
          this.#enqueue(m.id, t);
          out.failed.push({ id: m.id, url: m.url, error: r, queued: true });
        }
      }
    };
    const n = Math.min(PURGE_CONCURRENCY, targets.length);
    await Promise.all(Array.from({ length: n }, worker));
    if (out.failed.length > 0) {
      this.#o.log(
        `purge: ${body}: ${out.failed.length} of ${out.asked} members failed (queued for ` +
          `later): ${out.failed.map((f) => `${f.id} (${f.error})`).join(", ")}`,
      );
    }
    return out;
  }

  /**
   * Delivers the queued purges of each of `ids` (members that just answered), in order,
   * one try each; what is not acknowledged stays queued for the next call.
   */
  async deliver(ids: string[]): Promise<void> {
    await Promise.all(ids.map(async (id) => {
      if (this.#delivering.has(id) || this.#queue(id).length === 0) return;
      const m = this.#o.members.get(id);
      if (m === undefined || m.removed) return this.forget(id);
      this.#delivering.add(id);
      try {
        for (let q = this.#queue(id); q.length > 0; q = this.#queue(id)) {
          const body = JSON.stringify(q[0]);
          const r = await this.#push(m.url, id, body, 1);
          if (typeof r !== "number") return;
          this.#o.log(`purge: delivered queued ${body} to ${id}: ${r} entries`);
          this.#save(id, this.#queue(id).slice(1));
        }
      } finally {
        this.#delivering.delete(id);
      }
    }));
  }

  /** Drops the queue of a member removed from the server list. */
  forget(id: string): void {
    this.#save(id, []);
  }

  /** Purges queued for `id`, oldest first. */
  #queue(id: string): PurgeTarget[] {
    const raw = this.#o.db.getKv(QUEUE_KEY + id);
    return raw === null ? [] : JSON.parse(raw) as PurgeTarget[];
  }

  #enqueue(id: string, t: PurgeTarget): void {
    const q = this.#queue(id);
    q.push(t);
    this.#save(id, q.length > MAX_QUEUED_PURGES ? [{ prefix: "/" }] : q);
  }

  #save(id: string, q: PurgeTarget[]): void {
    this.#o.db.putKv(QUEUE_KEY + id, q.length === 0 ? null : JSON.stringify(q));
  }

  /**
   * Pushes to one member with up to `attempts` tries: the entries it purged once it
   * acknowledged, else the last error.
   */
  async #push(
    url: string,
    id: string,
    body: string,
    attempts = PURGE_ATTEMPTS,
  ): Promise<number | string> {
    let error = "";
    for (let i = 0; i < attempts; i++) {
      if (i > 0) await sleep(PURGE_RETRY_MS * 2 ** (i - 1), this.#o.signal);
      if (this.#o.signal.aborted) return "this node is stopping";
      try {
        const signal = AbortSignal.any([
          this.#o.signal,
          AbortSignal.timeout(this.#o.requestTimeoutMs),
        ]);
        const r = await this.#o.auth.json(url, PURGE_PEER_PATH, {
          method: "POST",
          body,
          signal,
          expect: id,
        });
        if (r.status === 200) {
          this.#o.members.seen(id);
          const n = Number(r.value.purged);
          return Number.isSafeInteger(n) && n >= 0 ? n : 0;
        }
        error = `answered ${r.status}`;
      } catch (e) {
        error = (e as Error).message;
      }
    }
    return error;
  }
}

/**
 * Purges across the membership: a purge accepted on one node (`POST /_cdn/purge`, admin
 * token) is applied there and pushed to every other listed member as a signed node-to-node
 * call, `POST /_cdn/purge-peer` (at most {@link PURGE_ATTEMPTS} tries each, a few at once);
 * a member applies it to its own cache only and never pushes it on, so a purge cannot loop.
 *
 * @module
 */

import { MAX_PURGE_BODY } from "../http/api.ts";
import type { PurgeFanOut, PurgeTarget } from "../http/purge.ts";
import { purgeTarget } from "../http/purge.ts";
import { readJsonObject, Refusal } from "./_http.ts";
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

/** Options of {@link PurgePeers}. */
export interface PurgePeersOptions {
  members: Membership;
  auth: PeerAuth;
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

  /** Pushes `t` to every listed member but this node; how they answered. */
  async fanOut(t: PurgeTarget): Promise<PurgeFanOut> {
    const targets = this.#o.members.peers();
    const out: PurgeFanOut = { asked: targets.length, acknowledged: [], failed: [] };
    const body = JSON.stringify(t);
    let next = 0;
    const worker = async () => {
      while (next < targets.length) {
        const m = targets[next++];
        const error = await this.#push(m.url, m.id, body);
        if (error === null) out.acknowledged.push(m.id);
        else out.failed.push({ id: m.id, url: m.url, error });
      }
    };
    const n = Math.min(PURGE_CONCURRENCY, targets.length);
    await Promise.all(Array.from({ length: n }, worker));
    if (out.failed.length > 0) {
      this.#o.log(
        `purge: ${JSON.stringify(t)}: ${out.failed.length} of ${out.asked} members failed: ` +
          out.failed.map((f) => `${f.id} (${f.error})`).join(", "),
      );
    }
    return out;
  }

  /** Pushes to one member with retries: null once it acknowledged, else the last error. */
  async #push(url: string, id: string, body: string): Promise<string | null> {
    let error = "";
    for (let i = 0; i < PURGE_ATTEMPTS; i++) {
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
          return null;
        }
        error = `answered ${r.status}`;
      } catch (e) {
        error = (e as Error).message;
      }
    }
    return error;
  }
}

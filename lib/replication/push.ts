/**
 * Push queues: one per peer, each a worker that sends the names queued for it in order, signed
 * (`trust.ts`), waiting for the peer's signed acknowledgement, retrying with backoff and giving
 * a name up to anti-entropy after {@link MAX_PUSH_ATTEMPTS}.
 *
 * @module
 */

import { writeObjectStreamAs } from "../wire/object_stream.ts";
import { acceptOf, streamTypeOf, type WireEncoding } from "../wire/encoding.ts";
import { postStream } from "../upload/post_stream.ts";
import type { HeldState } from "./state.ts";
import type { Membership } from "./membership.ts";
import type { PeerAuth } from "./peer_auth.ts";
import { bodyDigest, objectDigest } from "./trust.ts";
import { TRANSFER_TIMEOUT_MS } from "./sync.ts";
import { sleep } from "../common/sleep.ts";

/** Push attempts per (peer, name) before giving up; anti-entropy repairs what is left. */
export const MAX_PUSH_ATTEMPTS = 8;
/** First retry delay of a push, doubled per attempt up to {@link PUSH_BACKOFF_MAX_MS}. */
export const PUSH_BACKOFF_MS = 100;
/** Longest retry delay of a push. */
export const PUSH_BACKOFF_MAX_MS = 5_000;

/** Options of {@link PushQueues}. */
export interface PushOptions {
  state: HeldState;
  members: Membership;
  auth: PeerAuth;
  chunkBytes: number;
  signal: AbortSignal;
  log: (line: string) => void;
  stats: { pushes: number; pushFailures: number };
  /** Encoding of the pushes. */
  wire: WireEncoding;
}

interface Queue {
  names: Set<string>;
  worker: Promise<void> | null;
}

/** See the module doc. */
export class PushQueues {
  #o: PushOptions;
  #queues = new Map<string, Queue>();

  constructor(o: PushOptions) {
    this.#o = o;
  }

  /** Queues `name` for every live peer. */
  pushAll(name: string): void {
    for (const peer of this.#o.members.peers()) {
      let q = this.#queues.get(peer.id);
      if (q === undefined) this.#queues.set(peer.id, q = { names: new Set(), worker: null });
      q.names.delete(name);
      q.names.add(name);
      q.worker ??= this.#work(peer.id, q).catch((e) => {
        // The edge of the worker: a failure it does not expect is a bug, logged with its stack.
        this.#o.log(`push: worker for ${peer.id} failed: ${(e as Error).stack}`);
      }).finally(() => q.worker = null);
    }
  }

  /** Drops the queue of a removed peer. */
  forget(peerId: string): void {
    this.#queues.get(peerId)?.names.clear();
    this.#queues.delete(peerId);
  }

  /** Resolves when every worker has ended (after the signal aborted, soon). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.#queues.values()].map((q) => q.worker));
  }

  async #work(peerId: string, q: Queue): Promise<void> {
    const { signal, stats } = this.#o;
    let attempt = 0;
    while (q.names.size > 0 && !signal.aborted) {
      const name = q.names.values().next().value!;
      const peer = this.#o.members.get(peerId);
      if (peer === undefined || peer.removed) return;
      try {
        await this.#pushOne(peer.url, peer.id, name);
        q.names.delete(name);
        attempt = 0;
        stats.pushes++;
      } catch (e) {
        if (signal.aborted) return;
        stats.pushFailures++;
        attempt++;
        if (attempt >= MAX_PUSH_ATTEMPTS) {
          this.#o.log(
            `push: ${name} to ${peerId} failed ${attempt} times (${(e as Error).message}); ` +
              "left to anti-entropy",
          );
          q.names.delete(name);
          attempt = 0;
          continue;
        }
        await sleep(Math.min(PUSH_BACKOFF_MS * 2 ** (attempt - 1), PUSH_BACKOFF_MAX_MS), signal);
      }
    }
  }

  async #pushOne(url: string, peerId: string, name: string): Promise<void> {
    const src = await this.#o.state.exportSource(name);
    if (src === null) return; // replaced or gone: the newer one is queued
    const path = "/_cdn/replicate";
    const { headers, nonce } = this.#o.auth.sign("POST", path, objectDigest(src.header));
    let res;
    try {
      // Read from the stored file into reused buffers: a push holds two lines and a chunk.
      res = await postStream(
        `${url}${path}`,
        { ...headers, "content-type": streamTypeOf(this.#o.wire), accept: acceptOf(this.#o.wire) },
        (write) =>
          writeObjectStreamAs(this.#o.wire, src.header, src.body, this.#o.chunkBytes, write),
        AbortSignal.any([AbortSignal.timeout(TRANSFER_TIMEOUT_MS), this.#o.signal]),
      );
    } finally {
      src.close();
    }
    const answer = new Headers(res.headers);
    const { digest } = this.#o.auth.verifyAnswer(url, res.status, answer, nonce, peerId);
    if (bodyDigest(res.body) !== digest) {
      throw new Error(`${url}: the answer's body does not match its signed digest`);
    }
    if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${res.text.trim()}`);
  }
}

/** Re-exported for the replication modules that import it from here. */
export { sleep };

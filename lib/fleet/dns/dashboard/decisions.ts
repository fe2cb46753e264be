/**
 * The latest routing decisions, for the dashboard: a {@link SteeringPolicy} that asks the real
 * one and keeps a sample of what it answered in a small ring. Recording is off the common path:
 * a decision is kept when its client differs from the last one kept, or once every
 * {@link SAMPLE_EVERY} decisions, and at most {@link MAX_PER_SECOND} a second; nothing is
 * allocated for the decisions that are not kept.
 *
 * @module
 */
import type { Selection, SteeringClient, SteeringPolicy } from "../../../dns/steering.ts";

/** Decisions kept (the newest). */
export const MAX_DECISIONS = 32;
/** Of a run of decisions for one client, every this many is kept. */
export const SAMPLE_EVERY = 1024;
/** Most decisions kept per second: a flood from many subnets costs one clock read each. */
export const MAX_PER_SECOND = 20;

/** One decision as kept. */
export interface Decision {
  /** Clock ms. */
  at: number;
  client: SteeringClient;
  family: 4 | 6;
  answer: string[];
  how: Selection["how"];
  scope: number;
}

/** See the module doc. */
export class DecisionLog implements SteeringPolicy {
  readonly name: string;
  readonly #inner: SteeringPolicy;
  readonly #now: () => number;
  readonly #ring: Decision[] = [];
  #count = 0;
  /** The last kept client's first 8 address bytes and family. */
  readonly #last = new Uint8Array(9);
  #second = 0;
  #left = MAX_PER_SECOND;
  /** Decisions kept since start (the ring holds the newest {@link MAX_DECISIONS}). */
  kept = 0;

  constructor(inner: SteeringPolicy, now: () => number = Date.now) {
    this.#inner = inner;
    this.name = inner.name;
    this.#now = now;
  }

  select(client: SteeringClient, family: 4 | 6, max: number, out: Selection): void {
    this.#inner.select(client, family, max, out);
    const b = client.bytes, l = this.#last;
    const same = l[8] === client.family && b[0] === l[0] && b[1] === l[1] && b[2] === l[2] &&
      b[3] === l[3] && b[4] === l[4] && b[5] === l[5] && b[6] === l[6] && b[7] === l[7];
    if (same && (++this.#count & (SAMPLE_EVERY - 1)) !== 0) return;
    const now = this.#now();
    const second = Math.floor(now / 1000);
    if (second !== this.#second) {
      this.#second = second;
      this.#left = MAX_PER_SECOND;
    }
    if (this.#left <= 0) return;
    this.#left--;
    l.set(b.subarray(0, 8));
    l[8] = client.family;
    this.#ring.push({
      at: now,
      client: { family: client.family, bytes: b.slice(0, 16), bits: client.bits },
      family,
      answer: out.replicas.slice(0, out.count).map((r) => r.id),
      how: out.how,
      scope: out.scope,
    });
    if (this.#ring.length > MAX_DECISIONS) this.#ring.shift();
    this.kept++;
  }

  /** The kept decisions, newest first. */
  latest(): Decision[] {
    return [...this.#ring].reverse();
  }
}

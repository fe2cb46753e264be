/**
 * Steering's data: the replicas ({@link ReplicaSet}), the client a decision is for, and the
 * decision ({@link Selection}). {@link SteeringPolicy} is the interface the handler calls; the
 * one implementation is the engine in `policy.ts`. The replica registry is separate from the
 * policy, so live registration and heartbeats can change it while the policy only reads it.
 *
 * @module
 */
import type { ReplicaConfig } from "./config.ts";

/** A replica as steering sees it. Addresses are in the form the codec writes. */
export interface Replica {
  readonly id: string;
  /** IPv4 as a big-endian u32, or -1 when the replica has none. */
  readonly ipv4: number;
  /** IPv6 as four big-endian u32 words, or null. */
  readonly ipv6: Uint32Array | null;
  readonly lat: number;
  readonly lon: number;
  /** The cloud provider it runs on (prices come by provider); absent or "" when unknown. */
  readonly provider?: string;
  /** Only live replicas are ever answered with. */
  live: boolean;
}

/** Big-endian u32 from 4 bytes at `at`. */
function word(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

/** Builds the steering form of configured replicas (all live). */
export function replicasFromConfig(list: readonly ReplicaConfig[]): Replica[] {
  return list.map((r) => ({
    id: r.id,
    ipv4: r.ipv4 ? word(r.ipv4.bytes, 0) : -1,
    ipv6: r.ipv6
      ? Uint32Array.of(
        word(r.ipv6.bytes, 0),
        word(r.ipv6.bytes, 4),
        word(r.ipv6.bytes, 8),
        word(r.ipv6.bytes, 12),
      )
      : null,
    lat: r.lat,
    lon: r.lon,
    provider: r.provider ?? "",
    live: true,
  }));
}

/**
 * The replica registry. `version` changes whenever membership or liveness does; `membership`
 * only when replicas are added or removed (what distance rankings depend on).
 */
export class ReplicaSet {
  readonly replicas: Replica[];
  version = 0;
  membership = 0;
  constructor(replicas: Replica[]) {
    this.replicas = replicas;
  }
  /** Marks a replica live or dead; false when no replica has that id. */
  setLive(id: string, live: boolean): boolean {
    const r = this.replicas.find((x) => x.id === id);
    if (!r) return false;
    if (r.live !== live) {
      r.live = live;
      this.version++;
    }
    return true;
  }
  /** Adds a replica, or replaces the one with the same id. */
  upsert(replica: Replica): void {
    const i = this.replicas.findIndex((x) => x.id === replica.id);
    if (i === -1) this.replicas.push(replica);
    else this.replicas[i] = replica;
    this.version++;
    this.membership++;
  }
  /** Removes a replica; false when no replica has that id. */
  remove(id: string): boolean {
    const i = this.replicas.findIndex((x) => x.id === id);
    if (i === -1) return false;
    this.replicas.splice(i, 1);
    this.version++;
    this.membership++;
    return true;
  }
}

/** The client a decision is for: an address and how many of its leading bits are known. */
export interface SteeringClient {
  family: 4 | 6;
  /** 16 bytes; IPv4 in the first 4. */
  bytes: Uint8Array;
  /** Leading bits to use: the ECS SOURCE PREFIX-LENGTH, or the full length for a source address. */
  bits: number;
}

/** A decision, reused across calls so deciding allocates nothing. */
export interface Selection {
  /** `replicas[0..count)` are the answer, best first. */
  readonly replicas: Replica[];
  count: number;
  /** Leading client address bits the decision depended on (RFC 7871 SCOPE PREFIX-LENGTH). */
  scope: number;
  /**
   * How it was decided: "latency" (the smallest measured round trip), "geo" (the nearest;
   * also in latency mode before a measurement), "rotation" (nothing known about the client),
   * "load" (least loaded), "price" (cheapest) or "balanced" (weighted score, or the cheapest
   * within a latency bound).
   */
  how: "geo" | "rotation" | "latency" | "load" | "price" | "balanced";
  /** TTL for this answer in seconds, or -1 for the configured one (the handler resets it). */
  ttl: number;
}

/** A fresh {@link Selection}. */
export function newSelection(): Selection {
  return { replicas: [], count: 0, scope: 0, how: "rotation", ttl: -1 };
}

/** A steering policy: chooses replicas for a client. */
export interface SteeringPolicy {
  readonly name: string;
  /**
   * Fills `out` with up to `max` live replicas that have an address of `family` (4 for A, 6
   * for AAAA), best first. Allocates nothing per call once warm.
   */
  select(client: SteeringClient, family: 4 | 6, max: number, out: Selection): void;
}

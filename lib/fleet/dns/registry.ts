/**
 * The live replica registry: static config entries plus registered replicas, their heartbeats,
 * load, health and held paths, persisted in SQLite ({@link FleetDb}). It drives the steering
 * {@link ReplicaSet}: a replica is answered only while `alive`.
 *
 * Liveness (all times from the injected clock, so tests need no sleeps):
 * - a registered replica starts `pending` and becomes `alive` when an active health check
 *   (`GET /_cdn/health`, run by the caller for the ids {@link FleetRegistry.due} returns)
 *   passes while its heartbeats are fresh;
 * - it is `dead` after {@link MISSED_HEARTBEATS_DEAD} heartbeat intervals without one, or when a
 *   health check fails once its heartbeat is late (or twice in a row while heartbeats are fresh);
 * - a dead replica whose heartbeats come back is checked again and revived when the check passes.
 * Static replicas (config entries with no port) are always alive, as before live registration.
 *
 * @module
 */
import { sameSecret } from "../../common/auth.ts";
import type { ReplicaConfig } from "../../dns/config.ts";
import { formatIp, isUnspecified, parseClientIp, unbracket } from "../../common/ip.ts";
import type { LoadSource } from "../../dns/policy.ts";
import type { StateSource } from "../../dns/ttl.ts";
import { changeReason, nextChangeMs } from "./state_change.ts";
import { type Replica, ReplicaSet, replicasFromConfig } from "../../dns/steering.ts";
import type { FleetDb, FleetRow } from "./db.ts";
import { newKey, type StoredKey } from "../../replication/trust.ts";
import {
  type Heartbeat,
  HEARTBEAT_INTERVAL_MS,
  type KnownServer,
  type Load,
  MISSED_HEARTBEATS_DEAD,
  type Registration,
} from "../protocol.ts";

/** A heartbeat this many intervals old is late: the replica gets an active health check. */
export const LATE_FACTOR = 1.5;
/** Period of the routine health check of an alive replica. */
export const HEALTH_INTERVAL_MS = 5_000;
/** Least time between checks of a pending or dead replica (bounds work on a flapping one). */
export const RECHECK_MS = 500;
/** Failed checks in a row that kill a replica whose heartbeats are still fresh. */
export const HEALTH_FAILURES_DEAD = 2;
/** Most replicas in the registry: the config's limit (rankings use `Uint16Array`s). */
export const MAX_FLEET = 1024;

/** `draining`: healthy, but not answered (an admin drained it: {@link FleetRegistry.drain}). */
export type FleetState = "alive" | "pending" | "dead" | "draining";

/** A replica as the registry keeps it: its stored row, narrowed, plus what only lives in memory. */
export interface FleetEntry extends Omit<FleetRow, "source" | "state"> {
  source: "static" | "registered";
  seq: number;
  state: FleetState;
  /** Why it is in its state. */
  reason: string;
  /** When it entered its state. */
  since: number;
  load: Load | null;
  checking: boolean;
  lastCheck: number;
  failures: number;
  /** Drained by the admin: it is `draining` instead of `alive` (kept in memory only). */
  drained?: boolean;
  /** The steering form, shared with the {@link ReplicaSet}. */
  replica: Replica;
}

/** Options of {@link FleetRegistry}. */
export interface FleetRegistryOptions {
  set: ReplicaSet;
  db: FleetDb;
  /** The config's replicas (static entries). */
  statics: readonly ReplicaConfig[];
  intervalMs?: number;
  now?: () => number;
  log?: (line: string) => void;
}

function ipText(r: ReplicaConfig): string {
  const a = r.ipv4 ?? r.ipv6;
  return a === null ? "" : formatIp(a);
}

/**
 * The scheme to call a replica with: the one it registered (`tls`), else `fallback` (https
 * when the DNS server has `--ca`).
 */
export function replicaScheme(e: { tls: boolean | null }, fallback: string): string {
  return e.tls === null ? fallback : e.tls ? "https" : "http";
}

/** The steering form of an address; throws a `TypeError` for anything but a unicast address. */
export function replicaFor(
  id: string,
  address: string,
  lat: number | null,
  lon: number | null,
  provider = "",
): Replica {
  const ip = parseClientIp(unbracket(address));
  if (ip === null) throw new TypeError(`Cannot register ${id}: not an IP address: ${address}`);
  if (isUnspecified(ip)) {
    throw new TypeError(
      `Cannot register ${id}: ${address} is a wildcard address; give --advertise ADDR`,
    );
  }
  const [r] = replicasFromConfig([{
    id,
    ipv4: ip.family === 4 ? ip : null,
    ipv6: ip.family === 6 ? ip : null,
    lat: lat ?? NaN,
    lon: lon ?? NaN,
    provider,
  }]);
  r.live = false;
  return r;
}

function newToken(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** A session token matches: never an empty one (static entries have none); constant time. */
function sameToken(expected: string, given: string): boolean {
  return expected !== "" && sameSecret(given, expected);
}

/** See the module doc. */
export class FleetRegistry implements LoadSource, StateSource {
  readonly set: ReplicaSet;
  readonly intervalMs: number;
  /** Changes whenever membership, an address or a state does (the known-servers list). */
  version = 1;
  /** Changes with every accepted heartbeat (load may have changed). */
  loadVersion = 0;
  readonly #db: FleetDb;
  readonly #now: () => number;
  readonly #log: (line: string) => void;
  readonly #byId = new Map<string, FleetEntry>();

  constructor(opts: FleetRegistryOptions) {
    this.set = opts.set;
    this.#db = opts.db;
    this.intervalMs = opts.intervalMs ?? HEARTBEAT_INTERVAL_MS;
    this.#now = opts.now ?? Date.now;
    this.#log = opts.log ?? (() => {});
    const now = this.#now();
    const statics = new Set(opts.statics.map((s) => s.id));
    // The config's replicas are in the set already (startDnsServer built it from the config).
    for (const s of opts.statics) {
      const replica = this.set.replicas.find((r) => r.id === s.id)!;
      this.#byId.set(s.id, {
        id: s.id,
        source: "static",
        address: ipText(s),
        port: 0,
        tls: null,
        lat: s.lat,
        lon: s.lon,
        provider: s.provider ?? "",
        token: "",
        registeredAt: now,
        lastHeartbeat: null,
        seq: 0,
        state: "alive",
        reason: "static config entry",
        since: now,
        load: null,
        held: [],
        checking: false,
        lastCheck: -Infinity,
        failures: 0,
        replica,
      });
    }
    for (const row of this.#db.all()) {
      if (row.source !== "registered") {
        if (!statics.has(row.id)) this.#db.delete(row.id); // dropped from the config
        continue;
      }
      try {
        const replica = replicaFor(row.id, row.address, row.lat, row.lon, row.provider);
        const e = this.#entry(row, replica, now);
        // Known from before the restart: pending until its health check passes, with one
        // missed-heartbeat window of grace for its heartbeats to arrive.
        e.lastHeartbeat = now;
        e.reason = "restored from the database; checking";
        this.#byId.set(row.id, e);
        this.set.upsert(replica);
      } catch (e) {
        this.#log(`fleet: dropping stored replica ${row.id}: ${(e as Error).message}`);
        this.#db.delete(row.id);
      }
    }
    for (const s of opts.statics) this.#persist(this.#byId.get(s.id)!);
  }

  #entry(row: FleetRow, replica: Replica, now: number): FleetEntry {
    return {
      id: row.id,
      source: "registered",
      address: row.address,
      port: row.port,
      tls: row.tls,
      lat: row.lat,
      lon: row.lon,
      provider: row.provider,
      token: row.token,
      registeredAt: row.registeredAt,
      lastHeartbeat: row.lastHeartbeat,
      seq: 0,
      state: "pending",
      reason: "registered; waiting for a health check",
      since: now,
      load: null,
      held: row.held,
      checking: false,
      lastCheck: -Infinity,
      failures: 0,
      replica,
    };
  }

  #persist(e: FleetEntry): void {
    this.#db.put({
      id: e.id,
      source: e.source,
      address: e.address,
      port: e.port,
      tls: e.tls,
      lat: e.lat,
      lon: e.lon,
      provider: e.provider,
      token: e.token,
      registeredAt: e.registeredAt,
      lastHeartbeat: e.lastHeartbeat,
      state: e.state,
      held: e.held,
    });
  }

  /** Every entry, in registration order. */
  entries(): FleetEntry[] {
    return [...this.#byId.values()];
  }

  get(id: string): FleetEntry | undefined {
    return this.#byId.get(id);
  }

  /** The requests/s a replica last reported, or null (steering's {@link LoadSource}). */
  rps(id: string): number | null {
    return this.#byId.get(id)?.load?.rps ?? null;
  }

  /** Ms until the monitor's next possible state change of `id` (`state_change.ts`). */
  nextChangeMs(id: string): number {
    const e = this.#byId.get(id);
    return e === undefined ? Infinity : nextChangeMs(e, this.#now(), this.intervalMs);
  }

  /** Why a state change of `id` is under way, or "". */
  changeReason(id: string): string {
    const e = this.#byId.get(id);
    return e === undefined ? "" : changeReason(e, this.#now(), this.intervalMs);
  }

  /** True for registered replicas: only they have a probe endpoint to measure RTT from. */
  measurable(id: string): boolean {
    return this.#byId.get(id)?.source === "registered";
  }

  /**
   * Adds or replaces a registered replica. `from` is the address the registration came from,
   * used when it names none. Returns the entry with a new session token (`token`, else a random
   * one). Throws `TypeError` for an unusable address and `RangeError` when the fleet is full.
   */
  register(reg: Registration, from: string, token = newToken()): FleetEntry {
    const address = reg.address !== "" ? reg.address : from;
    const replica = replicaFor(reg.id, address, reg.lat, reg.lon, reg.provider);
    if (!this.#byId.has(reg.id) && this.#byId.size >= MAX_FLEET) {
      throw new RangeError(`Cannot register ${reg.id}: the fleet is full (${MAX_FLEET})`);
    }
    const now = this.#now();
    const e = this.#entry(
      {
        id: reg.id,
        source: "registered",
        address: unbracket(address),
        port: reg.port,
        tls: reg.tls ?? null,
        lat: reg.lat,
        lon: reg.lon,
        provider: reg.provider,
        token,
        registeredAt: now,
        lastHeartbeat: now,
        state: "pending",
        held: this.#byId.get(reg.id)?.held ?? [],
      },
      replica,
      now,
    );
    this.#byId.set(reg.id, e);
    this.set.upsert(replica);
    this.version++;
    this.#persist(e);
    this.#log(`fleet: registered ${e.id} at ${e.address} port ${e.port}`);
    return e;
  }

  /** Removes a replica; false when unknown. */
  remove(id: string): boolean {
    if (!this.#byId.delete(id)) return false;
    this.set.remove(id);
    this.#db.delete(id);
    this.version++;
    this.#log(`fleet: removed ${id}`);
    return true;
  }

  /** The admitted public key of replica `id` (its credential), or null. */
  credential(id: string): string | null {
    return this.#db.credential(id);
  }

  /** True when `publicKey` was revoked (it is never admitted again). */
  isRevoked(publicKey: string): boolean {
    return this.#db.isRevoked(publicKey);
  }

  /** The DNS server's own key pair (made and stored at first use): it signs its answers. */
  serverKey(): StoredKey {
    return this.#db.serverKey(newKey);
  }

  /** Admits `publicKey` as replica `id`'s credential, replacing an older key. */
  admit(id: string, publicKey: string): void {
    if (this.#db.credential(id) === publicKey) return;
    this.#db.admit(id, publicKey, this.#now());
    this.#log(`fleet: admitted a key for ${id}`);
  }

  /**
   * Revokes replica `id`'s credential and drops it with its session: its registrations,
   * heartbeats and reports are refused from now on. False when it had neither.
   */
  revoke(id: string): boolean {
    const key = this.#db.revoke(id, this.#now()) !== null;
    const removed = this.remove(id);
    if (key) this.#log(`fleet: revoked the key of ${id}`);
    return key || removed;
  }

  /** A heartbeat arrived: `register` when the id/token is unknown (the replica registers again). */
  heartbeat(hb: Heartbeat): "ok" | "register" {
    const e = this.#byId.get(hb.id);
    if (e === undefined || e.source !== "registered" || !sameToken(e.token, hb.token)) {
      return "register";
    }
    e.lastHeartbeat = this.#now();
    e.seq = hb.seq;
    e.load = hb.load;
    this.loadVersion++;
    return "ok";
  }

  /** Sets the held paths a replica reported; false when the id/token is unknown. */
  setHeld(id: string, token: string, paths: string[]): boolean {
    const e = this.#byId.get(id);
    if (e === undefined || !sameToken(e.token, token)) return false;
    e.held = paths;
    this.#db.setHeld(id, paths);
    return true;
  }

  /** The session token of a registered replica (the key of its heartbeat MACs), else null. */
  sessionToken(id: string): string | null {
    const e = this.#byId.get(id);
    return e === undefined || e.source !== "registered" || e.token === "" ? null : e.token;
  }

  /** True when the session token is the replica's. */
  tokenMatches(id: string, token: string): boolean {
    const e = this.#byId.get(id);
    return e !== undefined && sameToken(e.token, token);
  }

  /**
   * Drains replica `id` (`on`: it stays checked but is not answered, state `draining`) or ends
   * the drain. The entry, or undefined when unknown. A drain lasts until ended or a restart.
   */
  drain(id: string, on: boolean): FleetEntry | undefined {
    const e = this.#byId.get(id);
    if (e === undefined) return undefined;
    e.drained = on;
    if (on && e.state === "alive") this.#setState(e, "draining", "drained by the admin");
    if (!on && e.state === "draining") this.#setState(e, "alive", "drain ended by the admin");
    return e;
  }

  #setState(e: FleetEntry, state: FleetState, reason: string): void {
    if (state === "alive" && e.drained) state = "draining";
    e.reason = reason;
    if (e.state === state) return;
    e.state = state;
    e.since = this.#now();
    this.set.setLive(e.id, state === "alive");
    this.version++;
    this.#db.setState(e.id, state, e.lastHeartbeat);
    this.#log(`fleet: ${e.id} is ${state}: ${reason}`);
  }

  /** Heartbeat age of an entry, ms. */
  #age(e: FleetEntry, now: number): number {
    return now - (e.lastHeartbeat ?? e.registeredAt);
  }

  /**
   * Applies heartbeat timeouts and returns the ids that need an active health check now (the
   * caller runs them and reports with {@link checkStarted} and {@link checkDone}).
   */
  due(): string[] {
    const now = this.#now();
    const deadAfter = MISSED_HEARTBEATS_DEAD * this.intervalMs;
    const out: string[] = [];
    for (const e of this.#byId.values()) {
      if (e.source !== "registered") continue;
      const age = this.#age(e, now);
      if (e.state !== "dead" && age > deadAfter) {
        this.#setState(e, "dead", `no heartbeat for ${age} ms (${MISSED_HEARTBEATS_DEAD} missed)`);
      }
      if (e.checking) continue;
      const sinceCheck = now - e.lastCheck;
      const need = e.state === "alive" || e.state === "draining"
        ? age > LATE_FACTOR * this.intervalMs || sinceCheck >= HEALTH_INTERVAL_MS
        : age <= deadAfter && sinceCheck >= RECHECK_MS;
      if (need) out.push(e.id);
    }
    return out;
  }

  /** A health check of `id` started. */
  checkStarted(id: string): void {
    const e = this.#byId.get(id);
    if (e === undefined) return;
    e.checking = true;
    e.lastCheck = this.#now();
  }

  /**
   * A health check of `id` ended: passed or not, with what was seen. `notReady`: the replica
   * answered that it is not ready yet (503: still loading its store or catching up with its
   * peers); a pending replica then stays pending (not answered, not declared dead) and is checked
   * again, so a joining replica is not logged dead before its first success.
   */
  checkDone(id: string, ok: boolean, detail: string, notReady = false): void {
    const e = this.#byId.get(id);
    if (e === undefined) return;
    e.checking = false;
    const now = this.#now();
    const age = this.#age(e, now);
    if (ok) {
      e.failures = 0;
      const up = e.state === "alive" || e.state === "draining";
      if (!up && age <= MISSED_HEARTBEATS_DEAD * this.intervalMs) {
        this.#setState(e, "alive", `health check passed (${detail})`);
      }
      return;
    }
    e.failures++;
    const late = age > LATE_FACTOR * this.intervalMs;
    if (notReady && e.state === "pending" && !late) {
      e.reason = `not ready yet: ${detail}`;
      return;
    }
    if (
      e.state !== "dead" && (late || e.failures >= HEALTH_FAILURES_DEAD || e.state === "pending")
    ) {
      this.#setState(e, "dead", `health check failed: ${detail}`);
    } else {
      e.reason = `health check failed (${e.failures}): ${detail}`;
    }
  }

  /** The known-servers list shared with replicas. */
  servers(): KnownServer[] {
    return this.entries().map((e) => ({
      id: e.id,
      address: e.address,
      port: e.port,
      state: e.state,
      provider: e.provider,
    }));
  }

  /** The `/replicas` view of every entry. */
  view(): Record<string, unknown>[] {
    const now = this.#now();
    return this.entries().map((e) => ({
      id: e.id,
      source: e.source,
      state: e.state,
      reason: e.reason,
      stateSinceMs: now - e.since,
      address: e.address,
      port: e.port || null,
      lat: e.lat,
      lon: e.lon,
      provider: e.provider,
      lastHeartbeat: e.lastHeartbeat === null || e.source === "static"
        ? null
        : new Date(e.lastHeartbeat).toISOString(),
      heartbeatAgeMs: e.lastHeartbeat === null || e.source === "static"
        ? null
        : now - e.lastHeartbeat,
      seq: e.seq,
      load: e.load,
      held: e.held.length,
      /** An admitted key: it may register again without the admin token. */
      credential: e.source === "registered" && this.#db.credential(e.id) !== null,
    }));
  }
}

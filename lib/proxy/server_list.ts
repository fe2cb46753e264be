/**
 * The proxy's list of CDN servers, from a node's `GET /_cdn/servers` (id, url, alive, removed,
 * provider), refreshed every `refreshMs` so that membership changes (a node added, removed,
 * marked dead by heartbeats) are followed. When `--node` does not answer, the other known
 * servers are asked in turn (every node serves the same list). A node without a server list
 * (started without `--data`: 503) is used alone, under the id its `/_cdn/health` reports.
 *
 * @module
 */

import { type EjectionPolicy, type ServerInfo, ServerState } from "./server_state.ts";
import { describeFetchError, peerFetch } from "../tls/client.ts";

/** Largest server list body read. */
const MAX_LIST_BYTES = 4 * 1024 * 1024;

/** Options of {@link ServerList}. */
export interface ServerListOptions {
  node: string;
  refreshMs: number;
  requestTimeoutMs: number;
  decayMs: number;
  ejection: EjectionPolicy;
  log: (line: string) => void;
  /** Called with each server that joins the list. */
  onAdded?: (s: ServerState) => void;
}

/** Parses a `/_cdn/servers` answer into the servers to route to (removed ones left out). */
export function parseServerList(body: unknown): ServerInfo[] {
  if (!Array.isArray(body)) throw new TypeError("server list must be a JSON array");
  const out: ServerInfo[] = [];
  for (const raw of body) {
    const e = raw as Record<string, unknown>;
    if (typeof e?.id !== "string" || typeof e.url !== "string" || !URL.canParse(e.url)) continue;
    if (e.removed === true) continue;
    out.push({
      id: e.id,
      url: e.url.replace(/\/+$/, ""),
      provider: typeof e.provider === "string" && e.provider !== "" ? e.provider : null,
      alive: e.alive !== false,
    });
  }
  return out;
}

async function getJson(url: string, timeoutMs: number): Promise<{ status: number; body: unknown }> {
  const res = await peerFetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const len = Number(res.headers.get("content-length") ?? 0);
  if (len > MAX_LIST_BYTES) {
    await res.body?.cancel();
    throw new RangeError(`${url} answered ${len} bytes (over ${MAX_LIST_BYTES})`);
  }
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch { /* not JSON: the status says what happened */ }
  return { status: res.status, body };
}

/** See the module doc. */
export class ServerList {
  readonly #o: ServerListOptions;
  #servers = new Map<string, ServerState>();
  #array: ServerState[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** The name the nodes report for the CDN, when one does (`cdnName` in its health). */
  reportedName: string | null = null;
  /** Last refresh: when, from where, and the error if it failed. */
  last: { at: number; from: string | null; error: string | null } = {
    at: 0,
    from: null,
    error: null,
  };

  constructor(o: ServerListOptions) {
    this.#o = o;
  }

  /** The servers known now. */
  get servers(): readonly ServerState[] {
    return this.#array;
  }

  /** Fetches the list once (throws when no node answers), then refreshes it periodically. */
  async start(): Promise<void> {
    await this.refresh(true);
    const tick = async () => {
      if (this.#closed) return;
      try {
        await this.refresh(false);
      } catch (e) {
        this.#o.log(
          `proxy: server list refresh failed (keeping the last one): ${(e as Error).message}`,
        );
      }
      if (!this.#closed) this.#timer = setTimeout(tick, this.#o.refreshMs);
    };
    this.#timer = setTimeout(tick, this.#o.refreshMs);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  /** Asks `--node`, then every known server, for the list; applies the first answer. */
  async refresh(first: boolean): Promise<void> {
    const sources = [this.#o.node, ...this.servers.map((s) => s.info.url)];
    const errors: string[] = [];
    for (const base of [...new Set(sources)]) {
      try {
        const list = await this.#fetchFrom(base);
        this.#apply(list);
        this.last = { at: Date.now(), from: base, error: null };
        return;
      } catch (e) {
        errors.push(`${base}: ${describeFetchError(e)}`);
      }
    }
    const error = `no node answered the server list (${errors.join("; ")})`;
    this.last = { ...this.last, at: Date.now(), error };
    if (first || this.#servers.size === 0) throw new Error(error);
    this.#o.log(`proxy: ${error}; keeping the last list`);
  }

  async #fetchFrom(base: string): Promise<ServerInfo[]> {
    const t = this.#o.requestTimeoutMs;
    const health = await getJson(`${base}/_cdn/health`, t).catch(() => null);
    const h = health?.body as Record<string, unknown> | null;
    this.#readName(h);
    const r = await getJson(`${base}/_cdn/servers`, t);
    if (r.status === 200) return parseServerList(r.body);
    // A node without a store has no server list: it is the only server.
    const id = h?.nodeId ?? h?.id;
    if (r.status === 503 && typeof id === "string") {
      return [{
        id,
        url: base,
        provider: typeof h?.provider === "string" ? h.provider : null,
        alive: true,
      }];
    }
    throw new Error(`GET /_cdn/servers answered ${r.status}`);
  }

  /** Takes the CDN's name from a node's health (`cdnName`), when it reports one. */
  #readName(h: Record<string, unknown> | null): void {
    const name = h?.cdnName;
    if (typeof name === "string" && name !== "") this.reportedName = name;
  }

  /**
   * The CDN's name when no node reported it yet: asks every known server's `/_cdn/health` in
   * turn (as for the list) until one reports it; null when none does.
   */
  async findName(): Promise<string | null> {
    for (const s of this.servers) {
      if (this.reportedName !== null) break;
      const url = `${s.info.url}/_cdn/health`;
      const health = await getJson(url, this.#o.requestTimeoutMs).catch(() => null);
      this.#readName(health?.body as Record<string, unknown> | null);
    }
    return this.reportedName;
  }

  #apply(list: ServerInfo[]): void {
    const seen = new Set<string>();
    for (const info of list) {
      seen.add(info.id);
      const cur = this.#servers.get(info.id);
      if (cur !== undefined && cur.info.url === info.url) {
        cur.info = info;
        continue;
      }
      const s = new ServerState(info, this.#o.decayMs, this.#o.ejection);
      this.#servers.set(info.id, s);
      this.#o.log(`proxy: server ${info.id} ${info.url} (provider ${info.provider ?? "unknown"})`);
      this.#o.onAdded?.(s);
    }
    for (const id of [...this.#servers.keys()]) {
      if (!seen.has(id)) {
        this.#servers.delete(id);
        this.#o.log(`proxy: server ${id} left the list`);
      }
    }
    this.#array = [...this.#servers.values()];
  }
}

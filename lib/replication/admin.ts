/**
 * The operator's side of membership: the admin token check, admitting a node's public key
 * (`POST /_cdn/credentials`, what a joining node calls at its seeds with the admin token), and
 * the server-list routes (`GET/POST /_cdn/servers`, `DELETE /_cdn/servers/ID`, which also
 * revokes the node's key). {@link AdminRoutes.admitAt} is the joining node's side.
 *
 * Admission: `POST /_cdn/credentials` with `Authorization: Bearer ADMIN_TOKEN` and
 * `{"id", "url", "key", "provider"?}` (key: Ed25519 public key, base64 SPKI) answers `{"node", "servers"}`
 * (the server list with every admitted key) and `x-nearcast-admin-mac: HEX`, the HMAC-SHA256
 * of the answer's body keyed with the admin token, which the joining node checks.
 *
 * @module
 */

import type { ServerEntry } from "./db.ts";
import type { Membership } from "./membership.ts";
import type { HybridClock } from "./version.ts";
import { encoded, json, readJsonObject, Refusal, serverUrl } from "./_http.ts";
import { PeerError, readAll } from "./peer_auth.ts";
import { ADMIN_MAC_HEADER, hmacHex, validPublicKey } from "./trust.ts";
import { checkBearer, sameSecret } from "../common/auth.ts";
import { describeFetchError, peerFetch } from "../tls/client.ts";
import { MAX_PROVIDER_LENGTH } from "../fleet/protocol.ts";

/** Largest JSON body of the server and admission APIs: a server list of thousands of nodes. */
export const MAX_API_BODY = 1024 * 1024;
/** Longest node id. */
export const MAX_ID_LENGTH = 256;

/** Options of {@link AdminRoutes}. */
export interface AdminOptions {
  id: string;
  /** This node's public key. */
  key: string;
  adminToken: string | null;
  /** This node's provider (`--provider`); "" when not stated. */
  provider?: string;
  members: Membership;
  clock: HybridClock;
  requestTimeoutMs: number;
  signal: AbortSignal;
  log: (line: string) => void;
  onRemoved: (id: string) => void;
  onAdded: () => void;
}

/** See the module doc. */
export class AdminRoutes {
  #o: AdminOptions;
  #self = "";

  constructor(o: AdminOptions) {
    this.#o = o;
  }

  /** The URL other nodes use for this one. */
  get selfUrl(): string {
    return this.#self;
  }

  /** True when this node holds the admin token (it can get itself admitted at a seed). */
  get canAdmit(): boolean {
    return this.#o.adminToken !== null;
  }

  /**
   * Records this node at `url` with its key. Returns false (and logs) when its key was revoked:
   * it then stays out until it gets a new key.
   */
  setSelf(url: string): boolean {
    this.#self = url;
    const { members, id, key } = this.#o;
    const provider = this.#o.provider ?? "";
    const me = members.get(id);
    if (me?.removed && me.key === key) {
      this.#o.log(
        `replication: this node (${id}) was removed and its key revoked: other nodes refuse it; ` +
          "delete DIR/node_key.json and restart with --admin-token to join again",
      );
      return false;
    }
    if (
      me === undefined || me.url !== url || me.key !== key || me.removed ||
      (me.provider ?? "") !== provider
    ) {
      members.merge({ id, url, key, provider, version: this.#o.clock.next(), removed: false });
    }
    return true;
  }

  /** Null when `req` carries the admin token; else the uniform 401 (403 when disabled). */
  authorize(req: Request): Response | null {
    return checkBearer(
      req,
      this.#o.adminToken,
      "uploads and changes are disabled: start the node with --admin-token",
    );
  }

  /** `POST /_cdn/credentials`: admits a node's public key (admin). */
  async admit(req: Request): Promise<Response> {
    const { value: body } = await readJsonObject(req, MAX_API_BODY);
    const id = body.id, url = serverUrl(body.url), key = body.key, provider = body.provider ?? "";
    if (typeof id !== "string" || id === "" || id.length > MAX_ID_LENGTH) {
      throw new Refusal(
        400,
        `id must be a non-empty string of at most ${MAX_ID_LENGTH} characters`,
      );
    }
    if (url === null) {
      throw new Refusal(
        400,
        `url must be an http(s) base URL: received ${JSON.stringify(body.url)}`,
      );
    }
    if (!validPublicKey(key)) {
      throw new Refusal(400, "key must be an Ed25519 public key (base64 SPKI)");
    }
    if (typeof provider !== "string" || provider.length > MAX_PROVIDER_LENGTH) {
      throw new Refusal(
        400,
        `provider must be a string of at most ${MAX_PROVIDER_LENGTH} characters`,
      );
    }
    const { members } = this.#o;
    const cur = members.get(id);
    if (cur?.removed && cur.key === key) {
      throw new Refusal(403, `${id} was removed and its key revoked: the node needs a new key`);
    }
    if (
      cur === undefined || cur.removed || cur.url !== url || cur.key !== key ||
      (provider !== "" && cur.provider !== provider)
    ) {
      members.merge({ id, url, key, provider, version: this.#o.clock.next(), removed: false });
      this.#o.log(`servers: admitted ${id} ${url}`);
      this.#o.onAdded();
    }
    const answer = JSON.stringify({ node: this.#o.id, servers: members.entries() });
    return json(JSON.parse(answer), 200, [[
      ADMIN_MAC_HEADER,
      hmacHex(this.#o.adminToken!, answer),
    ]]);
  }

  /**
   * Gets this node admitted at `url` with the admin token, and merges the server list it
   * answers (checked with the admin MAC). Returns null when done, else why not and whether
   * `url` answered (a refusal) or could not be reached.
   */
  async admitAt(url: string): Promise<{ why: string; refused: boolean } | null> {
    const { id, key, adminToken, log } = this.#o;
    if (adminToken === null) return { why: "no admin token", refused: false };
    try {
      let res: Response;
      try {
        res = await peerFetch(`${url}/_cdn/credentials`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${adminToken}` },
          body: JSON.stringify({ id, url: this.#self, key, provider: this.#o.provider ?? "" }),
          signal: AbortSignal.any([
            AbortSignal.timeout(this.#o.requestTimeoutMs),
            this.#o.signal,
          ]),
        });
      } catch (e) {
        throw new PeerError(`unreachable: ${describeFetchError(e)}`, 0, { cause: e });
      }
      const raw = await readAll(res.body, MAX_API_BODY * 64, url);
      const body = new TextDecoder().decode(raw);
      if (res.status !== 200) {
        throw new PeerError(`answered ${res.status}: ${body.trim()}`, res.status);
      }
      if (!sameSecret(res.headers.get(ADMIN_MAC_HEADER) ?? "", hmacHex(adminToken, raw))) {
        throw new PeerError(
          "its answer does not carry a valid admin MAC (a different admin token?)",
          res.status,
        );
      }
      const v = JSON.parse(body) as { node?: unknown; servers?: unknown };
      this.#o.members.mergeList(v.servers, typeof v.node === "string" ? v.node : url);
      log(`servers: admitted at ${url}`);
      return null;
    } catch (e) {
      if (!(e instanceof PeerError) && !(e instanceof SyntaxError)) throw e;
      const refused = e instanceof PeerError ? e.status !== 0 : true;
      return { why: `cannot get admitted at ${url}: ${e.message}`, refused };
    }
  }

  /** `GET /_cdn/servers` (`?all=1` shows removed ones), JSON or Protobuf by `Accept`. */
  list(req: Request): Promise<Response> {
    const all = new URL(req.url).searchParams.get("all") === "1";
    return encoded(req, "servers", this.#o.members.view(all));
  }

  /** `POST /_cdn/servers` `{"url", "id"?}` (admin): lists a node (it still needs admission). */
  async addServer(req: Request): Promise<Response> {
    const { value: body } = await readJsonObject(req, MAX_API_BODY);
    const url = serverUrl(body.url);
    if (url === null) {
      throw new Refusal(
        400,
        `url must be an http(s) base URL: received ${JSON.stringify(body.url)}`,
      );
    }
    let id = body.id;
    if (id !== undefined && (typeof id !== "string" || id === "" || id.length > MAX_ID_LENGTH)) {
      throw new Refusal(
        400,
        `id must be a non-empty string of at most ${MAX_ID_LENGTH} characters`,
      );
    }
    if (id === undefined) {
      id = await this.#learnId(url).catch((e: PeerError) => {
        throw new Refusal(502, `${e.message}; pass {"url", "id"} to add a server that is down`);
      });
    }
    const cur = this.#o.members.get(id as string);
    const key = cur?.removed ? "" : cur?.key ?? "";
    const entry: ServerEntry = {
      id: id as string,
      url,
      version: this.#o.clock.next(),
      removed: false,
      key,
    };
    this.#o.members.merge(entry);
    this.#o.members.seeds.add(url);
    this.#o.log(`servers: added ${id} ${url}`);
    this.#o.onAdded();
    return json({ status: "added", id, url }, 201);
  }

  /**
   * `--node-auth cert`: lists the seed `url` (`--servers`, `--join`, a DNS server's replicas)
   * under the id it reports over TLS verified against `--ca`, unless it is listed already or
   * was removed. Its requests are then accepted when its certificate names that id. Returns
   * the id, or why not.
   */
  async listSeed(url: string): Promise<string | { why: string }> {
    let id: string;
    try {
      id = await this.#learnId(url);
    } catch (e) {
      if (!(e instanceof PeerError)) throw e;
      return { why: e.message };
    }
    const cur = this.#o.members.get(id);
    if (id === this.#o.id || (cur !== undefined && !cur.removed)) return id;
    if (cur?.removed) return { why: `${url} reports id ${id}, which was removed from the list` };
    // The oldest version there is: any entry the node itself or an operator made wins over it,
    // here and wherever the list travels (a seed URL may not be the URL the node advertises).
    this.#o.members.merge({
      id,
      url,
      version: { ts: 0, node: this.#o.id },
      removed: false,
      key: "",
    });
    this.#o.log(`servers: listed ${id} ${url} (a seed; --node-auth cert)`);
    return id;
  }

  /** The node id `url` reports in its health (over TLS verified against `--ca` when https). */
  async #learnId(url: string): Promise<string> {
    let id: unknown;
    try {
      const res = await peerFetch(`${url}/_cdn/health`, {
        signal: AbortSignal.any([AbortSignal.timeout(this.#o.requestTimeoutMs), this.#o.signal]),
      });
      id = ((await res.json()) as { nodeId?: unknown }).nodeId;
    } catch (e) {
      throw new PeerError(`cannot reach ${url} to learn its id (${describeFetchError(e)})`);
    }
    if (typeof id !== "string" || id === "" || id.length > MAX_ID_LENGTH) {
      throw new PeerError(`${url} did not report a node id: is it a Nearcast node?`);
    }
    return id;
  }

  /** `DELETE /_cdn/servers/ID` (admin): removes the node and revokes its key everywhere. */
  removeServer(id: string): Response {
    const cur = this.#o.members.get(id);
    if (cur === undefined || cur.removed) throw new Refusal(404, `no such server: ${id}`);
    if (id === this.#o.id) throw new Refusal(400, "a node cannot remove itself: ask another node");
    this.#o.members.merge({ ...cur, version: this.#o.clock.next(), removed: true });
    this.#o.onRemoved(id);
    this.#o.log(`servers: removed ${id} (its key is revoked)`);
    return json({ status: "removed", id });
  }
}

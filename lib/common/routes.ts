/**
 * Route tables: each `/_cdn/` route states its path (or a prefix followed by a name) and who may
 * call each of its methods. A process's table is the concatenation of its modules' tables
 * (the replica's: `lib/http/routes.ts`); each module dispatches from its own part of it.
 *
 * @module
 */

/**
 * Who may call a method of a route: anyone; a holder of the admin token (`Bearer`); an admitted
 * node (a node signature, `lib/replication/trust.ts`); the DNS server that holds this replica's
 * session (`Nearcast-Session` MAC, `lib/fleet/protocol.ts`).
 */
export type RouteAuth = "open" | "admin" | "node" | "session";

/** One route of a table. */
export interface Route {
  path: string;
  /** `path` ends in "/" and a (percent-encoded) name follows it. */
  prefix: boolean;
  /** Each method answered, and who may call it; other methods get 405 with `Allow`. */
  methods: Readonly<Record<string, RouteAuth>>;
}

/** The route of `table` that `path` names (a prefix route needs a name after it), or null. */
export function findRoute<R extends Route>(table: readonly R[], path: string): R | null {
  for (const r of table) {
    if (r.prefix ? path.startsWith(r.path) && path.length > r.path.length : path === r.path) {
      return r;
    }
  }
  return null;
}

/** The `Allow` header value of a route: its methods, in table order. */
export function allowOf(route: Route): string {
  return Object.keys(route.methods).join(", ");
}

/**
 * The replica process's one route table: every `/_cdn/` route it answers, with its methods and
 * who may call each ({@link Route}). It is the concatenation of the tables each part dispatches
 * from: the cache API (`api.ts`), uploads and replication (`lib/replication/node.ts`), and the
 * fleet agents (`lib/fleet/replica/fleet.ts`).
 *
 * @module
 */
import type { Route } from "../common/routes.ts";
import { AGENT_ROUTES } from "../fleet/replica/fleet.ts";
import { REPLICATION_ROUTES } from "../replication/node.ts";
import { API_ROUTES } from "./api.ts";

/** Every `/_cdn/` route of the replica process. */
export const REPLICA_ROUTES: readonly Route[] = [
  ...API_ROUTES,
  ...REPLICATION_ROUTES,
  ...AGENT_ROUTES,
];

/**
 * Test helpers of the upload area: nodes started as users start them (`main_http.ts`
 * subprocesses with `--data`, `--admin-token` and a short heartbeat), the upload CLI run as a
 * subprocess, and bounded polling.
 *
 * @module
 */

import { equal } from "node:assert/strict";
import { type ReplicaProc, startReplica } from "./_http_replica.ts";
import { runDeno } from "./_proc.ts";

export const TOKEN = "test-token";
const UPLOAD = new URL("../main_upload.ts", import.meta.url).pathname;
/** Longest wait for a node to report healthy (bootstrap done). */
const HEALTHY_TIMEOUT_MS = 20_000;
/** Heartbeat of test nodes: short, so convergence takes little time. */
export const TEST_HEARTBEAT = "200ms";
/** Longest a single request of a test may take: a hung node fails the test, not stalls it. */
export const REQUEST_TIMEOUT_MS = 10_000;
/** `fetch` bounded by {@link REQUEST_TIMEOUT_MS}. */
export function tfetch(url: string, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS), ...init });
}
/** An origin nobody listens on: uploads never need one. */
const NO_ORIGIN = "http://127.0.0.1:9";

/** A node and its data directory. */
export interface TestNode {
  id: string;
  dir: string;
  proc: ReplicaProc;
  url: string;
}

/**
 * Starts a node `id` on `dir` (created by the caller) and waits until it reports healthy
 * (asked with `healthFetch`: an https node needs one that trusts its CA).
 */
export async function startNode(
  id: string,
  dir: string,
  args: string[] = [],
  healthFetch: (url: string) => Promise<Response> = tfetch,
): Promise<TestNode> {
  const proc = await startReplica([
    "-o",
    NO_ORIGIN,
    "--data",
    dir,
    "--admin-token",
    TOKEN,
    "--id",
    id,
    "--heartbeat",
    TEST_HEARTBEAT,
    ...args,
  ]);
  try {
    await waitUntil(
      async () => {
        const res = await healthFetch(`${proc.url}/_cdn/health`);
        await res.body?.cancel();
        return res.status === 200;
      },
      HEALTHY_TIMEOUT_MS,
      `${id} healthy`,
    );
  } catch (e) {
    await proc.kill9();
    throw e;
  }
  return { id, dir, proc, url: proc.url };
}

/**
 * Starts `ids[0]` (with `firstArgs`), then every other id joining it (`--join`), each on
 * `${dir}/${id}` and healthy before the next starts; each is pushed into `nodes` once started.
 */
export async function startJoined(
  dir: string,
  nodes: (TestNode | null)[],
  ids: string[],
  firstArgs: string[] = [],
): Promise<TestNode[]> {
  const started: TestNode[] = [];
  for (const id of ids) {
    const args = started.length === 0 ? firstArgs : ["--join", started[0].url];
    const node = await startNode(id, `${dir}/${id}`, args);
    nodes.push(node);
    started.push(node);
  }
  return started;
}

/**
 * Writes `content` to a file in `dir` and uploads it to `node` as `name` (`extra`: more CLI
 * flags); the upload must succeed.
 */
export async function uploadAs(
  dir: string,
  node: TestNode,
  name: string,
  content: string | Uint8Array,
  extra: string[] = [],
): Promise<void> {
  const path = `${dir}/up-${name.replaceAll("/", "_")}`;
  if (typeof content === "string") await Deno.writeTextFile(path, content);
  else await Deno.writeFile(path, content);
  const r = await runUpload([path, "--to", node.url, "--token", TOKEN, "--name", name, ...extra]);
  equal(r.code, 0, r.err);
}

/** Polls `cond` every 100 ms until it holds; throws after `timeoutMs` naming `what`. */
export async function waitUntil(
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  while (Date.now() < deadline) {
    try {
      if (await cond()) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ""}`);
}

/** Runs the upload CLI to completion. */
export async function runUpload(
  args: string[],
): Promise<{ code: number; out: string; err: string }> {
  const r = await runDeno([UPLOAD, ...args]);
  return { code: r.code, out: r.stdout, err: r.stderr };
}

/** A node's manifest as `name → sha256` (tombstones as `-`). */
export async function manifestOf(url: string): Promise<Map<string, string>> {
  const res = await tfetch(`${url}/_cdn/manifest`);
  const m = await res.json() as { entries: { name: string; sha256: string; deleted: boolean }[] };
  return new Map(m.entries.map((e) => [e.name, e.deleted ? "-" : e.sha256]));
}

/** `/_cdn/manifest` digests of all nodes are equal. */
export async function converged(nodes: TestNode[]): Promise<boolean> {
  const digests = await Promise.all(nodes.map(async (n) => {
    const res = await tfetch(`${n.url}/_cdn/manifest`);
    return ((await res.json()) as { digest: string }).digest;
  }));
  return digests.every((d) => d === digests[0]);
}

/** Waits until every node lists every node of `nodes` (and no other) as alive. */
export function knowEachOther(nodes: TestNode[], timeoutMs: number): Promise<void> {
  return waitUntil(
    async () => {
      for (const n of nodes) {
        const list = await (await tfetch(`${n.url}/_cdn/servers`)).json() as { alive: boolean }[];
        if (list.length !== nodes.length || !list.every((s) => s.alive)) return false;
      }
      return true;
    },
    timeoutMs,
    `every node to know the ${nodes.length} nodes`,
  );
}

/** Hex SHA-256 of bytes. */
export async function sha256(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Deterministic pseudo-random bytes (xorshift), so a failure can be reproduced. */
export function bytesOf(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed | 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Fetches `url` and returns status and body bytes. */
export async function get(
  url: string,
): Promise<{ status: number; body: Uint8Array; headers: Headers }> {
  const res = await tfetch(url);
  return {
    status: res.status,
    body: new Uint8Array(await res.arrayBuffer()),
    headers: res.headers,
  };
}

/** Runs `fn` with a fresh temporary directory, removed afterwards even on failure. */
export async function withTempDir<T>(fn: (dir: string) => T | Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "nearcast-upload-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Runs `fn` with a fresh temporary directory and an empty node list; every node still in the
 * list is stopped afterwards (a test sets an entry to null once it stopped that node itself).
 */
export function withNodes<N extends TestNode | null = TestNode>(
  fn: (dir: string, nodes: N[]) => Promise<void>,
): Promise<void> {
  return withTempDir(async (dir) => {
    const nodes: N[] = [];
    try {
      await fn(dir, nodes);
    } finally {
      await stopAll(nodes);
    }
  });
}

/** Longest a node may take to stop on SIGTERM before the test kills it. */
const STOP_TIMEOUT_MS = 10_000;

/** Stops every node (SIGTERM, then SIGKILL after a bound), ignoring those already gone. */
export async function stopAll(nodes: (TestNode | null | undefined)[]): Promise<void> {
  await Promise.allSettled(nodes.map(async (n) => {
    if (!n) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => timer = setTimeout(resolve, STOP_TIMEOUT_MS));
    await Promise.race([n.proc.close(), late.then(() => n.proc.kill9())]);
    clearTimeout(timer);
  }));
}

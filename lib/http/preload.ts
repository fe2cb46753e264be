/**
 * Preload: fetches a list of paths or URLs through a replica's handler at start-up, so the
 * cache is warm before the first client asks, and says what was cached, skipped and failed.
 *
 * A list has one entry per line; blank lines and `#` comments are ignored. An entry is
 * - an absolute path, `/docs/page.html?v=2`, or a relative one, `docs/page.html` (same thing);
 * - an http(s) URL on the origin's host, `http://origin.example.com/docs/page.html`: URLs on
 *   another host are skipped (the replica only caches its origin), never rewritten;
 * - either of these with a count before or after it, as popularity logs and `uniq -c` write
 *   them: `/docs/page.html 1234` or `  1234 /docs/page.html` (the count is ignored).
 * Anything else is skipped with its line number; a path listed twice is fetched once.
 *
 * @example
 * ```ts
 * import { parsePreloadList } from "./preload.ts";
 * const list = parsePreloadList(["docs/a.html 12", "ftp://x/y"], "http://127.0.0.1:8000");
 * console.log(list.targets); // [{ line: 1, path: "/docs/a.html" }]
 * console.log(list.skipped[0].reason); // "not an http(s) URL"
 * ```
 *
 * @module
 */

/** A replica's request handler (see `createReplica`). */
export type Handler = (req: Request) => Response | Promise<Response>;

/** A path to fetch and the line it came from (1-based). */
export interface PreloadTarget {
  line: number;
  path: string;
}

/** A line that is not fetched, and why. */
export interface PreloadSkip {
  line: number;
  text: string;
  reason: string;
}

/** What one line says: a path, a reason to skip it, or null for a blank line or comment. */
export function parsePreloadLine(
  raw: string,
  origin: string,
): { path: string } | { reason: string } | null {
  const line = raw.trim();
  if (line === "" || line.startsWith("#")) return null;
  const fields = line.split(/\s+/);
  let entry: string;
  if (fields.length === 1) entry = fields[0];
  else if (fields.length === 2 && /^[0-9]+$/.test(fields[1])) entry = fields[0];
  else if (fields.length === 2 && /^[0-9]+$/.test(fields[0])) entry = fields[1];
  else return { reason: "expected a path, a URL, or a path or URL with a count" };
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(entry) && !entry.startsWith("/")) {
    let url: URL;
    try {
      url = new URL(entry);
    } catch {
      return { reason: "not a valid URL" };
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return { reason: "not an http(s) URL" };
    }
    const o = new URL(origin);
    if (url.hostname !== o.hostname || (url.port !== "" && url.port !== o.port)) {
      return { reason: `not on the origin's host (${o.host})` };
    }
    return { path: url.pathname + url.search };
  }
  let url: URL;
  try {
    url = new URL(entry.startsWith("/") ? entry : `/${entry}`, "http://preload");
  } catch {
    return { reason: "not a valid path" };
  }
  if (url.host !== "preload") return { reason: "not a valid path" }; // `//host/x`
  return { path: url.pathname + url.search };
}

/** Parses a whole list: what to fetch (each path once) and what is skipped, with line numbers. */
export function parsePreloadList(
  lines: string[],
  origin: string,
): { targets: PreloadTarget[]; skipped: PreloadSkip[] } {
  const targets: PreloadTarget[] = [];
  const skipped: PreloadSkip[] = [];
  const seen = new Map<string, number>();
  for (const [i, raw] of lines.entries()) {
    const r = parsePreloadLine(raw, origin);
    if (r === null) continue;
    const line = i + 1;
    if ("reason" in r) {
      skipped.push({ line, text: raw.trim(), reason: r.reason });
    } else if (seen.has(r.path)) {
      skipped.push({
        line,
        text: raw.trim(),
        reason: `listed already on line ${seen.get(r.path)}`,
      });
    } else {
      seen.set(r.path, line);
      targets.push({ line, path: r.path });
    }
  }
  return { targets, skipped };
}

/** Options of {@link preload}. */
export interface PreloadOptions {
  /** The origin base URL: URLs on other hosts are skipped. */
  origin: string;
  /** Fetches per batch. Default 8. */
  concurrency?: number;
  /** Log sink (default `console.error`). */
  log?: (line: string) => void;
}

/** What a preload did. */
export interface PreloadSummary {
  /** Fetched and now in the cache. */
  cached: number;
  /** Fetched (status < 400) but not stored: uncacheable, or larger than the object limit. */
  notCached: number;
  /** Lines not fetched: not understood, on another host, or duplicates. */
  skipped: number;
  /** Fetches that failed: status >= 400 or an error. */
  failed: number;
}

type Outcome = "cached" | "notCached" | "failed";

async function fetchOne(handler: Handler, t: PreloadTarget, log: (l: string) => void) {
  const url = `http://preload${t.path}`;
  try {
    const res = await handler(new Request(url));
    await res.body?.cancel();
    if (res.status >= 400) {
      log(`preload: line ${t.line}: ${t.path}: failed: HTTP ${res.status}`);
      return "failed";
    }
    // Ask the cache alone: 504 when the response was not stored.
    const check = await handler(
      new Request(url, { method: "HEAD", headers: { "cache-control": "only-if-cached" } }),
    );
    await check.body?.cancel();
    if (check.status < 400) return "cached";
    log(`preload: line ${t.line}: ${t.path}: HTTP ${res.status} but not cached (not storable)`);
    return "notCached";
  } catch (e) {
    log(`preload: line ${t.line}: ${t.path}: failed: ${(e as Error).message}`);
    return "failed";
  }
}

/**
 * Fetches every listed path into the cache, `concurrency` at a time, with a progress line per
 * batch, each skipped line and each failure with its line number, and a summary line.
 */
export async function preload(
  handler: Handler,
  lines: string[],
  opts: PreloadOptions,
): Promise<PreloadSummary> {
  const concurrency = opts.concurrency ?? 8;
  const log = opts.log ?? ((line: string) => console.error(line));
  const { targets, skipped } = parsePreloadList(lines, opts.origin);
  for (const s of skipped) log(`preload: line ${s.line}: skipped: ${s.reason}: ${s.text}`);
  const sum: PreloadSummary = { cached: 0, notCached: 0, skipped: skipped.length, failed: 0 };
  const batches = Math.ceil(targets.length / concurrency);
  for (let i = 0; i < targets.length; i += concurrency) {
    const batch = targets.slice(i, i + concurrency);
    const outcomes: Outcome[] = await Promise.all(batch.map((t) => fetchOne(handler, t, log)));
    for (const o of outcomes) sum[o]++;
    log(
      `preload: batch ${i / concurrency + 1}/${batches}: ` +
        `${Math.min(i + concurrency, targets.length)}/${targets.length} fetched, ` +
        `${sum.failed} failed`,
    );
  }
  log(
    `preload: done: ${sum.cached} cached, ${sum.notCached} not cached, ${sum.skipped} skipped, ` +
      `${sum.failed} failed`,
  );
  return sum;
}

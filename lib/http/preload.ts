/**
 * Preload: fetches a list of paths or URLs through a replica's handler at start-up, so the
 * cache is warm before the first client asks.
 *
 * @module
 */

/** A replica's request handler (see `createReplica`). */
export type Handler = (req: Request) => Response | Promise<Response>;

/** Options of {@link preload}. */
export interface PreloadOptions {
  /** Fetches per batch. Default 8. */
  concurrency?: number;
  /** Log sink (default `console.error`). */
  log?: (line: string) => void;
}

/** Fetches each path or URL into the cache, `concurrency` at a time, logging per batch. */
export async function preload(
  handler: Handler,
  lines: string[],
  opts: PreloadOptions = {},
): Promise<{ ok: number; failed: number }> {
  const concurrency = opts.concurrency ?? 8;
  const log = opts.log ?? ((line: string) => console.error(line));
  const targets: string[] = [];
  let failed = 0;
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (line.startsWith("/")) targets.push(line);
    else {
      try {
        const u = new URL(line);
        if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("not http");
        targets.push(u.pathname + u.search);
      } catch {
        failed++;
        log(`preload: line ${i + 1}: not a path or http(s) URL: ${line}`);
      }
    }
  }
  let ok = 0;
  for (let i = 0; i < targets.length; i += concurrency) {
    const batch = targets.slice(i, i + concurrency);
    const results = await Promise.all(batch.map(async (path) => {
      try {
        const res = await handler(new Request(`http://preload${path}`));
        await res.body?.cancel();
        if (res.status >= 400) log(`preload: ${path}: ${res.status}`);
        return res.status < 400;
      } catch (e) {
        log(`preload: ${path}: ${(e as Error).message}`);
        return false;
      }
    }));
    for (const r of results) r ? ok++ : failed++;
    log(
      `preload: batch ${Math.floor(i / concurrency) + 1}/${
        Math.ceil(targets.length / concurrency)
      }: ` +
        `${Math.min(i + concurrency, targets.length)}/${targets.length} fetched, ${failed} failed`,
    );
  }
  log(`preload: done: ${ok} cached, ${failed} failed`);
  return { ok, failed };
}

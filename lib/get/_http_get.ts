/**
 * One HTTP GET for the index client, with `node:http` (Deno's `fetch` does not send a `Host`
 * header of our choosing, and `--name` needs one): the status, the headers, and the body read
 * one chunk at a time with a limit on the wait for each.
 *
 * @module
 */
import http from "node:http";

/** A response whose body is read with {@link Fetched.next}. */
export interface Fetched {
  status: number;
  headers: Headers;
  /** The next chunk of the body, or null at its end; throws when none comes in `idleMs`. */
  next(idleMs: number): Promise<Uint8Array | null>;
  /** Drops the connection (the rest of the body is not read). */
  cancel(): void;
}

/** GETs `url` with `headers`; rejects when the response headers take longer than `timeoutMs`. */
export function httpGet(
  url: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<Fetched> {
  if (!url.startsWith("http://")) {
    // Replicas started with --tls serve HTTPS with the fleet's private CA: not yet supported.
    return Promise.reject(new Error(`only http:// holders are supported yet: ${url}`));
  }
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers });
    const timer = setTimeout(
      () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)),
      timeoutMs,
    );
    req.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.on("response", (res) => {
      clearTimeout(timer);
      const h = new Headers();
      for (const [k, v] of Object.entries(res.headers)) {
        if (typeof v === "string") h.set(k, v);
        else if (Array.isArray(v)) h.set(k, v.join(", "));
      }
      const it = res[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
      // A complete body is `complete`; one cut short (the replica died) ends without it.
      resolve({
        status: res.statusCode ?? 0,
        headers: h,
        async next(idleMs) {
          let t: ReturnType<typeof setTimeout> | undefined;
          const idle = new Promise<never>((_, rej) => {
            t = setTimeout(() => rej(new Error(`no byte for ${idleMs} ms`)), idleMs);
          });
          try {
            const r = await Promise.race([it.next(), idle]);
            if (!r.done) return r.value;
            if (!res.complete) throw new Error("the connection closed before the end of the body");
            return null;
          } catch (e) {
            req.destroy();
            throw e;
          } finally {
            clearTimeout(t);
          }
        },
        cancel: () => req.destroy(),
      });
    });
  });
}

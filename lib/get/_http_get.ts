/**
 * One HTTP GET for the index client, with `node:http` (Deno's `fetch` does not send a `Host`
 * header of our choosing, and `--name` needs one): the status, the headers, and the body read
 * one chunk at a time with a limit on the wait for each. An `https:` holder (a replica started
 * with `--tls`) goes through `node:https` with the process's trust (`lib/tls/client.ts`): with
 * `--ca`, its certificate must chain to that CA alone and name the address dialled (not the
 * `Host` sent); a failed handshake rejects with `TLS: <reason>`.
 *
 * @module
 */
import http from "node:http";
import https from "node:https";
import tls from "node:tls";
import { nodeTlsOptions, tlsFailure } from "../tls/client.ts";

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
  const u = new URL(url);
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    return Promise.reject(new Error(`not an http(s) URL: ${url}`));
  }
  return new Promise((resolve, reject) => {
    const req = u.protocol === "http:" ? http.get(url, { headers }) : https.get(url, {
      headers,
      ...dialledName(u),
      // One connection per transfer (none kept idle past the download).
      agent: false,
      ...nodeTlsOptions(),
    });
    const timer = setTimeout(
      () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)),
      timeoutMs,
    );
    req.on("error", (e) => {
      clearTimeout(timer);
      const tls = tlsFailure(e);
      reject(tls === null ? e : new Error(tls, { cause: e }));
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

/**
 * TLS options that verify the certificate against the address dialled, not the `Host` sent
 * (`--name`, which `node:https` would otherwise take as the server name): a DNS name is the
 * server name; an IP address cannot be one, so the check names it.
 */
function dialledName(u: URL): Pick<tls.ConnectionOptions, "servername" | "checkServerIdentity"> {
  const host = u.hostname.replace(/^\[|\]$/g, "");
  if (!/^[0-9.]+$|:/.test(host)) return { servername: host };
  return { checkServerIdentity: (_name, cert) => tls.checkServerIdentity(host, cert) };
}

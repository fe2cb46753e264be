/**
 * POSTs a streamed body with `node:http`. Deno's `fetch` streams request bodies an order of
 * magnitude slower when the receiver reads at disk speed (measured: 100 MiB in ~8 s with
 * `fetch`, ~0.7 s with `node:http`, on loopback; see docs/notes/upload.md), so uploads and
 * pushes use this instead.
 *
 * @module
 */

import http from "node:http";
import https from "node:https";
import { concatBytes } from "../common/bytes.ts";
import { nodeTlsOptions, tlsFailure } from "../tls/client.ts";

/** The answer to {@link postStream}. */
export interface PostResult {
  status: number;
  /** The answer's body as text (UTF-8). */
  text: string;
  /** The answer's body as bytes (a Protobuf answer). */
  body: Uint8Array;
  /** The answer's headers (lower-case names; repeated ones joined with `, `). */
  headers: [string, string][];
}

/** Largest answer kept: uploads answer with a short JSON or text message. */
const MAX_ANSWER_BYTES = 1024 * 1024;

/**
 * A body that writes itself: called once with `write`, whose promise resolves when the bytes
 * given to it have been handed to the socket (so their buffer may be reused) and rejects when
 * the request failed or was answered early. Back-pressure is the producer awaiting it.
 */
export type BodyWriter = (write: (bytes: Uint8Array) => Promise<void>) => Promise<void>;

/**
 * POSTs `body` to `url` with `headers`, honouring back-pressure; resolves with the status
 * and the answer's text, rejects on a connection error or when `signal` aborts.
 */
export function postStream(
  url: string,
  headers: Record<string, string>,
  body: ReadableStream<Uint8Array> | BodyWriter,
  signal?: AbortSignal,
): Promise<PostResult> {
  const u = new URL(url);
  const mod = u.protocol === "https:" ? https : http;
  return new Promise<PostResult>((resolve, reject) => {
    let settled = false;
    const reader = body instanceof ReadableStream ? body.getReader() : null;
    /** Rejecters of writes not yet flushed (a producer's `write`). */
    const writes = new Set<(e: Error) => void>();
    const stopWrites = (e: Error) => {
      for (const w of [...writes]) w(e);
    };
    const fail = (e: unknown) => {
      if (settled) return;
      settled = true;
      reader?.cancel(e).catch(() => {});
      req.destroy();
      const tls = tlsFailure(e);
      const err = tls !== null
        ? new Error(tls, { cause: e })
        : e instanceof Error
        ? e
        : new Error(String(e));
      stopWrites(err);
      reject(err);
    };
    const req = mod.request({
      host: u.hostname.replace(/^\[|\]$/g, ""),
      port: u.port === "" ? undefined : Number(u.port),
      method: "POST",
      path: u.pathname + u.search,
      // One connection per transfer, closed after it: an idle keep-alive connection would hold
      // the receiver's graceful shutdown open (Deno.serve waits for its connections).
      agent: false,
      // --ca: the peer is verified against the fleet's CA (lib/tls/client.ts).
      ...(mod === https ? nodeTlsOptions() : {}),
      headers: { ...headers, "transfer-encoding": "chunked" },
    }, (res) => {
      const parts: Uint8Array[] = [];
      let size = 0;
      res.on("data", (d: Uint8Array) => {
        if (size < MAX_ANSWER_BYTES) parts.push(d);
        size += d.length;
      });
      res.on("end", () => {
        if (settled) return;
        settled = true;
        const bytes = concatBytes(parts);
        const text = new TextDecoder().decode(bytes);
        const headers: [string, string][] = [];
        for (const [k, v] of Object.entries(res.headers)) {
          if (v !== undefined) headers.push([k, Array.isArray(v) ? v.join(", ") : v]);
        }
        resolve({ status: res.statusCode ?? 0, text, body: bytes, headers });
        reader?.cancel().catch(() => {});
        stopWrites(new Error("the request was answered before its body was sent"));
      });
      res.on("error", fail);
    });
    req.on("error", fail);
    const onAbort = () => fail(signal?.reason ?? new Error("aborted"));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    const write = (bytes: Uint8Array) =>
      new Promise<void>((resolve, reject) => {
        if (settled) return reject(new Error("the request is over"));
        const stop = (e: Error) => {
          writes.delete(stop);
          reject(e);
        };
        writes.add(stop);
        req.write(bytes, (err?: Error | null) => {
          writes.delete(stop);
          if (err) reject(err);
          else resolve();
        });
      });
    if (reader === null) {
      (async () => {
        await (body as BodyWriter)(write);
        if (!settled) req.end();
      })().catch(fail);
      return;
    }
    (async () => {
      while (!settled) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!req.write(value)) {
          await new Promise<void>((r) => {
            const done = () => {
              req.off("drain", done);
              req.off("close", done);
              r();
            };
            req.on("drain", done);
            req.on("close", done);
          });
        }
      }
      if (!settled) req.end();
    })().catch(fail);
  });
}

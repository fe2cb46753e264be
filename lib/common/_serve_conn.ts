/**
 * The two Deno internals the limited listener needs, in one place. Deno 2 has no public API to
 * serve HTTP on an accepted connection (`Deno.serveHttp` was removed), but `Deno.serve` itself
 * is built on `serveHttpOnConnection` / `serveHttpOnListener`, which Deno 2.9 exposes on
 * `Deno[Deno.internal]`. The `./deno` wrapper pins the version; `tests/http_limits_test.ts`
 * fails if a Deno upgrade removes them.
 *
 * @module
 */

/** What `serveHttpOnConnection` answers: the `Deno.HttpServer` of one connection. */
export interface ConnServer {
  finished: Promise<void>;
  shutdown(): Promise<void>;
}

type ServeOnConnection = (
  conn: Deno.Conn,
  signal: AbortSignal,
  handler: (
    req: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ) => Response | Promise<Response>,
  onError: (error: unknown) => Response | Promise<Response>,
  onListen: () => void,
) => ConnServer;

function internals(): Record<string, unknown> {
  const d = Deno as unknown as Record<symbol | string, unknown>;
  return (d[d.internal as symbol] ?? {}) as Record<string, unknown>;
}

const serveHttpOnConnection = internals().serveHttpOnConnection as ServeOnConnection | undefined;

// Aborting the signal of a connection Deno has just closed (the client left at the moment we
// time it out) makes Deno's abort listener throw BadResource from an event listener, which
// would end the process. The caller never aborts a connection it saw finish; this guard covers
// the few event-loop turns between Deno closing it and `finished` settling.
globalThis.addEventListener("error", (ev) => {
  const e = ev.error;
  if (e instanceof Deno.errors.BadResource && /deno_http/.test(e.stack ?? "")) {
    ev.preventDefault();
  }
});

/**
 * Serves HTTP/1.1 on one accepted connection with Deno's own server (hyper); aborting `signal`
 * closes the connection at once.
 */
export function serveOnConnection(
  conn: Deno.Conn,
  signal: AbortSignal,
  handler: (
    req: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ) => Response | Promise<Response>,
  onError: (error: unknown) => Response | Promise<Response>,
): ConnServer {
  if (serveHttpOnConnection === undefined) {
    throw new Error(
      `Cannot serve a connection: this Deno (${Deno.version.deno}) has no serveHttpOnConnection`,
    );
  }
  return serveHttpOnConnection(conn, signal, handler, onError, () => {});
}

const RESPONSE = Object.getOwnPropertySymbols(new Response("")).find((s) =>
  s.description === "response"
);

/** Deno's inner body of a response: its stream or static bytes, and its length when known. */
export type InnerBody =
  | { streamOrStatic?: unknown; length?: number | null }
  | null
  | undefined;

/**
 * The inner body of `res` without touching `res.body` (see {@link hasStreamBody}); undefined
 * when unknown.
 */
export function innerBody(res: Response): InnerBody {
  if (RESPONSE === undefined) return undefined;
  return (res as unknown as Record<symbol, { body?: InnerBody } | undefined>)[RESPONSE]?.body;
}

/**
 * Whether a response's body is a stream (not bytes or a string held in memory), without
 * touching `res.body`: reading that getter turns a static body into a stream and takes
 * `Deno.serve` off its fast path. False when unknown.
 */
export function hasStreamBody(res: Response): boolean {
  return innerBody(res)?.streamOrStatic instanceof ReadableStream;
}

/** Bytes of a body held in memory (0 for strings, streams, none, or when unknown). */
export function staticBodyLength(res: Response): number {
  const b = innerBody(res);
  return b && !(b.streamOrStatic instanceof ReadableStream) ? b.length ?? 0 : 0;
}

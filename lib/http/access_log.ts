/**
 * The replica's access log (`--access-log FILE|-`, `--access-log-format combined|json`) and
 * its log of origin failures: every 502 and 504 answer is logged with its cause (the answer's
 * message), with or without an access log, except a 504 to a request that allows only cached
 * answers ({@link cacheOnlyAnswer}).
 *
 * Combined lines are Apache's and nginx's combined format followed by the cache status
 * (`X-Cache`: HIT, MISS, STALE...; `-` for none) and the origin's time to response headers in
 * seconds (`-` when the request did not reach the origin). The bytes field is the answer's
 * `Content-Length` (`-` when it streams without one). JSON lines carry the same as fields.
 *
 * @module
 */
import { concatBytes } from "../common/bytes.ts";

/** What the origin time of a request is recorded against (the client's request). */
const upstreamSeconds = new WeakMap<Request, number>();

/** Records that answering `req` took `seconds` at the origin (time to response headers). */
export function noteUpstream(req: Request, seconds: number): void {
  upstreamSeconds.set(req, seconds);
}

/** A request handler of the listener. */
export type AccessHandler = (
  req: Request,
  info?: Deno.ServeHandlerInfo<Deno.NetAddr>,
) => Response | Promise<Response>;

/** Options of {@link withAccessLog}. */
export interface AccessLogOptions {
  /** Where access lines go, or null for no access log. */
  access: ((line: string) => void) | null;
  format: "combined" | "json";
  /** The process's log (origin failures). */
  log: (line: string) => void;
  now?: () => Date;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n: number) => String(n).padStart(2, "0");

/** `[03/Dec/2026:20:03:11 +0000]`'s inside, in UTC. */
export function clfTime(d: Date): string {
  return `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

/** A header value quoted for a combined line (`"` and `\` escaped, controls dropped). */
function quoted(v: string | null): string {
  if (v === null || v === "") return '"-"';
  // deno-lint-ignore no-control-regex
  return `"${v.replace(/[\x00-\x1f\x7f]/g, "").replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** Answers that asked no origin (see {@link cacheOnlyAnswer}). */
const cacheOnly = new WeakSet<Response>();

/**
 * Marks `res`, a 504 to a request that allows only cached answers (a client's `only-if-cached`,
 * RFC 9111 §5.2.1.7, or a member's peer request), as no origin failure: nothing was asked of the
 * origin, so the failure log leaves it out (members ask each other on every miss). Returns it.
 */
export function cacheOnlyAnswer(res: Response): Response {
  cacheOnly.add(res);
  return res;
}

/** Largest own error text read for its cause. */
const MAX_CAUSE_BYTES = 4096;

/**
 * Why a 502/504 was answered: the message of our own short text answer, or, for an origin's
 * answer relayed as it is (it carries `X-Cache`), that the origin answered so; its body is
 * never read here.
 */
async function causeOf(res: Response): Promise<string> {
  if (res.headers.has("x-cache")) return `the origin answered ${res.status}`;
  if (!(res.headers.get("content-type") ?? "").startsWith("text/plain")) return "(no message)";
  const reader = res.clone().body?.getReader();
  if (reader === undefined) return "(no message)";
  const parts: Uint8Array[] = [];
  let n = 0;
  try {
    while (n < MAX_CAUSE_BYTES) {
      const r = await reader.read();
      if (r.done) break;
      parts.push(r.value);
      n += r.value.length;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  const text = new TextDecoder().decode(concatBytes(parts).subarray(0, MAX_CAUSE_BYTES));
  return text.replace(/^\d{3}: /, "").trim().slice(0, 500) || "(no message)";
}

/**
 * Wraps `handler`: logs each answer (when asked) and every 502/504 with its cause. A handler's
 * synchronous answer (a cache hit) stays synchronous, and without an access log nothing but the
 * status is looked at: the hit path pays one comparison.
 */
export function withAccessLog(handler: AccessHandler, o: AccessLogOptions): AccessHandler {
  const now = o.now ?? (() => new Date());
  const access = o.access;
  const line = (
    req: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr> | undefined,
    res: Response,
    start: number,
  ): string => {
    const url = new URL(req.url);
    const target = url.pathname + url.search;
    const upstream = upstreamSeconds.get(req);
    const fields = {
      time: now(),
      remote: info?.remoteAddr.hostname ?? "-",
      method: req.method,
      target,
      status: res.status,
      bytes: res.headers.get("content-length"),
      referer: req.headers.get("referer"),
      userAgent: req.headers.get("user-agent"),
      cache: res.headers.get("x-cache"),
      upstream: upstream === undefined ? null : Math.round(upstream * 1e6) / 1e6,
      duration: Math.round((performance.now() - start) * 1e3) / 1e6,
    };
    return o.format === "json"
      ? JSON.stringify({
        time: fields.time.toISOString(),
        remote: fields.remote,
        method: fields.method,
        target: fields.target,
        status: fields.status,
        bytes: fields.bytes === null ? null : Number(fields.bytes),
        referer: fields.referer,
        userAgent: fields.userAgent,
        cache: fields.cache,
        upstreamSeconds: fields.upstream,
        durationSeconds: fields.duration,
      })
      : `${fields.remote} - - [${clfTime(fields.time)}] ` +
        `${quoted(`${req.method} ${target} HTTP/1.1`)} ${fields.status} ${fields.bytes ?? "-"} ` +
        `${quoted(fields.referer)} ${quoted(fields.userAgent)} ${fields.cache ?? "-"} ` +
        `${fields.upstream ?? "-"}`;
  };
  const failure = async (req: Request, res: Response) => {
    const url = new URL(req.url);
    o.log(
      `http: origin failure: ${res.status} ${req.method} ${url.pathname}${url.search}: ${await causeOf(
        res,
      )}`,
    );
  };
  const finish = (
    req: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr> | undefined,
    res: Response,
    start: number,
  ): Response | Promise<Response> => {
    if ((res.status === 502 || res.status === 504) && !cacheOnly.has(res)) {
      return failure(req, res).then(() => {
        if (access !== null) access(line(req, info, res, start));
        return res;
      });
    }
    if (access !== null) access(line(req, info, res, start));
    return res;
  };
  return (req, info) => {
    const start = access === null ? 0 : performance.now();
    const out = handler(req, info);
    return out instanceof Promise
      ? out.then((res) => finish(req, info, res, start))
      : finish(req, info, out, start);
  };
}

/** A writer of whole lines to `path` (appended, created), or to standard output for `-`. */
export function openAccessLog(path: string): { write: (line: string) => void; close(): void } {
  const enc = new TextEncoder();
  const file = path === "-" ? null : Deno.openSync(path, { append: true, create: true });
  const out = file ?? Deno.stdout;
  return {
    write(line) {
      const bytes = enc.encode(line + "\n");
      let off = 0;
      while (off < bytes.length) off += out.writeSync(bytes.subarray(off));
    },
    close() {
      file?.close();
    },
  };
}

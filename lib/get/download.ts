/**
 * The index client's download: ask the index (`locate.ts`) which live replicas hold the path,
 * fetch it from the best, and when a transfer fails resume it with `Range` from where the
 * part file ends: from the same holder once when the failed transfer had brought bytes, else
 * from the next holder; when every holder has failed, the index is asked once more. The resumed
 * request carries `If-Range` with the validator of the first answer (a strong ETag, else
 * `Last-Modified`): a holder whose file changed answers 200 with the whole new file, which
 * replaces the part instead of being spliced onto it. The SHA-256 the replica states
 * (`digest.ts`) is checked over the whole file before it is saved (`partial.ts`).
 *
 * @module
 */
import { sleep } from "../common/sleep.ts";
import { statedSha256, validatorOf } from "./digest.ts";
import { EXIT, GetFailure } from "./exit_codes.ts";
import type { GetConfig } from "./flags.ts";
import { httpGet } from "./_http_get.ts";
import { type Holder, locate } from "./locate.ts";
import { Partial } from "./partial.ts";

/** A signal that never aborts (throttling pauses run to their end). */
const NEVER = new AbortController().signal;
/** Longest wait for a replica's response headers. */
export const HEADERS_TIMEOUT_MS = 10_000;

/** Options of {@link download}: the command line's (`flags.ts`; `--ca` is the process's trust) and where output goes. */
export interface DownloadOptions extends Omit<GetConfig, "quiet" | "ca"> {
  /** Event lines (which holder, failures, resumes). */
  log: (line: string) => void;
  /** Bytes so far and the total, when the total is known. */
  progress?: (got: number, total: number) => void;
}

/** What was saved. */
export interface DownloadResult {
  output: string;
  bytes: number;
  sha256: string;
  /** True when the replica stated a SHA-256 and the bytes matched it. */
  verified: boolean;
  /** Holders the bytes came from, in order. */
  from: string[];
  /** The byte offsets transfers were resumed at (one per resumed request). */
  resumedAt: number[];
}

/** How a transfer from one holder ended when it did not throw. */
type Outcome = "done" | "not found";

/**
 * Downloads `o.path` to `o.output`; throws a {@link GetFailure} with the exit code of the
 * failure (see `exit_codes.ts`). An interrupted run keeps the part file for the next one.
 */
export async function download(o: DownloadOptions): Promise<DownloadResult> {
  let holders = await locate(o.index, o.path);
  o.log(`${o.path}: held by ${holders.map((h) => h.id).join(", ")} (best first)`);
  const part = await Partial.open(o.output, o.path);
  const result: DownloadResult = {
    output: o.output,
    bytes: 0,
    sha256: "",
    verified: false,
    from: [],
    resumedAt: [],
  };
  try {
    if (part.size > 0) o.log(`resuming the ${part.size} bytes of ${part.partPath}`);
    let h = 0, retried = false, relocated = false, lastError = "";
    const missing = new Set<string>();
    for (;;) {
      if (h >= holders.length) {
        if (missing.size > 0 && missing.size >= holders.length) {
          throw new GetFailure(
            `not found: every holder answered 404 for ${o.path}`,
            EXIT.NOT_FOUND,
          );
        }
        if (relocated) {
          throw new GetFailure(`no live holder could serve ${o.path}: ${lastError}`, EXIT.NETWORK);
        }
        relocated = true;
        o.log("every holder failed: asking the index again");
        holders = await locate(o.index, o.path);
        h = 0;
        missing.clear();
        continue;
      }
      const holder = holders[h];
      const before = part.size;
      try {
        if ((await transfer(holder, part, o, result)) === "not found") {
          o.log(`${holder.id} answered 404`);
          missing.add(holder.id);
          h++;
          continue;
        }
        break;
      } catch (e) {
        if (e instanceof GetFailure) throw e;
        lastError = `${holder.id}: ${(e as Error).message}`;
        // A transfer that brought bytes is tried once more at the same holder; else the next.
        const again: boolean = part.size > before && !retried;
        retried = again;
        if (!again) h++;
        const next = again ? holder.id : holders[h]?.id ?? "the index";
        o.log(`${holder.id} failed at byte ${part.size}: ${(e as Error).message}; trying ${next}`);
      }
    }
    result.bytes = part.size;
    result.sha256 = part.sha256();
    const want = part.meta.sha256;
    if (want !== null && want !== result.sha256) {
      await part.discard();
      throw new GetFailure(
        `SHA-256 mismatch for ${o.path}: the replica states ${want}, the ${result.bytes} bytes ` +
          `received hash to ${result.sha256}; nothing was kept`,
        EXIT.VERIFY,
      );
    }
    result.verified = want !== null;
    await part.finish();
    return result;
  } finally {
    part.close();
  }
}

/** One request to `holder` for the rest of the file, appended to `part`. */
async function transfer(
  holder: Holder,
  part: Partial,
  o: DownloadOptions,
  result: DownloadResult,
): Promise<Outcome> {
  const headers: Record<string, string> = {};
  if (o.name !== null) headers.host = o.name;
  const resuming = part.size > 0 && part.meta.validator !== null;
  if (part.size > 0 && !resuming) {
    o.log("the bytes so far cannot be checked against the file (no validator): starting over");
    await part.reset();
  }
  if (resuming) {
    headers.range = `bytes=${part.size}-`;
    headers["if-range"] = part.meta.validator!;
  }
  const res = await httpGet(holder.url, headers, HEADERS_TIMEOUT_MS);
  if (res.status === 404 || res.status === 410) {
    res.cancel();
    return "not found";
  }
  if (res.status === 416 && part.size > 0 && part.size === part.meta.total) {
    res.cancel(); // the part is whole already
    return "done";
  }
  let total: number | null;
  if (res.status === 206 && resuming) {
    const cr = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.headers.get("content-range") ?? "");
    if (cr === null || Number(cr[1]) !== part.size) {
      res.cancel();
      throw new Error(`answered ${res.headers.get("content-range")} to bytes=${part.size}-`);
    }
    total = Number(cr[3]);
    o.log(
      `resuming at byte ${part.size} of ${total} from ${holder.id} (If-Range ${
        headers["if-range"]
      })`,
    );
    result.resumedAt.push(part.size);
  } else if (res.status === 200) {
    if (part.size > 0) {
      o.log(
        `${holder.id} sent the whole file (it changed since, or ranges are not served): starting over`,
      );
      await part.reset();
    }
    const len = res.headers.get("content-length");
    total = len !== null && /^\d+$/.test(len) ? Number(len) : null;
  } else {
    res.cancel();
    throw new Error(`HTTP ${res.status}`);
  }
  const sha = statedSha256(res.headers) ?? (res.status === 206 ? part.meta.sha256 : null);
  await part.describe({ validator: validatorOf(res.headers), total, sha256: sha });
  if (result.from.at(-1) !== holder.id) result.from.push(holder.id);
  if (res.status === 200) o.log(`from ${holder.id}: ${holder.url} (${total ?? "unknown"} bytes)`);
  const start = performance.now(), first = part.size;
  for (;;) {
    const chunk = await res.next(o.idleTimeoutMs);
    if (chunk === null) break;
    await part.write(chunk);
    if (total !== null) o.progress?.(part.size, total);
    if (o.limitRate > 0) {
      const ahead = ((part.size - first) / o.limitRate) * 1000 - (performance.now() - start);
      if (ahead > 0) await sleep(ahead, NEVER);
    }
  }
  if (total !== null && part.size !== total) {
    throw new Error(`the body ended at byte ${part.size} of ${total}`);
  }
  return "done";
}

/**
 * The download in progress: `FILE.part` with the bytes so far and `FILE.part.json` with what
 * a resume needs (the path, the validator for `If-Range`, the size and the stated SHA-256). A
 * finished download is synced and renamed to `FILE` (atomic: `FILE` is either absent, the old
 * file, or the whole new one); an interrupted one keeps both for the next run.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { EXIT, GetFailure } from "./exit_codes.ts";

/** What the sidecar `FILE.part.json` holds. */
export interface PartMeta {
  path: string;
  validator: string | null;
  total: number | null;
  sha256: string | null;
}

function local(what: string, e: unknown): GetFailure {
  return new GetFailure(`cannot ${what}: ${(e as Error).message}`, EXIT.LOCAL);
}

/** See the module doc. Errors of the file system are {@link GetFailure}s with exit code 1. */
export class Partial {
  readonly partPath: string;
  readonly metaPath: string;
  meta: PartMeta;
  /** Bytes in the part file (all hashed). */
  size = 0;
  #hash: Hash = createHash("sha256");
  #file: Deno.FsFile;

  private constructor(readonly output: string, file: Deno.FsFile, meta: PartMeta) {
    this.partPath = `${output}.part`;
    this.metaPath = `${output}.part.json`;
    this.#file = file;
    this.meta = meta;
  }

  /**
   * Opens `output`'s part file for `path`: the bytes of an earlier run are kept (and hashed)
   * when its sidecar is for the same path, else it starts empty.
   */
  static async open(output: string, path: string): Promise<Partial> {
    const fresh: PartMeta = { path, validator: null, total: null, sha256: null };
    let meta = fresh;
    try {
      const m = JSON.parse(await Deno.readTextFile(`${output}.part.json`)) as PartMeta;
      if (m.path === path && typeof m.validator === "string") meta = m;
    } catch { /* no usable sidecar: start over */ }
    let file: Deno.FsFile;
    try {
      file = await Deno.open(`${output}.part`, { read: true, write: true, create: true });
    } catch (e) {
      throw local(`open ${output}.part`, e);
    }
    const p = new Partial(output, file, meta);
    try {
      if (meta === fresh) await file.truncate(0);
      else {
        // The bytes of the earlier run count towards the SHA-256: hash them again.
        const read = await Deno.open(p.partPath);
        for await (const chunk of read.readable) {
          p.#hash.update(chunk);
          p.size += chunk.length;
        }
      }
      await p.#file.seek(p.size, Deno.SeekMode.Start);
    } catch (e) {
      throw local(`read ${p.partPath}`, e);
    }
    return p;
  }

  /** Records what the replica said about the file (written to the sidecar). */
  async describe(m: Omit<PartMeta, "path">): Promise<void> {
    this.meta = { path: this.meta.path, ...m };
    try {
      await Deno.writeTextFile(this.metaPath, JSON.stringify(this.meta) + "\n");
    } catch (e) {
      throw local(`write ${this.metaPath}`, e);
    }
  }

  /** Appends bytes. */
  async write(chunk: Uint8Array): Promise<void> {
    try {
      for (let off = 0; off < chunk.length;) off += await this.#file.write(chunk.subarray(off));
    } catch (e) {
      throw local(`write ${this.partPath}`, e);
    }
    this.#hash.update(chunk);
    this.size += chunk.length;
  }

  /** Drops the bytes so far (the file changed, or a resume cannot be checked). */
  async reset(): Promise<void> {
    try {
      await this.#file.truncate(0);
      await this.#file.seek(0, Deno.SeekMode.Start);
    } catch (e) {
      throw local(`truncate ${this.partPath}`, e);
    }
    this.#hash = createHash("sha256");
    this.size = 0;
  }

  /** SHA-256 (hex) of the bytes so far. */
  sha256(): string {
    return this.#hash.copy().digest("hex");
  }

  /** Syncs the part file and renames it to the output; the sidecar goes. */
  async finish(): Promise<void> {
    try {
      await this.#file.sync();
      this.#file.close();
      await Deno.rename(this.partPath, this.output);
      await Deno.remove(this.metaPath).catch(() => {});
    } catch (e) {
      throw local(`save ${this.output}`, e);
    }
  }

  /** Removes the part file and its sidecar (bytes that failed verification). */
  async discard(): Promise<void> {
    this.close();
    await Deno.remove(this.partPath).catch(() => {});
    await Deno.remove(this.metaPath).catch(() => {});
  }

  /** Closes the part file, keeping it and its sidecar for a later resume. */
  close(): void {
    try {
      this.#file.close();
    } catch { /* closed */ }
  }
}

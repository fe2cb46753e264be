/**
 * Checks of an upload's name and header, shared by the node (which refuses before it stores
 * anything) and the client (which refuses before it sends anything).
 *
 * @example
 * ```ts
 * import { nameError, nameToPath } from "./validate.ts";
 * console.log(nameError("docs/a.txt")); // null
 * console.log(nameError("../etc/passwd")); // "name must not contain a \"..\" segment: ..."
 * console.log(nameToPath("docs/a b.txt")); // "/docs/a%20b.txt"
 * ```
 *
 * @module
 */

import type { ObjectHeader, Version } from "./wire.ts";

/** Longest name, in UTF-16 code units: well under the replica's 8 KiB request-target limit. */
export const MAX_NAME_LENGTH = 1024;
/** Most user metadata pairs: metadata describes a file, it is not a second body. */
export const MAX_META_PAIRS = 64;
/** Longest metadata key or value. */
export const MAX_META_FIELD = 1024;
/** Longest content type (RFC 6838 caps type and subtype at 127 characters each, plus params). */
export const MAX_CONTENT_TYPE = 256;
/** Prefix of every node API; no uploaded name may take it. */
export const RESERVED_PREFIX = "_cdn";

const SHA256_HEX = /^[0-9a-f]{64}$/;
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Why `name` cannot be an upload name, or null when it can. */
export function nameError(name: unknown): string | null {
  if (typeof name !== "string" || name === "") return "name must be a non-empty string";
  if (name.length > MAX_NAME_LENGTH) {
    return `name longer than ${MAX_NAME_LENGTH} characters: received ${name.length}`;
  }
  if (CONTROL.test(name)) {
    return `name must not contain control characters: ${JSON.stringify(name)}`;
  }
  if (name.startsWith("/") || /^[A-Za-z]:/.test(name) || name.includes("\\")) {
    return `name must be a relative path with "/" separators: ${JSON.stringify(name)}`;
  }
  const segments = name.split("/");
  if (segments.includes("..")) return `name must not contain a ".." segment: ${name}`;
  if (segments.includes(".") || segments.includes("")) {
    return `name must not contain "." or empty segments: ${name}`;
  }
  if (/[?#%]/.test(name)) return `name must not contain "?", "#" or "%": ${name}`;
  if (segments[0] === RESERVED_PREFIX) {
    return `names under "${RESERVED_PREFIX}/" are reserved for the node API: ${name}`;
  }
  return null;
}

/** The URL path a (valid) name is served at, percent-encoded as requests arrive. */
export function nameToPath(name: string): string {
  return new URL("/" + name, "http://n").pathname;
}

function versionError(v: unknown): string | null {
  if (typeof v !== "object" || v === null) return "version must be an object {ts, node}";
  const { ts, node } = v as Version;
  if (!Number.isSafeInteger(ts) || ts < 0) return `version.ts must be a non-negative integer`;
  if (typeof node !== "string" || node === "" || node.length > 256) {
    return "version.node must be a non-empty string of at most 256 characters";
  }
  return null;
}

/**
 * Validates a decoded header line; returns the typed header or a message for a 400. A
 * replicated header (`needVersion`) must carry a version.
 */
export function checkHeader(
  raw: Record<string, unknown>,
  needVersion: boolean,
): ObjectHeader | string {
  const err = nameError(raw.name);
  if (err !== null) return err;
  if (needVersion || raw.version !== undefined) {
    const ve = versionError(raw.version);
    if (ve !== null) return ve;
  }
  if (raw.deleted === true) {
    return {
      name: raw.name as string,
      contentType: "",
      size: 0,
      sha256: "",
      mtime: 0,
      meta: {},
      version: raw.version as Version,
      deleted: true,
    };
  }
  if (!Number.isSafeInteger(raw.size) || (raw.size as number) < 0) {
    return `size must be a non-negative integer: received ${JSON.stringify(raw.size)}`;
  }
  if (typeof raw.sha256 !== "string" || !SHA256_HEX.test(raw.sha256)) {
    return `sha256 must be 64 lowercase hex digits: received ${JSON.stringify(raw.sha256)}`;
  }
  const ct = raw.contentType ?? "application/octet-stream";
  if (
    typeof ct !== "string" || ct.length > MAX_CONTENT_TYPE || !/^[\x21-\x7e][\x20-\x7e]*$/.test(ct)
  ) {
    return `contentType must be printable ASCII of at most ${MAX_CONTENT_TYPE} characters`;
  }
  const mtime = raw.mtime ?? 0;
  if (!Number.isSafeInteger(mtime) || (mtime as number) < 0) {
    return `mtime must be a non-negative integer (ms since the epoch)`;
  }
  const meta = raw.meta ?? {};
  if (typeof meta !== "object" || meta === null || Array.isArray(meta)) {
    return "meta must be a JSON object of strings";
  }
  const pairs = Object.entries(meta);
  if (pairs.length > MAX_META_PAIRS) return `meta has more than ${MAX_META_PAIRS} keys`;
  for (const [k, v] of pairs) {
    if (typeof v !== "string" || k.length > MAX_META_FIELD || v.length > MAX_META_FIELD) {
      return `meta.${
        k.slice(0, 64)
      } must be a string; keys and values at most ${MAX_META_FIELD} characters`;
    }
    if (CONTROL.test(k) || CONTROL.test(v)) return `meta.${k.slice(0, 64)} has control characters`;
  }
  return {
    name: raw.name as string,
    contentType: ct,
    size: raw.size as number,
    sha256: raw.sha256,
    mtime: mtime as number,
    meta: meta as Record<string, string>,
    version: raw.version as Version | undefined,
  };
}

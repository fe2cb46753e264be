/**
 * A provider's price record: its fields, their limits, and one validator shared by the
 * `--config` file, the HTTP API (PUT and PATCH bodies) and the client (snapshots it receives).
 * Every problem names the field (`egressPerGiB`, `regions.eu.serverPerHour`).
 *
 * @example
 * ```ts
 * import { checkProvider } from "./record.ts";
 * const problems: string[] = [];
 * checkProvider({ serverPerHour: 0.1, egressPerGiB: -1, currency: "usd" }, "", problems);
 * console.assert(problems[0] === "egressPerGiB: must be a finite number >= 0: received -1");
 * ```
 *
 * @module
 */

/** Per-region overrides of a provider's numbers (fields absent here take the provider's). */
export interface RegionPrice {
  serverPerHour?: number;
  egressPerGiB?: number;
  capacityGiBPerHour?: number;
}

/** What a provider costs; `name` is the provider's name (as in a replica's `--provider`). */
export interface ProviderPrice {
  name: string;
  /** Cost of one server for one hour, in `currency`. */
  serverPerHour: number;
  /** Cost of one GiB of network egress, in `currency`. */
  egressPerGiB: number;
  /** ISO 4217 code: three uppercase letters (`USD`, `EUR`). */
  currency: string;
  /** GiB one server serves in an hour (for {@link costPerGiB}); default {@link DEFAULT_CAPACITY}. */
  capacityGiBPerHour?: number;
  /** Overrides per region name (e.g. `eu-west`). */
  regions?: Record<string, RegionPrice>;
  /** Set by the service: the global version at this record's last change (its ETag). */
  version?: string;
  /** Set by the service: time of the last change (ISO 8601, UTC). */
  updated?: string;
}

/** The fields a client sends (PUT body, config entry): a record without name and metadata. */
export type ProviderFields = Omit<ProviderPrice, "name" | "version" | "updated">;

/** Capacity assumed when a record has none: 100 GiB per server-hour. */
export const DEFAULT_CAPACITY = 100;
/** Provider and region names: a letter or digit, then letters, digits, `.`, `_`, `-`. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** ISO 4217 alphabetic code shape (the list of codes itself is not checked). */
export const CURRENCY_RE = /^[A-Z]{3}$/;
/** Most regions in one record. */
export const MAX_REGIONS = 256;
/** Keys a record may carry; `version` and `updated` are read-only (accepted and ignored). */
export const RECORD_KEYS = [
  "name",
  "serverPerHour",
  "egressPerGiB",
  "currency",
  "capacityGiBPerHour",
  "regions",
  "version",
  "updated",
] as const;
const REGION_KEYS = ["serverPerHour", "egressPerGiB", "capacityGiBPerHour"] as const;

/**
 * Cost of serving one GiB from a server of provider `p` (in `p.currency`): egress plus the
 * server's hourly cost spread over the GiB it serves in an hour, with `region`'s overrides
 * when given and present. Prices in different currencies are not converted.
 *
 * @example
 * ```ts
 * import { costPerGiB } from "./record.ts";
 * const p = { name: "a", serverPerHour: 1, egressPerGiB: 0.05, currency: "USD" };
 * console.assert(Math.abs(costPerGiB(p) - 0.06) < 1e-12);
 * ```
 */
export function costPerGiB(p: ProviderPrice, region?: string): number {
  const r = region === undefined ? undefined : p.regions?.[region];
  const server = r?.serverPerHour ?? p.serverPerHour;
  const egress = r?.egressPerGiB ?? p.egressPerGiB;
  const capacity = r?.capacityGiBPerHour ?? p.capacityGiBPerHour ?? DEFAULT_CAPACITY;
  return egress + server / capacity;
}

/** A JSON value shown in an error, cut to 60 characters. */
export function show(v: unknown): string {
  const s = JSON.stringify(v);
  if (s === undefined) return String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function checkNumber(
  v: unknown,
  path: string,
  problems: string[],
  positive = false,
): number | undefined {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (positive && v === 0)) {
    problems.push(
      `${path}: must be a finite number ${positive ? "> 0" : ">= 0"}: received ${show(v)}`,
    );
    return undefined;
  }
  return v;
}

function unknownKeys(
  v: Record<string, unknown>,
  path: string,
  keys: readonly string[],
  problems: string[],
): void {
  for (const k of Object.keys(v)) {
    if (!keys.includes(k)) {
      problems.push(`${join(path, k)}: unknown field (known: ${keys.join(", ")})`);
    }
  }
}

function checkRegions(
  v: unknown,
  path: string,
  problems: string[],
): Record<string, RegionPrice> | undefined {
  if (!isObject(v)) {
    problems.push(`${path}: must be an object of region name to prices: received ${show(v)}`);
    return undefined;
  }
  const names = Object.keys(v);
  if (names.length > MAX_REGIONS) {
    problems.push(`${path}: at most ${MAX_REGIONS} regions: received ${names.length}`);
    return undefined;
  }
  const out: Record<string, RegionPrice> = {};
  for (const name of names) {
    const rp = join(path, name);
    if (!NAME_RE.test(name)) {
      problems.push(`${rp}: region name must match ${NAME_RE.source}`);
      continue;
    }
    const r = v[name];
    if (!isObject(r)) {
      problems.push(`${rp}: must be an object: received ${show(r)}`);
      continue;
    }
    unknownKeys(r, rp, REGION_KEYS, problems);
    const region: RegionPrice = {};
    for (const k of REGION_KEYS) {
      if (r[k] === undefined) continue;
      const n = checkNumber(r[k], join(rp, k), problems, k === "capacityGiBPerHour");
      if (n !== undefined) region[k] = n;
    }
    out[name] = region;
  }
  return out;
}

/**
 * Checks one record (a PUT body, a config entry, a snapshot entry) at `path` ("" for a body);
 * pushes one `path.field: message` per problem onto `problems` and answers the fields, or
 * undefined when any problem was found. `name`, when the record carries one, must equal
 * `expectName` (when given); `version` and `updated` are ignored.
 */
export function checkProvider(
  v: unknown,
  path: string,
  problems: string[],
  expectName?: string,
): ProviderFields | undefined {
  const before = problems.length;
  if (!isObject(v)) {
    problems.push(`${path === "" ? "body" : path}: must be a JSON object: received ${show(v)}`);
    return undefined;
  }
  unknownKeys(v, path, RECORD_KEYS, problems);
  if (v.name !== undefined && expectName !== undefined && v.name !== expectName) {
    problems.push(
      `${join(path, "name")}: must be ${show(expectName)} (the name in the URL or key): received ${
        show(v.name)
      }`,
    );
  }
  const out: Partial<ProviderFields> = {};
  for (const k of ["serverPerHour", "egressPerGiB"] as const) {
    if (v[k] === undefined) problems.push(`${join(path, k)}: required (a number >= 0)`);
    else out[k] = checkNumber(v[k], join(path, k), problems);
  }
  if (v.currency === undefined) {
    problems.push(`${join(path, "currency")}: required (ISO 4217 code, e.g. "USD")`);
  } else if (typeof v.currency !== "string" || !CURRENCY_RE.test(v.currency)) {
    problems.push(
      `${join(path, "currency")}: must be an ISO 4217 code (three uppercase letters): ` +
        `received ${show(v.currency)}`,
    );
  } else out.currency = v.currency;
  if (v.capacityGiBPerHour !== undefined) {
    out.capacityGiBPerHour = checkNumber(
      v.capacityGiBPerHour,
      join(path, "capacityGiBPerHour"),
      problems,
      true,
    );
  }
  if (v.regions !== undefined) {
    out.regions = checkRegions(v.regions, join(path, "regions"), problems);
  }
  if (problems.length > before) return undefined;
  return out as ProviderFields;
}

/**
 * The field a problem names (the text before the first `: `), e.g. `regions.eu.egressPerGiB`.
 */
export function fieldOf(problem: string): string {
  const i = problem.indexOf(": ");
  return i < 0 ? "" : problem.slice(0, i);
}

/** Applies a JSON merge patch (RFC 7396) to `target`, answering a new value. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    // defineProperty: a "__proto__" key stays a plain (then rejected) field.
    else {
      Object.defineProperty(out, k, {
        value: mergePatch(out[k], v),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  }
  return out;
}

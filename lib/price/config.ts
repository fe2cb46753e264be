/**
 * The pricing service's `--config` file: JSON `{"providers": {"NAME": RECORD, ...}}` with each
 * record as in the API (`record.ts`). Every problem is reported with the file and the key path
 * (`prices.json: providers.aws.egressPerGiB: must be a finite number >= 0: received -1`).
 *
 * The file seeds the database: a provider is added from it only when the database has never
 * seen that name (no record, not deleted through the API); records changed through the API are
 * never overwritten by the file (`db.ts`, `seed`).
 *
 * @module
 */
import { ConfigError, loadConfigFile } from "../common/config_file.ts";
import { checkProvider, NAME_RE, type ProviderFields, show } from "./record.ts";

/** Largest config file read (a wrong path to a big file must not exhaust memory). */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/** The typed config. */
export interface PriceConfig {
  providers: Record<string, ProviderFields>;
}

export { ConfigError };

/** Parses and checks config text; `file` names it in errors. Throws {@link ConfigError}. */
export function parseConfig(text: string, file: string): PriceConfig {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ConfigError([`${file}: not JSON: ${(e as Error).message}`]);
  }
  const problems: string[] = [];
  const providers: Record<string, ProviderFields> = {};
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    problems.push(`the top level must be an object: received ${show(v)}`);
  } else {
    const top = v as Record<string, unknown>;
    for (const k of Object.keys(top)) {
      if (k !== "providers") problems.push(`${k}: unknown key (known keys: providers)`);
    }
    const p = top.providers;
    if (p === undefined) problems.push(`providers: required (an object of name to record)`);
    else if (p === null || typeof p !== "object" || Array.isArray(p)) {
      problems.push(`providers: must be an object of name to record: received ${show(p)}`);
    } else {
      for (const [name, rec] of Object.entries(p)) {
        if (!NAME_RE.test(name)) {
          problems.push(`providers.${name}: provider name must match ${NAME_RE.source}`);
          continue;
        }
        const fields = checkProvider(rec, `providers.${name}`, problems, name);
        if (fields !== undefined) providers[name] = fields;
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems.map((m) => `${file}: ${m}`));
  return { providers };
}

/** Reads and checks a config file. Throws {@link ConfigError} naming the file. */
export function loadConfig(path: string): Promise<PriceConfig> {
  return loadConfigFile(path, MAX_CONFIG_BYTES, parseConfig);
}

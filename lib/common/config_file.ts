/**
 * Reading a `--config` file with a size cap, shared by the processes that take one (DNS
 * server, pricing service): a wrong path to a big file (a disk image) must not exhaust memory.
 *
 * @module
 */

/** A config that failed validation; `problems` holds one `file: path: message` per problem. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(problems.join("\n"));
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/**
 * The text of `path`, at most `maxBytes`. Throws an `Error` whose message starts with the path:
 * `PATH: larger than N bytes (M)` or `PATH: cannot read: REASON`.
 */
export async function readConfigText(path: string, maxBytes: number): Promise<string> {
  let size: number;
  try {
    size = (await Deno.stat(path)).size;
  } catch (e) {
    throw new Error(`${path}: cannot read: ${(e as Error).message}`);
  }
  if (size > maxBytes) throw new Error(`${path}: larger than ${maxBytes} bytes (${size})`);
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read: ${(e as Error).message}`);
  }
}

/**
 * Reads `path` (at most `maxBytes`) and parses it with `parse(text, path)`; a read failure is
 * thrown as a {@link ConfigError}.
 */
export async function loadConfigFile<T>(
  path: string,
  maxBytes: number,
  parse: (text: string, file: string) => T,
): Promise<T> {
  let text: string;
  try {
    text = await readConfigText(path, maxBytes);
  } catch (e) {
    throw new ConfigError([(e as Error).message]);
  }
  return parse(text, path);
}

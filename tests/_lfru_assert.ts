/** Thin assertion helpers over `node:assert/strict` for the lfru and sim tests. */
import { deepStrictEqual, ok, throws } from "node:assert/strict";

export function assert(cond: unknown, msg?: string): asserts cond {
  ok(cond, msg);
}

export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  deepStrictEqual(actual, expected, msg);
}

export function assertThrows(
  fn: () => unknown,
  type: new (...a: never[]) => Error,
  includes: string,
) {
  throws(fn, (e: unknown) => {
    ok(e instanceof type, `expected ${type.name}, got ${e}`);
    ok((e as Error).message.includes(includes), `"${(e as Error).message}" lacks "${includes}"`);
    return true;
  });
}

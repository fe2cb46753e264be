/**
 * Loading a built WebAssembly module (`wasm/build/NAME.wasm`) once per process, synchronously,
 * with one clear error when it has not been built. Every WASM adapter in `lib/` uses it.
 *
 * @module
 */

/**
 * A function that compiles the module at `url` on its first call and returns the same compiled
 * module afterwards; `what` names it in the error thrown when the file is missing
 * (`Cannot load WHAT: PATH is missing; run \`deno task build:wasm\``).
 */
export function wasmModuleLoader(url: URL, what: string): () => WebAssembly.Module {
  let compiled: WebAssembly.Module | undefined;
  return () => {
    if (compiled) return compiled;
    let bytes: Uint8Array;
    try {
      bytes = Deno.readFileSync(url);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new Error(
          `Cannot load ${what}: ${url.pathname} is missing; run \`deno task build:wasm\``,
        );
      }
      throw e;
    }
    compiled = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
    return compiled;
  };
}

/**
 * Returning freed native memory to the system. Deno allocates the backing stores of
 * `ArrayBuffer`s and its HTTP buffers with the C library's `malloc`; under a long mix of
 * cached (long-lived) and per-request (short-lived) allocations, glibc's heap keeps the freed
 * pages between live ones, so the process grows far past what it holds (issue 8 item 10:
 * ~90 MiB of a 16 MiB cache's replica were free heap pages). `malloc_trim(0)` hands those
 * pages back. Where it is unavailable (not glibc, or no `--allow-ffi`), nothing happens.
 *
 * @module
 */

type Trim = { symbols: { malloc_trim: (pad: bigint) => number } };

let libc: Trim | null | undefined;

/** Calls glibc's `malloc_trim(0)`; false when it is not available here. */
export function trimNativeHeap(): boolean {
  if (libc === undefined) {
    libc = null;
    // Asked first: dlopen without the permission would prompt on a terminal.
    const allowed = Deno.permissions.querySync({ name: "ffi" }).state === "granted";
    if (Deno.build.os === "linux" && allowed) {
      try {
        libc = Deno.dlopen("libc.so.6", {
          malloc_trim: { parameters: ["usize"], result: "i32" },
        }) as unknown as Trim;
      } catch {
        libc = null; // not glibc, or no FFI permission
      }
    }
  }
  if (libc === null) return false;
  libc.symbols.malloc_trim(0n);
  return true;
}

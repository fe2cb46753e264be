/**
 * Start-up V8 heap limits for a long-running process, applied by re-executing the process in
 * place. V8's heap sizes are fixed when the isolate is created, before any of our code runs, and
 * with its defaults a busy server lets both generations grow far past what is live (issue 8
 * item 10: a replica with a 16 MiB cache grew by 145 MiB, 117 MiB of it with nothing cached).
 *
 * {@link applyV8Flags} re-executes the running `deno run ...` command line (read from
 * `/proc/self/cmdline`) with `execve(2)` through FFI, adding the flags to `DENO_V8_FLAGS`: the
 * process keeps its PID, open standard streams and arguments, so pid files, `kill` and process
 * managers see one process. The flags go first in `DENO_V8_FLAGS`, so flags already in that
 * variable and `--v8-flags=...` on the command line (which Deno appends after it) win over ours.
 * A marker variable stops the second run from re-executing again; it is removed at once and
 * `DENO_V8_FLAGS` put back as it was, so processes started later do not inherit them.
 *
 * Nothing happens (and the reason is returned) off Linux, without `--allow-ffi`,
 * `--allow-env` or read access to `/proc/self/cmdline`, or when the process is not started as
 * `deno run` (a compiled binary ignores `DENO_V8_FLAGS`).
 *
 * @module
 */

/** Set in the re-executed process's environment; holds the flags that were added. */
const MARKER = "NEARCAST_V8_FLAGS_APPLIED";

/** What {@link applyV8Flags} did. */
export type V8FlagsOutcome =
  | { applied: true; flags: string[] }
  | { applied: false; reason: string };

type Exec = {
  symbols: {
    execve: (path: BufferSource, argv: BufferSource, envp: BufferSource) => number;
  };
};

const utf8 = new TextEncoder();

/** `text` as a NUL-terminated C string. */
function cString(text: string): Uint8Array<ArrayBuffer> {
  const bytes = utf8.encode(text);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** A NULL-terminated array of pointers to `strings` (kept alive by the caller through `keep`). */
function cArray(strings: string[], keep: Uint8Array[]): BigUint64Array<ArrayBuffer> {
  const out = new BigUint64Array(strings.length + 1);
  strings.forEach((s, i) => {
    const c = cString(s);
    keep.push(c);
    out[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(c)));
  });
  return out;
}

function granted(desc: Deno.PermissionDescriptor): boolean {
  return Deno.permissions.querySync(desc).state === "granted";
}

/**
 * Returns the flags this process was re-executed with, or why not; when the flags can be
 * applied and were not yet, does not return (the process image is replaced). Call it first
 * thing in a `main`, before any listener, file or child process is opened.
 */
export function applyV8Flags(flags: string[]): V8FlagsOutcome {
  if (flags.length === 0) return { applied: false, reason: "no flags asked for" };
  if (Deno.build.os !== "linux") return { applied: false, reason: "not Linux" };
  if (!granted({ name: "env" })) return { applied: false, reason: "needs --allow-env" };
  const done = Deno.env.get(MARKER);
  if (done !== undefined) {
    // Put the environment back as it was, so that nothing this process starts inherits it.
    const { added, given } = JSON.parse(done) as { added: string[]; given: string | null };
    Deno.env.delete(MARKER);
    if (given === null) Deno.env.delete("DENO_V8_FLAGS");
    else Deno.env.set("DENO_V8_FLAGS", given);
    return { applied: true, flags: added };
  }
  if (!granted({ name: "ffi" })) return { applied: false, reason: "needs --allow-ffi" };
  if (!granted({ name: "read", path: "/proc/self/cmdline" })) {
    return { applied: false, reason: "needs read access to /proc/self/cmdline" };
  }
  const argv = Deno.readTextFileSync("/proc/self/cmdline").split("\0");
  if (argv.at(-1) === "") argv.pop();
  if (argv[1] !== "run") return { applied: false, reason: "not started with `deno run`" };

  const env = Deno.env.toObject();
  const given = env.DENO_V8_FLAGS ?? null;
  env.DENO_V8_FLAGS = given === null || given === ""
    ? flags.join(",")
    : `${flags.join(",")},${given}`;
  env[MARKER] = JSON.stringify({ added: flags, given });
  let libc: Exec;
  try {
    libc = Deno.dlopen("libc.so.6", {
      execve: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
    }) as unknown as Exec;
  } catch (e) {
    return { applied: false, reason: `no libc.so.6 (${(e as Error).message})` };
  }
  const keep: Uint8Array[] = [];
  const path = cString(Deno.execPath());
  const args = cArray(argv, keep);
  const envp = cArray(Object.entries(env).map(([k, v]) => `${k}=${v}`), keep);
  libc.symbols.execve(path, args, envp); // returns only on failure
  return { applied: false, reason: "execve failed" };
}

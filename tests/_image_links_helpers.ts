/** Starts the origin and a replica in the server namespace of {@link ImageLinks} (or another). */
import type { ImageLinks } from "./tools/image_links.ts";

/** Where the servers run: what {@link ImageLinks} gives, or a topology host's `exec`. */
export type ServerNs = Pick<ImageLinks, "execServer">;

const ROOT = new URL("..", import.meta.url).pathname;

/** A process started in a namespace, its first line matching `re` (30 s at most). */
export async function startIn(
  links: ServerNs,
  cmd: string[],
  re: RegExp,
): Promise<{ proc: Deno.ChildProcess; match: RegExpExecArray; lines: string[] }> {
  const proc = links.execServer(cmd, { stdout: "piped", stderr: "piped", cwd: ROOT });
  const lines: string[] = [];
  let found: RegExpExecArray | null = null;
  let wake = () => {};
  const pump = async (s: ReadableStream<Uint8Array>) => {
    let rest = "";
    for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop()!;
      for (const l of parts) {
        lines.push(l);
        found ??= re.exec(l);
      }
      wake();
    }
    wake();
  };
  pump(proc.stdout);
  pump(proc.stderr);
  const deadline = Date.now() + 30_000;
  while (found === null && Date.now() < deadline) {
    await new Promise<void>((r) => {
      wake = r;
      setTimeout(r, 200);
    });
  }
  if (found === null) {
    try {
      proc.kill("SIGKILL");
    } catch { /* exited */ }
    throw new Error(`${cmd.join(" ")} did not print ${re}: ${lines.join("\n")}`);
  }
  return { proc, match: found, lines };
}

/** Origin serving `dir` and a replica (`replicaArgs` added) in the server namespace. */
export async function startImageServers(
  links: ServerNs,
  dir: string,
  replicaArgs: string[] = [],
): Promise<{ port: number; lines: string[]; stop: () => Promise<void> }> {
  const deno = Deno.execPath();
  const origin = await startIn(
    links,
    [deno, "run", "-A", "tests/tools/image_origin.ts", dir],
    /^origin (http:\/\/\S+)/,
  );
  const replica = await startIn(links, [
    deno,
    "run",
    "-A",
    "main_http.ts",
    "-p",
    "0",
    "--host",
    "0.0.0.0",
    "-o",
    origin.match[1],
    ...replicaArgs,
  ], /listening on http:\/\/0\.0\.0\.0:(\d+)\//).catch(async (e) => {
    origin.proc.kill("SIGKILL");
    await origin.proc.status;
    throw e;
  });
  return {
    port: Number(replica.match[1]),
    lines: replica.lines,
    async stop() {
      for (const p of [replica.proc, origin.proc]) {
        try {
          p.kill("SIGTERM");
        } catch { /* exited */ }
        await p.status;
      }
    },
  };
}

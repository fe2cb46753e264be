/**
 * `./deno` becomes the Deno process itself: a SIGTERM sent to the wrapper's pid (what
 * `kill $!`, pid files and process managers send) reaches Deno, its port is freed and its exit
 * code is the wrapper's.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url).pathname;

/** True when nothing listens on 127.0.0.1:`port`. */
function portFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test("./deno passes SIGTERM to Deno and returns its exit code", async () => {
  // A server that exits with code 3 on SIGTERM and prints its port once listening.
  const code = `
    const ac = new AbortController();
    Deno.addSignalListener("SIGTERM", () => { ac.abort(); Deno.exit(3); });
    Deno.serve({ hostname: "127.0.0.1", port: 0, signal: ac.signal,
      onListen: ({ port }) => console.log("port " + port) }, () => new Response("ok"));
  `;
  const child = new Deno.Command(`${ROOT}deno`, {
    args: ["eval", code],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/port \d+\n/.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  const port = Number(/port (\d+)/.exec(text)?.[1]);
  assert.ok(port > 0, `no port printed: ${text}`);
  assert.equal(portFree(port), false);
  child.kill("SIGTERM");
  const status = await child.status;
  reader.releaseLock();
  await child.stdout.cancel().catch(() => {});
  assert.equal(status.code, 3, `exit status ${JSON.stringify(status)}`);
  let free = false;
  for (let i = 0; i < 50 && !free; i++) {
    free = portFree(port);
    if (!free) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(free, `port ${port} still in use after SIGTERM to the wrapper`);
});

Deno.test("./deno returns Deno's exit code", async () => {
  const out = await new Deno.Command(`${ROOT}deno`, {
    args: ["eval", "Deno.exit(7)"],
    cwd: ROOT,
    stdout: "null",
    stderr: "null",
  }).output();
  assert.equal(out.code, 7);
});

Deno.test("./deno task http: SIGTERM to the wrapper stops the replica (exit 0, port freed)", async () => {
  const child = new Deno.Command(`${ROOT}deno`, {
    args: ["task", "http", "-p", "0", "--host", "127.0.0.1", "-o", "127.0.0.1:9"],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/listening on http:\/\/127\.0\.0\.1:\d+\//.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(text)?.[1]);
  assert.ok(port > 0, `no port printed: ${text}`);
  child.kill("SIGTERM");
  const status = await child.status;
  reader.releaseLock();
  await child.stdout.cancel().catch(() => {});
  assert.equal(status.code, 0, `exit status ${JSON.stringify(status)}`);
  assert.ok(portFree(port), `port ${port} still in use after SIGTERM to ./deno task`);
});

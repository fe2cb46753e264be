/**
 * The pricing service's command line and `--config` file: every error names the file and the
 * key (or the flag), with the documented exit codes.
 */
import { equal, match, ok } from "node:assert/strict";
import { ConfigError, parseConfig } from "../lib/price/config.ts";
import { PRICE_FLAGS } from "../lib/price/flags.ts";
import { runPriceCli } from "./_price_service.ts";

function problems(text: string): string[] {
  try {
    parseConfig(text, "prices.json");
  } catch (e) {
    ok(e instanceof ConfigError);
    return e.problems;
  }
  throw new Error("the config was accepted");
}

Deno.test("price config: each problem names the file and the key", () => {
  const p = problems(JSON.stringify({
    providers: {
      aws: { serverPerHour: 0.5, egressPerGiB: -1, currency: "USD" },
      gcp: { serverPerHour: 0.4, currency: "usd", extra: 1 },
      "bad name": { serverPerHour: 1, egressPerGiB: 1, currency: "USD" },
    },
    colour: "red",
  }));
  const want = [
    /^prices\.json: colour: unknown key/,
    /^prices\.json: providers\.aws\.egressPerGiB: must be a finite number >= 0: received -1$/,
    /^prices\.json: providers\.gcp\.extra: unknown field/,
    /^prices\.json: providers\.gcp\.egressPerGiB: required/,
    /^prices\.json: providers\.gcp\.currency: must be an ISO 4217 code/,
    /^prices\.json: providers\.bad name: provider name must match/,
  ];
  for (const re of want) ok(p.some((l) => re.test(l)), `${re} in:\n${p.join("\n")}`);
  equal(p.length, want.length, p.join("\n"));
  match(problems("{nope")[0], /^prices\.json: not JSON/);
  match(problems("[]")[0], /^prices\.json: the top level must be an object/);
  match(problems("{}")[0], /^prices\.json: providers: required/);
  const ok1 = parseConfig(
    '{"providers": {"aws": {"serverPerHour": 1, "egressPerGiB": 0, "currency": "JPY"}}}',
    "f",
  );
  equal(ok1.providers.aws.currency, "JPY");
});

Deno.test("price CLI: bad config, data and flags exit with the documented codes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "price_cli_" });
  try {
    const bad = `${dir}/bad.json`;
    await Deno.writeTextFile(bad, '{"providers": {"aws": {"serverPerHour": 1}}}');
    let r = await runPriceCli(["-p", "0", "--config", bad]);
    equal(r.code, 3, r.err);
    match(r.err, new RegExp(`${bad}: providers\\.aws\\.egressPerGiB: required`));
    match(r.err, new RegExp(`${bad}: providers\\.aws\\.currency: required`));
    ok(!/^\s+at /m.test(r.err), r.err);

    r = await runPriceCli(["-p", "0", "--config", `${dir}/missing.json`]);
    equal(r.code, 3, r.err);
    match(r.err, /missing\.json: cannot read/);

    await Deno.writeTextFile(`${dir}/file`, "");
    r = await runPriceCli(["-p", "0", "--data", `${dir}/file`]);
    equal(r.code, 3, r.err);
    match(r.err, /^price: --data /);

    r = await runPriceCli(["--data", dir]);
    equal(r.code, 2, r.err);
    match(r.err, /--port is required/);
    r = await runPriceCli(["-p", "70000"]);
    equal(r.code, 2, r.err);
    match(r.err, /--port must be a port number/);
    r = await runPriceCli(["-p", "0", "--bogus"]);
    equal(r.code, 2, r.err);

    const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      r = await runPriceCli(["-p", `${(busy.addr as Deno.NetAddr).port}`]);
      equal(r.code, 4, r.err);
      match(r.err, /cannot listen on --host 127\.0\.0\.1 --port \d+: address already in use/);
    } finally {
      busy.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("price CLI: --help describes every flag", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../main_price.ts", import.meta.url).pathname, "--help"],
    stdout: "piped",
  }).output();
  equal(out.code, 0);
  const text = new TextDecoder().decode(out.stdout);
  for (const name of Object.keys(PRICE_FLAGS)) match(text, new RegExp(`--${name}\\b`));
  match(text, /Exit codes/);
});

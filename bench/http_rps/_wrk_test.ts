// Run with: ./deno test bench/http_rps/
import assert from "node:assert/strict";
import { parseWrk } from "./_wrk.ts";

const SAMPLE = `Running 5s test @ http://127.0.0.1:41235/bytes/1024
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.21ms  310.55us   9.87ms   91.23%
    Req/Sec    52.91k     1.73k   55.02k    80.00%
  Latency Distribution
     50%    1.15ms
     75%    1.28ms
     90%    1.47ms
     99%    2.50ms
  263311 requests in 5.00s, 310.48MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  52657.26
Transfer/sec:     62.09MB
`;

Deno.test("parseWrk reads throughput, percentiles, bytes and errors", () => {
  const r = parseWrk(SAMPLE);
  assert.equal(r.requests, 263311);
  assert.equal(r.seconds, 5);
  assert.equal(r.bytesRead, 310.48 * 1024 * 1024);
  assert.equal(r.requestsPerSec, 52657.26);
  assert.equal(r.p50Ms, 1.15);
  assert.equal(r.p99Ms, 2.5);
  assert.equal(r.socketErrors, 3);
  assert.equal(r.non2xx3xx, 7);
});

Deno.test("parseWrk converts us and s latencies and rejects truncated output", () => {
  const r = parseWrk(
    SAMPLE.replace("99%    2.50ms", "99%  812.00us").replace("50%    1.15ms", "50%    1.50s"),
  );
  assert.equal(r.p99Ms, 0.812);
  assert.equal(r.p50Ms, 1500);
  assert.throws(() => parseWrk(SAMPLE.replace(/Requests\/sec.*\n/, "")), /no Requests\/sec line/);
  assert.throws(() => parseWrk("unable to connect to 127.0.0.1:1 Connection refused"), SyntaxError);
});

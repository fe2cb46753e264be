/**
 * The benchmark checks its answers, so a server that answers fast but wrongly (SERVFAIL, an
 * empty answer, NOERROR for a name that does not exist) fails its round instead of scoring:
 *
 * - {@link verifyServer} asks the server with dig, before and after each dnsperf round, every
 *   kind of query the query file holds (apex A without EDNS, with EDNS, with each ECS network,
 *   apex SOA, a name that does not exist) and checks the rcode and the records;
 * - {@link checkRcodes} reads dnsperf's own rcode counters: only NOERROR and NXDOMAIN may
 *   appear, NXDOMAIN in the share of the file's nonexistent names.
 *
 * @module
 */
import { dig } from "../../lib/dns/_testing.ts";
import { ECS_NETWORKS } from "./queries.ts";
import { ANSWER_TTL, expectedReplica, NS_IPV4, REPLICAS } from "./zone.ts";

/** Which answers to expect: NSD's zone has one apex A; ours steers by the ECS network. */
export type ServerKind = "nsd" | "ours";

/** Throws an `Error` listing every answer of the server on `port` that is not the expected one. */
export async function verifyServer(port: number, zone: string, kind: ServerKind): Promise<void> {
  const problems: string[] = [];
  const all = REPLICAS.map((r) => r.ipv4);
  const apex = async (what: string, allowed: string[], ...args: string[]) => {
    const r = await dig(port, zone, "A", ...args);
    const got = r.answer.filter((a) => a.type === "A").map((a) => a.data);
    if (r.status !== "NOERROR") problems.push(`${what}: rcode ${r.status}, NOERROR expected`);
    else if (got.length !== 1 || !allowed.includes(got[0])) {
      problems.push(
        `${what}: A ${JSON.stringify(got)}, one of ${JSON.stringify(allowed)} expected`,
      );
    } else if (r.answer[0].ttl !== ANSWER_TTL) {
      problems.push(`${what}: TTL ${r.answer[0].ttl}, ${ANSWER_TTL} expected`);
    }
  };
  // Without ECS the client is 127.0.0.1: no geo entry, so ours rotates over every replica.
  const unlocated = kind === "nsd" ? [REPLICAS[0].ipv4] : all;
  await apex("apex A without EDNS", unlocated, "+noedns");
  await apex("apex A with EDNS", unlocated, "+edns=0", "+nocookie");
  for (const net of ECS_NETWORKS) {
    const subnet = `${net.join(".")}.0/24`;
    const want = kind === "nsd" ? REPLICAS[0].ipv4 : expectedReplica(net);
    await apex(`apex A, ECS ${subnet}`, want === null ? all : [want], `+subnet=${subnet}`);
  }
  const soa = await dig(port, zone, "SOA", "+edns=0", "+nocookie");
  if (soa.status !== "NOERROR" || soa.answer.filter((a) => a.type === "SOA").length !== 1) {
    problems.push(`apex SOA: rcode ${soa.status}, ${soa.answer.length} records; one SOA expected`);
  }
  const nx = await dig(port, `nxcheck.${zone}`, "A", "+edns=0", "+nocookie");
  if (nx.status !== "NXDOMAIN" || nx.authority[0]?.type !== "SOA") {
    problems.push(`nonexistent name: rcode ${nx.status}; NXDOMAIN with the SOA expected`);
  }
  const ns = await dig(port, `ns1.${zone}`, "A", "+noedns");
  if (ns.status !== "NOERROR" || ns.answer[0]?.data !== NS_IPV4) {
    problems.push(`ns1 A: rcode ${ns.status}, ${JSON.stringify(ns.answer)}; ${NS_IPV4} expected`);
  }
  if (problems.length) {
    throw new Error(`wrong answers on port ${port}:\n  ${problems.join("\n  ")}`);
  }
}

/**
 * Problems with dnsperf's `Response codes:` line (e.g. `NOERROR 9200 (92.00%), NXDOMAIN 800
 * (8.00%)`) for `completed` answers, when a share `nxShare` of the queries name nothing: any
 * other rcode, or NXDOMAIN off its share (by more than one point plus one file's worth of
 * queries, as dnsperf may stop mid-file). Empty when all is well.
 */
export function checkRcodes(
  line: string,
  completed: number,
  nxShare: number,
  fileQueries: number,
): string[] {
  const counts = new Map<string, number>();
  for (const m of line.matchAll(/([A-Z]+) (\d+) \(/g)) counts.set(m[1], Number(m[2]));
  const problems: string[] = [];
  for (const [rcode, n] of counts) {
    if (rcode !== "NOERROR" && rcode !== "NXDOMAIN") problems.push(`${n} answers ${rcode}`);
  }
  const sum = [...counts.values()].reduce((a, b) => a + b, 0);
  if (completed > 0 && sum !== completed) {
    problems.push(`rcode counts add up to ${sum}, not the ${completed} completed queries`);
  }
  const nx = (counts.get("NXDOMAIN") ?? 0) / Math.max(completed, 1);
  if (Math.abs(nx - nxShare) > 0.01 + fileQueries / Math.max(completed, 1)) {
    problems.push(
      `NXDOMAIN ${(100 * nx).toFixed(2)}% of answers, ${(100 * nxShare).toFixed(2)}% expected`,
    );
  }
  return problems;
}

/**
 * The WebAssembly DNS wire codec (`wasm/dnswire.ts`) behind the {@link DnsCodec} contract.
 * The adapter checks arguments, keeps the call-order state, and moves the parsed fields from
 * the module's info region into the caller's {@link Query} through a typed-array view: no call
 * allocates. The ABI is described in `wasm/README.md`.
 *
 * @example
 * ```ts
 * import { createWasmCodec } from "./wasm.ts";
 * import { newQuery } from "./types.ts";
 *
 * const codec = createWasmCodec();
 * const ptr = codec.scratchBase;
 * codec.memory.set([0, 1, 0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0], ptr); // a response header
 * const q = newQuery();
 * codec.parse(ptr, 12, q);
 * if (q.status !== 4) throw new Error("a response is dropped");
 * ```
 *
 * @module
 */
import {
  checkBegin,
  checkNsHost,
  checkParse,
  checkRecord,
  checkScope,
  checkSection,
  checkWord,
  clampLimit,
  CONFIG_MAIL_LABEL,
  CONFIG_MORE_NS_LABELS,
  CONFIG_NS_LABEL,
  CONFIG_ZONE,
  encodeConfig,
  INFO_ECS_ADDRESS,
  INFO_OFFSET,
  INFO_WORDS,
  MEMORY_PAGES,
  PAGE,
  SCRATCH_BASE,
  SCRATCH_SIZE,
  stateError,
} from "./_common.ts";
import { wasmModuleLoader } from "../common/wasm_module.ts";
import { type DnsCodec, Owner, ParseStatus, type Query, type ZoneConfig } from "./types.ts";

/** The module's exports (numeric ABI, see `wasm/README.md`). */
interface Exports {
  memory: WebAssembly.Memory;
  layout(which: number): number;
  configure(
    zoneLength: number,
    nsLength: number,
    mailLength: number,
    serial: number,
    refresh: number,
    retry: number,
    expire: number,
    minimum: number,
    soaTtl: number,
    nsHosts: number,
  ): void;
  parse(ptr: number, len: number): number;
  begin(
    ptr: number,
    status: number,
    opcode: number,
    bits: number,
    questionEnd: number,
    qnameLength: number,
    zoneOffset: number,
    ecsFamily: number,
    ecsSource: number,
    rcode: number,
    limit: number,
    tsigOffset: number,
    tsigRdata: number,
    tsigEnd: number,
  ): void;
  addA(section: number, owner: number, ttl: number, ipv4: number): void;
  addAAAA(
    section: number,
    owner: number,
    ttl: number,
    w0: number,
    w1: number,
    w2: number,
    w3: number,
  ): void;
  addSOA(section: number): void;
  addNS(section: number, host: number): void;
  finish(ecsScope: number): number;
}

/** Where the build puts the module (see `scripts/build_wasm.ts`). */
const WASM_URL = new URL("../../wasm/build/dnswire.wasm", import.meta.url);

class WasmCodec implements DnsCodec {
  readonly memory: Uint8Array;
  readonly scratchBase: number = SCRATCH_BASE;
  readonly scratchSize: number = SCRATCH_SIZE;
  readonly #x: Exports;
  readonly #info: Int32Array;
  readonly #ecs: Uint8Array;
  #configured = false;
  /** Name server hosts configured (1 before `configure`: the checks then say to configure). */
  #hosts = 1;
  #building = false;
  #hasQuestion = false;
  #echoIpv4 = false;

  constructor(x: Exports) {
    this.#x = x;
    const buf = x.memory.buffer;
    const layout = [MEMORY_PAGES, SCRATCH_BASE, INFO_OFFSET, CONFIG_ZONE];
    for (let i = 0; i < layout.length; i++) {
      if (x.layout(i) !== layout[i]) {
        throw new Error(
          `Cannot use wasm/build/dnswire.wasm: layout field ${i} is ${
            x.layout(i)
          }, the adapter expects ${layout[i]}; rebuild with \`deno task build:wasm\``,
        );
      }
    }
    if (x.layout(4) > INFO_OFFSET || buf.byteLength !== MEMORY_PAGES * PAGE) {
      throw new Error(
        `Cannot use wasm/build/dnswire.wasm: static data ends at ${
          x.layout(4)
        } (must be ≤ ${INFO_OFFSET}) and memory is ${buf.byteLength} bytes (must be ${
          MEMORY_PAGES * PAGE
        })`,
      );
    }
    this.memory = new Uint8Array(buf);
    this.#info = new Int32Array(buf, INFO_OFFSET, INFO_WORDS);
    this.#ecs = new Uint8Array(buf, INFO_ECS_ADDRESS, 16);
  }

  configure(zone: ZoneConfig): void {
    const c = encodeConfig(zone);
    const m = this.memory;
    m.set(c.zone, CONFIG_ZONE);
    m.set(c.nsLabel, CONFIG_NS_LABEL);
    m.set(c.mailLabel, CONFIG_MAIL_LABEL);
    for (let i = 1; i < c.nsLabels.length; i++) {
      m.set(c.nsLabels[i], CONFIG_MORE_NS_LABELS + (i - 1) * 64);
    }
    this.#x.configure(
      c.zone.length,
      c.nsLabel.length,
      c.mailLabel.length,
      c.serial,
      c.refresh,
      c.retry,
      c.expire,
      c.minimum,
      c.soaTtl,
      c.nsLabels.length,
    );
    this.#hosts = c.nsLabels.length;
    this.#configured = true;
  }

  parse(ptr: number, len: number, q: Query): void {
    checkParse(ptr, len);
    q.status = this.#x.parse(ptr, len);
    const v = this.#info;
    q.id = v[1];
    q.opcode = v[2];
    q.rd = v[3] !== 0;
    q.cd = v[4] !== 0;
    q.qtype = v[5];
    q.qclass = v[6];
    q.questionEnd = v[7];
    q.qnameLength = v[8];
    q.zoneOffset = v[9];
    q.labelsBeforeZone = v[10];
    q.edns = v[11] !== 0;
    q.udpSize = v[12];
    q.ednsVersion = v[13];
    q.dnssecOk = v[14] !== 0;
    q.ecsFamily = v[15];
    q.ecsSourcePrefix = v[16];
    q.tsigOffset = v[17];
    q.tsigRdata = v[18];
    q.tsigEnd = v[19];
    q.padding = v[20] !== 0;
    // A loop beats TypedArray#set for 16 bytes (half the time in Deno 2.9).
    const from = this.#ecs, to = q.ecsAddress;
    for (let i = 0; i < 16; i++) to[i] = from[i];
  }

  begin(ptr: number, q: Query, rcode: number, aa: boolean, limit: number): void {
    checkBegin(ptr, q, rcode, limit);
    const s = q.status;
    const answerable = s === ParseStatus.OK || s === ParseStatus.NOTIMP ||
      s === ParseStatus.BADVERS || s === ParseStatus.NOTAUTH;
    this.#hasQuestion = answerable && q.qnameLength > 0;
    this.#echoIpv4 = answerable && q.edns && s === ParseStatus.OK && q.ecsFamily === 1;
    if (q.ecsFamily !== 0) {
      const from = q.ecsAddress, to = this.#ecs;
      for (let i = 0; i < 16; i++) to[i] = from[i];
    }
    const bits = (q.rd ? 1 : 0) | (q.cd ? 2 : 0) | (q.edns ? 4 : 0) | (q.dnssecOk ? 8 : 0) |
      (aa ? 16 : 0) | (q.padding ? 32 : 0);
    this.#x.begin(
      ptr,
      s,
      q.opcode,
      bits,
      q.questionEnd,
      q.qnameLength,
      q.zoneOffset,
      q.ecsFamily,
      q.ecsSourcePrefix,
      rcode,
      clampLimit(ptr, limit),
      q.tsigOffset,
      q.tsigRdata,
      q.tsigEnd,
    );
    this.#building = true;
  }

  #check(what: string, owner: number, needZone: boolean): void {
    if (!this.#building) throw stateError(`${what}: call begin first`);
    if (needZone && !this.#configured) throw stateError(`${what}: call configure first`);
    if (owner === Owner.QNAME && !this.#hasQuestion) {
      throw stateError(`${what}: the response has no question for an Owner.QNAME record`);
    }
  }

  addA(section: number, owner: number, ttl: number, ipv4: number): void {
    checkRecord(section, owner, ttl, this.#hosts);
    checkWord("ipv4", ipv4);
    this.#check("add A record", owner, owner >= Owner.NSHOST);
    this.#x.addA(section, owner, ttl, ipv4);
  }

  addAAAA(
    section: number,
    owner: number,
    ttl: number,
    w0: number,
    w1: number,
    w2: number,
    w3: number,
  ): void {
    checkRecord(section, owner, ttl, this.#hosts);
    checkWord("w0", w0);
    checkWord("w1", w1);
    checkWord("w2", w2);
    checkWord("w3", w3);
    this.#check("add AAAA record", owner, owner >= Owner.NSHOST);
    this.#x.addAAAA(section, owner, ttl, w0, w1, w2, w3);
  }

  addSOA(section: number): void {
    checkSection(section);
    this.#check("add SOA record", -1, true);
    this.#x.addSOA(section);
  }

  addNS(section: number, host = 0): void {
    checkSection(section);
    checkNsHost(host, this.#hosts);
    this.#check("add NS record", -1, true);
    this.#x.addNS(section, host);
  }

  finish(ecsScope: number): number {
    checkScope(ecsScope);
    this.#check("finish DNS response", -1, false);
    if (this.#echoIpv4 && ecsScope > 32) {
      throw new RangeError(
        `Cannot finish DNS response: ecsScope must be at most 32 for IPv4: received ${ecsScope}`,
      );
    }
    this.#building = false;
    return this.#x.finish(ecsScope);
  }
}

/**
 * Loads `wasm/build/dnswire.wasm` synchronously and returns a codec over its memory. Throws if
 * the module is missing (run `deno task build:wasm`) or its layout does not match this adapter.
 */
export function createWasmCodec(): DnsCodec {
  return codecOf(loadDefault());
}

/** Compiles `wasm/build/dnswire.wasm` once per process. */
const loadDefault = wasmModuleLoader(WASM_URL, "the DNS codec");

/** {@link createWasmCodec} from another file (tests use it for the missing-module error). */
export function createWasmCodecFrom(url: URL): DnsCodec {
  return codecOf(wasmModuleLoader(url, "the DNS codec")());
}

function codecOf(module: WebAssembly.Module): DnsCodec {
  const instance = new WebAssembly.Instance(module, {});
  return new WasmCodec(instance.exports as unknown as Exports);
}

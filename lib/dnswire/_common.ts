/**
 * What the two codecs share: the memory layout (so an offset means the same in both), the
 * argument checks the adapters run before touching memory, and the wire form of the zone
 * configuration. Private to `lib/dnswire/`.
 *
 * @module
 */
import { Limits, MAX_NS_HOSTS, type Query, type ZoneConfig } from "./types.ts";

/** WebAssembly page size. */
export const PAGE = 65536;
/** Pages of codec memory: one page of fixed regions plus scratch (see {@link SCRATCH_SIZE}). */
export const MEMORY_PAGES = 8;
/** Bytes of codec memory; the WASM module grows to exactly this in its start function. */
export const MEMORY_BYTES = MEMORY_PAGES * PAGE;
/** First scratch byte: everything below is static data, the info region and the config. */
export const SCRATCH_BASE = PAGE;
/** Scratch bytes; the contract asks for at least 64 UDP slots of 4096 plus 2 TCP slots. */
export const SCRATCH_SIZE = MEMORY_BYTES - SCRATCH_BASE;
/**
 * Start of the info region: the parsed {@link Query} as i32 fields, then the ECS address. High
 * in the first page: AssemblyScript lays its static data out from 1024 upwards.
 */
export const INFO_OFFSET = 49152;
/** Index (in i32 words) of each Query field in the info region. */
export const Info = {
  STATUS: 0,
  ID: 1,
  OPCODE: 2,
  RD: 3,
  CD: 4,
  QTYPE: 5,
  QCLASS: 6,
  QUESTION_END: 7,
  QNAME_LENGTH: 8,
  ZONE_OFFSET: 9,
  LABELS_BEFORE_ZONE: 10,
  EDNS: 11,
  UDP_SIZE: 12,
  EDNS_VERSION: 13,
  DNSSEC_OK: 14,
  ECS_FAMILY: 15,
  ECS_SOURCE_PREFIX: 16,
  TSIG_OFFSET: 17,
  TSIG_RDATA: 18,
  TSIG_END: 19,
  PADDING: 20,
} as const;
/** Number of i32 fields in the info region. */
export const INFO_WORDS = 21;
/** Byte offset of the 16 ECS address bytes (after the i32 fields). */
export const INFO_ECS_ADDRESS = INFO_OFFSET + INFO_WORDS * 4;
/** Config region: zone in wire form (lower case, 256 bytes), then nsLabel and mailLabel. */
export const CONFIG_ZONE = INFO_OFFSET + 1024;
/** Wire form of the name-server label: length byte then the label (64 bytes). */
export const CONFIG_NS_LABEL = CONFIG_ZONE + 256;
/** Wire form of the mailbox label: length byte then the label (64 bytes). */
export const CONFIG_MAIL_LABEL = CONFIG_NS_LABEL + 64;
/** Wire forms of the further name-server labels (`moreNsLabels`), 64 bytes each. */
export const CONFIG_MORE_NS_LABELS = CONFIG_MAIL_LABEL + 64;

/** RFC 1035 §4.1.1: a DNS header is 12 octets. */
export const HEADER = 12;
/** RFC 1035 §4.1.4: a pointer is two octets with the top two bits set; it reaches 14 bits. */
export const POINTER_LIMIT = 0x4000;
/** RFC 6891 §6.1.2: the fixed part of an OPT record (root owner + 10 octets). */
export const OPT_FIXED = 11;
/** RFC 7871 §6: option code and length (4) plus FAMILY, SOURCE and SCOPE (4). */
export const ECS_FIXED = 8;
/** The largest OPT record we write: fixed part, ECS header and a 16-byte address. */
const OPT_MAX = 11 + 8 + 16;
/** RFC 8945 §4.5.2 TSIG error BADKEY. */
export const TSIG_BADKEY = 17;
/** RFC 8945 §4.2: MAC Size, Original ID, Error and Other Len, each 2 octets (MAC and Other empty). */
export const TSIG_TAIL = 8;
/** RFC 7830 option code of EDNS Padding. */
export const OPTION_PADDING = 12;
/** RFC 8467 §4.1: servers pad responses to a multiple of 468 octets. */
export const PADDING_BLOCK = 468;

/**
 * Bytes of Padding option data that bring a response of `length` bytes (the option not yet
 * counted) to a multiple of {@link PADDING_BLOCK}, or up to `limit` when that comes first;
 * -1 when not even the option header fits.
 */
export function paddingLength(length: number, limit: number): number {
  const n = (PADDING_BLOCK - ((length + 4) % PADDING_BLOCK)) % PADDING_BLOCK;
  return length + 4 + n <= limit ? n : limit - length - 4 >= 0 ? limit - length - 4 : -1;
}

/** RFC 7871 option code of EDNS Client Subnet. */
export const OPTION_ECS = 8;

/** Bytes of the ECS ADDRESS field for a source prefix (RFC 7871 §6: ceil(prefix / 8)). */
export function ecsAddressLength(sourcePrefix: number): number {
  return (sourcePrefix + 7) >> 3;
}

/** The zone configuration in wire form, as both codecs store it. */
export interface WireConfig {
  /** Zone name in wire form, lower case, ending with the root byte. */
  zone: Uint8Array;
  /** Labels in the zone (0 for the root). */
  zoneLabels: number;
  /** `nsLabel` as a length byte and the label. */
  nsLabel: Uint8Array;
  /** Every name-server label so (`nsLabel`, then `moreNsLabels`). */
  nsLabels: Uint8Array[];
  /** `mailLabel` as a length byte and the label. */
  mailLabel: Uint8Array;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  minimum: number;
  soaTtl: number;
}

function checkU32(what: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RangeError(
      `Cannot configure the DNS codec: ${what} must be an integer in 0..4294967295: received ${
        String(v)
      }`,
    );
  }
  return v;
}

/** One label as a length byte and lower-case ASCII; printable characters only, no dots. */
function encodeLabel(what: string, label: string): Uint8Array {
  if (label.length < 1 || label.length > Limits.LABEL) {
    throw new RangeError(
      `Cannot configure the DNS codec: ${what} must have 1..${Limits.LABEL} characters: received "${label}"`,
    );
  }
  const out = new Uint8Array(label.length + 1);
  out[0] = label.length;
  for (let i = 0; i < label.length; i++) {
    const c = label.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || c === 0x2e) {
      throw new SyntaxError(
        `Cannot configure the DNS codec: ${what} may hold printable ASCII other than "." and space: received "${label}"`,
      );
    }
    out[i + 1] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
  }
  return out;
}

/** Checks a {@link ZoneConfig} and returns its wire form; throws on any bad field. */
export function encodeConfig(cfg: ZoneConfig): WireConfig {
  if (cfg === null || typeof cfg !== "object" || typeof cfg.zone !== "string") {
    throw new TypeError("Cannot configure the DNS codec: zone must be a string");
  }
  if (typeof cfg.nsLabel !== "string" || typeof cfg.mailLabel !== "string") {
    throw new TypeError("Cannot configure the DNS codec: nsLabel and mailLabel must be strings");
  }
  let name = cfg.zone;
  if (name.endsWith(".")) name = name.slice(0, -1);
  const labels = name === "" ? [] : name.split(".");
  const parts = labels.map((l) => encodeLabel(`zone label of "${cfg.zone}"`, l));
  const zone = new Uint8Array(parts.reduce((n, p) => n + p.length, 0) + 1);
  let o = 0;
  for (const p of parts) {
    zone.set(p, o);
    o += p.length;
  }
  const nsLabel = encodeLabel("nsLabel", cfg.nsLabel);
  const more = cfg.moreNsLabels ?? [];
  if (!Array.isArray(more) || more.length > MAX_NS_HOSTS - 1) {
    throw new RangeError(
      `Cannot configure the DNS codec: moreNsLabels must be an array of at most ${
        MAX_NS_HOSTS - 1
      } labels`,
    );
  }
  const nsLabels = [
    nsLabel,
    ...more.map((l, i) => {
      if (typeof l !== "string") {
        throw new TypeError(`Cannot configure the DNS codec: moreNsLabels[${i}] must be a string`);
      }
      return encodeLabel(`moreNsLabels[${i}]`, l);
    }),
  ];
  const mailLabel = encodeLabel("mailLabel", cfg.mailLabel);
  const longest = Math.max(...nsLabels.map((l) => l.length), mailLabel.length) + zone.length;
  if (longest > Limits.NAME) {
    throw new RangeError(
      `Cannot configure the DNS codec: names under "${cfg.zone}" would take ${longest} octets, more than ${Limits.NAME}`,
    );
  }
  return {
    zone,
    zoneLabels: parts.length,
    nsLabel,
    nsLabels,
    mailLabel,
    serial: checkU32("serial", cfg.serial),
    refresh: checkU32("refresh", cfg.refresh),
    retry: checkU32("retry", cfg.retry),
    expire: checkU32("expire", cfg.expire),
    minimum: checkU32("minimum", cfg.minimum),
    soaTtl: checkU32("soaTtl", cfg.soaTtl),
  };
}

/** Checks `parse` arguments: the packet must lie in scratch memory and fit a DNS message. */
export function checkParse(ptr: number, len: number): void {
  if (
    !Number.isInteger(ptr) || !Number.isInteger(len) || ptr < SCRATCH_BASE || len < 0 ||
    len > Limits.TCP || ptr + len > MEMORY_BYTES
  ) {
    throw new RangeError(
      `Cannot parse DNS message: ptr must be in scratch memory [${SCRATCH_BASE}, ${MEMORY_BYTES}) and len in 0..${Limits.TCP} within it: received ptr ${ptr}, len ${len}`,
    );
  }
}

/** Checks `begin` arguments, including the fields of `q` the encoder relies on. */
export function checkBegin(ptr: number, q: Query, rcode: number, limit: number): void {
  if (!Number.isInteger(ptr) || ptr < SCRATCH_BASE || ptr + HEADER > MEMORY_BYTES) {
    throw new RangeError(
      `Cannot begin DNS response: ptr must be in scratch memory [${SCRATCH_BASE}, ${
        MEMORY_BYTES - HEADER
      }]: received ${ptr}`,
    );
  }
  if (Number.isInteger(q.questionEnd) && ptr + q.questionEnd + OPT_MAX > MEMORY_BYTES) {
    throw new RangeError(
      `Cannot begin DNS response: the question and OPT record at ${ptr} would pass the end of codec memory (${MEMORY_BYTES})`,
    );
  }
  if (!Number.isInteger(rcode) || rcode < 0 || rcode > 4095) {
    throw new RangeError(`Cannot begin DNS response: rcode must be in 0..4095: received ${rcode}`);
  }
  if (typeof limit !== "number" || Number.isNaN(limit)) {
    throw new RangeError(`Cannot begin DNS response: limit must be a number: received ${limit}`);
  }
  const qe = q.questionEnd, ql = q.qnameLength, zo = q.zoneOffset;
  if (
    !Number.isInteger(qe) || !Number.isInteger(ql) || !Number.isInteger(zo) || ql < 0 ||
    ql > Limits.NAME || qe !== (ql > 0 ? HEADER + ql + 4 : HEADER) || zo < -1 ||
    (zo >= 0 && (zo < HEADER || zo >= HEADER + ql)) ||
    (q.ecsFamily !== 0 && q.ecsFamily !== 1 && q.ecsFamily !== 2) ||
    !Number.isInteger(q.ecsSourcePrefix) || q.ecsSourcePrefix < 0 ||
    q.ecsSourcePrefix > (q.ecsFamily === 1 ? 32 : 128) || !Number.isInteger(q.opcode) ||
    q.opcode < 0 || q.opcode > 15 || !(q.ecsAddress instanceof Uint8Array) ||
    q.ecsAddress.length !== 16 || !tsigFieldsOk(ptr, q)
  ) {
    throw new TypeError(
      "Cannot begin DNS response: the Query is not one filled by parse (questionEnd, qnameLength, zoneOffset, opcode, ECS or TSIG fields out of range)",
    );
  }
}

/**
 * Whether the TSIG fields of `q` are none (-1) or a TSIG RR after the question whose copy,
 * written after the question and OPT record with the BADKEY tail, stays in codec memory.
 */
function tsigFieldsOk(ptr: number, q: Query): boolean {
  const o = q.tsigOffset, r = q.tsigRdata, e = q.tsigEnd;
  if (o === -1 && r === -1 && e === -1) return true;
  return Number.isInteger(o) && Number.isInteger(r) && Number.isInteger(e) &&
    o >= q.questionEnd && r >= o + 11 && e >= r + 9 &&
    ptr + Math.max(e, q.questionEnd + OPT_MAX + (e - o) + TSIG_TAIL) <= MEMORY_BYTES;
}

/** `limit` clamped to [12, 65535] and to the end of codec memory. */
export function clampLimit(ptr: number, limit: number): number {
  const l = limit < HEADER ? HEADER : limit > Limits.TCP ? Limits.TCP : Math.floor(limit);
  return Math.min(l, MEMORY_BYTES - ptr);
}

/**
 * Checks `addA`/`addAAAA` common arguments; `hosts` is the number of name server hosts
 * configured (owners `Owner.NSHOST + i` for i below it).
 */
export function checkRecord(section: number, owner: number, ttl: number, hosts = 1): void {
  if (
    (section !== 0 && section !== 1 && section !== 2) || !Number.isInteger(owner) || owner < 0 ||
    owner > Math.max(1, hosts)
  ) {
    throw new RangeError(
      `Cannot add DNS record: section must be 0..2 and owner 0..${
        Math.max(1, hosts)
      } (0: the question, 1 + i: name server host i of ${hosts}): received section ${section}, owner ${owner}`,
    );
  }
  if ((ttl >>> 0) !== ttl) {
    throw new RangeError(
      `Cannot add DNS record: ttl must be an integer in 0..4294967295: received ${ttl}`,
    );
  }
}

/** Checks a 32-bit word argument (an IPv4 address or part of an IPv6 one); i32 or u32 values. */
export function checkWord(what: string, v: number): void {
  if ((v >>> 0) !== v && (v | 0) !== v) {
    throw new RangeError(`Cannot add DNS record: ${what} must be a 32-bit integer: received ${v}`);
  }
}

/** Checks a section argument alone (`addSOA`, `addNS`). */
export function checkSection(section: number): void {
  if (section !== 0 && section !== 1 && section !== 2) {
    throw new RangeError(`Cannot add DNS record: section must be 0..2: received ${section}`);
  }
}

/** Checks `addNS`'s host: one of the `hosts` name server hosts configured. */
export function checkNsHost(host: number, hosts: number): void {
  if (!Number.isInteger(host) || host < 0 || host >= Math.max(1, hosts)) {
    throw new RangeError(
      `Cannot add NS record: host must be 0..${
        Math.max(1, hosts) - 1
      } (the name server hosts configured): received ${host}`,
    );
  }
}

/** Checks the `finish` argument. */
export function checkScope(ecsScope: number): void {
  if (!Number.isInteger(ecsScope) || ecsScope < 0 || ecsScope > 128) {
    throw new RangeError(
      `Cannot finish DNS response: ecsScope must be an integer in 0..128: received ${ecsScope}`,
    );
  }
}

/** Error for calls made out of order (`add*`/`finish` without `begin`, records before `configure`). */
export function stateError(what: string): Error {
  return new Error(`Cannot ${what}`);
}

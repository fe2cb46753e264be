// DNS wire codec in AssemblyScript: parse a query, answer it in place.
//
// Behaviour is defined by lib/dnswire/reference.ts (the oracle); this file must agree with it
// byte for byte (tests/dnswire_differential_test.ts). ABI and memory layout: wasm/README.md;
// the layout constants are mirrored in lib/dnswire/_common.ts and checked by the adapter.
//
// Every read is bounds-checked against the packet length before it happens; raw load/store
// is used throughout (no managed objects, no allocation: the runtime is the stub).

// ---- Memory layout (keep equal to lib/dnswire/_common.ts) ---------------------------------
const MEMORY_PAGES: i32 = 8;
const SCRATCH_BASE: usize = 65536;
const INFO: usize = 49152; // 21 i32 fields of the parsed query (static data starts at 1024)
const INFO_ECS: usize = INFO + 21 * 4; // 16 ECS address bytes
const SAVED_ECS: usize = INFO + 128; // ECS address kept from begin to finish
const CFG_ZONE: usize = INFO + 1024; // zone in wire form, lower case
const CFG_NS: usize = CFG_ZONE + 256; // length byte + nsLabel
const CFG_MAIL: usize = CFG_NS + 64; // length byte + mailLabel
const CFG_MORE_NS: usize = CFG_MAIL + 64; // 7 × (length byte + label): moreNsLabels
const NS_PTRS: usize = INFO + 512; // i32 per name server host: where its name was written
const MAX_NS_HOSTS: i32 = 8;

// Info field byte offsets.
const F_STATUS: usize = 0;
const F_ID: usize = 4;
const F_OPCODE: usize = 8;
const F_RD: usize = 12;
const F_CD: usize = 16;
const F_QTYPE: usize = 20;
const F_QCLASS: usize = 24;
const F_QUESTION_END: usize = 28;
const F_QNAME_LENGTH: usize = 32;
const F_ZONE_OFFSET: usize = 36;
const F_LABELS_BEFORE_ZONE: usize = 40;
const F_EDNS: usize = 44;
const F_UDP_SIZE: usize = 48;
const F_EDNS_VERSION: usize = 52;
const F_DNSSEC_OK: usize = 56;
const F_ECS_FAMILY: usize = 60;
const F_ECS_SOURCE: usize = 64;
const F_TSIG_OFFSET: usize = 68;
const F_TSIG_RDATA: usize = 72;
const F_TSIG_END: usize = 76;
const F_PADDING: usize = 80;

// ---- Protocol constants ---------------------------------------------------------------------
const ST_OK: i32 = 0;
const ST_FORMERR: i32 = 1;
const ST_NOTIMP: i32 = 2;
const ST_BADVERS: i32 = 3;
const ST_DROP: i32 = 4;
const ST_NOTAUTH: i32 = 5;
const HEADER: i32 = 12; // RFC 1035 §4.1.1
const NAME_MAX: i32 = 255; // RFC 1035 §2.3.4
const POINTER_HOPS: i32 = 64; // pointers followed per name before we call it a loop
const POINTER_LIMIT: i32 = 0x4000; // RFC 1035 §4.1.4: 14-bit offsets
const TYPE_A: i32 = 1;
const TYPE_NS: i32 = 2;
const TYPE_SOA: i32 = 6;
const TYPE_AAAA: i32 = 28;
const TYPE_OPT: i32 = 41;
const TYPE_TSIG: i32 = 250;
const CLASS_ANY: i32 = 255;
const TSIG_BADKEY: i32 = 17; // RFC 8945 §4.5.2
const TSIG_TAIL: i32 = 8; // MAC Size, Original ID, Error, Other Len
const CLASS_IN: i32 = 1;
const UDP_EDNS: i32 = 1232; // DNS flag day 2020
const OPT_FIXED: i32 = 11; // RFC 6891 §6.1.2
const ECS_FIXED: i32 = 8; // RFC 7871 §6: option header + FAMILY/SOURCE/SCOPE
const OPTION_ECS: i32 = 8;
const OPTION_PADDING: i32 = 12; // RFC 7830
const PADDING_BLOCK: i32 = 468; // RFC 8467 §4.1
const SECTION_AUTHORITY: i32 = 1;
const OWNER_QNAME: i32 = 0;

// Grow to the full layout in the start function, before the host takes memory.buffer.
if (memory.size() < MEMORY_PAGES) memory.grow(MEMORY_PAGES - memory.size());

/** Layout check for the adapter: 0 memory pages, 1 scratch base, 2 info, 3 config, 4 heap base. */
export function layout(which: i32): i32 {
  if (which == 0) return MEMORY_PAGES;
  if (which == 1) return <i32>SCRATCH_BASE;
  if (which == 2) return <i32>INFO;
  if (which == 3) return <i32>CFG_ZONE;
  return <i32>__heap_base;
}

// ---- Byte helpers (big-endian) -------------------------------------------------------------
// @ts-ignore: decorator
@inline function rd8(p: usize): i32 {
  return <i32>load<u8>(p);
}
// @ts-ignore: decorator
@inline function rd16(p: usize): i32 {
  return <i32>bswap<u16>(load<u16>(p));
}
// @ts-ignore: decorator
@inline function wr16(p: usize, v: i32): void {
  store<u16>(p, bswap<u16>(<u16>v));
}
// @ts-ignore: decorator
@inline function wr32(p: usize, v: u32): void {
  store<u32>(p, bswap<u32>(v));
}
// ---- Configuration ---------------------------------------------------------------------------
let zoneLen: i32 = 0; // 0: not configured (nothing is in zone)
let nsLen: i32 = 0;
let nsHosts: i32 = 1;
let mailLen: i32 = 0;
let serial: u32 = 0;
let refresh: u32 = 0;
let retry: u32 = 0;
let expire: u32 = 0;
let minimum: u32 = 0;
let soaTtl: u32 = 0;

/**
 * The host has written the zone, nsLabel, mailLabel and the `nsHosts_ - 1` further name-server
 * labels (wire form) into the config region.
 */
export function configure(
  zoneLength: i32,
  nsLength: i32,
  mailLength: i32,
  serial_: u32,
  refresh_: u32,
  retry_: u32,
  expire_: u32,
  minimum_: u32,
  soaTtl_: u32,
  nsHosts_: i32,
): void {
  zoneLen = zoneLength;
  nsLen = nsLength;
  nsHosts = nsHosts_ < 1 ? 1 : nsHosts_ > MAX_NS_HOSTS ? MAX_NS_HOSTS : nsHosts_;
  mailLen = mailLength;
  serial = serial_;
  refresh = refresh_;
  retry = retry_;
  expire = expire_;
  minimum = minimum_;
  soaTtl = soaTtl_;
}

// ---- Parsing ---------------------------------------------------------------------------------
// Parsed fields live in globals while parsing and are written to the info region once.
let v_status: i32 = 0;
let v_id: i32 = 0;
let v_opcode: i32 = 0;
let v_rd: i32 = 0;
let v_cd: i32 = 0;
let v_qtype: i32 = 0;
let v_qclass: i32 = 0;
let v_question_end: i32 = 0;
let v_qname_length: i32 = 0;
let v_zone_offset: i32 = 0;
let v_labels_before_zone: i32 = 0;
let v_edns: i32 = 0;
let v_udp_size: i32 = 0;
let v_edns_version: i32 = 0;
let v_dnssec_ok: i32 = 0;
let v_ecs_family: i32 = 0;
let v_ecs_source: i32 = 0;
let v_tsig_offset: i32 = -1;
let v_tsig_rdata: i32 = -1;
let v_tsig_end: i32 = -1;
let v_padding: i32 = 0;

/** Writes the parsed fields to the info region (the ECS address is written there directly). */
function flush(): void {
  store<i32>(INFO + F_STATUS, v_status);
  store<i32>(INFO + F_ID, v_id);
  store<i32>(INFO + F_OPCODE, v_opcode);
  store<i32>(INFO + F_RD, v_rd);
  store<i32>(INFO + F_CD, v_cd);
  store<i32>(INFO + F_QTYPE, v_qtype);
  store<i32>(INFO + F_QCLASS, v_qclass);
  store<i32>(INFO + F_QUESTION_END, v_question_end);
  store<i32>(INFO + F_QNAME_LENGTH, v_qname_length);
  store<i32>(INFO + F_ZONE_OFFSET, v_zone_offset);
  store<i32>(INFO + F_LABELS_BEFORE_ZONE, v_labels_before_zone);
  store<i32>(INFO + F_EDNS, v_edns);
  store<i32>(INFO + F_UDP_SIZE, v_udp_size);
  store<i32>(INFO + F_EDNS_VERSION, v_edns_version);
  store<i32>(INFO + F_DNSSEC_OK, v_dnssec_ok);
  store<i32>(INFO + F_ECS_FAMILY, v_ecs_family);
  store<i32>(INFO + F_ECS_SOURCE, v_ecs_source);
  store<i32>(INFO + F_TSIG_OFFSET, v_tsig_offset);
  store<i32>(INFO + F_TSIG_RDATA, v_tsig_rdata);
  store<i32>(INFO + F_TSIG_END, v_tsig_end);
  store<i32>(INFO + F_PADDING, v_padding);
}

let nameLength: i32 = 0; // expanded length of the name last skipped

/** Resets every field after the header ones. */
function resetBody(): void {
  v_qtype = 0;
  v_qclass = 0;
  v_question_end = HEADER;
  v_qname_length = 0;
  v_zone_offset = -1;
  v_labels_before_zone = -1;
  resetEdns();
  resetTsig();
}

function resetTsig(): void {
  v_tsig_offset = -1;
  v_tsig_rdata = -1;
  v_tsig_end = -1;
}

function resetEdns(): void {
  v_edns = 0;
  v_udp_size = 0;
  v_edns_version = 0;
  v_dnssec_ok = 0;
  v_padding = 0;
  resetEcs();
}

function resetEcs(): void {
  v_ecs_family = 0;
  v_ecs_source = 0;
  store<u64>(INFO_ECS, 0);
  store<u64>(INFO_ECS + 8, 0);
}

/** Parses `len` bytes at `ptr` into the info region; returns the status. */
export function parse(ptr: usize, len: i32): i32 {
  parseFields(ptr, len);
  flush();
  return v_status;
}

// @ts-ignore: decorator
@inline function parseFields(ptr: usize, len: i32): void {
  v_status = ST_DROP;
  v_id = 0;
  v_opcode = 0;
  v_rd = 0;
  v_cd = 0;
  resetBody();
  if (len < HEADER) return;
  v_id = rd16(ptr);
  const flags = rd16(ptr + 2);
  const opcode = (flags >> 11) & 15;
  v_opcode = opcode;
  v_rd = (flags >> 8) & 1;
  v_cd = (flags >> 4) & 1;
  if ((flags & 0x8000) != 0) return; // a response: never answer it
  const qd = rd16(ptr + 4);
  const an = rd16(ptr + 6);
  const ns = rd16(ptr + 8);
  const ar = rd16(ptr + 10);
  let status: i32;
  if (opcode != 0) {
    status = ST_NOTIMP;
    if (qd == 1 && question(ptr, len) && !records(ptr, len, an, ns, ar)) resetEdns();
    resetTsig();
  } else if (qd == 0) {
    // No question (e.g. dig +header-only): FORMERR, with the OPT record if it is well-formed.
    status = ST_FORMERR;
    records(ptr, len, an, ns, ar);
    resetEcs();
    resetTsig();
  } else if (qd != 1 || !question(ptr, len)) {
    status = ST_FORMERR;
    resetBody();
    ednsPastQuestions(ptr, len, qd, an, ns, ar);
  } else if (!records(ptr, len, an, ns, ar)) {
    // RFC 6891 §7: the question is echoed, and the OPT record kept when the query's was
    // well-formed (only what follows it, or an option inside it, was not).
    status = ST_FORMERR;
    resetEcs();
    resetTsig();
  } else if (v_tsig_offset >= 0) {
    status = ST_NOTAUTH; // RFC 8945 §5.2: a signed query is checked first; we hold no key
  } else {
    status = v_edns != 0 && v_edns_version > 0 ? ST_BADVERS : ST_OK;
  }
  v_status = status;
}

/**
 * For a FORMERR whose question is not echoed (QDCOUNT >= 2, or one that does not parse as a
 * question we answer): when the `qd` questions can be skipped as names, takes the OPT record
 * from the records after them, so the FORMERR keeps it if it is well-formed (RFC 6891 §7).
 */
function ednsPastQuestions(ptr: usize, len: i32, qd: i32, an: i32, ns: i32, ar: i32): void {
  let p: i32 = HEADER;
  for (let i: i32 = 0; i < qd; i++) {
    const e = skipName(ptr, len, p);
    if (e < 0 || e + 4 > len) return;
    p = e + 4;
  }
  v_question_end = p;
  records(ptr, len, an, ns, ar);
  v_question_end = HEADER;
  resetEcs();
  resetTsig();
}

/** Validates the question at offset 12; fills its fields only when it is valid. */
function question(ptr: usize, len: i32): bool {
  let p: i32 = HEADER;
  while (true) {
    if (p >= len) return false;
    const b = rd8(ptr + p);
    if (b == 0) break;
    if ((b & 0xc0) != 0) return false; // pointer or reserved label type
    p += b + 1;
    if (p + 1 - HEADER > NAME_MAX) return false;
  }
  p++; // the root byte
  if (p + 4 > len) return false;
  v_qname_length = p - HEADER;
  v_qtype = rd16(ptr + p);
  v_qclass = rd16(ptr + p + 2);
  v_question_end = p + 4;
  // Zone match: the last zoneLen bytes must start on a label boundary and be equal.
  if (zoneLen == 0) return true;
  const start = p - zoneLen;
  if (start < HEADER) return true;
  let s: i32 = HEADER;
  let labels: i32 = 0;
  while (s < start) {
    s += rd8(ptr + s) + 1;
    labels++;
  }
  if (s != start) return true;
  for (let i: i32 = 0; i < zoneLen; i++) {
    let c = rd8(ptr + start + i);
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (c != rd8(CFG_ZONE + i)) return true;
  }
  v_zone_offset = start;
  v_labels_before_zone = labels;
  return true;
}

/** Skips a possibly compressed name at `o`; returns the offset after it or -1. */
function skipName(ptr: usize, len: i32, o: i32): i32 {
  let p = o;
  let end: i32 = -1;
  let hops: i32 = 0;
  let total: i32 = 1;
  while (true) {
    if (p >= len) return -1;
    const b = rd8(ptr + p);
    if (b == 0) break;
    const kind = b & 0xc0;
    if (kind == 0xc0) {
      if (p + 1 >= len) return -1;
      const target = ((b & 0x3f) << 8) | rd8(ptr + p + 1);
      if (target >= p) return -1; // pointers must point strictly backwards
      if (++hops > POINTER_HOPS) return -1;
      if (end < 0) end = p + 2;
      p = target;
      continue;
    }
    if (kind != 0) return -1; // 0x40 and 0x80 are reserved (RFC 6891 §5)
    total += b + 1;
    if (total > NAME_MAX) return -1;
    p += b + 1;
  }
  nameLength = total;
  return end < 0 ? p + 1 : end;
}

/** Walks the answer, authority and additional records; takes EDNS from the OPT record. */
function records(ptr: usize, len: i32, an: i32, ns: i32, ar: i32): bool {
  const total = an + ns + ar;
  let p = v_question_end;
  for (let i: i32 = 0; i < total; i++) {
    const e = skipName(ptr, len, p);
    if (e < 0 || e + 10 > len) return false;
    const type = rd16(ptr + e);
    const rdata = e + 10;
    const end = rdata + rd16(ptr + e + 8);
    if (end > len) return false;
    if (type == TYPE_OPT) {
      // RFC 6891 §6.1.1: one OPT, root owner, in the additional section.
      if (i < an + ns || v_edns != 0 || nameLength != 1) return false;
      const version = rd8(ptr + e + 5);
      v_edns = 1;
      v_udp_size = rd16(ptr + e + 2);
      v_edns_version = version;
      v_dnssec_ok = (rd8(ptr + e + 6) >> 7) & 1;
      // Options of a version we do not speak are not interpreted (the answer is BADVERS).
      if (version == 0 && !options(ptr, rdata, end)) return false;
    } else if (type == TYPE_TSIG) {
      // RFC 8945 §5.1: the last additional record; names uncompressed (we copy them).
      if (i != total - 1 || i < an + ns || nameLength != e - p) return false;
      const a = skipName(ptr, len, rdata);
      if (a < 0 || nameLength != a - rdata || a + 10 > end) return false;
      const other = a + 10 + rd16(ptr + a + 8);
      if (other + 6 > end || other + 6 + rd16(ptr + other + 4) != end) return false;
      v_tsig_offset = p;
      v_tsig_rdata = rdata;
      v_tsig_end = a + 8;
    }
    p = end;
  }
  return p == len; // anything after the last record is garbage
}

/** Checks the option framing of OPT RDATA in [o, end) and takes the ECS option. */
function options(ptr: usize, o: i32, end: i32): bool {
  while (o < end) {
    if (o + 4 > end) return false;
    const code = rd16(ptr + o);
    const olen = rd16(ptr + o + 2);
    const d = o + 4;
    if (d + olen > end) return false;
    if (code == OPTION_ECS) {
      if (v_ecs_family != 0 || olen < 4) return false;
      const family = rd16(ptr + d);
      const source = rd8(ptr + d + 2);
      const max: i32 = family == 1 ? 32 : family == 2 ? 128 : -1;
      // RFC 7871 §6: SCOPE is 0 in queries; ADDRESS is exactly ceil(SOURCE / 8) bytes with no
      // bits set past SOURCE.
      if (max < 0 || source > max || rd8(ptr + d + 3) != 0) return false;
      const alen = (source + 7) >> 3;
      if (olen - 4 != alen) return false;
      if ((source & 7) != 0 && (rd8(ptr + d + 3 + alen) & (0xff >> (source & 7))) != 0) {
        return false;
      }
      v_ecs_family = family;
      v_ecs_source = source;
      memory.copy(INFO_ECS, ptr + d + 4, alen);
    } else if (code == OPTION_PADDING) {
      v_padding = 1; // RFC 7830 §4: the content is ignored
    }
    o = d + olen;
  }
  return true;
}

// ---- Encoding --------------------------------------------------------------------------------
let base: usize = 0; // message start
let pos: i32 = 0; // next write offset, relative to base
let limit: i32 = 0;
let reserve: i32 = 0;
let tc: bool = false;
let anCount: i32 = 0;
let nsCount: i32 = 0;
let arCount: i32 = 0;
let zonePtr: i32 = -1;
let willOpt: bool = false;
let padding: bool = false;
let echoEcs: bool = false;
let dnssecOk: bool = false;
let extRcode: i32 = 0;
let ecsFamily: i32 = 0;
let ecsSource: i32 = 0;
let tsigOffset: i32 = -1; // the query's TSIG RR to answer BADKEY to (-1: none)
let tsigRdata: i32 = -1;
let tsigEnd: i32 = -1;

/**
 * Starts the response in place. `bits`: 1 RD, 2 CD, 4 EDNS, 8 DO, 16 AA. The ECS address (when
 * `ecsFamily_` is not 0) is read from the info region. `limit_` is already clamped by the host.
 */
export function begin(
  ptr: usize,
  status: i32,
  opcode: i32,
  bits: i32,
  questionEnd: i32,
  qnameLength: i32,
  zoneOffset: i32,
  ecsFamily_: i32,
  ecsSource_: i32,
  rcode: i32,
  limit_: i32,
  tsigOffset_: i32,
  tsigRdata_: i32,
  tsigEnd_: i32,
): void {
  const answerable = status == ST_OK || status == ST_NOTIMP || status == ST_BADVERS ||
    status == ST_FORMERR || status == ST_NOTAUTH;
  const keep = answerable && qnameLength > 0;
  // RD and CD are copied, except to NOTIMP: an opcode we do not know may give them no meaning.
  const copy = status != ST_NOTIMP;
  const flags = 0x8000 | (opcode << 11) | ((bits & 16) != 0 ? 0x400 : 0) |
    (copy && (bits & 1) != 0 ? 0x100 : 0) | (copy && (bits & 2) != 0 ? 0x10 : 0) | (rcode & 15);
  wr16(ptr + 2, flags);
  wr16(ptr + 4, keep ? 1 : 0);
  store<u32>(ptr + 6, 0);
  store<u16>(ptr + 10, 0);
  base = ptr;
  pos = keep ? questionEnd : HEADER;
  limit = limit_;
  anCount = 0;
  nsCount = 0;
  arCount = 0;
  zonePtr = keep && zoneOffset >= 0 ? zoneOffset : -1;
  for (let i = 0; i < nsHosts; i++) store<i32>(NS_PTRS + (<usize>i << 2), -1);
  willOpt = answerable && (bits & 4) != 0;
  echoEcs = willOpt && status == ST_OK && ecsFamily_ != 0;
  dnssecOk = (bits & 8) != 0;
  padding = willOpt && (bits & 32) != 0;
  extRcode = rcode >> 4;
  ecsFamily = ecsFamily_;
  ecsSource = ecsSource_;
  store<u64>(SAVED_ECS, load<u64>(INFO_ECS));
  store<u64>(SAVED_ECS + 8, load<u64>(INFO_ECS + 8));
  tsigOffset = status == ST_NOTAUTH ? tsigOffset_ : -1;
  tsigRdata = tsigRdata_;
  tsigEnd = tsigEnd_;
  reserve = (willOpt ? OPT_FIXED + (echoEcs ? ECS_FIXED + ((ecsSource + 7) >> 3) : 0) : 0) +
    (tsigOffset >= 0 ? tsigEnd - tsigOffset + TSIG_TAIL : 0);
  // Header, question and OPT are always written; if even they exceed the limit, say so.
  tc = pos + reserve > limit;
}

/** Whether `size` more bytes fit under the limit (keeping the OPT reserve); sets TC if not. */
function fits(size: i32): bool {
  if (tc) return false;
  if (pos + size + reserve > limit) {
    tc = true;
    return false;
  }
  return true;
}

// @ts-ignore: decorator
@inline function put8(v: i32): void {
  store<u8>(base + pos, <u8>v);
  pos += 1;
}
// @ts-ignore: decorator
@inline function put16(v: i32): void {
  wr16(base + pos, v);
  pos += 2;
}
// @ts-ignore: decorator
@inline function put32(v: u32): void {
  wr32(base + pos, v);
  pos += 4;
}
// @ts-ignore: decorator
@inline function putBytes(src: usize, n: i32): void {
  memory.copy(base + pos, src, n);
  pos += n;
}

// @ts-ignore: decorator
@inline function zoneRefSize(): i32 {
  return zonePtr >= 0 ? 2 : zoneLen;
}
/** Whether a pointer to the zone exists after one more zone reference written here. */
// @ts-ignore: decorator
@inline function zonePointableAfter(): bool {
  return zonePtr >= 0 || pos < POINTER_LIMIT;
}
// @ts-ignore: decorator
@inline function nsHostPtr(host: i32): i32 {
  return load<i32>(NS_PTRS + (<usize>host << 2));
}
// @ts-ignore: decorator
@inline function nsHostSrc(host: i32): usize {
  return host == 0 ? CFG_NS : CFG_MORE_NS + <usize>(host - 1) * 64;
}
// @ts-ignore: decorator
@inline function nsHostLen(host: i32): i32 {
  return host == 0 ? nsLen : rd8(nsHostSrc(host)) + 1;
}
// @ts-ignore: decorator
@inline function nsHostRefSize(host: i32, zoneKnown: bool): i32 {
  if (nsHostPtr(host) >= 0) return 2;
  return nsHostLen(host) + (zoneKnown ? 2 : zoneLen);
}

function zoneRef(): void {
  if (zonePtr >= 0) {
    put16(0xc000 | zonePtr);
    return;
  }
  const at = pos;
  putBytes(CFG_ZONE, zoneLen);
  if (at < POINTER_LIMIT) zonePtr = at;
}

function nsHostRef(host: i32): void {
  const ptr = nsHostPtr(host);
  if (ptr >= 0) {
    put16(0xc000 | ptr);
    return;
  }
  const at = pos;
  putBytes(nsHostSrc(host), nsHostLen(host));
  zoneRef();
  if (at < POINTER_LIMIT) store<i32>(NS_PTRS + (<usize>host << 2), at);
}

function count(section: i32): void {
  if (section == 0) anCount++;
  else if (section == 1) nsCount++;
  else arCount++;
}

function addressHead(owner: i32, type: i32, ttl: u32, rdlen: i32): void {
  if (owner == OWNER_QNAME) put16(0xc000 | HEADER);
  else nsHostRef(owner - 1);
  put16(type);
  put16(CLASS_IN);
  put32(ttl);
  put16(rdlen);
}

// @ts-ignore: decorator
@inline function ownerSize(owner: i32): i32 {
  return owner == OWNER_QNAME ? 2 : nsHostRefSize(owner - 1, zonePtr >= 0);
}

/** Appends an A record unless it does not fit. */
export function addA(section: i32, owner: i32, ttl: u32, ipv4: u32): void {
  if (!fits(ownerSize(owner) + 10 + 4)) return;
  addressHead(owner, TYPE_A, ttl, 4);
  put32(ipv4);
  count(section);
}

/** Appends an AAAA record unless it does not fit. */
export function addAAAA(
  section: i32,
  owner: i32,
  ttl: u32,
  w0: u32,
  w1: u32,
  w2: u32,
  w3: u32,
): void {
  if (!fits(ownerSize(owner) + 10 + 16)) return;
  addressHead(owner, TYPE_AAAA, ttl, 16);
  put32(w0);
  put32(w1);
  put32(w2);
  put32(w3);
  count(section);
}

/** Appends the zone's SOA record unless it does not fit. */
export function addSOA(section: i32): void {
  const known = zonePointableAfter();
  const mname = nsHostRefSize(0, known);
  const rname = mailLen + (known ? 2 : zoneLen);
  if (!fits(zoneRefSize() + 10 + mname + rname + 20)) return;
  zoneRef();
  put16(TYPE_SOA);
  put16(CLASS_IN);
  // RFC 2308 §5: the SOA of a negative answer carries min(TTL, MINIMUM).
  put32(section == SECTION_AUTHORITY && minimum < soaTtl ? minimum : soaTtl);
  put16(mname + rname + 20);
  nsHostRef(0);
  putBytes(CFG_MAIL, mailLen);
  zoneRef();
  put32(serial);
  put32(refresh);
  put32(retry);
  put32(expire);
  put32(minimum);
  count(section);
}

/** Appends an NS record of the zone (name server host `host`) unless it does not fit. */
export function addNS(section: i32, host: i32): void {
  const rdlen = nsHostRefSize(host, zonePointableAfter());
  if (!fits(zoneRefSize() + 10 + rdlen)) return;
  zoneRef();
  put16(TYPE_NS);
  put16(CLASS_IN);
  put32(soaTtl);
  put16(rdlen);
  nsHostRef(host);
  count(section);
}

/**
 * Appends the query's TSIG RR (key name, algorithm, time signed and fudge copied; they lie at
 * or after the write position, so the copy moves them back) with the BADKEY tail.
 */
function tsigBadkey(at: i32): void {
  const saved = pos;
  memory.copy(base + at, base + tsigOffset, tsigEnd - tsigOffset);
  const rdlenAt = at + tsigRdata - tsigOffset - 2;
  wr16(base + rdlenAt - 6, CLASS_ANY);
  wr32(base + rdlenAt - 4, 0);
  wr16(base + rdlenAt, tsigEnd - tsigRdata + TSIG_TAIL);
  pos = at + tsigEnd - tsigOffset;
  put16(0); // MAC size
  put16(rd16(base)); // original ID
  put16(TSIG_BADKEY);
  put16(0); // other len
  arCount++;
  pos = saved;
}

/**
 * Padding option data bringing a response of `length` bytes (the option not yet counted) to a
 * multiple of PADDING_BLOCK, or up to the limit when that comes first; -1 if no room at all.
 */
function paddingLength(length: i32): i32 {
  const n = (PADDING_BLOCK - ((length + 4) % PADDING_BLOCK)) % PADDING_BLOCK;
  if (length + 4 + n <= limit) return n;
  return limit - length - 4 >= 0 ? limit - length - 4 : -1;
}

/** Appends the OPT record when due, writes counts and TC; returns the response length. */
export function finish(ecsScope: i32): i32 {
  const alen = echoEcs ? (ecsSource + 7) >> 3 : 0;
  const ecsBytes = echoEcs ? ECS_FIXED + alen : 0;
  const tsigBytes = tsigOffset >= 0 ? tsigEnd - tsigOffset + TSIG_TAIL : 0;
  const pad = padding ? paddingLength(pos + OPT_FIXED + ecsBytes + tsigBytes) : -1;
  const optBytes = willOpt ? OPT_FIXED + ecsBytes + (pad >= 0 ? 4 + pad : 0) : 0;
  // The TSIG goes last; it is moved first, as padding may reach over where the query held it.
  if (tsigOffset >= 0) tsigBadkey(pos + optBytes);
  if (willOpt) {
    put8(0);
    put16(TYPE_OPT);
    put16(UDP_EDNS);
    put32((<u32>extRcode << 24) | (dnssecOk ? 0x8000 : 0));
    put16(optBytes - OPT_FIXED);
    if (echoEcs) {
      put16(OPTION_ECS);
      put16(4 + alen);
      put16(ecsFamily);
      put8(ecsSource);
      put8(ecsScope);
      putBytes(SAVED_ECS, alen);
    }
    if (pad >= 0) {
      put16(OPTION_PADDING);
      put16(pad);
      memory.fill(base + pos, 0, pad);
      pos += pad;
    }
    arCount++;
  }
  pos += tsigBytes;
  if (tc) store<u8>(base + 2, load<u8>(base + 2) | 0x02);
  wr16(base + 6, anCount);
  wr16(base + 8, nsCount);
  wr16(base + 10, arCount);
  return pos;
}

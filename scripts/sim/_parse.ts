/**
 * Trace readers: the reference CSV (`timestamp,object_id,size`) and raw key traces (big-endian
 * u32 keys, one request each, unit size), both renumbered densely in first-seen order.
 *
 * @module
 */
import type { Trace } from "./_common.ts";

const NEWLINE = 10;
const COMMA = 44;
const TWO_32 = 2 ** 32;

/** Parses CSV bytes `timestamp,object_id,size` (header optional); SyntaxError on a bad line. */
export function parseTrace(bytes: Uint8Array): Trace {
  let lines = 0;
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === NEWLINE) lines++;
  if (bytes.length > 0 && bytes[bytes.length - 1] !== NEWLINE) lines++;
  const obj = new Uint32Array(lines);
  const size = new Uint32Array(lines);
  const dense = new Map<number, number>();
  const his: number[] = [];
  const los: number[] = [];
  const firsts: number[] = [];
  let n = 0;
  let pos = 0;
  let line = 0;
  while (pos < bytes.length) {
    line++;
    let end = bytes.indexOf(NEWLINE, pos);
    if (end < 0) end = bytes.length;
    if (end > pos && bytes[pos] >= 0x30 && bytes[pos] <= 0x39) {
      // Three unsigned integers separated by commas.
      const fields = [0, 0, 0];
      let f = 0;
      let digits = 0;
      for (let i = pos; i < end; i++) {
        const c = bytes[i];
        if (c === COMMA) {
          if (digits === 0 || ++f > 2) break;
          digits = 0;
        } else if (c >= 0x30 && c <= 0x39) {
          fields[f] = fields[f] * 10 + (c - 0x30);
          digits++;
        } else if (!(c === 13 && i === end - 1)) {
          f = 3;
          break;
        }
      }
      if (f !== 2 || digits === 0 || !Number.isSafeInteger(fields[1]) || fields[2] >= TWO_32) {
        throw new SyntaxError(`Cannot parse trace: line ${line} is not timestamp,object_id,size`);
      }
      const id = fields[1];
      let d = dense.get(id);
      if (d === undefined) {
        d = his.length;
        dense.set(id, d);
        his.push(Math.floor(id / TWO_32));
        los.push(id % TWO_32);
        firsts.push(fields[2]);
      }
      obj[n] = d;
      size[n] = fields[2];
      n++;
    } else if (end > pos && line !== 1) {
      throw new SyntaxError(`Cannot parse trace: line ${line} is not timestamp,object_id,size`);
    }
    pos = end + 1;
  }
  return {
    obj: obj.subarray(0, n),
    size: size.subarray(0, n),
    hi: Uint32Array.from(his),
    lo: Uint32Array.from(los),
    firstSize: Float64Array.from(firsts),
    objects: his.length,
  };
}

/**
 * Parses a key trace: big-endian unsigned 32-bit keys, one request each (the cache2k traces);
 * every object has size 1. SyntaxError when the length is not a multiple of 4.
 */
export function parseKeyTrace(bytes: Uint8Array): Trace {
  if (bytes.length % 4 !== 0) {
    throw new SyntaxError(
      `Cannot parse key trace: length ${bytes.length} is not a multiple of 4 bytes`,
    );
  }
  const n = bytes.length / 4;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const obj = new Uint32Array(n);
  const dense = new Map<number, number>();
  const los: number[] = [];
  for (let i = 0; i < n; i++) {
    const key = view.getUint32(4 * i);
    let d = dense.get(key);
    if (d === undefined) {
      d = los.length;
      dense.set(key, d);
      los.push(key);
    }
    obj[i] = d;
  }
  return {
    obj,
    size: new Uint32Array(n).fill(1),
    hi: new Uint32Array(los.length),
    lo: Uint32Array.from(los),
    firstSize: new Float64Array(los.length).fill(1),
    objects: los.length,
  };
}

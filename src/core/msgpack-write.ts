/**
 * MessagePack's scalar forms as bytes written into a buffer (the JSON
 * transcoder and the row frame use them): string headers, numbers as
 * msgpackr's `pack` would write them, big-endian lengths.
 *
 *     "abc" -> a3 61 62 63    54 -> 36    70000 -> ce 00 01 11 70    -1.5 -> cb bf f8 00 00 00 00 00 00
 */

/** A str header for `n` bytes of UTF-8 at `out[o]`; returns where the bytes go. */
export function writeStrHeader(out: Uint8Array, o: number, n: number): number {
  if (n < 32) {
    out[o] = 0xa0 | n;
    return o + 1;
  }
  return writeSized(out, o, n, 0xd9);
}

/** A number as MessagePack at `out[o]`: the smallest int form in [-2^31, 2^32) (never -0), float64 otherwise. */
export function writeNumber(out: Uint8Array, o: number, v: number): number {
  if (v >>> 0 === v && (v !== 0 || 1 / v > 0)) {
    if (v < 0x80) {
      out[o] = v;
      return o + 1;
    }
    return writeSized(out, o, v, 0xcc);
  }
  if (v >> 0 === v && v < 0) {
    if (v >= -32) {
      out[o] = v & 0xff;
      return o + 1;
    }
    if (v >= -0x80) {
      out[o] = 0xd0;
      out[o + 1] = v & 0xff;
      return o + 2;
    }
    if (v >= -0x8000) {
      out[o] = 0xd1;
      out[o + 1] = (v >> 8) & 0xff;
      out[o + 2] = v & 0xff;
      return o + 3;
    }
    out[o] = 0xd2;
    writeUint32(out, o + 1, v >>> 0);
    return o + 5;
  }
  out[o] = 0xcb;
  FLOAT[0] = v;
  // MessagePack is big-endian; the scratch is in the machine's order.
  if (LITTLE_ENDIAN) for (let k = 0; k < 8; k++) out[o + 1 + k] = FLOAT_BYTES[7 - k]!;
  else for (let k = 0; k < 8; k++) out[o + 1 + k] = FLOAT_BYTES[k]!;
  return o + 9;
}

const FLOAT = new Float64Array(1);
const FLOAT_BYTES = new Uint8Array(FLOAT.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * `n` (< 2^32) in the smallest of 1, 2 or 4 big-endian bytes after its tag:
 * `tag8`, then the next two tags for 16 and 32 bits, as str 8/16/32 and
 * uint 8/16/32 are numbered.
 */
function writeSized(out: Uint8Array, o: number, n: number, tag8: number): number {
  if (n < 0x100) {
    out[o] = tag8;
    out[o + 1] = n;
    return o + 2;
  }
  if (n < 0x10000) {
    out[o] = tag8 + 1;
    out[o + 1] = n >>> 8;
    out[o + 2] = n & 0xff;
    return o + 3;
  }
  out[o] = tag8 + 2;
  writeUint32(out, o + 1, n);
  return o + 5;
}

export function writeUint32(out: Uint8Array, o: number, v: number): void {
  out[o] = v >>> 24;
  out[o + 1] = (v >>> 16) & 0xff;
  out[o + 2] = (v >>> 8) & 0xff;
  out[o + 3] = v & 0xff;
}

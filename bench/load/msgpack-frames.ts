// The msgpack mode of the bench subscriber (subprotocol replication.msgpack,
// src/bindings/ws-msgpack.ts). Each binary message holds MessagePack frames
// one after another, no length prefix, no outer array:
//
//   > ["AUTH","T"] ["REPLICATE","events","NOW"]      (one binary message)
//   < ["SERVER","gateway"] ["POSITION","events",6]
//   < ["RDATA","events",7,["$7:example.com",…,1732608000000.125]] ["RDATA","events",8,[…]] …
//   < ["RDATA","events","batch",[…]]                 (a batch row: no token)
//   < ["ERROR","Failed to keep up"]
//
// Two readers: FrameReader decodes every frame to values with msgpackr's
// unpackMultiple, as a browser client must do to use its rows, so decoding is
// part of the reader's cost; FrameScanner only walks each frame's bytes for
// its token (as the text reader scans a line), so what is left of the cost is
// the gateway's and the WebSocket's. W6 reports both.
import { Packr, Unpackr } from 'msgpackr';
import { startsWith } from '../../src/core/bytes.js';
import type { RowChecker } from './row-checker.js';

// Plain arrays and maps both ways: the bridge neither sends nor reads msgpackr records.
const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false });

/**
 * The subscribe request as frames, for one binary message: the bridge turns
 * them into its lines (it would also read text lines, but a binary client
 * speaks frames).
 */
export function helloFrames(auth: string | undefined, stream: string, from: string | number): Buffer {
  // pack() returns views of one shared slab: copy each before the next pack.
  const parts: Buffer[] = [];
  if (auth !== undefined) parts.push(Buffer.from(packr.pack(['AUTH', auth])));
  parts.push(Buffer.from(packr.pack(['REPLICATE', stream, from])));
  return Buffer.concat(parts);
}

/**
 * One connection's decoder: RDATA frames' tokens go to the checker (a batch
 * frame carries none and is not a row), other frames to onControl.
 */
export class FrameReader {
  private frames = 0;
  // Bound once: unpackMultiple calls it per frame, and a closure per message would be garbage per message.
  private readonly onValue = (value: unknown): boolean => this.frame(value);

  constructor(
    private readonly checker: RowChecker,
    private readonly onControl: (frame: unknown[]) => void,
    /** Latency runs: read the send time the writer put last in each row. */
    private readonly wantSentMs: boolean,
  ) {}

  /** Decodes one binary message read at nowMs (epoch ms). */
  feed(message: Buffer, nowMs: number): void {
    const checker = this.checker;
    if (checker.failure !== null) return;
    checker.message(message.length, nowMs);
    this.frames = 0;
    try {
      unpackr.unpackMultiple(message, this.onValue);
    } catch (err) {
      checker.fail(`bad MessagePack message after ${this.frames} frames: ${(err as Error).message}`);
    }
    checker.lines += this.frames;
  }

  private frame(value: unknown): boolean {
    this.frames++;
    const checker = this.checker;
    if (!Array.isArray(value)) {
      checker.fail(`not a frame: ${describe(value)}`);
      return false;
    }
    if (value[0] === 'RDATA') {
      const token: unknown = value[2];
      if (typeof token === 'number') checker.decodedRow(token, this.wantSentMs ? sentMsOfRow(value[3]) : NaN);
      else if (token !== 'batch') checker.fail(`malformed RDATA frame: ${describe(value)}`);
    } else {
      this.onControl(value);
    }
    return checker.failure === null;
  }
}

/** The MessagePack type byte of `["RDATA", …]` with four elements, then the fixstr "RDATA". */
const RDATA_FRAME_HEAD = Buffer.from([0x94, 0xa5, 0x52, 0x44, 0x41, 0x54, 0x41]);

/**
 * One connection's token-only reader: walks each frame's bytes without
 * making a value, reads a numbered RDATA frame's token for the checker and
 * skips its row; any other frame (rare: SERVER, POSITION, ERROR) is decoded
 * and goes to onControl. Throughput only: it reads no send times.
 */
export class FrameScanner {
  constructor(
    private readonly checker: RowChecker,
    private readonly onControl: (frame: unknown[]) => void,
  ) {}

  feed(message: Buffer, nowMs: number): void {
    const checker = this.checker;
    if (checker.failure !== null) return;
    checker.message(message.length, nowMs);
    let frames = 0;
    let p = 0;
    try {
      while (p < message.length && checker.failure === null) {
        p = startsWith(message, p, message.length, RDATA_FRAME_HEAD)
          ? this.rdata(message, p + RDATA_FRAME_HEAD.length)
          : this.control(message, p);
        frames++;
      }
    } catch (err) {
      checker.fail(`bad MessagePack message after ${frames} frames: ${(err as Error).message}`);
    }
    checker.lines += frames;
  }

  /** From the stream name of an RDATA frame: returns where the frame ends. */
  private rdata(buf: Buffer, from: number): number {
    let p = skipValues(buf, from, 1); // the stream
    const t = buf[p++];
    if (t === 0xa5 && buf.toString('latin1', p, p + 5) === 'batch') return skipValues(buf, p + 5, 1);
    const size = t === undefined ? undefined : t <= 0x7f ? 0 : TOKEN_SIZES[t];
    if (size === undefined) throw new Error(`RDATA frame without a numbered or batch token (type byte ${t})`);
    const token = t! <= 0x7f ? t! : readToken(buf, t!, p);
    const end = skipValues(buf, p + size, 1); // the row: a frame cut short counts no row
    this.checker.decodedRow(token, NaN);
    return end;
  }

  private control(buf: Buffer, from: number): number {
    const end = skipValues(buf, from, 1);
    const value: unknown = unpackr.unpack(buf.subarray(from, end));
    if (Array.isArray(value)) this.onControl(value);
    else this.checker.fail(`not a frame: ${describe(value)}`);
    return end;
  }
}

/** Where `n` MessagePack values from `p` end, without making them (the format's type bytes, msgpack spec). */
function skipValues(buf: Buffer, p: number, n: number): number {
  while (n > 0) {
    n--;
    const b = buf[p++];
    if (b === undefined) throw new Error('frame cut short');
    if (b <= 0x7f || b >= 0xe0) continue; // fixint
    if (b <= 0x8f) n += 2 * (b & 0x0f); // fixmap
    else if (b <= 0x9f) n += b & 0x0f; // fixarray
    else if (b <= 0xbf) p += b & 0x1f; // fixstr
    else if (b === 0xc0 || b === 0xc2 || b === 0xc3) continue; // nil, false, true
    else if (b === 0xc4 || b === 0xd9) p += 1 + buf.readUInt8(p); // bin 8, str 8
    else if (b === 0xc5 || b === 0xda) p += 2 + buf.readUInt16BE(p);
    else if (b === 0xc6 || b === 0xdb) p += 4 + buf.readUInt32BE(p);
    else if (b === 0xdc) (n += buf.readUInt16BE(p)), (p += 2);
    else if (b === 0xdd) (n += buf.readUInt32BE(p)), (p += 4);
    else if (b === 0xde) (n += 2 * buf.readUInt16BE(p)), (p += 2);
    else if (b === 0xdf) (n += 2 * buf.readUInt32BE(p)), (p += 4);
    else if (b === 0xc7) p += 2 + buf.readUInt8(p); // ext 8: length, type, data
    else if (b === 0xc8) p += 3 + buf.readUInt16BE(p);
    else if (b === 0xc9) p += 5 + buf.readUInt32BE(p);
    else if (b >= 0xd4 && b <= 0xd8) p += 1 + (1 << (b - 0xd4)); // fixext 1..16: type, data
    else {
      const fixed = FIXED_SIZES[b];
      if (fixed === undefined) throw new Error(`type byte 0x${b.toString(16)}`);
      p += fixed;
    }
  }
  if (p > buf.length) throw new Error('frame cut short');
  return p;
}

/** A token's data bytes after its type byte: uint 8..64, float 64 (how msgpackr packs a number). */
const TOKEN_SIZES: Record<number, number> = { 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8, 0xcb: 8 };

function readToken(buf: Buffer, type: number, p: number): number {
  if (type === 0xcc) return buf.readUInt8(p);
  if (type === 0xcd) return buf.readUInt16BE(p);
  if (type === 0xce) return buf.readUInt32BE(p);
  if (type === 0xcf) return Number(buf.readBigUInt64BE(p));
  return buf.readDoubleBE(p);
}

/** Data bytes after the type byte of the fixed-size numbers: float 32/64, uint 8..64, int 8..64. */
const FIXED_SIZES: Record<number, number> = { 0xca: 4, 0xcb: 8, 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8, 0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8 };

/** The send time bench/load/rows.ts puts last in each row; NaN if there is none. */
function sentMsOfRow(row: unknown): number {
  if (!Array.isArray(row)) return NaN;
  const last: unknown = row[row.length - 1];
  return typeof last === 'number' ? last : NaN;
}

function describe(value: unknown): string {
  return (JSON.stringify(value) ?? String(value)).slice(0, 80);
}

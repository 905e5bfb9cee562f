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
// Every frame is decoded to values with msgpackr's unpackMultiple, as a
// browser client must do to use its rows: unlike the text reader's token-only
// scan, decoding is part of the reader's cost in this mode.
import { Packr, Unpackr } from 'msgpackr';
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

/** The send time bench/load/rows.ts puts last in each row; NaN if there is none. */
function sentMsOfRow(row: unknown): number {
  if (!Array.isArray(row)) return NaN;
  const last: unknown = row[row.length - 1];
  return typeof last === 'number' ? last : NaN;
}

function describe(value: unknown): string {
  return (JSON.stringify(value) ?? String(value)).slice(0, 80);
}

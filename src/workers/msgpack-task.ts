/**
 * Piscina task (and the inline path's code): RDATA lines -> MessagePack frames
 * for binary WebSocket subscribers.
 *
 *     RDATA caches batch ["get_user_by_id",["@a:hs"],1490197670513]
 *     RDATA caches 54 ["get_user_by_id",["@b:hs"],1490197670513]
 *   ->
 *     ["RDATA","caches","batch",["get_user_by_id",["@a:hs"],1490197670513]]
 *     ["RDATA","caches",54,["get_user_by_id",["@b:hs"],1490197670513]]
 *
 * Wire layout: one binary WebSocket message carries the frames of the lines
 * given, as MessagePack values one after another (no length prefix, no outer
 * array); a client reads them with msgpackr's `unpackMultiple` (or any
 * MessagePack stream decoder). A batch and its numbered row always travel in
 * one message, and the same bytes go to every binary subscriber.
 *
 * Records are off by default: plain maps and arrays any MessagePack decoder
 * reads. With `records` (for clients that negotiated msgpackr records) each
 * message carries its own record definitions (msgpackr `sequential`), so any
 * message decodes on its own, whoever joined when.
 *
 * Lines are read with core's LineScanner and parseCommand, the one parser.
 */
import { move } from 'piscina';
import { Packr } from 'msgpackr';
import { RdataCommand, parseCommand } from '../core/commands.js';
import { LineScanner } from '../core/line-scanner.js';
import { ownArrayBuffer, type TranscodeFailure, type TranscodeTask } from './task-data.js';

/** Frames of `lines` (whole LF-terminated RDATA lines), or why they are not such lines. */
export function rdataToMsgpack(lines: Buffer, records: boolean): Buffer | TranscodeFailure {
  // A Packr per call: with records, definitions must start afresh in each message.
  const packr = records ? new Packr({ useRecords: true, sequential: true }) : new Packr({ useRecords: false });
  // MessagePack of a row is rarely larger than its JSON; grown if it is.
  let out = Buffer.allocUnsafeSlow(lines.length + 64);
  let used = 0;
  let lineNo = 0;
  let failure: TranscodeFailure | null = null;
  const scanner = new LineScanner(
    {
      onLine(buf, start, end) {
        if (failure !== null) return;
        try {
          const cmd = parseCommand(buf, start, end, 'server');
          if (!(cmd instanceof RdataCommand)) {
            failure = { error: `line ${lineNo}: expected RDATA, got ${cmd.name}`, line: lineNo };
            return;
          }
          // A view of msgpackr's slab, copied into `out` before the next pack reuses it.
          const frame = packr.pack(['RDATA', cmd.stream, cmd.token ?? 'batch', cmd.row()]);
          if (used + frame.length > out.length) {
            const bigger = Buffer.allocUnsafeSlow(Math.max(out.length * 2, used + frame.length));
            out.copy(bigger, 0, 0, used);
            out = bigger;
          }
          used += frame.copy(out, used);
          lineNo++;
        } catch (err) {
          failure = { error: `line ${lineNo}: ${(err as Error).message}`, line: lineNo };
        }
      },
      onLineError(err) {
        failure ??= { error: `line ${lineNo}: ${err.message}`, line: lineNo };
      },
    },
    // Lines come from our own log, already checked on the way in.
    { maxLineBytes: Math.max(lines.length, 1), validateUtf8: false },
  );
  scanner.push(lines);
  if (failure !== null) return failure;
  if (scanner.pendingBytes > 0) return { error: `line ${lineNo}: not terminated by LF`, line: lineNo };
  // Exact size: the message is shared by many subscribers and may be kept for a while.
  return used === out.length ? out : Buffer.from(ownArrayBuffer(out.subarray(0, used)));
}

export default function transcodeTask(task: TranscodeTask): ArrayBuffer | TranscodeFailure {
  const result = rdataToMsgpack(Buffer.from(task.lines), task.records);
  if (!Buffer.isBuffer(result)) return result;
  return move(ownArrayBuffer(result)) as ArrayBuffer;
}

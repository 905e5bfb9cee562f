/**
 * Piscina task: whole RDATA lines -> the MessagePack dialect's frames, for
 * binary WebSocket subscribers, with core's rowsFromLines
 * (src/core/dialects/msgpack-frames.ts, which owns the frame shape), so pool
 * and inline output are the same bytes:
 *
 *     RDATA caches batch ["get_user_by_id",["@a:hs"],1490197670513]
 *     RDATA caches 54 ["get_user_by_id",["@b:hs"],1490197670513]
 *   ->
 *     ["RDATA","caches","batch",["get_user_by_id",["@a:hs"],1490197670513]]
 *     ["RDATA","caches",54,["get_user_by_id",["@b:hs"],1490197670513]]
 *
 * The result is an ArrayBuffer moved to the caller; lines that are not whole
 * RDATA lines come back as data.
 */
import { move } from 'piscina';
import { rowsFromLines, type FramingFailure } from '../core/dialects/msgpack-frames.js';
import { ownArrayBuffer, type TranscodeTask } from './task-data.js';

export default function transcodeTask(task: TranscodeTask): ArrayBuffer | FramingFailure {
  const result = rowsFromLines(Buffer.from(task.lines), task.records);
  if (!Buffer.isBuffer(result)) return result;
  return move(ownArrayBuffer(result)) as ArrayBuffer;
}

/**
 * Piscina tasks: the rows of one publish -> its RDATA line bytes,
 *
 *     RDATA events batch ["$a:hs","!r:hs","m.room.message","@u:hs",null]
 *     RDATA events 54 ["$b:hs","!r:hs","m.room.message","@u:hs",null]
 *
 * with core's encodeRows, so pool and inline output are the same bytes. The
 * result is an ArrayBuffer moved to the caller; a bad row comes back as data.
 *
 * `default`: the rows come with the task. `encodeStreamed`: a large publish
 * whose rows arrive in slices on a MessagePort (the main thread clones one
 * slice per event-loop turn); the bytes are assembled here, so the main
 * thread gets one buffer and copies nothing.
 */
import { move } from 'piscina';
import { rowHead } from '../core/dialects/v1-row-lines.js';
import { encodeRows, RowEncodingError } from '../core/row-encoding.js';
import {
  ownArrayBuffer,
  reasonOf,
  type EncodeFailure,
  type EncodeTask,
  type SliceMessage,
  type StreamedEncodeTask,
} from './task-data.js';

export default function encodeTask(task: EncodeTask): ArrayBuffer | EncodeFailure {
  const encoded = encodeSlice(task);
  return encoded instanceof Uint8Array ? (move(ownArrayBuffer(encoded)) as ArrayBuffer) : encoded;
}

export function encodeStreamed(task: StreamedEncodeTask): Promise<ArrayBuffer | EncodeFailure> {
  const { stream, token, rowCount, port } = task;
  // A batch row's head replaces the numbered head of each slice's last line but the publish's last.
  const lastLineHead = Buffer.from(rowHead(stream, token));
  const batchHead = Buffer.from(rowHead(stream, null));
  let out: Buffer | null = null;
  let used = 0;
  let received = 0;

  const append = (bytes: Uint8Array, rows: number): void => {
    received += rows;
    const final = received === rowCount;
    const lastLine = final ? bytes.length : Buffer.prototype.lastIndexOf.call(bytes, 0x0a, bytes.length - 2) + 1;
    const extra = final ? 0 : batchHead.length - lastLineHead.length;
    if (out === null) {
      // Sized from the first slice; grown if the rows after it are longer.
      out = Buffer.allocUnsafeSlow(Math.ceil(((bytes.length + extra) / rows) * rowCount * 1.05) + 64);
    }
    if (used + bytes.length + extra > out.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(out.length * 2, used + bytes.length + extra));
      out.copy(bigger, 0, 0, used);
      out = bigger;
    }
    used += Buffer.prototype.copy.call(bytes, out, used, 0, lastLine);
    if (!final) {
      used += batchHead.copy(out, used);
      used += Buffer.prototype.copy.call(bytes, out, used, lastLine + lastLineHead.length);
    }
  };

  return new Promise((resolve) => {
    const finish = (result: ArrayBuffer | EncodeFailure): void => {
      port.off('message', onMessage);
      port.close();
      resolve(result);
    };
    const onMessage = (msg: SliceMessage): void => {
      if ('error' in msg) return finish(msg);
      if ('bytes' in msg) {
        append(new Uint8Array(msg.bytes), msg.rowCount);
      } else {
        const encoded = encodeSlice({ stream, token, rows: msg.rows, firstIndex: msg.firstIndex });
        if (!(encoded instanceof Uint8Array)) return finish(encoded);
        append(encoded, msg.rows.length);
      }
      if (received === rowCount) finish(move(ownArrayBuffer(out!.subarray(0, used))) as ArrayBuffer);
    };
    port.on('message', onMessage);
  });
}

function encodeSlice(task: EncodeTask): Buffer | EncodeFailure {
  try {
    return encodeRows(task.stream, task.token, task.rows);
  } catch (err) {
    if (err instanceof RowEncodingError) return { error: reasonOf(err), rowIndex: task.firstIndex + err.rowIndex };
    throw err;
  }
}

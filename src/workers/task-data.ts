/**
 * What crosses between the main thread and the encoder workers. Task files
 * return failures as data (a thrown error loses its class and `code` on the
 * way back) and results as ArrayBuffers the worker gives away (transferred,
 * not cloned).
 */
import type { MessagePort } from 'node:worker_threads';
import type { RowEncodingError } from '../core/row-encoding.js';

/** One slice of a publish: rows[firstIndex ...] of the batch, all sharing `token`. */
export interface EncodeTask {
  stream: string;
  token: number;
  rows: readonly unknown[];
  /** Index of rows[0] in the whole publish, so a bad row is named as the caller knows it. */
  firstIndex: number;
}

/** A large publish: its rows follow on `port` as SliceMessages, in order. */
export interface StreamedEncodeTask {
  stream: string;
  token: number;
  rowCount: number;
  port: MessagePort;
}

export type SliceMessage =
  /** Rows to encode; rows[0] is row `firstIndex` of the publish. */
  | { rows: readonly unknown[]; firstIndex: number }
  /** Rows the main thread encoded itself (a clone would change them), as encodeRows wrote them. */
  | { bytes: ArrayBuffer; rowCount: number }
  /** The main thread found a bad row: the publish is over. */
  | EncodeFailure;

/** A bad row, by its index in the whole publish, and why (RowEncodingError's reason). */
export interface EncodeFailure {
  error: string;
  rowIndex: number;
}

export interface TranscodeTask {
  /** Whole RDATA lines, LF-terminated (the logs' v1 text); the worker owns this buffer (it was transferred). */
  lines: ArrayBuffer;
  records: boolean;
}

/**
 * The bytes of `buf` in an ArrayBuffer holding nothing else, so transferring
 * it gives away exactly these bytes. Small Buffers are views of Node's shared
 * pool slab and msgpackr's results are views of its slab: those are copied.
 */
export function ownArrayBuffer(buf: Uint8Array): ArrayBuffer {
  const whole = buf.buffer;
  if (whole instanceof ArrayBuffer && buf.byteOffset === 0 && buf.byteLength === whole.byteLength) return whole;
  const out = new ArrayBuffer(buf.byteLength);
  new Uint8Array(out).set(buf);
  return out;
}

/** The reason part of a RowEncodingError, to rebuild it with another index. */
export function reasonOf(err: RowEncodingError): string {
  const prefix = `row ${err.rowIndex} cannot be published: `;
  return err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
}

export function isEncodeFailure(value: unknown): value is EncodeFailure {
  return typeof value === 'object' && value !== null && !(value instanceof ArrayBuffer) && 'rowIndex' in value;
}

/**
 * Rows published in-process become JSON once, here, and then the lines of
 * the form the logs store (v1 text, dialects/v1-text.ts):
 *
 *     ["get_user_by_id",["@a:hs"],1490197670513]   ->  RDATA caches batch ["get_user_by_id",["@a:hs"],1490197670513]
 *     ["get_user_by_id",["@b:hs"],1490197670513]   ->  RDATA caches 54 ["get_user_by_id",["@b:hs"],1490197670513]
 *
 * All rows of one publish share its token; all but the last say `batch`.
 */
import { v1Text } from './dialects/v1-text.js';

export class RowEncodingError extends Error {
  override readonly name = 'RowEncodingError';
  readonly code = 'BAD_ROW';
  constructor(
    readonly rowIndex: number,
    reason: string,
  ) {
    super(`row ${rowIndex} cannot be published: ${reason}`);
  }
}

/** Turns a batch of row values into RDATA line bytes (inline, or on a worker pool). */
export interface RowEncoder {
  encode(stream: string, token: number, rows: readonly unknown[]): Buffer | Promise<Buffer>;
}

/** The JSON of one row, or a RowEncodingError naming its index. */
export function rowJson(row: unknown, index: number): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(row);
  } catch (err) {
    throw new RowEncodingError(index, (err as Error).message);
  }
  if (json === undefined) throw new RowEncodingError(index, `a ${typeof row} is not JSON`);
  return json;
}

/** Encodes a batch on the calling thread; throws before producing anything if any row is bad. */
export function encodeRows(stream: string, token: number, rows: readonly unknown[]): Buffer {
  if (rows.length === 0) throw new RowEncodingError(0, 'a publish needs at least one row');
  const parts = new Array<string>(rows.length);
  for (let i = 0; i < rows.length; i++) parts[i] = rowJson(rows[i], i);
  return v1Text.encodeRows(stream, token, parts);
}

export const inlineRowEncoder: RowEncoder = { encode: encodeRows };

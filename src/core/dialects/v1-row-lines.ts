/**
 * The v1 text lines of rows and positions, written (PROTOCOL.md sections 2
 * and 5); the dialect object (v1-text.ts) reads them:
 *
 *     RDATA caches batch ["get_user_by_id",["@a:hs"],1490197670513]
 *     RDATA caches 54 ["get_user_by_id",["@b:hs"],1490197670513]
 *     POSITION caches 54
 *
 * All rows of one token but the last say `batch`. Kept apart from the
 * parser so that modules below the command vocabulary may write rows too.
 */

const LF = 0x0a;

/** `RDATA <stream> <token|batch> `: everything of a row line before its JSON. */
export function rowHead(stream: string, token: number | null): string {
  return `RDATA ${stream} ${token === null ? 'batch' : token} `;
}

/** `RDATA <stream> <token|batch> <row_json>\n` from a row already in JSON. */
export function encodeRdata(stream: string, token: number | null, rowJson: Buffer | string): Buffer {
  const head = rowHead(stream, token);
  if (typeof rowJson === 'string') return Buffer.from(`${head}${rowJson}\n`, 'utf8');
  const headBytes = Buffer.byteLength(head);
  const out = Buffer.allocUnsafe(headBytes + rowJson.length + 1);
  out.write(head, 0, 'utf8');
  rowJson.copy(out, headBytes);
  out[out.length - 1] = LF;
  return out;
}

/** The lines of one token's rows (at least one JSON text): all but the last framed `batch`, in one buffer. */
export function encodeRdataRun(stream: string, token: number, rowJsons: readonly string[]): Buffer {
  const last = rowJsons.length - 1;
  if (last === 0) return encodeRdata(stream, token, rowJsons[0]!);
  const batchHead = rowHead(stream, null);
  let text = '';
  for (let i = 0; i < last; i++) text += `${batchHead}${rowJsons[i]}\n`;
  text += `${rowHead(stream, token)}${rowJsons[last]}\n`;
  return Buffer.from(text, 'utf8');
}

export function encodePosition(stream: string, token: number): Buffer {
  return Buffer.from(`POSITION ${stream} ${token}\n`, 'utf8');
}

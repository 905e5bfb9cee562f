/**
 * A wire dialect: one form of the replication commands on a connection's
 * bytes, an object chosen per connection (DESIGN.md, Wire dialects).
 * Callers ask it for bytes instead of spelling lines or frames themselves:
 *
 *     v1 text (dialects/v1-text.ts)          RDATA caches batch ["a"]   RDATA caches 54 ["b"]   POSITION caches 54
 *     MessagePack (dialects/msgpack-frames.ts)  ["RDATA","caches","batch",["a"]]  ...          ["POSITION","caches",54]
 *
 * The logs hold v1 text lines (a writer's bytes are the bytes its
 * subscribers get), so v1 text is also the form the hub and the server
 * connection read and write; a binary WebSocket's transport re-frames those
 * lines with the MessagePack dialect on the way out and back to lines on the
 * way in. Today's Synapse form (`RDATA <stream> <instance> <token> <row>`,
 * `POSITION <stream> <instance> <prev> <new>`) is a third LineDialect: its
 * routeRow also fills the route's instance, its encodePosition takes the
 * previous token.
 */
import type { Command, Sender } from './commands.js';

export type DialectName = 'v1-text' | 'msgpack';

/** What every dialect writes: commands, rows one by one or as a batch, positions. */
export interface WireDialect {
  readonly name: DialectName;
  /** One command in this dialect's bytes (a line with its LF, or a frame). */
  encode(cmd: Command): Buffer;
  /** One row of `stream` from its JSON text: numbered by `token`, or a `batch` row (null) whose numbered row follows. */
  encodeRow(stream: string, token: number | null, rowJson: Buffer | string): Buffer;
  /** The rows of one token (JSON texts, at least one), every one but the last framed as a `batch` row. */
  encodeRows(stream: string, token: number, rowJsons: readonly string[]): Buffer;
  /** The stream is at `token`. */
  encodePosition(stream: string, token: number): Buffer;
}

/** A dialect of LF-terminated lines, read one line (`buf[start, end)`, no LF) at a time. */
export interface LineDialect extends WireDialect {
  /** The command a line from `from` holds; throws ProtocolError, whose message is the ERROR text. */
  decode(buf: Buffer, start: number, end: number, from: Sender): Command;
  /** Whether the line is a row line, from its first bytes alone (no parsing). */
  isRow(buf: Buffer, start: number, end: number): boolean;
  /**
   * Fills `route` from the words of a row line (one isRow said is a row)
   * without making a command: the writer's hot path. Throws ProtocolError
   * for malformed words, with decode's message.
   */
  routeRow(buf: Buffer, start: number, end: number, route: RowRoute): void;
}

/** Where a row line goes, filled in place by LineDialect.routeRow: routing a row allocates nothing. */
export class RowRoute {
  stream = '';
  /** null for a `batch` row. */
  token: number | null = null;
  /** The row's JSON starts here and runs to the end of the line. */
  rowStart = 0;
}

/**
 * The MessagePack dialect (binary WebSocket, subprotocol
 * `replication.msgpack`; docs/websocket.md): each command is a frame, a
 * MessagePack array `[name, ...args]`, rows and JSON arguments decoded to
 * values, tokens as numbers (`"batch"` for a batch row):
 *
 *     RDATA caches batch ["get_user_by_id",["@a:hs"],1]  <->  ["RDATA","caches","batch",["get_user_by_id",["@a:hs"],1]]
 *     POSITION caches 54                               <->  ["POSITION","caches",54]
 *     REPLICATE events 12                              <->  ["REPLICATE","events",12]
 *
 * A message holds frames one after another, no length prefix and no outer
 * array (msgpackr's `unpackMultiple` reads them); a batch and its numbered
 * row travel in one message. Plain MessagePack: msgpackr records only where
 * a client negotiated them. Row frames are written here from the line's
 * bytes, the row's JSON transcoded in one walk (json-msgpack.ts), with no
 * parsed value in between; other commands are few and go through msgpackr.
 *
 * The logs and the server connection speak v1 text (dialect.ts), so this
 * dialect is a translation: the lines a connection sends become frames
 * (`fromLines`, `rowsFromLines` for the all-RDATA chunks of fan-out, run by
 * the encoder pool's task too), and a client's frames become the lines the
 * connection reads (`toLines`). The v1 parser reads every line either way,
 * so a bad frame gets the ERROR the bad line would.
 */
import { Packr, Unpackr } from 'msgpackr';
import { GENERATION_NONE, RdataCommand, parseJson, type Command, type PositionCommand } from '../commands.js';
import { RowRoute, type WireDialect } from '../dialect.js';
import { ProtocolError } from '../errors.js';
import { JsonTranscodeError, JsonTranscoder, transcodeRoom } from '../json-msgpack.js';
import { LineScanner } from '../line-scanner.js';
import { writeNumber, writeStrHeader } from '../msgpack-write.js';
import { indexOfSpace, RDATA_STREAM_AT, v1Text } from './v1-text.js';

const LF = 0x0a;
/** Commands whose last argument is JSON: sent and taken as a value. */
const JSON_LAST: ReadonlySet<string> = new Set(['RDATA', 'INVALIDATE_CACHE', 'USER_IP']);

/** Lines that are not whole RDATA lines, as rowsFromLines reports them: which line (0-based) and why. */
export interface FramingFailure {
  error: string;
  line: number;
}

export class MsgpackFrames implements WireDialect {
  readonly name = 'msgpack';
  private readonly packr = new Packr({ useRecords: false });
  private readonly unpackr = new Unpackr({ useRecords: false });

  encode(cmd: Command): Buffer {
    if (cmd instanceof RdataCommand) return this.encodeRow(cmd.stream, cmd.token, cmd.rowJson);
    if (cmd.name === 'POSITION') return this.encodePosition(cmd.stream, cmd.token);
    return this.packOwn(commandFrame(cmd));
  }

  encodeRow(stream: string, token: number | null, rowJson: Buffer | string): Buffer {
    const name = Buffer.from(stream, 'utf8');
    const json = typeof rowJson === 'string' ? Buffer.from(rowJson, 'utf8') : rowJson;
    const room = rowFrameRoom(name.length, json.length);
    const out = room <= scratch.length ? scratch : Buffer.allocUnsafeSlow(room);
    if (out.length <= KEEP_SCRATCH_BYTES) scratch = out;
    const end = writeRowFrame(new JsonTranscoder(), out, 0, name, 0, name.length, token, json, 0, json.length);
    // A copy the caller may keep: the scratch is written again by the next call.
    return Buffer.from(out.subarray(0, end));
  }

  encodeRows(stream: string, token: number, rowJsons: readonly string[]): Buffer {
    const last = rowJsons.length - 1;
    const frames = rowJsons.map((json, i) => this.encodeRow(stream, i === last ? token : null, json));
    return frames.length === 1 ? frames[0]! : Buffer.concat(frames);
  }

  encodePosition(stream: string, token: number): Buffer {
    return this.packOwn(['POSITION', stream, token]);
  }

  /**
   * Whether whole lines (as the hub hands them to a connection) start with a
   * row: the chunks of fan-out and catch-up are rows only, for
   * rowsFromLines; a connection's own lines (POSITION, PING...) are none.
   */
  startsWithRow(chunk: Buffer): boolean {
    const lf = chunk.indexOf(LF);
    return v1Text.isRow(chunk, 0, lf < 0 ? chunk.length : lf);
  }

  /** Whole lines a server sends (SERVER, PING, POSITION, ERROR, rows, client actions forwarded to a writer) as frames. */
  fromLines(chunk: Buffer): Buffer {
    const parts: Buffer[] = [];
    const scanner = new LineScanner(
      {
        onLine: (buf, start, end) => {
          parts.push(this.encode(v1Text.decode(buf, start, end, 'gateway')));
        },
        onLineError: (err) => {
          throw err;
        },
      },
      // Lines come from the hub, whole and already checked.
      { maxLineBytes: Math.max(1, chunk.length), validateUtf8: false },
    );
    scanner.push(chunk);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /**
   * A client's message (frames, one after another) as the v1 lines it
   * stands for, each ending in LF. Throws ProtocolError: not MessagePack,
   * not an array starting with a name, or a word argument holding a space
   * or line break (it would shift or split the line).
   */
  toLines(message: Buffer): Buffer {
    let values: unknown[];
    try {
      values = this.unpackr.unpackMultiple(message) as unknown[];
    } catch (err) {
      throw new ProtocolError('BAD_ARGUMENT', `bad MessagePack frame: ${(err as Error).message}`);
    }
    const lines: string[] = [];
    for (const value of values) lines.push(frameLine(value));
    return Buffer.from(lines.join(''), 'utf8');
  }

  /** msgpackr packs into a shared slab: a copy the caller may keep. */
  private packOwn(frame: unknown[]): Buffer {
    return Buffer.from(this.packr.pack(frame));
  }
}

/**
 * Frames of whole LF-terminated RDATA lines (fan-out's chunks), or why they
 * are not such lines. Pure: the encoder pool runs it on a worker for large
 * chunks. Plain frames are written straight from the lines' bytes, each row's
 * JSON transcoded in one walk (json-msgpack.ts). With `records` (clients that
 * negotiated msgpackr records) rows are parsed and packed by msgpackr, each
 * message carrying its own record definitions (msgpackr `sequential`), so any
 * message decodes on its own, whoever joined when.
 */
export function rowsFromLines(lines: Buffer, records: boolean): Buffer | FramingFailure {
  // A Packr per call: with records, definitions must start afresh in each message.
  const packr = records ? new Packr({ useRecords: true, sequential: true }) : null;
  const json = new JsonTranscoder();
  let out = scratch;
  let used = 0;
  let lineNo = 0;
  let failure: FramingFailure | null = null;
  /** Grows `out` to hold `bytes` more. */
  const room = (bytes: number): void => {
    if (used + bytes <= out.length) return;
    const bigger = Buffer.allocUnsafeSlow(Math.max(out.length * 2, used + bytes));
    out.copy(bigger, 0, 0, used);
    out = bigger;
  };
  const scanner = new LineScanner(
    {
      onLine(buf, start, end) {
        if (failure !== null) return;
        try {
          if (!v1Text.isRow(buf, start, end)) {
            // Not a row by its first bytes: the parser names what it is, or why it is no command.
            const cmd = v1Text.decode(buf, start, end, 'server');
            if (cmd.name !== 'RDATA') {
              failure = { error: `line ${lineNo}: expected RDATA, got ${cmd.name}`, line: lineNo };
              return;
            }
          }
          v1Text.routeRow(buf, start, end, route);
          if (packr === null) {
            const streamStart = start + RDATA_STREAM_AT;
            const streamEnd = indexOfSpace(buf, streamStart, end);
            room(rowFrameRoom(streamEnd - streamStart, end - route.rowStart));
            used = writeRowFrame(json, out, used, buf, streamStart, streamEnd, route.token, buf, route.rowStart, end);
          } else {
            const row = parseJson(buf.toString('utf8', route.rowStart, end), 'RDATA');
            // A view of msgpackr's slab, copied into `out` before the next pack reuses it.
            const frame = packr.pack(rowFrame(route.stream, route.token, row));
            room(frame.length);
            used += frame.copy(out, used);
          }
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
  // A scratch grown for a large chunk is kept only up to a bound.
  if (out.length <= KEEP_SCRATCH_BYTES) scratch = out;
  if (failure !== null) return failure;
  if (scanner.pendingBytes > 0) return { error: `line ${lineNo}: not terminated by LF`, line: lineNo };
  // Exact size, in a buffer of its own: the message is shared by many subscribers and may be kept for a while.
  const exact = Buffer.allocUnsafeSlow(used);
  out.copy(exact, 0, 0, used);
  return exact;
}

/**
 * Where rowsFromLines and encodeRow write frames before copying them out at
 * their exact size: reused, since writing is synchronous (a worker has its own).
 */
let scratch = Buffer.allocUnsafeSlow(256 * 1024);
const KEEP_SCRATCH_BYTES = 8 * 1024 * 1024;
/** rowsFromLines' route of the line at hand: filled in place, no command per row. */
const route = new RowRoute();

export function isFramingFailure(value: unknown): value is FramingFailure {
  return typeof value === 'object' && value !== null && !(value instanceof ArrayBuffer) && 'line' in value;
}

/**
 * The one shape of a row frame, `["RDATA", stream, token|"batch", row]`: as
 * a value for msgpackr (records), and as bytes by writeRowFrame.
 */
function rowFrame(stream: string, token: number | null, row: unknown): unknown[] {
  return ['RDATA', stream, token ?? 'batch', row];
}

/** fixarray(4), fixstr "RDATA": how every row frame starts. */
const ROW_FRAME_HEAD = Buffer.from([0x94, 0xa5, 0x52, 0x44, 0x41, 0x54, 0x41]);
/** fixstr "batch", in place of a batch row's token. */
const BATCH_WORD = Buffer.from([0xa5, 0x62, 0x61, 0x74, 0x63, 0x68]);

/** Bytes writeRowFrame may need for a stream name and a row JSON of these sizes. */
function rowFrameRoom(streamBytes: number, rowJsonBytes: number): number {
  // head, the stream's str header, a float64 token at most, then the row.
  return ROW_FRAME_HEAD.length + 5 + streamBytes + 9 + transcodeRoom(rowJsonBytes);
}

/**
 * rowFrame as bytes, at `out[o]`, from the stream name's UTF-8
 * `name[nameStart, nameEnd)` and the row's JSON `json[jsonStart, jsonEnd)`;
 * returns where the frame ends. Throws ProtocolError BAD_JSON for a row that
 * is not JSON.
 */
function writeRowFrame(
  transcoder: JsonTranscoder,
  out: Buffer,
  o: number,
  name: Buffer,
  nameStart: number,
  nameEnd: number,
  token: number | null,
  json: Buffer,
  jsonStart: number,
  jsonEnd: number,
): number {
  for (let k = 0; k < ROW_FRAME_HEAD.length; k++) out[o++] = ROW_FRAME_HEAD[k]!;
  o = writeStrHeader(out, o, nameEnd - nameStart);
  for (let k = nameStart; k < nameEnd; k++) out[o++] = name[k]!;
  if (token === null) {
    for (let k = 0; k < BATCH_WORD.length; k++) out[o++] = BATCH_WORD[k]!;
  } else {
    o = writeNumber(out, o, token);
  }
  try {
    return transcoder.transcode(json, jsonStart, jsonEnd, out, o);
  } catch (err) {
    if (err instanceof JsonTranscodeError) throw new ProtocolError('BAD_JSON', `bad JSON in RDATA: ${err.message}`);
    throw err;
  }
}

/** A command's frame (rows and positions have theirs above): its arguments in wire order, JSON decoded. */
function commandFrame(cmd: Exclude<Command, RdataCommand | PositionCommand>): unknown[] {
  switch (cmd.name) {
    case 'SERVER':
      return [cmd.name, cmd.serverName];
    case 'ERROR':
      return [cmd.name, cmd.message];
    case 'PING':
    case 'SYNC':
      return [cmd.name, cmd.data];
    case 'NAME':
      return [cmd.name, cmd.clientName];
    case 'REPLICATE':
      return cmd.instance === undefined ? [cmd.name, cmd.stream, cmd.token] : [cmd.name, cmd.stream, cmd.instance, cmd.token];
    case 'USER_SYNC':
      return [cmd.name, cmd.userId, cmd.state, cmd.lastSyncMs];
    case 'FEDERATION_ACK':
      return [cmd.name, cmd.token];
    case 'REMOVE_PUSHER':
      return [cmd.name, cmd.appId, cmd.pushKey, cmd.userId];
    case 'INVALIDATE_CACHE':
      return [cmd.name, cmd.cacheFunc, JSON.parse(cmd.keysJson) as unknown];
    case 'USER_IP':
      return [cmd.name, cmd.userId, JSON.parse(cmd.infoJson) as unknown];
    case 'AUTH':
      return [cmd.name, cmd.credential];
    case 'GENERATION':
      // Words as on the v1 line.
      return cmd.id === undefined ? [cmd.name] : [cmd.name, cmd.id ?? GENERATION_NONE];
  }
}

/**
 * `[name, ...args]` as its v1 line. Words may not hold spaces or line
 * breaks; the v1 parser checks the rest when the connection reads the line.
 */
function frameLine(value: unknown): string {
  if (!Array.isArray(value) || typeof value[0] !== 'string') {
    throw new ProtocolError('BAD_ARGUMENT', 'bad frame: expected an array [name, ...args]');
  }
  const name = value[0];
  const words: string[] = [name];
  const last = value.length - 1;
  for (let i = 1; i <= last; i++) {
    const arg: unknown = value[i];
    if (i === last && JSON_LAST.has(name) && !(name === 'RDATA' && i < 3)) {
      words.push(JSON.stringify(arg) ?? 'null');
      continue;
    }
    words.push(frameWord(name, arg, i === last));
  }
  return `${words.join(' ')}\n`;
}

function frameWord(name: string, arg: unknown, isLast: boolean): string {
  if (typeof arg === 'number' || typeof arg === 'bigint') return String(arg);
  if (typeof arg !== 'string') throw new ProtocolError('BAD_ARGUMENT', `bad ${printableName(name)} frame: arguments are strings or numbers`);
  if (/[\r\n]/.test(arg) || (!isLast && arg.includes(' '))) {
    throw new ProtocolError('BAD_ARGUMENT', `bad ${printableName(name)} frame: an argument holds a line break or a space`);
  }
  return arg;
}

function printableName(name: string): string {
  return /^[A-Z_]{1,32}$/.test(name) ? name : 'command';
}

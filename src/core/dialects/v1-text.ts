/**
 * The v1 text dialect (PROTOCOL.md sections 1 and 2): commands as lines,
 * parsed from one line's bytes and encoded back to the exact wire bytes:
 *
 *     SERVER <server_name>                 RDATA <stream> <token|batch> <row_json>
 *     POSITION <stream> <token>            ERROR <message>
 *     PING <data>                          SYNC <data>
 *     NAME <name>                          REPLICATE <stream|ALL> <token|NOW>
 *     REPLICATE <stream> <instance|*> <token|NOW>   (a followed Synapse stream, per writer)
 *     USER_SYNC <user_id> <start|end> <last_sync_ms>
 *     FEDERATION_ACK <token>               REMOVE_PUSHER <app_id> <push_key> <user_id>
 *     INVALIDATE_CACHE <cache_func> <keys_json>
 *     USER_IP <user_id> <[access_token, ip, user_agent, device_id, last_seen]>
 *     AUTH <credential>                    GENERATION (client)  GENERATION <id|none> (server)
 *
 * The name runs to the first space; the last argument keeps the rest of the
 * line whole (names and JSON may contain spaces). An RDATA row stays bytes
 * until someone asks for its value. Rows and positions are written by
 * v1-row-lines.ts; this module reads them and holds the dialect object.
 */
import {
  COMMAND_NAMES,
  GENERATION_NONE,
  MAX_TOKEN,
  RdataCommand,
  SENT_BY,
  assertNever,
  parseJson,
  type Command,
  type CommandName,
  type PositionCommand,
  type Sender,
} from '../commands.js';
import { RowRoute, type LineDialect } from '../dialect.js';
import { ProtocolError } from '../errors.js';
import { isInstanceWord, SYNAPSE_NAME } from '../synapse-name.js';
import { encodePosition, encodeRdata, encodeRdataRun } from './v1-row-lines.js';

/** SENT_BY's answer for RDATA, looked up once: it is asked on every line. */
const MAY_SEND_RDATA: Readonly<Record<Sender, boolean>> = {
  server: SENT_BY.server.has('RDATA'),
  client: SENT_BY.client.has('RDATA'),
  writer: SENT_BY.writer.has('RDATA'),
  gateway: SENT_BY.gateway.has('RDATA'),
};

const SPACE = 0x20;
const R = 0x52;
const D = 0x44;
const A = 0x41;
const T = 0x54;

/**
 * Parses one line (`buf[start, end)`, no LF) sent by `from`. Throws
 * ProtocolError whose message is the text for the ERROR reply.
 */
export function parseCommand(buf: Buffer, start: number, end: number, from: Sender): Command {
  const nameEnd = indexOfSpace(buf, start, end);
  // RDATA is most of the traffic: recognise it without making a string.
  if (
    nameEnd - start === 5 &&
    buf[start] === R &&
    buf[start + 1] === D &&
    buf[start + 2] === A &&
    buf[start + 3] === T &&
    buf[start + 4] === A
  ) {
    if (!MAY_SEND_RDATA[from]) throw wrongDirection('RDATA', from);
    return parseRdata(buf, start, end);
  }
  const name = buf.toString('utf8', start, nameEnd);
  if (!COMMAND_NAMES.has(name)) throw new ProtocolError('UNKNOWN_COMMAND', `unknown command: ${printable(name)}`);
  const command = name as CommandName;
  if (!SENT_BY[from].has(command)) throw wrongDirection(command, from);
  const rest = nameEnd < end ? buf.toString('utf8', nameEnd + 1, end) : '';
  return parseArguments(command, rest, buf, start, end, from);
}

function parseArguments(name: CommandName, rest: string, buf: Buffer, lineStart: number, end: number, from: Sender): Command {
  switch (name) {
    case 'SERVER':
      return { name, serverName: required(name, rest, '<server_name>') };
    case 'RDATA':
      return parseRdata(buf, lineStart, end);
    case 'POSITION': {
      const [stream, token] = words(name, rest, 2, '<stream> <token>');
      return { name, stream, token: parseToken(name, token) };
    }
    case 'ERROR':
      return { name, message: rest };
    case 'PING':
      return { name, data: rest };
    case 'SYNC':
      return { name, data: rest };
    case 'NAME':
      return { name, clientName: required(name, rest, '<name>') };
    case 'REPLICATE':
      return parseReplicate(rest);
    case 'USER_SYNC': {
      const [userId, state, lastSync] = words(name, rest, 3, '<user_id> <start|end> <last_sync_ms>');
      if (state !== 'start' && state !== 'end') {
        throw new ProtocolError(
          'BAD_ARGUMENT',
          `bad state ${printable(state)} in USER_SYNC: expected start or end`,
        );
      }
      return { name, userId, state, lastSyncMs: parseToken(name, lastSync) };
    }
    case 'FEDERATION_ACK':
      return { name, token: parseToken(name, required(name, rest, '<token>')) };
    case 'REMOVE_PUSHER': {
      const [appId, pushKey, userId] = words(name, rest, 3, '<app_id> <push_key> <user_id>');
      return { name, appId, pushKey, userId };
    }
    case 'INVALIDATE_CACHE': {
      const [cacheFunc, keysJson] = words(name, rest, 2, '<cache_func> <keys_json>');
      parseJson(keysJson, name);
      return { name, cacheFunc, keysJson };
    }
    case 'USER_IP': {
      const [userId, infoJson] = words(name, rest, 2, '<user_id> <json>');
      const info = parseJson(infoJson, name);
      if (!Array.isArray(info) || info.length !== 5) {
        throw new ProtocolError(
          'BAD_JSON',
          'bad JSON in USER_IP: expected [access_token, ip, user_agent, device_id, last_seen]',
        );
      }
      return { name, userId, infoJson };
    }
    case 'AUTH':
      return { name, credential: required(name, rest, '<token>') };
    case 'GENERATION':
      return parseGeneration(rest, from);
  }
}

/**
 * `REPLICATE <stream|ALL> <token|NOW>` (v1), or with three words
 * `REPLICATE <stream> <instance|*> <token|NOW>`: a followed Synapse stream
 * read per writer instance (today's dialect, docs/protocol.md section 4).
 */
function parseReplicate(rest: string): Command {
  const name = 'REPLICATE';
  // Three non-empty words; anything else is read (and refused) as v1's two, as before the three-word form.
  const split = rest.split(' ');
  const three = split.length === 3 && !split.includes('');
  const usage = three ? '<stream> <instance|*> <token|NOW>' : '<stream|ALL> <token|NOW>';
  const parts = words(name, rest, three ? 3 : 2, usage);
  const stream = parts[0]!;
  const tokenText = parts[parts.length - 1]!;
  const token = tokenText === 'NOW' || tokenText === 'now' ? 'NOW' : parseToken(name, tokenText, ' or NOW');
  if (!three) {
    if (stream === 'ALL' && token !== 'NOW') {
      throw new ProtocolError('BAD_ARGUMENT', `REPLICATE ALL takes NOW, not ${printable(tokenText)}`);
    }
    return { name, stream, token };
  }
  const instance = parts[1]!;
  const bad = !SYNAPSE_NAME.test(stream) ? ['stream', stream] : !isInstanceWord(instance) ? ['instance', instance] : null;
  if (bad !== null) {
    throw new ProtocolError(
      'BAD_ARGUMENT',
      `bad ${bad[0]} name ${printable(bad[1]!)} in REPLICATE: expected letters, digits, '_', '.', '-' (REPLICATE <stream> <instance|*> <token|NOW>)`,
    );
  }
  if (stream === 'ALL') throw new ProtocolError('BAD_ARGUMENT', 'REPLICATE ALL takes no instance: send REPLICATE ALL NOW');
  return { name, stream, instance, token };
}

/** A client asks with the bare name; a server answers with its log's id, or `none`. */
function parseGeneration(rest: string, from: Sender): Command {
  if (from === 'client' || from === 'writer') {
    if (rest.length > 0) throw new ProtocolError('BAD_ARGUMENT', 'GENERATION from a client takes no arguments: send GENERATION alone');
    return { name: 'GENERATION' };
  }
  const id = required('GENERATION', rest, '<id|none>');
  if (id.includes(' ')) throw new ProtocolError('BAD_ARGUMENT', `bad generation id ${printable(id)} in GENERATION: expected one word (or none)`);
  return { name: 'GENERATION', id: id === GENERATION_NONE ? null : id };
}

/** Whether `buf[start, end)` is an RDATA line with arguments, from its first bytes alone. */
function isRow(buf: Buffer, start: number, end: number): boolean {
  return (
    end - start > 6 &&
    buf[start + 5] === SPACE &&
    buf[start] === R &&
    buf[start + 1] === D &&
    buf[start + 2] === A &&
    buf[start + 3] === T &&
    buf[start + 4] === A
  );
}

/** Where an RDATA line's stream name starts, after `RDATA `: in every dialect's row. */
export const RDATA_STREAM_AT = 'RDATA '.length;

/**
 * The words of an RDATA line from `start` (the line's start),
 * `RDATA <stream> <token|batch> <row_json>`, into `route`. Kept apart from
 * isRow: a writer's loop then inlines both (measured: one function doing both
 * cost ~20 ns more a line).
 */
function routeRow(buf: Buffer, start: number, end: number, route: RowRoute): void {
  const wordsStart = start + RDATA_STREAM_AT;
  const streamEnd = indexOfSpace(buf, wordsStart, end);
  const tokenStart = streamEnd + 1;
  const tokenEnd = tokenStart < end ? indexOfSpace(buf, tokenStart, end) : end;
  if (streamEnd === wordsStart || tokenEnd >= end - 1 || tokenEnd === tokenStart) {
    throw missing('RDATA', '<stream> <token|batch> <row_json>');
  }
  const token = parseTokenBytes(buf, tokenStart, tokenEnd);
  if (token < 0 && !isBatchWord(buf, tokenStart, tokenEnd)) {
    throw badToken('RDATA', buf.toString('utf8', tokenStart, tokenEnd), ' or batch');
  }
  route.stream = internName(buf, wordsStart, streamEnd);
  route.token = token < 0 ? null : token;
  route.rowStart = tokenEnd + 1;
}

/** parseRdata's scratch space: parsing is synchronous, so one is enough. */
const scratchRoute = new RowRoute();

/** The RDATA line starting at `start`. */
function parseRdata(buf: Buffer, start: number, end: number): RdataCommand {
  routeRow(buf, start, end, scratchRoute);
  return new RdataCommand(scratchRoute.stream, scratchRoute.token, buf, scratchRoute.rowStart, end);
}

/**
 * Stream (and instance) names repeat on every line: reuse the string made the first time
 * instead of decoding the bytes again. Bounded, so a peer inventing names
 * cannot grow it without limit.
 */
const INTERN_LIMIT = 1024;
const interned: { bytes: Buffer; text: string }[][] = [];
let internedCount = 0;

export function internName(buf: Buffer, start: number, end: number): string {
  const len = end - start;
  const bucket = interned[len];
  if (bucket !== undefined) {
    for (const entry of bucket) {
      const bytes = entry.bytes;
      let i = 0;
      while (i < len && bytes[i] === buf[start + i]) i++;
      if (i === len) return entry.text;
    }
  }
  const text = buf.toString('utf8', start, end);
  if (internedCount < INTERN_LIMIT && len <= 64) {
    (interned[len] ??= []).push({ bytes: Buffer.from(buf.subarray(start, end)), text });
    internedCount++;
  }
  return text;
}

/** Whether `buf[start, end)` is the word `batch` (a row of a batch in place of its token): both dialects' rows. */
export function isBatchWord(buf: Buffer, start: number, end: number): boolean {
  return (
    end - start === 5 &&
    buf[start] === 0x62 &&
    buf[start + 1] === 0x61 &&
    buf[start + 2] === 0x74 &&
    buf[start + 3] === 0x63 &&
    buf[start + 4] === 0x68
  );
}

/** Decimal digits to a number; -1 when not a token (empty, non-digit, or over 2^53-1). The wire's rule, also for tokens typed on a command line (token-text.ts). */
export function parseTokenBytes(buf: Buffer, start: number, end: number): number {
  const len = end - start;
  if (len === 0 || len > 16) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const digit = buf[i]! - 0x30;
    if (digit < 0 || digit > 9) return -1;
    n = n * 10 + digit;
  }
  return n > MAX_TOKEN ? -1 : n;
}

function parseToken(name: CommandName, text: string, alternative = ''): number {
  if (text.length > 0 && text.length <= 16 && /^[0-9]+$/.test(text)) {
    const n = Number(text);
    if (n <= MAX_TOKEN) return n;
  }
  throw badToken(name, text, alternative);
}

/** Where the word at `start` ends: the next space, or `end`. */
export function indexOfSpace(buf: Buffer, start: number, end: number): number {
  for (let i = start; i < end; i++) if (buf[i] === SPACE) return i;
  return end;
}

/** Splits off n-1 words; the last keeps the rest of the line. */
function words(name: CommandName, rest: string, n: number, usage: string): string[] {
  const out: string[] = [];
  let from = 0;
  for (let i = 0; i < n - 1; i++) {
    const sp = rest.indexOf(' ', from);
    if (sp === -1) throw missing(name, usage);
    out.push(rest.slice(from, sp));
    from = sp + 1;
  }
  out.push(rest.slice(from));
  if (out.some((w) => w.length === 0)) throw missing(name, usage);
  return printableArguments(name, out);
}

function required(name: CommandName, rest: string, usage: string): string {
  if (rest.length === 0) throw missing(name, usage);
  return printableArguments(name, [rest])[0]!;
}

const CONTROL = /[\x00-\x1f\x7f]/;

/**
 * Names, ids and tokens are printable text: a NUL or another control
 * character would reach logs, /metrics labels and other peers raw. (ERROR,
 * PING and SYNC text is free and only ever logged as JSON.)
 */
function printableArguments(name: CommandName, args: string[]): string[] {
  for (const arg of args) {
    const m = CONTROL.exec(arg);
    if (m !== null) throw new ProtocolError('BAD_ARGUMENT', `control character ${printable(m[0])} in ${name}: arguments must be printable text`);
  }
  return args;
}

function missing(name: CommandName, usage: string): ProtocolError {
  return new ProtocolError('MISSING_ARGUMENTS', `missing arguments for ${name}: expected ${name} ${usage}`);
}

function badToken(name: CommandName, text: string, alternative: string): ProtocolError {
  return new ProtocolError(
    'BAD_TOKEN',
    `bad token ${printable(text)} in ${name}: expected an integer from 0 to ${MAX_TOKEN}${alternative}`,
  );
}

function wrongDirection(name: CommandName, from: Sender): ProtocolError {
  const hint =
    from === 'client' && SENT_BY.writer.has(name) ? ' (AUTH as a writer first)' : '';
  return new ProtocolError('WRONG_DIRECTION', `${name} may not be sent by a ${from}${hint}`);
}

/** Quotes untrusted text for an ERROR line: bounded, and control characters escaped. */
export function printable(text: string): string {
  const cut = text.length > 64 ? `${text.slice(0, 64)}...` : text;
  return `'${cut.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}'`;
}

// ---------------------------------------------------------------- encoding

/** The exact wire bytes of a command, LF included. */
export function encodeCommand(cmd: Command): Buffer {
  if (cmd instanceof RdataCommand) return encodeRdata(cmd.stream, cmd.token, cmd.rowJson);
  if (cmd.name === 'POSITION') return encodePosition(cmd.stream, cmd.token);
  return Buffer.from(`${commandText(cmd)}\n`, 'utf8');
}

function commandText(cmd: Exclude<Command, RdataCommand | PositionCommand>): string {
  switch (cmd.name) {
    case 'SERVER':
      return `SERVER ${cmd.serverName}`;
    case 'ERROR':
      // An ERROR line must stay one line whatever the message holds.
      return withText('ERROR', cmd.message.replace(/[\r\n]/g, ' '));
    case 'PING':
      return withText('PING', cmd.data);
    case 'SYNC':
      return withText('SYNC', cmd.data);
    case 'NAME':
      return `NAME ${cmd.clientName}`;
    case 'REPLICATE':
      return cmd.instance === undefined ? `REPLICATE ${cmd.stream} ${cmd.token}` : `REPLICATE ${cmd.stream} ${cmd.instance} ${cmd.token}`;
    case 'USER_SYNC':
      return `USER_SYNC ${cmd.userId} ${cmd.state} ${cmd.lastSyncMs}`;
    case 'FEDERATION_ACK':
      return `FEDERATION_ACK ${cmd.token}`;
    case 'REMOVE_PUSHER':
      return `REMOVE_PUSHER ${cmd.appId} ${cmd.pushKey} ${cmd.userId}`;
    case 'INVALIDATE_CACHE':
      return `INVALIDATE_CACHE ${cmd.cacheFunc} ${cmd.keysJson}`;
    case 'USER_IP':
      return `USER_IP ${cmd.userId} ${cmd.infoJson}`;
    case 'AUTH':
      return `AUTH ${cmd.credential}`;
    case 'GENERATION':
      return cmd.id === undefined ? 'GENERATION' : `GENERATION ${cmd.id ?? GENERATION_NONE}`;
    default:
      return assertNever(cmd);
  }
}

/** `NAME text`, or the bare name when there is no text (as it was parsed). */
function withText(name: CommandName, text: string): string {
  return text.length === 0 ? name : `${name} ${text}`;
}

/** The v1 text dialect: TCP, text WebSocket, and the form the logs store. */
export const v1Text: LineDialect = {
  name: 'v1-text',
  decode: parseCommand,
  isRow,
  routeRow,
  encode: encodeCommand,
  encodeRow: encodeRdata,
  encodeRows: encodeRdataRun,
  encodePosition,
};

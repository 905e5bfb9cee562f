/**
 * The v1 commands (PROTOCOL.md section 2) plus AUTH, as typed values, with a
 * parser from one line's bytes and an encoder back to the exact wire bytes:
 *
 *     SERVER <server_name>                 RDATA <stream> <token|batch> <row_json>
 *     POSITION <stream> <token>            ERROR <message>
 *     PING <data>                          SYNC <data>
 *     NAME <name>                          REPLICATE <stream|ALL> <token|NOW>
 *     USER_SYNC <user_id> <start|end> <last_sync_ms>
 *     FEDERATION_ACK <token>               REMOVE_PUSHER <app_id> <push_key> <user_id>
 *     INVALIDATE_CACHE <cache_func> <keys_json>
 *     USER_IP <user_id> <[access_token, ip, user_agent, device_id, last_seen]>
 *     AUTH <credential>
 *
 * The name runs to the first space; the last argument keeps the rest of the
 * line whole (names and JSON may contain spaces). An RDATA row stays bytes
 * until someone asks for its value.
 */
import { ProtocolError } from './errors.js';

export const MAX_TOKEN = Number.MAX_SAFE_INTEGER;

export type CommandName =
  | 'SERVER'
  | 'RDATA'
  | 'POSITION'
  | 'ERROR'
  | 'PING'
  | 'SYNC'
  | 'NAME'
  | 'REPLICATE'
  | 'USER_SYNC'
  | 'FEDERATION_ACK'
  | 'REMOVE_PUSHER'
  | 'INVALIDATE_CACHE'
  | 'USER_IP'
  | 'AUTH';

/**
 * Who sent a line: the master side, a worker, a worker authenticated as a
 * writer, or a gateway talking to its writers (a server that also passes on
 * its subscribers' client actions).
 */
export type Sender = 'server' | 'client' | 'writer' | 'gateway';

/** Commands a subscriber sends that a master acts on; forwarded to writers and upstream. */
export const CLIENT_ACTION_COMMANDS: ReadonlySet<CommandName> = new Set<CommandName>([
  'USER_SYNC',
  'FEDERATION_ACK',
  'REMOVE_PUSHER',
  'INVALIDATE_CACHE',
  'USER_IP',
]);

const SERVER_SENDS: CommandName[] = ['SERVER', 'RDATA', 'POSITION', 'ERROR', 'PING', 'SYNC'];
const CLIENT_SENDS: CommandName[] = ['ERROR', 'PING', 'NAME', 'REPLICATE', 'AUTH', ...CLIENT_ACTION_COMMANDS];

/** Which side may send which command (a writer is a client that may also publish). */
export const SENT_BY: Readonly<Record<Sender, ReadonlySet<CommandName>>> = {
  server: new Set(SERVER_SENDS),
  client: new Set(CLIENT_SENDS),
  writer: new Set<CommandName>([...CLIENT_SENDS, 'RDATA', 'POSITION']),
  gateway: new Set<CommandName>([...SERVER_SENDS, ...CLIENT_ACTION_COMMANDS]),
};

/** SENT_BY's answer for RDATA, looked up once: it is asked on every line. */
const MAY_SEND_RDATA: Readonly<Record<Sender, boolean>> = {
  server: SENT_BY.server.has('RDATA'),
  client: SENT_BY.client.has('RDATA'),
  writer: SENT_BY.writer.has('RDATA'),
  gateway: SENT_BY.gateway.has('RDATA'),
};

const NAMES: ReadonlySet<string> = new Set<string>([...SERVER_SENDS, ...CLIENT_SENDS]);

export class RdataCommand {
  readonly name = 'RDATA';
  constructor(
    readonly stream: string,
    /** null for a `batch` row: more rows with the same token follow. */
    readonly token: number | null,
    /** The row's JSON is `buf[rowStart, rowEnd)`: routing never needs it, so no view is made up front. */
    private readonly buf: Buffer,
    private readonly rowStart: number,
    private readonly rowEnd: number,
  ) {}

  static fromJson(stream: string, token: number | null, rowJson: Buffer): RdataCommand {
    return new RdataCommand(stream, token, rowJson, 0, rowJson.length);
  }

  /** The row's JSON text, a view of the line. */
  get rowJson(): Buffer {
    return this.buf.subarray(this.rowStart, this.rowEnd);
  }

  /** The row's value, parsed on each call. */
  row(): unknown {
    return parseJson(this.buf.toString('utf8', this.rowStart, this.rowEnd), 'RDATA');
  }
}

export interface ServerCommand { readonly name: 'SERVER'; readonly serverName: string }
export interface PositionCommand { readonly name: 'POSITION'; readonly stream: string; readonly token: number }
export interface ErrorCommand { readonly name: 'ERROR'; readonly message: string }
export interface PingCommand { readonly name: 'PING'; readonly data: string }
export interface SyncCommand { readonly name: 'SYNC'; readonly data: string }
export interface NameCommand { readonly name: 'NAME'; readonly clientName: string }
export interface ReplicateCommand {
  readonly name: 'REPLICATE';
  /** A stream name, or 'ALL' (which always goes with 'NOW'). */
  readonly stream: string;
  readonly token: number | 'NOW';
}
export interface UserSyncCommand {
  readonly name: 'USER_SYNC';
  readonly userId: string;
  readonly state: 'start' | 'end';
  readonly lastSyncMs: number;
}
export interface FederationAckCommand { readonly name: 'FEDERATION_ACK'; readonly token: number }
export interface RemovePusherCommand {
  readonly name: 'REMOVE_PUSHER';
  readonly appId: string;
  readonly pushKey: string;
  readonly userId: string;
}
export interface InvalidateCacheCommand {
  readonly name: 'INVALIDATE_CACHE';
  readonly cacheFunc: string;
  /** The keys as sent, kept verbatim so forwarding does not re-encode them. */
  readonly keysJson: string;
}
export interface UserIpCommand {
  readonly name: 'USER_IP';
  readonly userId: string;
  /** `[access_token, ip, user_agent, device_id, last_seen]` as sent. */
  readonly infoJson: string;
}
export interface AuthCommand { readonly name: 'AUTH'; readonly credential: string }

export type Command =
  | ServerCommand
  | RdataCommand
  | PositionCommand
  | ErrorCommand
  | PingCommand
  | SyncCommand
  | NameCommand
  | ReplicateCommand
  | UserSyncCommand
  | FederationAckCommand
  | RemovePusherCommand
  | InvalidateCacheCommand
  | UserIpCommand
  | AuthCommand;

export type ClientActionCommand =
  | UserSyncCommand
  | FederationAckCommand
  | RemovePusherCommand
  | InvalidateCacheCommand
  | UserIpCommand;

export interface UserIpInfo {
  accessToken: string;
  ip: string;
  userAgent: string;
  deviceId: string | null;
  lastSeen: number;
}

export function userIpInfo(cmd: UserIpCommand): UserIpInfo {
  const [accessToken, ip, userAgent, deviceId, lastSeen] = JSON.parse(cmd.infoJson) as [
    string,
    string,
    string,
    string | null,
    number,
  ];
  return { accessToken, ip, userAgent, deviceId, lastSeen };
}

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
    return parseRdata(buf, nameEnd + 1, end);
  }
  const name = buf.toString('utf8', start, nameEnd);
  if (!NAMES.has(name)) throw new ProtocolError('UNKNOWN_COMMAND', `unknown command: ${printable(name)}`);
  const command = name as CommandName;
  if (!SENT_BY[from].has(command)) throw wrongDirection(command, from);
  const rest = nameEnd < end ? buf.toString('utf8', nameEnd + 1, end) : '';
  return parseArguments(command, rest, buf, nameEnd + 1, end);
}

function parseArguments(name: CommandName, rest: string, buf: Buffer, restStart: number, end: number): Command {
  switch (name) {
    case 'SERVER':
      return { name, serverName: required(name, rest, '<server_name>') };
    case 'RDATA':
      return parseRdata(buf, restStart, end);
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
    case 'REPLICATE': {
      const [stream, tokenText] = words(name, rest, 2, '<stream|ALL> <token|NOW>');
      const token = tokenText === 'NOW' || tokenText === 'now' ? 'NOW' : parseToken(name, tokenText, ' or NOW');
      if (stream === 'ALL' && token !== 'NOW') {
        throw new ProtocolError('BAD_ARGUMENT', `REPLICATE ALL takes NOW, not ${printable(tokenText)}`);
      }
      return { name, stream, token };
    }
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
  }
}

/** Where an RDATA line goes, filled in place by parseRdataRoute: routing a row allocates nothing. */
export class RdataRoute {
  stream = '';
  /** null for a `batch` row. */
  token: number | null = null;
  /** The row's JSON starts here and runs to the end of the line. */
  rowStart = 0;
}

/** Is `buf[start, end)` an RDATA line with arguments? (Recognised from its bytes.) */
export function isRdataLine(buf: Buffer, start: number, end: number): boolean {
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

/**
 * Parses the arguments of an RDATA line, `<stream> <token|batch> <row_json>`
 * from `start` (just past `RDATA `), into `route`; throws ProtocolError.
 */
export function parseRdataRoute(buf: Buffer, start: number, end: number, route: RdataRoute): void {
  const streamEnd = indexOfSpace(buf, start, end);
  const tokenStart = streamEnd + 1;
  const tokenEnd = tokenStart < end ? indexOfSpace(buf, tokenStart, end) : end;
  if (streamEnd === start || tokenEnd >= end - 1 || tokenEnd === tokenStart) {
    throw missing('RDATA', '<stream> <token|batch> <row_json>');
  }
  const token = parseTokenBytes(buf, tokenStart, tokenEnd);
  if (token < 0 && !isBatchWord(buf, tokenStart, tokenEnd)) {
    throw badToken('RDATA', buf.toString('utf8', tokenStart, tokenEnd), ' or batch');
  }
  route.stream = internName(buf, start, streamEnd);
  route.token = token < 0 ? null : token;
  route.rowStart = tokenEnd + 1;
}

/** parseRdata's scratch space: parsing is synchronous, so one is enough. */
const scratchRoute = new RdataRoute();

function parseRdata(buf: Buffer, start: number, end: number): RdataCommand {
  parseRdataRoute(buf, start, end, scratchRoute);
  return new RdataCommand(scratchRoute.stream, scratchRoute.token, buf, scratchRoute.rowStart, end);
}

/**
 * Stream names repeat on every line: reuse the string made the first time
 * instead of decoding the bytes again. Bounded, so a peer inventing names
 * cannot grow it without limit.
 */
const INTERN_LIMIT = 1024;
const interned: { bytes: Buffer; text: string }[][] = [];
let internedCount = 0;

function internName(buf: Buffer, start: number, end: number): string {
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

function isBatchWord(buf: Buffer, start: number, end: number): boolean {
  return (
    end - start === 5 &&
    buf[start] === 0x62 &&
    buf[start + 1] === 0x61 &&
    buf[start + 2] === 0x74 &&
    buf[start + 3] === 0x63 &&
    buf[start + 4] === 0x68
  );
}

/** Decimal digits to a number; -1 when not a token (empty, non-digit, or over 2^53-1). */
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

function indexOfSpace(buf: Buffer, start: number, end: number): number {
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
  return out;
}

function required(name: CommandName, rest: string, usage: string): string {
  if (rest.length === 0) throw missing(name, usage);
  return rest;
}

function parseJson(text: string, name: CommandName): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ProtocolError('BAD_JSON', `bad JSON in ${name}: ${(err as Error).message}`);
  }
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
function printable(text: string): string {
  const cut = text.length > 64 ? `${text.slice(0, 64)}...` : text;
  return `'${cut.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}'`;
}

// ---------------------------------------------------------------- encoding

/** The exact wire bytes of a command, LF included. */
export function encodeCommand(cmd: Command): Buffer {
  if (cmd instanceof RdataCommand) return encodeRdata(cmd.stream, cmd.token, cmd.rowJson);
  return Buffer.from(`${commandText(cmd)}\n`, 'utf8');
}

function commandText(cmd: Exclude<Command, RdataCommand>): string {
  switch (cmd.name) {
    case 'SERVER':
      return `SERVER ${cmd.serverName}`;
    case 'POSITION':
      return `POSITION ${cmd.stream} ${cmd.token}`;
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
      return `REPLICATE ${cmd.stream} ${cmd.token}`;
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
    default:
      return assertNever(cmd);
  }
}

/** `RDATA <stream> <token|batch> <row_json>\n` from a row already in JSON. */
export function encodeRdata(stream: string, token: number | null, rowJson: Buffer | string): Buffer {
  const head = `RDATA ${stream} ${token === null ? 'batch' : token} `;
  if (typeof rowJson === 'string') return Buffer.from(`${head}${rowJson}\n`, 'utf8');
  const headBytes = Buffer.byteLength(head);
  const out = Buffer.allocUnsafe(headBytes + rowJson.length + 1);
  out.write(head, 0, 'utf8');
  rowJson.copy(out, headBytes);
  out[out.length - 1] = 0x0a;
  return out;
}

export function encodePosition(stream: string, token: number): Buffer {
  return Buffer.from(`POSITION ${stream} ${token}\n`, 'latin1');
}

export function encodeError(message: string): Buffer {
  return encodeCommand({ name: 'ERROR', message });
}

/** `NAME text`, or the bare name when there is no text (as it was parsed). */
function withText(name: CommandName, text: string): string {
  return text.length === 0 ? name : `${name} ${text}`;
}

export function assertNever(value: never): never {
  throw new Error(`unhandled case: ${JSON.stringify(value)}`);
}

/**
 * Today's Synapse dialect (Synapse 1.67 and later, on Redis pub/sub; see
 * ../shared/synapse-today/README.md): one command per PUBLISH, parsed from
 * the payload's bytes and encoded back to the exact bytes, LF added:
 *
 *     RDATA <stream> <instance> <token|batch> <row_json>
 *     POSITION <stream> <instance> <prev_token> <new_token>
 *     REPLICATE <anything>          (Synapse ignores what follows the space)
 *     USER_SYNC <instance_id> <user_id> <device_id|None> <start|end> <last_sync_ms>
 *     CLEAR_USER_SYNC <instance_id>   FEDERATION_ACK <instance> <token>
 *     USER_IP <user_id> <[access_token, ip, user_agent, device_id, last_seen_ms]>
 *     REMOTE_SERVER_UP <server_name>  LOCK_RELEASED <[instance, lock_name, lock_key]>
 *     NEW_ACTIVE_TASK <task_id>       CANCEL_TASK <task_id>
 *
 * The name runs to the first space and the last argument keeps the rest of
 * the payload whole. Positions belong to a (stream, writer instance) pair, so
 * a row and a position name their instance. An RDATA row stays bytes: the
 * follower stores and forwards what Synapse published, never re-encoded.
 * Lines this dialect refuses (2017 forms, removed commands) throw the
 * ProtocolError a follower logs before ignoring the line, as Synapse does.
 */
import { MAX_TOKEN } from '../commands.js';
import { ProtocolError } from '../errors.js';
import { indexOfSpace, internName, isBatchWord, parseTokenBytes, printable, RDATA_STREAM_AT } from './v1-text.js';

export type TodayCommandName =
  | 'RDATA'
  | 'POSITION'
  | 'REPLICATE'
  | 'USER_SYNC'
  | 'CLEAR_USER_SYNC'
  | 'FEDERATION_ACK'
  | 'USER_IP'
  | 'REMOTE_SERVER_UP'
  | 'LOCK_RELEASED'
  | 'NEW_ACTIVE_TASK'
  | 'CANCEL_TASK';

const TODAY_NAMES: ReadonlySet<string> = new Set<TodayCommandName>([
  'RDATA',
  'POSITION',
  'REPLICATE',
  'USER_SYNC',
  'CLEAR_USER_SYNC',
  'FEDERATION_ACK',
  'USER_IP',
  'REMOTE_SERVER_UP',
  'LOCK_RELEASED',
  'NEW_ACTIVE_TASK',
  'CANCEL_TASK',
]);

/** Commands of the 2017 dialect that today's Synapse no longer has: named in their refusal. */
const REMOVED_NAMES: ReadonlySet<string> = new Set(['SYNC', 'INVALIDATE_CACHE', 'REMOVE_PUSHER', 'SERVER', 'NAME', 'PING', 'ERROR']);

/** `device_id` of a USER_SYNC without a device, as Synapse writes it. */
const NO_DEVICE = 'None';

/** Where a today's row line goes, filled in place by routeTodayRow: routing a row allocates nothing. */
export class TodayRowRoute {
  stream = '';
  instance = '';
  /** null for a `batch` row. */
  token: number | null = null;
  /** The row's JSON starts here and runs to the end of the line. */
  rowStart = 0;
}

export class TodayRdata {
  readonly name = 'RDATA';
  constructor(
    readonly stream: string,
    readonly instance: string,
    /** null for a `batch` row: more rows of the same token follow. */
    readonly token: number | null,
    /** The row's JSON text, a view of the line. */
    readonly rowJson: Buffer,
  ) {}

  /** The row's value, parsed on each call. */
  row(): unknown {
    return jsonArgument('RDATA', this.rowJson.toString('utf8'));
  }
}

export interface TodayPosition {
  readonly name: 'POSITION';
  readonly stream: string;
  readonly instance: string;
  /** The last token the instance announced before: it wrote nothing on the stream in (prevToken, newToken]. */
  readonly prevToken: number;
  readonly newToken: number;
}
/** `REPLICATE ` asks every process for its POSITIONs; what follows the space is kept only to re-encode it. */
export interface TodayReplicate { readonly name: 'REPLICATE'; readonly args: string }
export interface TodayUserSync {
  readonly name: 'USER_SYNC';
  /** A random id per process start, not the instance name. */
  readonly instanceId: string;
  readonly userId: string;
  readonly deviceId: string | null;
  readonly state: 'start' | 'end';
  readonly lastSyncMs: number;
}
export interface TodayClearUserSync { readonly name: 'CLEAR_USER_SYNC'; readonly instanceId: string }
export interface TodayFederationAck { readonly name: 'FEDERATION_ACK'; readonly instance: string; readonly token: number }
/** Carries an access token: never fanned out. */
export interface TodayUserIp { readonly name: 'USER_IP'; readonly userId: string; readonly infoJson: string }
export interface TodayRemoteServerUp { readonly name: 'REMOTE_SERVER_UP'; readonly serverName: string }
export interface TodayLockReleased { readonly name: 'LOCK_RELEASED'; readonly lockJson: string }
export interface TodayNewActiveTask { readonly name: 'NEW_ACTIVE_TASK'; readonly taskId: string }
export interface TodayCancelTask { readonly name: 'CANCEL_TASK'; readonly taskId: string }

export type TodayCommand =
  | TodayRdata
  | TodayPosition
  | TodayReplicate
  | TodayUserSync
  | TodayClearUserSync
  | TodayFederationAck
  | TodayUserIp
  | TodayRemoteServerUp
  | TodayLockReleased
  | TodayNewActiveTask
  | TodayCancelTask;

const SPACE = 0x20;

/** Whether `buf[start, end)` is an RDATA line with arguments, from its first bytes alone. */
export function isTodayRow(buf: Buffer, start: number, end: number): boolean {
  return (
    end - start > 6 &&
    buf[start + 5] === SPACE &&
    buf[start] === 0x52 &&
    buf[start + 1] === 0x44 &&
    buf[start + 2] === 0x41 &&
    buf[start + 3] === 0x54 &&
    buf[start + 4] === 0x41
  );
}

/**
 * The words of `RDATA <stream> <instance> <token|batch> <row_json>` (a line
 * isTodayRow said is a row) into `route`: the follower's hot path.
 */
export function routeTodayRow(buf: Buffer, start: number, end: number, route: TodayRowRoute): void {
  const streamStart = start + RDATA_STREAM_AT;
  const streamEnd = indexOfSpace(buf, streamStart, end);
  const instanceStart = streamEnd + 1;
  const instanceEnd = instanceStart < end ? indexOfSpace(buf, instanceStart, end) : end;
  const tokenStart = instanceEnd + 1;
  const tokenEnd = tokenStart < end ? indexOfSpace(buf, tokenStart, end) : end;
  if (streamEnd === streamStart || instanceEnd === instanceStart || tokenEnd === tokenStart || tokenEnd >= end - 1) {
    throw missing('RDATA', '<stream> <instance> <token|batch> <row_json>');
  }
  const token = parseTokenBytes(buf, tokenStart, tokenEnd);
  if (token < 0 && !isBatchWord(buf, tokenStart, tokenEnd)) {
    throw badToken('RDATA', buf.toString('utf8', tokenStart, tokenEnd), ' or batch');
  }
  route.stream = internName(buf, streamStart, streamEnd);
  route.instance = internName(buf, instanceStart, instanceEnd);
  route.token = token < 0 ? null : token;
  route.rowStart = tokenEnd + 1;
}

const scratchRoute = new TodayRowRoute();

/** The command a payload (`buf[start, end)`, no LF) holds; throws ProtocolError naming what is wrong. */
export function parseTodayCommand(buf: Buffer, start: number, end: number): TodayCommand {
  if (isTodayRow(buf, start, end)) {
    routeTodayRow(buf, start, end, scratchRoute);
    const r = scratchRoute;
    return new TodayRdata(r.stream, r.instance, r.token, buf.subarray(r.rowStart, end));
  }
  const nameEnd = indexOfSpace(buf, start, end);
  const name = buf.toString('utf8', start, nameEnd);
  if (!TODAY_NAMES.has(name)) {
    const why = REMOVED_NAMES.has(name) ? ' (a 2017-dialect command, gone from today\'s Synapse)' : '';
    throw new ProtocolError('UNKNOWN_COMMAND', `unknown command in today's Synapse dialect: ${printable(name)}${why}`);
  }
  // Every command has its space, even REPLICATE with no arguments.
  if (nameEnd === end) throw missing(name as TodayCommandName, usage(name as TodayCommandName));
  return parseArguments(name as TodayCommandName, buf.toString('utf8', nameEnd + 1, end));
}

function parseArguments(name: TodayCommandName, rest: string): TodayCommand {
  switch (name) {
    case 'RDATA':
      // isTodayRow refused it: too short to hold its words.
      throw missing(name, usage(name));
    case 'POSITION': {
      const [stream, instance, prev, next] = words(name, rest, 4);
      return { name, stream, instance, prevToken: parseToken(name, prev), newToken: parseToken(name, next) };
    }
    case 'REPLICATE':
      return { name, args: rest };
    case 'USER_SYNC': {
      const [instanceId, userId, device, state, lastSync] = words(name, rest, 5);
      if (state !== 'start' && state !== 'end') {
        throw new ProtocolError('BAD_ARGUMENT', `bad state ${printable(state)} in USER_SYNC: expected start or end`);
      }
      return { name, instanceId, userId, deviceId: device === NO_DEVICE ? null : device, state, lastSyncMs: parseToken(name, lastSync) };
    }
    case 'CLEAR_USER_SYNC':
      return { name, instanceId: oneWord(name, rest) };
    case 'FEDERATION_ACK': {
      const [instance, token] = words(name, rest, 2);
      return { name, instance, token: parseToken(name, token) };
    }
    case 'USER_IP': {
      const [userId, infoJson] = words(name, rest, 2);
      const info = jsonArgument(name, infoJson);
      if (!Array.isArray(info) || info.length !== 5) {
        throw new ProtocolError('BAD_JSON', 'bad JSON in USER_IP: expected [access_token, ip, user_agent, device_id, last_seen_ms]');
      }
      return { name, userId, infoJson };
    }
    case 'REMOTE_SERVER_UP':
      return { name, serverName: oneWord(name, rest) };
    case 'LOCK_RELEASED': {
      const [lockJson] = words(name, rest, 1);
      const lock = jsonArgument(name, lockJson);
      if (!Array.isArray(lock) || lock.length !== 3) {
        throw new ProtocolError('BAD_JSON', 'bad JSON in LOCK_RELEASED: expected [instance_name, lock_name, lock_key]');
      }
      return { name, lockJson };
    }
    case 'NEW_ACTIVE_TASK':
      return { name, taskId: oneWord(name, rest) };
    case 'CANCEL_TASK':
      return { name, taskId: oneWord(name, rest) };
  }
}

function usage(name: TodayCommandName): string {
  switch (name) {
    case 'RDATA':
      return '<stream> <instance> <token|batch> <row_json>';
    case 'POSITION':
      return '<stream> <instance> <prev_token> <new_token>';
    case 'REPLICATE':
      return '(a space, nothing after it)';
    case 'USER_SYNC':
      return '<instance_id> <user_id> <device_id|None> <start|end> <last_sync_ms>';
    case 'CLEAR_USER_SYNC':
      return '<instance_id>';
    case 'FEDERATION_ACK':
      return '<instance> <token>';
    case 'USER_IP':
      return '<user_id> <json>';
    case 'REMOTE_SERVER_UP':
      return '<server_name>';
    case 'LOCK_RELEASED':
      return '<[instance_name, lock_name, lock_key]>';
    case 'NEW_ACTIVE_TASK':
    case 'CANCEL_TASK':
      return '<task_id>';
  }
}

// ---------------------------------------------------------------- encoding

/** The exact payload bytes of a command, with the LF a stored line ends in. */
export function encodeTodayCommand(cmd: TodayCommand): Buffer {
  if (cmd instanceof TodayRdata) return encodeTodayRow(cmd.stream, cmd.instance, cmd.token, cmd.rowJson);
  return Buffer.from(`${todayText(cmd)}\n`, 'utf8');
}

function todayText(cmd: Exclude<TodayCommand, TodayRdata>): string {
  switch (cmd.name) {
    case 'POSITION':
      return `POSITION ${cmd.stream} ${cmd.instance} ${cmd.prevToken} ${cmd.newToken}`;
    case 'REPLICATE':
      return `REPLICATE ${cmd.args}`;
    case 'USER_SYNC':
      return `USER_SYNC ${cmd.instanceId} ${cmd.userId} ${cmd.deviceId ?? NO_DEVICE} ${cmd.state} ${cmd.lastSyncMs}`;
    case 'CLEAR_USER_SYNC':
      return `CLEAR_USER_SYNC ${cmd.instanceId}`;
    case 'FEDERATION_ACK':
      return `FEDERATION_ACK ${cmd.instance} ${cmd.token}`;
    case 'USER_IP':
      return `USER_IP ${cmd.userId} ${cmd.infoJson}`;
    case 'REMOTE_SERVER_UP':
      return `REMOTE_SERVER_UP ${cmd.serverName}`;
    case 'LOCK_RELEASED':
      return `LOCK_RELEASED ${cmd.lockJson}`;
    case 'NEW_ACTIVE_TASK':
      return `NEW_ACTIVE_TASK ${cmd.taskId}`;
    case 'CANCEL_TASK':
      return `CANCEL_TASK ${cmd.taskId}`;
  }
}

/** One row line: `RDATA <stream> <instance> <token|batch> <row_json>` and its LF. */
export function encodeTodayRow(stream: string, instance: string, token: number | null, rowJson: Buffer | string): Buffer {
  const head = `RDATA ${stream} ${instance} ${token ?? 'batch'} `;
  const headLength = Buffer.byteLength(head);
  const rowLength = typeof rowJson === 'string' ? Buffer.byteLength(rowJson) : rowJson.length;
  const out = Buffer.allocUnsafe(headLength + rowLength + 1);
  out.write(head, 0, 'utf8');
  if (typeof rowJson === 'string') out.write(rowJson, headLength, 'utf8');
  else rowJson.copy(out, headLength);
  out[out.length - 1] = 0x0a;
  return out;
}

/** `POSITION <stream> <instance> <prev> <new>` and its LF. */
export function encodeTodayPosition(stream: string, instance: string, prevToken: number, newToken: number): Buffer {
  return Buffer.from(`POSITION ${stream} ${instance} ${prevToken} ${newToken}\n`, 'utf8');
}

// ---------------------------------------------------------------- words

/** Splits off n-1 words; the last keeps the rest. Every word non-empty and printable. */
function words(name: TodayCommandName, rest: string, n: number): string[] {
  const out: string[] = [];
  let from = 0;
  for (let i = 0; i < n - 1; i++) {
    const sp = rest.indexOf(' ', from);
    if (sp === -1) throw missing(name, usage(name));
    out.push(rest.slice(from, sp));
    from = sp + 1;
  }
  out.push(rest.slice(from));
  for (const word of out) {
    if (word.length === 0) throw missing(name, usage(name));
    const m = CONTROL.exec(word);
    if (m !== null) throw new ProtocolError('BAD_ARGUMENT', `control character ${printable(m[0])} in ${name}: arguments must be printable text`);
  }
  return out;
}

/** The one word a command takes: a space in it means extra arguments. */
function oneWord(name: TodayCommandName, rest: string): string {
  const [word] = words(name, rest, 1);
  if (word!.includes(' ')) throw new ProtocolError('BAD_ARGUMENT', `too many arguments for ${name}: expected ${name} ${usage(name)}`);
  return word!;
}

const CONTROL = /[\x00-\x1f\x7f]/;

function jsonArgument(name: TodayCommandName, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ProtocolError('BAD_JSON', `bad JSON in ${name}: ${(err as Error).message}`);
  }
}

function parseToken(name: TodayCommandName, text: string | undefined): number {
  const t = text ?? '';
  if (t.length > 0 && t.length <= 16 && /^[0-9]+$/.test(t)) {
    const n = Number(t);
    if (n <= MAX_TOKEN) return n;
  }
  throw badToken(name, t, '');
}

function missing(name: TodayCommandName, expected: string): ProtocolError {
  return new ProtocolError('MISSING_ARGUMENTS', `missing arguments for ${name}: expected ${name} ${expected}`);
}

function badToken(name: TodayCommandName, text: string, alternative: string): ProtocolError {
  return new ProtocolError('BAD_TOKEN', `bad token ${printable(text)} in ${name}: expected an integer from 0 to ${MAX_TOKEN}${alternative}`);
}

/** Today's dialect: what a follower of a current Synapse reads from Redis and what it serves. */
export const synapseToday = {
  name: 'synapse-today',
  decode: parseTodayCommand,
  isRow: isTodayRow,
  routeRow: routeTodayRow,
  encode: encodeTodayCommand,
  encodeRow: encodeTodayRow,
  encodePosition: encodeTodayPosition,
} as const;

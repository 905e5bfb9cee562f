/**
 * The protocol's vocabulary (PROTOCOL.md section 2) plus the gateway's
 * extensions AUTH and GENERATION (docs/protocol.md section 9): each command
 * as a typed value, and which side may send which. How a command looks on
 * the wire is its dialect's business (dialect.ts): v1 text lines
 * (dialects/v1-text.ts) or MessagePack frames (dialects/msgpack-frames.ts).
 * An RDATA row stays its JSON bytes until someone asks for its value.
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
  | 'AUTH'
  | 'GENERATION';

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

const SERVER_SENDS: CommandName[] = ['SERVER', 'RDATA', 'POSITION', 'ERROR', 'PING', 'SYNC', 'GENERATION'];
const CLIENT_SENDS: CommandName[] = ['ERROR', 'PING', 'NAME', 'REPLICATE', 'AUTH', 'GENERATION', ...CLIENT_ACTION_COMMANDS];

/** Which side may send which command (a writer is a client that may also publish). */
export const SENT_BY: Readonly<Record<Sender, ReadonlySet<CommandName>>> = {
  server: new Set(SERVER_SENDS),
  client: new Set(CLIENT_SENDS),
  writer: new Set<CommandName>([...CLIENT_SENDS, 'RDATA', 'POSITION']),
  gateway: new Set<CommandName>([...SERVER_SENDS, ...CLIENT_ACTION_COMMANDS]),
};

/** Every command name, to tell an unknown command from one sent by the wrong side. */
export const COMMAND_NAMES: ReadonlySet<string> = new Set<string>([...SERVER_SENDS, ...CLIENT_SENDS]);

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
  /** The three-word form: a followed Synapse stream's writer instance, or '*' for every one; absent in v1's two words. */
  readonly instance?: string;
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
/**
 * A client's question `GENERATION` (no `id`), or a gateway's answer
 * `GENERATION <id|none>`: its log's generation id, null for a log without
 * one. Only a client that opted in asks: a Synapse master would refuse it.
 */
export interface GenerationCommand { readonly name: 'GENERATION'; readonly id?: string | null }

/** The word a server without a log generation (memory, Redis) answers GENERATION with. */
export const GENERATION_NONE = 'none';

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
  | AuthCommand
  | GenerationCommand;

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

/** A JSON argument's value, or the BAD_JSON ProtocolError naming the command. */
export function parseJson(text: string, name: CommandName): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ProtocolError('BAD_JSON', `bad JSON in ${name}: ${(err as Error).message}`);
  }
}

export function assertNever(value: never): never {
  throw new Error(`unhandled case: ${JSON.stringify(value)}`);
}

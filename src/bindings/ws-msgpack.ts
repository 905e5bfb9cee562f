/**
 * The binary WebSocket mode (subprotocol `replication.msgpack`): the same
 * commands as MessagePack arrays `[name, ...args]`, rows and JSON arguments
 * decoded to values, tokens as numbers (`"batch"` for a batch row).
 *
 *     RDATA caches batch ["get_user_by_id",["@a:hs"],1]  ->  ["RDATA","caches","batch",["get_user_by_id",["@a:hs"],1]]
 *     POSITION caches 54                               ->  ["POSITION","caches",54]
 *     ["REPLICATE","events",12]                        ->  REPLICATE events 12      (from the client)
 *
 * One message holds frames of whole lines one after another (msgpackr's
 * `unpackMultiple` reads them). RDATA-only chunks go through the encoder
 * pool's transcode (inline below its threshold), once per chunk: the hub
 * hands the same Buffer to every subscriber, so a cache keyed by it shares
 * the frames among all binary subscribers. The cache holds the most recent
 * chunks up to a byte budget: subscribers at the head, or catching up
 * together, hit it; frames are not kept for the whole log. Lines come from the hub, so they
 * are whole and valid; the client's frames become lines for the hub's parser.
 */
import { Packr, Unpackr } from 'msgpackr';
import { parseCommand, RdataCommand, type Command } from '../core/commands.js';
import { ProtocolError } from '../core/errors.js';
import { LineScanner } from '../core/line-scanner.js';
import { rdataToMsgpack } from '../workers/msgpack-task.js';
import { isTranscodeFailure } from '../workers/task-data.js';

/** What the bridge needs of src/workers/encoder-pool.ts (EncoderPool fits). */
export interface RdataTranscoder {
  readonly transcodeInlineMaxBytes: number;
  transcode(lines: Buffer): Promise<Buffer>;
}

const RDATA_PREFIX = Buffer.from('RDATA ', 'latin1');
/** Frames of recent chunks kept for the binary subscribers that have not had them yet. */
export const DEFAULT_FRAME_CACHE_BYTES = 64 * 1024 * 1024;
/** Commands whose last argument is JSON: sent and taken as a value. */
const JSON_LAST = new Set(['RDATA', 'INVALIDATE_CACHE', 'USER_IP']);

export class MsgpackCodec {
  private readonly packr = new Packr({ useRecords: false });
  private readonly unpackr = new Unpackr({ useRecords: false });
  /** Frames per hub chunk, shared by every binary subscriber the chunk goes to; oldest first. */
  private readonly cache = new Map<Buffer, Buffer | Promise<Buffer>>();
  private cachedBytes = 0;

  constructor(
    private readonly pool: RdataTranscoder | null = null,
    private readonly cacheBytes = DEFAULT_FRAME_CACHE_BYTES,
  ) {}

  /** The frames of a chunk of whole lines: at once, or (a large RDATA run on the pool) later. */
  frames(chunk: Buffer): Buffer | Promise<Buffer> {
    const cached = this.cache.get(chunk);
    if (cached !== undefined) return cached;
    let result: Buffer | Promise<Buffer>;
    if (!startsWith(chunk, RDATA_PREFIX)) {
      result = this.linesToFrames(chunk);
    } else if (this.pool !== null && chunk.length > this.pool.transcodeInlineMaxBytes) {
      // The pool refuses a chunk that is not all RDATA (or loses a worker): the inline path then.
      const pending = this.pool.transcode(chunk).catch(() => this.linesToFrames(chunk));
      pending.then(
        (frames) => {
          if (this.cache.get(chunk) === pending) this.cache.set(chunk, frames);
        },
        () => this.forget(chunk),
      );
      result = pending;
    } else {
      const inline = rdataToMsgpack(chunk, false);
      result = isTranscodeFailure(inline) ? this.linesToFrames(chunk) : inline;
    }
    this.remember(chunk, result);
    return result;
  }

  /** Caches frames for a chunk, then drops the oldest until within budget (counted by the chunk's size). */
  private remember(chunk: Buffer, frames: Buffer | Promise<Buffer>): void {
    this.cache.set(chunk, frames);
    this.cachedBytes += chunk.length;
    for (const oldest of this.cache.keys()) {
      if (this.cachedBytes <= this.cacheBytes || oldest === chunk) break;
      this.forget(oldest);
    }
  }

  private forget(chunk: Buffer): void {
    if (this.cache.delete(chunk)) this.cachedBytes -= chunk.length;
  }

  /** Chunks whose frames are cached now. */
  get cachedChunks(): number {
    return this.cache.size;
  }

  /** Any server lines (SERVER, PING, POSITION, ERROR, forwarded client commands) as frames. */
  linesToFrames(chunk: Buffer): Buffer {
    const parts: Buffer[] = [];
    const scanner = new LineScanner(
      {
        onLine: (buf, start, end) => {
          // msgpackr packs into a shared slab: copy before the next pack.
          // Server commands, or client actions the hub forwards to a writer.
          parts.push(Buffer.from(this.packr.pack(commandArray(parseCommand(buf, start, end, 'gateway')))));
        },
        onLineError: (err) => {
          throw err;
        },
      },
      { maxLineBytes: Math.max(1, chunk.length), validateUtf8: false },
    );
    scanner.push(chunk);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /**
   * A binary message from the client as protocol lines, each ending in LF.
   * Throws ProtocolError (the connection then gets `ERROR` and a close).
   */
  framesToLines(message: Buffer): Buffer {
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
}

function startsWith(buf: Buffer, prefix: Buffer): boolean {
  if (buf.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (buf[i] !== prefix[i]) return false;
  return true;
}

/** The arguments of a command in wire order, JSON decoded. */
export function commandArray(cmd: Command): unknown[] {
  if (cmd instanceof RdataCommand) return ['RDATA', cmd.stream, cmd.token ?? 'batch', cmd.row()];
  switch (cmd.name) {
    case 'SERVER':
      return [cmd.name, cmd.serverName];
    case 'POSITION':
      return [cmd.name, cmd.stream, cmd.token];
    case 'ERROR':
      return [cmd.name, cmd.message];
    case 'PING':
    case 'SYNC':
      return [cmd.name, cmd.data];
    case 'NAME':
      return [cmd.name, cmd.clientName];
    case 'REPLICATE':
      return [cmd.name, cmd.stream, cmd.token];
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
  }
}

/**
 * `[name, ...args]` as its wire line. Words may not hold spaces or line
 * breaks (they would shift or split the line); the hub's parser checks the
 * rest, so a bad frame gets the same ERROR as the bad line would.
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

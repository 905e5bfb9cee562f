/**
 * The binary WebSocket mode's bytes (subprotocol `replication.msgpack`):
 * the frames of the MessagePack dialect (src/core/dialects/msgpack-frames.ts
 * owns their shape), made for the lines the hub hands a binary socket.
 *
 * RDATA-only chunks go through the encoder pool's transcode (inline below its
 * threshold), once per chunk: the hub hands the same Buffer to every
 * subscriber, so a cache keyed by it shares the frames among all binary
 * subscribers. The cache holds the most recent chunks up to a byte budget:
 * subscribers at the head, or catching up together, hit it; frames are not
 * kept for the whole log. The client's frames become lines for the hub's
 * parser.
 */
import { isFramingFailure, MsgpackFrames, rowsFromLines } from '../core/dialects/msgpack-frames.js';

/** What the bridge needs of src/workers/encoder-pool.ts (EncoderPool fits). */
export interface RdataTranscoder {
  readonly transcodeInlineMaxBytes: number;
  transcode(lines: Buffer): Promise<Buffer>;
}

/** Frames of recent chunks kept for the binary subscribers that have not had them yet. */
export const DEFAULT_FRAME_CACHE_BYTES = 64 * 1024 * 1024;

export class MsgpackCodec {
  readonly dialect = new MsgpackFrames();
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
    const dialect = this.dialect;
    let result: Buffer | Promise<Buffer>;
    if (!dialect.startsWithRow(chunk)) {
      result = dialect.fromLines(chunk);
    } else if (this.pool !== null && chunk.length > this.pool.transcodeInlineMaxBytes) {
      // The pool refuses a chunk that is not all RDATA (or loses a worker): the inline path then.
      const pending = this.pool.transcode(chunk).catch(() => dialect.fromLines(chunk));
      pending.then(
        (frames) => {
          if (this.cache.get(chunk) === pending) this.cache.set(chunk, frames);
        },
        () => this.forget(chunk),
      );
      result = pending;
    } else {
      const inline = rowsFromLines(chunk, false);
      result = isFramingFailure(inline) ? dialect.fromLines(chunk) : inline;
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
}

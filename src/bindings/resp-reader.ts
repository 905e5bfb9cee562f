/**
 * The replies a subscribed Redis connection reads, parsed straight from the
 * socket's chunks (RESP2). The Synapse link's subscriber gets one push per
 * row; a general client (ioredis) turns each into three Buffers, an array
 * and a string before its handler sees it: here a reply is offsets into the
 * chunk it came in, and only the caller copies what it keeps.
 *
 *     +OK\r\n                                   AUTH, CLIENT SETNAME
 *     -ERR ...\r\n                              a refusal
 *     *3\r\n$9\r\nsubscribe\r\n$4\r\nchan\r\n:1\r\n    each channel subscribed
 *     *3\r\n$7\r\nmessage\r\n$4\r\nchan\r\n$5\r\nhello\r\n   a publish
 *     *2\r\n$4\r\npong\r\n$0\r\n\r\n               PING while subscribed
 *
 * Only what such a connection is sent is read: simple strings, errors,
 * integers, bulk strings, and flat arrays of those.
 */
import { startsWith } from '../core/bytes.js';

/** One reply, valid only during the call that hands it over: `buf` is the chunk, the parts are ranges of it. */
export class RespReply {
  buf: Buffer = EMPTY;
  /** The type byte: `+`, `-`, `:`, `$` or `*`. */
  type = 0;
  /** Parts: one for a non-array (its text, or the bulk's bytes), an array's elements otherwise; a null bulk is start = end = -1. */
  count = 0;
  readonly starts: number[] = [];
  readonly ends: number[] = [];

  /** Whether part `i` holds exactly `ascii`'s bytes. */
  is(i: number, ascii: Buffer): boolean {
    const start = this.starts[i]!;
    const end = this.ends[i]!;
    return end - start === ascii.length && startsWith(this.buf, start, end, ascii);
  }

  text(i: number): string {
    return this.buf.toString('utf8', this.starts[i]!, this.ends[i]!);
  }
}

const EMPTY = Buffer.alloc(0);
const CR = 0x0d;
/** More elements than any push a subscriber is sent: a reply this long is not one. */
const MAX_PARTS = 16;
/** Longer than Redis's own proto-max-bulk-len default (512 MB) is not a reply. */
const MAX_LENGTH = 512 * 1024 * 1024;

/** Bytes of a new chunk first joined to a reply begun before it: a push's headers and more. */
const JOIN_BYTES = 256;

/** The reply runs past the chunk: no offset, and no length a header holds (a null bulk's is -1). */
const INCOMPLETE = -Infinity;

export class RespReader {
  private readonly reply = new RespReply();
  /** The start of an incomplete reply and the chunks after it. */
  private rest: Buffer[] = [];
  private restBytes = 0;
  /** How many bytes the incomplete reply needs at least, when its lengths said so. */
  private need = 0;
  /** Where the reply being read starts, and where its last header ended. */
  private start = 0;
  private pos = 0;

  constructor(private readonly onReply: (reply: RespReply) => void) {}

  /** Reads the replies `chunk` completes; throws on bytes that are not RESP2 (the connection is then unusable). */
  feed(chunk: Buffer): void {
    let at = this.restBytes > 0 ? this.completeRest(chunk) : 0;
    if (at === INCOMPLETE) return;
    while (at < chunk.length) {
      this.need = 0;
      const end = this.parse(chunk, at);
      if (end === INCOMPLETE) {
        this.keep(chunk.subarray(at));
        return;
      }
      this.onReply(this.reply);
      at = end;
    }
  }

  /**
   * The reply begun in earlier chunks, joined with as few of `chunk`'s bytes
   * as it needs (joining the whole chunk would copy every byte once more):
   * where `chunk`'s own replies start, or INCOMPLETE.
   */
  private completeRest(chunk: Buffer): number {
    const before = this.restBytes;
    let take = Math.min(chunk.length, Math.max(this.need - before, JOIN_BYTES));
    for (;;) {
      if (before + chunk.length < this.need) {
        this.keep(chunk);
        return INCOMPLETE;
      }
      const joined = Buffer.concat([...this.rest, chunk.subarray(0, take)], before + take);
      this.need = 0;
      const end = this.parse(joined, 0);
      if (end !== INCOMPLETE) {
        this.reset();
        this.onReply(this.reply);
        return end - before;
      }
      if (take === chunk.length) {
        this.rest = [];
        this.restBytes = 0;
        this.keep(joined);
        return INCOMPLETE;
      }
      take = Math.min(chunk.length, Math.max(this.need - before, 2 * take));
    }
  }

  /** The start of a reply the bytes so far do not complete. */
  private keep(part: Buffer): void {
    this.rest.push(part);
    this.restBytes += part.length;
    this.need = Math.max(this.need, this.restBytes + 1);
  }

  /** Forgets a partial reply (a new connection starts clean). */
  reset(): void {
    this.rest = [];
    this.restBytes = 0;
    this.need = 0;
  }

  /** The reply at `at` into this.reply; its end, or INCOMPLETE. */
  private parse(buf: Buffer, at: number): number {
    const r = this.reply;
    this.start = at;
    r.buf = buf;
    r.type = buf[at]!;
    if (r.type !== 0x2a /* * */) {
      r.count = 1;
      return this.part(buf, at, 0);
    }
    const n = this.header(buf, at + 1);
    if (n === INCOMPLETE) return INCOMPLETE;
    if (n < 0 || n > MAX_PARTS) throw new Error(`an array of ${n} in a subscriber's reply`);
    r.count = n;
    let next = this.pos;
    for (let i = 0; i < n; i++) {
      if (next >= buf.length) return INCOMPLETE;
      const t = buf[next]!;
      if (t === 0x2a) throw new Error('a nested array in a subscriber\'s reply');
      next = this.part(buf, next, i);
      if (next === INCOMPLETE) return INCOMPLETE;
    }
    return next;
  }

  /** One non-array part at `at` into slot `i`; its end, or INCOMPLETE. */
  private part(buf: Buffer, at: number, i: number): number {
    const r = this.reply;
    const t = buf[at]!;
    if (t === 0x24 /* $ */) {
      const length = this.header(buf, at + 1);
      if (length === INCOMPLETE) return INCOMPLETE;
      const start = this.pos;
      if (length === -1) {
        r.starts[i] = -1;
        r.ends[i] = -1;
        return start;
      }
      if (length < 0 || length > MAX_LENGTH) throw new Error(`a bulk string of ${length} bytes`);
      const end = start + length;
      if (end + 2 > buf.length) {
        this.need = end + 2 - this.start;
        return INCOMPLETE;
      }
      r.starts[i] = start;
      r.ends[i] = end;
      return end + 2;
    }
    if (t === 0x2b /* + */ || t === 0x2d /* - */ || t === 0x3a /* : */) {
      const cr = buf.indexOf(CR, at + 1);
      if (cr === -1 || cr + 1 >= buf.length) return INCOMPLETE;
      r.starts[i] = at + 1;
      r.ends[i] = cr;
      return cr + 2;
    }
    throw new Error(`a reply of type ${JSON.stringify(String.fromCharCode(t))}`);
  }

  /** The signed decimal after a type byte, up to CRLF; this.pos is past the CRLF. INCOMPLETE when the CRLF has not come. */
  private header(buf: Buffer, from: number): number {
    let i = from;
    let negative = false;
    if (buf[i] === 0x2d) {
      negative = true;
      i++;
    }
    let n = 0;
    let digits = 0;
    for (; i < buf.length; i++) {
      const c = buf[i]!;
      if (c === CR) break;
      const d = c - 0x30;
      if (d < 0 || d > 9 || ++digits > 10) throw new Error('a length that is not a number');
      n = n * 10 + d;
    }
    if (i + 1 >= buf.length) return INCOMPLETE;
    if (digits === 0 || buf[i + 1] !== 0x0a) throw new Error('a length that is not a number');
    this.pos = i + 2;
    return negative ? -n : n;
  }
}

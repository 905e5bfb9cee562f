/**
 * The part of Node's Buffer that the client core uses (src/core: line
 * scanner, command codec, ring queue, row batches), for the browser bundle:
 * esbuild injects it where the core names `Buffer` and maps `node:buffer`
 * here (src/browser/build.ts). A Uint8Array subclass, so `subarray` views
 * stay Buffers and share memory as Node's do.
 */

const utf8Decoder = new TextDecoder('utf-8');
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

type Encoding = 'utf8' | 'utf-8' | 'latin1' | 'binary' | 'ascii';

export class Buffer extends Uint8Array {
  /* eslint-disable @typescript-eslint/no-explicit-any */
  static override from(value: any, encodingOrOffset?: any, length?: any): any {
    if (typeof value === 'string') return Buffer.fromString(value, (encodingOrOffset as Encoding | undefined) ?? 'utf8');
    if (value instanceof ArrayBuffer) {
      // As Node: a view of the ArrayBuffer, not a copy.
      const offset = (encodingOrOffset as number | undefined) ?? 0;
      return new Buffer(value, offset, (length as number | undefined) ?? value.byteLength - offset);
    }
    const source = value as ArrayLike<number>;
    const out = new Buffer(source.length);
    out.set(source);
    return out;
  }

  static alloc(size: number): Buffer {
    return new Buffer(size);
  }

  static allocUnsafe(size: number): Buffer {
    return new Buffer(size);
  }

  static allocUnsafeSlow(size: number): Buffer {
    return new Buffer(size);
  }

  static isBuffer(value: unknown): value is Buffer {
    return value instanceof Buffer;
  }

  static byteLength(text: string): number {
    return utf8Encoder.encode(text).length;
  }

  static concat(list: readonly Uint8Array[], totalLength?: number): Buffer {
    const total = totalLength ?? list.reduce((n, b) => n + b.length, 0);
    const out = new Buffer(total);
    let at = 0;
    for (const b of list) {
      if (at >= total) break;
      const part = at + b.length > total ? b.subarray(0, total - at) : b;
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  /** A view of `bytes` as a Buffer, no copy. */
  static view(bytes: Uint8Array): Buffer {
    return new Buffer(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength);
  }

  private static fromString(text: string, encoding: Encoding): Buffer {
    if (encoding === 'latin1' || encoding === 'binary' || encoding === 'ascii') {
      const out = new Buffer(text.length);
      for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
      return out;
    }
    return Buffer.view(utf8Encoder.encode(text));
  }

  override toString(encoding: Encoding = 'utf8', start = 0, end = this.length): string {
    const part = this.subarray(Math.max(0, start), Math.min(this.length, end));
    if (encoding === 'latin1' || encoding === 'binary' || encoding === 'ascii') {
      let s = '';
      for (let i = 0; i < part.length; i++) s += String.fromCharCode(part[i]!);
      return s;
    }
    return utf8Decoder.decode(part);
  }

  /** Writes `text` as UTF-8 at `offset`; returns the bytes written. */
  write(text: string, offset = 0): number {
    return utf8Encoder.encodeInto(text, this.subarray(offset)).written;
  }

  copy(target: Uint8Array, targetStart = 0, sourceStart = 0, sourceEnd = this.length): number {
    const part = this.subarray(sourceStart, Math.min(sourceEnd, sourceStart + (target.length - targetStart)));
    target.set(part, targetStart);
    return part.length;
  }

  equals(other: Uint8Array): boolean {
    if (other.length !== this.length) return false;
    for (let i = 0; i < this.length; i++) if (this[i] !== other[i]) return false;
    return true;
  }
}

export function isUtf8(bytes: Uint8Array): boolean {
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/**
 * The client core's ClientTransport (src/core/client-transport.ts) over a
 * browser WebSocket in text mode: each text message from the gateway is
 * whole lines, handed to the core as bytes; each write goes as one text
 * message. Works with any WHATWG-style WebSocket (the browser's, or `ws` in
 * Node for tests).
 */
import type { ClientTransport, TransportEvents, TransportFactory } from '../core/client-transport.js';

/** The WebSocket surface used here (a browser's WebSocket has it). */
export interface WebSocketLike {
  readonly readyState: number;
  readonly bufferedAmount: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface WsTransportOptions {
  url: string;
  /** The WebSocket class (default: globalThis.WebSocket). */
  WebSocket?: WebSocketConstructor;
  /** Give up on a connect that has not opened by then (default 10000 ms). */
  connectTimeoutMs?: number;
  /** After close(): report the close if the socket has not finished closing by then (default 2000 ms). */
  closeTimeoutMs?: number;
  /** Above this many bytes buffered, writes report backpressure (default 1 MiB). */
  highWaterBytes?: number;
}

const OPEN = 1;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function wsClientTransport(options: WsTransportOptions): TransportFactory {
  return () => new WsClientTransport(options);
}

export class WsClientTransport implements ClientTransport {
  private ws: WebSocketLike | null = null;
  private events: TransportEvents | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private drainTimer: ReturnType<typeof setInterval> | null = null;
  private reason = 'connection closed';

  constructor(private readonly options: WsTransportOptions) {}

  connect(events: TransportEvents): void {
    this.events = events;
    const Ctor = this.options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (Ctor === undefined) {
      this.finish('no WebSocket in this environment');
      return;
    }
    let ws: WebSocketLike;
    try {
      ws = new Ctor(this.options.url, ['replication']);
    } catch (err) {
      this.finish(err instanceof Error ? err.message : String(err));
      return;
    }
    this.ws = ws;
    this.timer = setTimeout(() => {
      this.reason = 'connect timed out';
      ws.close();
      this.finish(this.reason);
    }, this.options.connectTimeoutMs ?? 10_000);
    ws.onopen = () => {
      this.clearTimer();
      events.open();
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      const data = event.data;
      // The core keeps views of what it is given: a fresh Uint8Array per message is its own.
      if (typeof data === 'string') events.data(toBuffer(encoder.encode(data)));
    };
    ws.onerror = () => {
      this.reason = 'WebSocket error';
    };
    ws.onclose = (event) => {
      if (event.code !== 1000 && event.code !== 1005) this.reason = `closed (${event.code}${event.reason ? ` ${event.reason}` : ''})`;
      else if (this.reason === 'connection closed') this.reason = 'closed by the server';
      this.finish(this.reason);
    };
  }

  write(chunks: Buffer[]): boolean {
    const ws = this.ws;
    if (ws === null || ws.readyState !== OPEN) return false;
    let text = '';
    for (const c of chunks) text += decoder.decode(c);
    ws.send(text);
    const ok = ws.bufferedAmount < (this.options.highWaterBytes ?? 1024 * 1024);
    // Browsers have no drain event: poll until the buffer empties.
    if (!ok && this.drainTimer === null) {
      this.drainTimer = setInterval(() => {
        if (this.ws === null || this.ws.bufferedAmount < (this.options.highWaterBytes ?? 1024 * 1024)) {
          if (this.drainTimer !== null) clearInterval(this.drainTimer);
          this.drainTimer = null;
          if (this.ws !== null) this.events?.drain();
        }
      }, 20);
    }
    return ok;
  }

  close(): void {
    const ws = this.ws;
    if (ws === null) return;
    ws.close(1000);
    this.clearTimer();
    this.timer = setTimeout(() => this.finish(this.reason), this.options.closeTimeoutMs ?? 2000);
  }

  /** Reports the close once and lets go of the socket. */
  private finish(reason: string): void {
    this.clearTimer();
    if (this.drainTimer !== null) clearInterval(this.drainTimer);
    this.drainTimer = null;
    const ws = this.ws;
    if (ws !== null) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      // A socket given up while connecting reports an error after this; `ws` in Node throws one nobody listens to.
      ws.onerror = ignoreError;
      this.ws = null;
    }
    const events = this.events;
    this.events = null;
    events?.close(reason);
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

function ignoreError(): void {}

/** A Uint8Array as the core's Buffer type: in the bundle, Buffer is the shim (a Uint8Array subclass). */
function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

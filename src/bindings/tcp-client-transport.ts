/**
 * The replication client's ClientTransport over node:net: Nagle off (the
 * protocol is small lines both ways), writes of several chunks corked into
 * one, the write return value passed up so callers wait for 'drain', and every
 * way a socket can end reported once as `close(reason)`.
 */
import net from 'node:net';
import type { ClientTransport, TransportEvents, TransportFactory } from '../core/client-transport.js';

export interface TcpClientTransportOptions {
  host: string;
  port: number;
  /** Give up on a connect that has not completed by then (default 10000 ms). */
  connectTimeoutMs?: number;
  /** After close(): destroy the socket if it has not finished closing by then (default 2000 ms). */
  closeTimeoutMs?: number;
}

export function tcpClientTransport(options: TcpClientTransportOptions): TransportFactory {
  return () => new TcpClientTransport(options);
}

export class TcpClientTransport implements ClientTransport {
  private socket: net.Socket | null = null;
  private closeTimer: NodeJS.Timeout | null = null;

  constructor(private readonly options: TcpClientTransportOptions) {}

  connect(events: TransportEvents): void {
    const socket = net.connect({ host: this.options.host, port: this.options.port, noDelay: true });
    this.socket = socket;
    let reason = 'connection closed';
    socket.setTimeout(this.options.connectTimeoutMs ?? 10_000, () => {
      reason = 'connect timed out';
      socket.destroy();
    });
    socket.once('connect', () => {
      socket.setTimeout(0);
      events.open();
    });
    socket.on('data', (chunk: Buffer) => events.data(chunk));
    socket.on('drain', () => events.drain());
    socket.on('end', () => {
      reason = 'closed by the server';
      // The server will send nothing more; nothing we still write would be acted on.
      socket.destroy();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      reason = err.code ?? err.message;
    });
    socket.once('close', () => {
      if (this.closeTimer !== null) clearTimeout(this.closeTimer);
      this.socket = null;
      events.close(reason);
    });
  }

  write(chunks: Buffer[]): boolean {
    const socket = this.socket;
    if (socket === null || socket.destroyed || !socket.writable) return false;
    if (chunks.length === 1) return socket.write(chunks[0]!);
    socket.cork();
    let ok = true;
    for (const chunk of chunks) ok = socket.write(chunk);
    socket.uncork();
    return ok;
  }

  close(): void {
    const socket = this.socket;
    if (socket === null || this.closeTimer !== null) return;
    // destroySoon: flush what is written (an ERROR line), then close without waiting for the peer.
    socket.destroySoon();
    this.closeTimer = setTimeout(() => socket.destroy(), this.options.closeTimeoutMs ?? 2000);
    this.closeTimer.unref();
  }

  pause(): void {
    this.socket?.pause();
  }

  resume(): void {
    this.socket?.resume();
  }
}

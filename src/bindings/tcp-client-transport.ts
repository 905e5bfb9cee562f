/**
 * The replication client's ClientTransport over node:net (or node:tls): Nagle
 * off (the protocol is small lines both ways), writes of several chunks corked
 * into one, the write return value passed up so callers wait for 'drain', and
 * every way a socket can end reported once as `close(reason)`. With TLS the
 * connection is open once the handshake is done and the server's certificate
 * checked; a certificate that does not check out is a close with the reason.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { ClientTransport, TransportEvents, TransportFactory } from '../core/client-transport.js';
import type { ClientTlsOptions } from './tls-files.js';

export interface TcpClientTransportOptions {
  host: string;
  port: number;
  /** Connect with TLS: `true` trusts the system's CAs; an object adds a CA, a client certificate, a server name. */
  tls?: true | ClientTlsOptions;
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
    const { host, port, tls: tlsOptions } = this.options;
    const socket =
      tlsOptions === undefined
        ? net.connect({ host, port, noDelay: true })
        : tls.connect({ host, port, ...(tlsOptions === true ? {} : tlsOptions) });
    socket.setNoDelay(true);
    this.socket = socket;
    let reason = 'connection closed';
    socket.setTimeout(this.options.connectTimeoutMs ?? 10_000, () => {
      reason = 'connect timed out';
      socket.destroy();
    });
    // Open once bytes can flow: after the TCP connect, or the TLS handshake and the certificate check.
    socket.once(tlsOptions === undefined ? 'connect' : 'secureConnect', () => {
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

/**
 * node:net (or, with TLS, node:tls) edge of the hub: each accepted socket
 * becomes a ServerConnection. A TLS listener hands a socket over once its
 * handshake is done; a failed handshake (no client certificate when one is
 * required, a client that does not trust ours) never reaches the hub. Sockets are read fairly (read-turns.ts).
 */
import net from 'node:net';
import tls from 'node:tls';
import type { ReplicationHub } from '../core/hub.js';
import type { Transport } from '../core/transport.js';
import { ReadTurns } from './read-turns.js';
import { tlsServerOptions, type ServerTlsOptions } from './tls-files.js';

export interface TcpListenerOptions {
  /** Serve TLS with this certificate (and, with `ca`, require client certificates). */
  tls?: ServerTlsOptions;
  /** A TLS handshake failed: why, and the peer's HOST:PORT. */
  onTlsError?: (message: string, address: string) => void;
}

/** A TLS handshake not finished by then is dropped (node's default is 120 s). */
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

export class TcpListener {
  private readonly server: net.Server;
  /** Sockets the hub has a connection for. */
  private readonly sockets = new Set<net.Socket>();
  /** With TLS, every accepted socket from before its handshake: a shutdown drops those still shaking hands too. */
  private readonly raw = new Set<net.Socket>();
  private readonly tls: boolean;
  private readonly turns = new ReadTurns();

  constructor(
    private readonly hub: ReplicationHub,
    options: TcpListenerOptions = {},
  ) {
    this.tls = options.tls !== undefined;
    if (options.tls === undefined) {
      this.server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    } else {
      const server = tls.createServer({ ...tlsServerOptions(options.tls), handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS }, (socket) => {
        socket.setNoDelay(true);
        this.accept(socket);
      });
      server.on('tlsClientError', (err, socket) => options.onTlsError?.(err.message, `${socket.remoteAddress}:${socket.remotePort}`));
      server.on('connection', (raw: net.Socket) => {
        this.raw.add(raw);
        raw.once('close', () => this.raw.delete(raw));
      });
      this.server = server;
    }
  }

  /** New certificate (and client CA) for connections accepted from now on; open ones keep theirs. */
  setTls(options: ServerTlsOptions): void {
    if (!this.tls) throw new TypeError('this listener was started without TLS: a certificate can only replace another');
    (this.server as tls.Server).setSecureContext(tlsServerOptions(options));
  }

  listen(host: string, port: number): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(new Error(`cannot listen on ${host}:${port}: ${err.message}`));
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  address(): net.AddressInfo | null {
    return this.server.address() as net.AddressInfo | null;
  }

  /** Stops accepting; resolves when every socket has closed (the hub has already told them why). */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    // net.Server reports closed before its sockets' 'close' events: wait for those too, so the hub has forgotten them.
    await Promise.all([...this.sockets].map((s) => new Promise<void>((resolve) => s.once('close', () => resolve()))));
  }

  /** Drops every socket at once: for a shutdown that has waited long enough. */
  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
    for (const s of this.raw) s.destroy();
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    const transport: Transport = {
      write(chunks) {
        if (socket.destroyed || socket.writableEnded) return true;
        if (chunks.length === 1) return socket.write(chunks[0]!);
        // Corked writes leave as one writev.
        socket.cork();
        for (const c of chunks) socket.write(c);
        socket.uncork();
        return !socket.writableNeedDrain;
      },
      unsentBytes: () => socket.writableLength,
      end: () => socket.end(),
      destroy: () => socket.destroy(),
    };
    const conn = this.hub.accept(transport, this.tls ? 'tls' : 'tcp', `${socket.remoteAddress}:${socket.remotePort}`);
    const read = this.turns.meter(socket);
    socket.on('data', (chunk: Buffer) => {
      conn.receive(chunk);
      // A writer's bytes are rows to store and fan out (it holds the writer token): read as libuv
      // gives them, in big reads that batch the fan-out writes; everyone else takes turns.
      if (conn.role !== 'writer') read(chunk.length);
    });
    socket.on('drain', () => conn.drained());
    // 'close' always follows an error; the connection learns of it there.
    socket.on('error', () => {});
    socket.on('close', () => {
      this.sockets.delete(socket);
      conn.transportClosed();
    });
  }
}

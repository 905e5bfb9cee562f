/** node:net edge of the hub: each accepted socket becomes a ServerConnection. */
import net from 'node:net';
import type { ReplicationHub } from '../core/hub.js';
import type { Transport } from '../core/transport.js';

export class TcpListener {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly hub: ReplicationHub) {
    this.server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
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
    const conn = this.hub.accept(transport, 'tcp', `${socket.remoteAddress}:${socket.remotePort}`);
    socket.on('data', (chunk: Buffer) => conn.receive(chunk));
    socket.on('drain', () => conn.drained());
    // 'close' always follows an error; the connection learns of it there.
    socket.on('error', () => {});
    socket.on('close', () => {
      this.sockets.delete(socket);
      conn.transportClosed();
    });
  }
}

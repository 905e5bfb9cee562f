/**
 * ReplicationRelay's connection to its upstream (src/relay.ts): a
 * ReplicationClient that tells the relay when a connection opens and when it
 * is lost, sends downstream commands as they came, and whose transports are
 * watched: when the upstream last sent bytes, how many, and which transport
 * is open, so the relay can drop it (the next connection resumes from the
 * positions the relay sets with follow()).
 */
import { ReplicationClient, type ReplicationClientOptions } from './client.js';
import type { ClientTransport, TransportFactory } from './core/client-transport.js';
import type { ClientActionCommand } from './core/commands.js';

/** What the relay hears of the upstream connection's edges. */
export interface UpstreamEdges {
  /** A new transport is about to connect. */
  connecting(): void;
  /** The transport opened; the client's REPLICATEs are on their way. */
  opened(): void;
  /** The transport closed (before the client's `disconnected`). */
  lost(): void;
}

/** The bytes of every transport the factory makes. */
class TransportWatch {
  lastReceivedAt: number | null = null;
  bytesIn = 0;
  open: ClientTransport | null = null;

  constructor(
    private readonly clock: () => number,
    private readonly edges: UpstreamEdges,
  ) {}

  observe(factory: TransportFactory): TransportFactory {
    return () => {
      const inner = factory();
      this.edges.connecting();
      return {
        connect: (events) =>
          inner.connect({
            ...events,
            open: () => {
              this.open = inner;
              events.open();
            },
            data: (chunk) => {
              this.lastReceivedAt = this.clock();
              this.bytesIn += chunk.length;
              events.data(chunk);
            },
          }),
        write: (chunks) => inner.write(chunks),
        close: () => inner.close(),
        pause: () => inner.pause?.(),
        resume: () => inner.resume?.(),
      };
    };
  }
}

export class UpstreamClient extends ReplicationClient {
  private readonly watch: TransportWatch;

  constructor(
    options: ReplicationClientOptions & { transport: TransportFactory },
    private readonly edges: UpstreamEdges,
    private readonly clock: () => number,
  ) {
    const watch = new TransportWatch(clock, edges);
    super({ ...options, transport: watch.observe(options.transport) });
    this.watch = watch;
  }

  /** When the upstream last sent bytes (ms), null before any. */
  get lastReceivedAt(): number | null {
    return this.watch.lastReceivedAt;
  }

  get bytesIn(): number {
    return this.watch.bytesIn;
  }

  get connectionOpen(): boolean {
    return this.watch.open !== null;
  }

  get queuedCommands(): number {
    return this.conn.queuedCommands;
  }

  /** A downstream command as it came (JSON arguments verbatim); queued while disconnected. */
  forward(cmd: ClientActionCommand): void {
    this.conn.send(cmd, this.clock());
  }

  /** Closes the open connection; the client reconnects after its backoff. */
  dropConnection(): void {
    this.watch.open?.close();
  }

  protected override onOpen(): void {
    this.edges.opened();
  }

  protected override onDisconnected(): void {
    this.watch.open = null;
    this.edges.lost();
  }
}

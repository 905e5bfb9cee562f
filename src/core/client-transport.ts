/**
 * The byte pipe under a replication client: TCP today (src/bindings/tcp-client-transport.ts),
 * a browser WebSocket later. A transport knows nothing of lines or commands.
 * One transport object is one connection attempt; the client asks its factory
 * for a fresh one on every reconnect.
 */

export interface TransportEvents {
  /** The connection is up: the client may write. */
  open(): void;
  /**
   * Bytes arrived. The receiver owns `chunk` from now on (the transport never
   * reuses it), so views of it may be kept.
   */
  data(chunk: Buffer): void;
  /** Writes that returned false have been flushed. */
  drain(): void;
  /** The connection is gone (or never came up). Called exactly once. */
  close(reason: string): void;
}

export interface ClientTransport {
  /** Starts connecting; events arrive on `events`. */
  connect(events: TransportEvents): void;
  /** Writes the chunks in order; false when the caller should wait for `drain`. */
  write(chunks: Buffer[]): boolean;
  /** Sends what is written, then closes; the transport bounds how long that may take. */
  close(): void;
  /** Stop / restart delivering `data` (a slow consumer). Optional: a transport that cannot pause omits them. */
  pause?(): void;
  resume?(): void;
}

export type TransportFactory = () => ClientTransport;

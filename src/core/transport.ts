/** The byte pipe under one connection, implemented by each binding (TCP, WebSocket). */
export interface Transport {
  /** Writes the chunks in order, as one vectored write where the binding can. False: the peer is not keeping up; wait for the binding to report drain. */
  write(chunks: Buffer[]): boolean;
  /** Closes after what was written has been sent. */
  end(): void;
  /** Closes at once, dropping anything unsent. */
  destroy(): void;
}

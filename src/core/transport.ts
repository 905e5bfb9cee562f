/** The byte pipe under one connection, implemented by each binding (TCP, WebSocket). */
export interface Transport {
  /** Writes the chunks in order, as one vectored write where the binding can. False: the peer is not keeping up; wait for the binding to report drain. */
  write(chunks: Buffer[]): boolean;
  /** Bytes written but not yet sent: falling while blocked is write progress (a large write drains slowly, not stalled). */
  unsentBytes(): number;
  /** Closes after what was written has been sent. */
  end(): void;
  /** Closes at once, dropping anything unsent. */
  destroy(): void;
}

/**
 * The keep-alive rule of PROTOCOL.md, one for every side: the server
 * connection, the client session and the WebSocket bridge's sockets (whose
 * ping is a WebSocket ping) ask it on their sweep, each with its own times.
 *
 *     PING <ms>            when we have sent nothing for pingIntervalMs
 *     ERROR ping timeout   (and the close) when the peer has pinged, then sent nothing for more than pingTimeoutMs
 *
 * The timeout is armed only once the peer has pinged, so a person on netcat
 * is never timed out.
 */
export const DEFAULT_PING_INTERVAL_MS = 5_000;
/** Synapse 2017's ratio: silence for five ping intervals is a timeout. */
export const PING_TIMEOUT_INTERVALS = 5;
export const DEFAULT_PING_TIMEOUT_MS = PING_TIMEOUT_INTERVALS * DEFAULT_PING_INTERVAL_MS;

export interface KeepAliveTimings {
  readonly pingIntervalMs: number;
  /** Silence after which an armed peer is timed out. */
  readonly pingTimeoutMs: number;
}

export interface KeepAliveTimes {
  /** When anything last came from the peer. */
  readonly lastHeardMs: number;
  /** When we last sent the peer anything. */
  readonly lastSentMs: number;
  /** The peer's silence counts: it has pinged (and, on a client, the caller is reading). */
  readonly timeoutArmed: boolean;
}

/** What a sweep at `nowMs` owes the peer: a ping, a timeout, or nothing (null). A timeout wins over a ping. */
export type KeepAliveAction = 'ping' | 'time-out' | null;

export function keepAliveAction(nowMs: number, times: KeepAliveTimes, timings: KeepAliveTimings): KeepAliveAction {
  if (times.timeoutArmed && nowMs - times.lastHeardMs > timings.pingTimeoutMs) return 'time-out';
  if (nowMs - times.lastSentMs >= timings.pingIntervalMs) return 'ping';
  return null;
}

/**
 * Keep-alive timings of PROTOCOL.md, the same on both sides: each side sends
 * `PING` after this long without sending anything, and once the peer has
 * pinged, gives up (`ERROR ping timeout`) after five times as long in silence.
 */
export const DEFAULT_PING_INTERVAL_MS = 5_000;
export const DEFAULT_PING_TIMEOUT_MS = 5 * DEFAULT_PING_INTERVAL_MS;

/**
 * The last congestion cuts (`ERROR Failed to keep up`), kept for operators:
 * who was cut, on which stream, how much was queued and how far it had got.
 * Bounded: the oldest is forgotten past the capacity.
 */
import { subscriptionKey, type ConnectionInfo, type SlowConsumerDetails } from '../core/hub-types.js';

export interface CongestionCut {
  /** When (ms since the epoch). */
  at: number;
  connection: number;
  name: string | null;
  address: string;
  transport: string;
  /** The limit crossed: commands, bytes, or stall (no write progress). */
  limit: SlowConsumerDetails['limit'];
  /** A stream it was reading from the log when cut (null when none). */
  stream: string | null;
  queuedCommands: number;
  queuedBytes: number;
  /** The last token sent on `stream` (null when unknown). */
  lastTokenSent: number | null;
  /** The last token sent on every stream the connection followed. */
  lastTokens: Record<string, number>;
}

export const DEFAULT_CUTS_KEPT = 100;

export class CongestionLog {
  private readonly cuts: CongestionCut[] = [];

  constructor(private readonly capacity = DEFAULT_CUTS_KEPT) {}

  /** Records a cut (call it before the connection forgets its subscriptions) and returns the record. */
  record(conn: ConnectionInfo, details: SlowConsumerDetails, now: number): CongestionCut {
    const lastTokens: Record<string, number> = {};
    for (const sub of conn.subscriptions()) lastTokens[subscriptionKey(sub)] = sub.lastToken;
    const stream = details.stream ?? null;
    const cut: CongestionCut = {
      at: now,
      connection: conn.id,
      name: conn.name ?? null,
      address: conn.remoteAddress,
      transport: conn.transportKind,
      limit: details.limit,
      stream,
      queuedCommands: details.queuedCommands,
      queuedBytes: details.queuedBytes,
      lastTokenSent: stream !== null ? (lastTokens[stream] ?? null) : null,
      lastTokens,
    };
    this.cuts.push(cut);
    if (this.cuts.length > this.capacity) this.cuts.splice(0, this.cuts.length - this.capacity);
    return cut;
  }

  /** Oldest first. */
  list(): readonly CongestionCut[] {
    return this.cuts;
  }

  get size(): number {
    return this.cuts.length;
  }
}

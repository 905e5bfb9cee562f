/**
 * Subscriptions: a connection's place in each stream it reads, held by the
 * hub. A subscription reads the stream's log (catch-up) in chunks as the
 * connection's socket drains, then joins the head, where the log's
 * confirmation of each stored entry hands it the entry's bytes:
 *
 *     < REPLICATE events 40        cursorAfter(40), then read, read, ...
 *     > RDATA events 41 [...]      (the stored bytes themselves)
 *     > POSITION events 57         at the head: live from here on
 *
 * A live subscription whose connection cannot queue an entry (its socket is
 * full and the queue at its limit) falls behind instead of being cut: it
 * reads the log again from its last token, paced by the socket, and rejoins
 * the head with a POSITION as a catch-up does. Nothing is queued for it
 * meanwhile; only retention (the too-old ERROR) or the stall limit ends it.
 *
 * A log may answer a cursor or a read later (a promise): the subscription
 * waits, and a read that comes back is sent on the connection's next flush.
 */
import { tooOldReason } from './catch-up-refusal.js';
import { notPermitted, unknownStream } from './access-refusal.js';
import { v1Text } from './dialects/v1-text.js';
import { ProtocolError } from './errors.js';
import { isPending, type LogCursor, type LogEntry, type LogListener, type LogRead, type StreamLog } from './stream-log.js';
import type { Peer, SubscribeRequest } from './connection-host.js';
import type { HubEvents, SubscriptionState } from './hub-types.js';

/** Where a live subscription goes when its connection cannot take an entry: back to the log. */
export interface FallBehind {
  fallBehind(sub: Subscription): void;
}

/**
 * What a subscription reads: a declared stream, or a followed Synapse pair
 * in one of its forms (followed-streams.ts). The catch-up and live rules
 * are the same for all; the lines differ.
 */
export interface Source {
  /** The stream's name: what read lists allow and too-old ERRORs name. */
  readonly name: string;
  /** A followed Synapse pair's writer instance; null for a declared stream. */
  readonly instance: string | null;
  /** A connection holds one subscription per key (a declared stream's is its name). */
  readonly key: string;
  /** Where it reads; a followed pair's reset moves its sources to the new generation's log. */
  readonly log: StreamLog;
  readonly tooOld: 'error' | 'jump';
  /** Subscriptions at the head, receiving entries as they are stored. */
  readonly live: Set<Subscription>;
  /** The line that says a subscriber is at `token`. */
  positionLine(token: number): Buffer;
  /** The refusal of a catch-up from `token`, older than the log keeps. */
  tooOldError(token: number): ProtocolError;
  /** The log's stored lines as this source's subscribers get them (absent: as stored). */
  readonly present?: (chunks: Buffer[]) => Buffer[];
}

/**
 * A stored entry to every live subscription of `source`, as `bytes` (an
 * advance, stored without a line, as the source's POSITION).
 */
export function fanOut(source: Source, entry: LogEntry, bytes: Buffer, behind: FallBehind): void {
  if (source.live.size === 0) return;
  const token = entry.lastToken;
  const empty = entry.bytes.length === 0;
  const out = empty ? source.positionLine(token) : bytes;
  const lines = empty ? 1 : entry.lines;
  const command = empty ? 'POSITION' : 'RDATA';
  for (const sub of source.live) {
    // lastToken moves only with what was queued: a subscription that falls behind reads on after it.
    if (sub.peer.offer(out, lines, command)) sub.lastToken = token;
    else behind.fallBehind(sub);
  }
}

/** The log lost entries after `afterToken` before it could tell them: live subscribers cannot go on without a gap. */
export function failLive(source: Source, afterToken: number): void {
  for (const sub of [...source.live]) {
    source.live.delete(sub);
    sub.peer.fail(source.tooOldError(afterToken), 'too_old');
  }
}

/** One declared stream: its log, and the subscriptions at its head. Told by the log of every stored entry. */
export class StreamState implements LogListener, Source {
  /** Subscriptions at the head of this stream, receiving rows as they are stored. */
  readonly live = new Set<Subscription>();
  readonly instance = null;
  rowsWritten = 0;

  constructor(
    readonly name: string,
    readonly log: StreamLog,
    readonly tooOld: 'error' | 'jump',
    private readonly events: Partial<HubEvents>,
    private readonly behind: FallBehind,
  ) {
    log.listen(this);
  }

  get key(): string {
    return this.name;
  }

  positionLine(token: number): Buffer {
    return v1Text.encodePosition(this.name, token);
  }

  tooOldError(token: number): ProtocolError {
    return tooOld(this.name, token, this.log.oldest, this.log.head);
  }

  get liveSubscribers(): number {
    return this.live.size;
  }

  /** The log stored an entry (whoever appended it): live fan-out. */
  stored(entry: LogEntry): void {
    this.rowsWritten += entry.rows;
    fanOut(this, entry, entry.bytes, this.behind);
    this.events.written?.(this.name, entry.rows, entry.lastToken);
  }

  /**
   * The log lost entries after `afterToken` before it could tell them: live
   * subscribers cannot go on without a gap, so they get the too-old ERROR
   * (a `jump` stream, whose readers accept a jump, goes on).
   */
  gap(afterToken: number): void {
    if (this.tooOld !== 'jump') failLive(this, afterToken);
  }
}

/** A connection's place in one stream: reading the log (catch-up) or live at the head. */
export class Subscription {
  cursor: LogCursor | null = null;
  /** A log answer (a cursor or a read) is on its way. */
  waiting = false;
  /** A read that answered later, waiting for the peer's next flush; undefined when none. */
  ready: LogRead | null | undefined = undefined;
  constructor(
    readonly peer: Peer,
    readonly source: Source,
    /** Token of the last line handed to the transport for this stream. */
    public lastToken: number,
  ) {}
}

/** A connection's subscriptions, held by the hub. */
interface PeerSubscriptions {
  /** By source key. */
  readonly byKey: Map<string, Subscription>;
  /** Those still catching up, in the order they asked. */
  readonly catchUps: Subscription[];
}

/** What the subscriptions need of the hub. */
export interface SubscriptionHost {
  readonly catchUpChunkBytes: number;
  markDirty(peer: Peer): void;
  tokenAhead(peer: Peer, stream: string, token: number, head: number): void;
}

export class Subscriptions implements FallBehind {
  private readonly peers = new Map<Peer, PeerSubscriptions>();

  constructor(
    private readonly streams: ReadonlyMap<string, StreamState>,
    private readonly host: SubscriptionHost,
  ) {}

  /** A new connection: it may subscribe from now on. */
  add(peer: Peer): void {
    this.peers.set(peer, { byKey: new Map(), catchUps: [] });
  }

  /** A connection leaves: out of every stream's fan-out. */
  remove(peer: Peer): void {
    const subs = this.peers.get(peer);
    if (subs === undefined) return;
    for (const sub of subs.byKey.values()) sub.source.live.delete(sub);
    this.peers.delete(peer);
  }

  subscribe(peer: Peer, request: SubscribeRequest): void {
    const stream = this.streams.get(request.stream);
    if (!stream) throw unknownStream(request.stream);
    this.subscribeTo(peer, stream, request.token, request.readable);
  }

  /** REPLICATE of one source: from the log after `token`, or at the head; throws a ProtocolError to refuse. */
  subscribeTo(peer: Peer, source: Source, token: number | 'NOW', readable: ReadonlySet<string> | null): void {
    if (readable !== null && !readable.has(source.name)) {
      throw notPermitted('read', source.name);
    }
    const subs = this.peers.get(peer);
    if (subs === undefined) return;
    this.unsubscribe(subs, source.key);
    const log = source.log;
    const head = log.head;
    if (token === 'NOW' || token >= head) {
      // A token ahead of the head means the source went back (an in-memory
      // stream after a restart): move the worker back, as Synapse 2017 did.
      if (token !== 'NOW' && token > head) {
        this.host.tokenAhead(peer, source.key, token, head);
      }
      this.subscribeAtHead(peer, subs, source);
      return;
    }
    const cursor = log.cursorAfter(token);
    if (cursor === null) {
      if (source.tooOld === 'jump') return this.subscribeAtHead(peer, subs, source);
      throw source.tooOldError(token);
    }
    this.startCatchUp(subs, new Subscription(peer, source, token), cursor);
  }

  /** The peers holding a subscription to `source` (live or catching up). */
  subscribersOf(source: Source): Peer[] {
    const out: Peer[] = [];
    for (const [peer, subs] of this.peers) if (subs.byKey.get(source.key)?.source === source) out.push(peer);
    return out;
  }

  /**
   * `source` reads a new log (a followed pair's next generation): each of
   * its subscribers is told `positionLine(start)`, a position below what it
   * had, then reads the new log from its start.
   */
  moved(source: Source): void {
    const log = source.log;
    for (const peer of this.subscribersOf(source)) {
      const subs = this.peers.get(peer)!;
      this.unsubscribe(subs, source.key);
      if (log.head === log.oldest) {
        this.subscribeAtHead(peer, subs, source);
        continue;
      }
      peer.enqueue(source.positionLine(log.oldest), 1, 'POSITION');
      const cursor = log.cursorAfter(log.oldest);
      if (peer.open && cursor !== null) this.startCatchUp(subs, new Subscription(peer, source, log.oldest), cursor);
    }
  }

  /**
   * A live subscription whose connection could not queue an entry (told
   * while the log tells its listener, so it refuses by failing the peer,
   * never by throwing): it reads the log after the last token it queued.
   */
  fallBehind(sub: Subscription): void {
    const source = sub.source;
    source.live.delete(sub);
    const subs = this.peers.get(sub.peer);
    if (subs === undefined) return;
    const log = source.log;
    let cursor = log.cursorAfter(sub.lastToken);
    if (cursor === null && source.tooOld === 'jump') {
      // A jump stream's reader accepts a jump: the catch-up's POSITION at the head says where it landed.
      sub.lastToken = log.head;
      cursor = log.cursorAfter(log.head);
    }
    if (cursor === null) return sub.peer.fail(source.tooOldError(sub.lastToken), 'too_old');
    this.readFrom(subs, sub, cursor);
  }

  /** Makes `sub` a catch-up reading from `cursor` (or once the log answers it), after the connection's earlier ones. */
  /** A new subscription, the connection's one for its source, reading its log from `cursor`. */
  private startCatchUp(subs: PeerSubscriptions, sub: Subscription, cursor: LogCursor | Promise<LogCursor | null>): void {
    subs.byKey.set(sub.source.key, sub);
    this.readFrom(subs, sub, cursor);
  }

  private readFrom(subs: PeerSubscriptions, sub: Subscription, cursor: LogCursor | Promise<LogCursor | null>): void {
    const peer = sub.peer;
    subs.catchUps.push(sub);
    if (isPending(cursor)) {
      sub.waiting = true;
      cursor.then(
        (c) => {
          sub.waiting = false;
          if (!this.isCurrent(sub)) return;
          try {
            if (c === null) this.refuseTooOld(peer, subs, sub);
            else sub.cursor = c;
          } catch (err) {
            return peer.fail(err as ProtocolError);
          }
          this.host.markDirty(peer);
        },
        (err: unknown) => this.logFailed(sub, err),
      );
      return;
    }
    sub.cursor = cursor;
    this.host.markDirty(peer);
  }

  subscribeAll(peer: Peer, readable: ReadonlySet<string> | null): void {
    const subs = this.peers.get(peer);
    if (subs === undefined) return;
    for (const stream of this.streams.values()) {
      if (readable === null || readable.has(stream.name)) this.subscribeAtHead(peer, subs, stream);
    }
  }

  of(peer: Peer): SubscriptionState[] {
    const subs = this.peers.get(peer);
    if (subs === undefined) return [];
    return [...subs.byKey.values()].map((s) => ({
      stream: s.source.name,
      instance: s.source.instance,
      catchingUp: !s.source.live.has(s),
      lastToken: s.lastToken,
    }));
  }

  /**
   * Reads catch-ups from the logs while the peer takes bytes (after its
   * queue is written, so nothing of a stream is sent out of order). A read
   * that answers later is kept until the peer's next flush.
   */
  catchUp(peer: Peer): void {
    const subs = this.peers.get(peer);
    if (subs === undefined) return;
    const catchUps = subs.catchUps;
    while (catchUps.length > 0 && peer.open && !peer.blocked) {
      const sub = catchUps[0]!;
      if (sub.waiting) return;
      let read: LogRead | null;
      const later = sub.ready !== undefined;
      if (later) {
        read = sub.ready!;
        sub.ready = undefined;
      } else {
        const answer = sub.source.log.read(sub.cursor!, this.host.catchUpChunkBytes);
        if (isPending(answer)) {
          sub.waiting = true;
          answer.then(
            (r) => {
              sub.waiting = false;
              if (!this.isCurrent(sub)) return;
              sub.ready = r;
              this.host.markDirty(peer);
            },
            (err: unknown) => this.logFailed(sub, err),
          );
          return;
        }
        read = answer;
      }
      const source = sub.source;
      const log = source.log;
      if (read === null) {
        if (source.tooOld === 'error') {
          peer.fail(source.tooOldError(sub.lastToken), 'too_old');
          return;
        }
        // Rows it needed left retention: a jump stream's reader jumps to the head.
      } else if (read.chunks.length > 0) {
        sub.lastToken = read.lastToken;
        peer.writeOut(source.present === undefined ? read.chunks : source.present(read.chunks), read.lines, 'RDATA');
        continue;
      } else if (later) {
        // Entries stored while the read was on its way reached only live subscribers: read on.
        if (read.lastToken >= 0) sub.lastToken = read.lastToken;
        if (log.head > sub.lastToken) continue;
      }
      // At the head: POSITION, then live rows, with nothing between them to miss.
      catchUps.shift();
      sub.cursor = null;
      sub.lastToken = log.head;
      source.live.add(sub);
      peer.writeOut([source.positionLine(log.head)], 1, 'POSITION');
    }
  }

  private subscribeAtHead(peer: Peer, subs: PeerSubscriptions, source: Source): void {
    this.unsubscribe(subs, source.key);
    const head = source.log.head;
    peer.enqueue(source.positionLine(head), 1, 'POSITION');
    if (!peer.open) return;
    const sub = new Subscription(peer, source, head);
    subs.byKey.set(source.key, sub);
    source.live.add(sub);
  }

  private unsubscribe(subs: PeerSubscriptions, key: string): void {
    const sub = subs.byKey.get(key);
    if (!sub) return;
    subs.byKey.delete(key);
    sub.source.live.delete(sub);
    const i = subs.catchUps.indexOf(sub);
    if (i !== -1) subs.catchUps.splice(i, 1);
  }

  /** A cursor that answered later found the token too old. */
  private refuseTooOld(peer: Peer, subs: PeerSubscriptions, sub: Subscription): void {
    const source = sub.source;
    if (source.tooOld === 'jump') return this.subscribeAtHead(peer, subs, source);
    throw source.tooOldError(sub.lastToken);
  }

  private isCurrent(sub: Subscription): boolean {
    return sub.peer.open && this.peers.get(sub.peer)?.byKey.get(sub.source.key) === sub;
  }

  private logFailed(sub: Subscription, err: unknown): void {
    sub.waiting = false;
    if (!this.isCurrent(sub)) return;
    const reason = err instanceof Error ? err.message : String(err);
    sub.peer.fail(new ProtocolError('STORE_FAILED', `catch-up of ${sub.source.key} failed: ${reason}`));
  }
}

/** Names the stream (and a followed pair's instance), so a relay downstream knows which catch-up was refused (catch-up-refusal.ts). */
export function tooOld(stream: string, token: number, oldest: number, head: number, instance?: string): ProtocolError {
  return new ProtocolError('TOKEN_TOO_OLD', tooOldReason(stream, token, oldest, head, instance));
}

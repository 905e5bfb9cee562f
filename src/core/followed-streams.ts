/**
 * Serving the streams followed from a current Synapse deployment (serve
 * --synapse-redis): one log per (stream, writer instance) pair, holding
 * today's lines as Synapse published them (src/gateway/synapse-history.ts
 * hands each pair's log here, and again on a reset). Subscribers read them
 * through the hub's subscriptions, as declared streams are read:
 *
 *     < REPLICATE events event_persister1 1040       one pair, after 1040
 *     > RDATA events event_persister1 1041 [...]     the stored lines, byte for byte
 *     > POSITION events event_persister1 1044 1044   at the head: live from here on
 *     < REPLICATE events * NOW                       every pair of the stream, and
 *                                                    each that appears later from its start
 *     < REPLICATE typing 5                           v1 form, a stream with one writer:
 *     > RDATA typing 6 [...]                         the same rows without the instance
 *     > POSITION typing 6
 *
 * A reset (the pair's next generation) moves its subscribers to the new log
 * with a POSITION at its start, lower than where they were: in today's
 * dialect that is how a writer's restart is told.
 */
import { notPermitted } from './access-refusal.js';
import { encodeTodayPosition } from './dialects/synapse-today.js';
import { v1Text } from './dialects/v1-text.js';
import { ProtocolError } from './errors.js';
import type { LogEntry, StreamLog } from './stream-log.js';
import { pairKey } from './synapse-name.js';
import { failLive, fanOut, tooOld, type FallBehind, type Source, type Subscription, type Subscriptions } from './subscriptions.js';
import type { Peer, SubscribeRequest } from './connection-host.js';

/** One pair seen in one form: today's lines as stored, or v1 lines (the instance word dropped); it reads the pair's current log. */
class PairForm implements Source {
  readonly live = new Set<Subscription>();
  readonly tooOld = 'error';
  readonly present: ((chunks: Buffer[]) => Buffer[]) | undefined;

  constructor(
    private readonly pair: FollowedPair,
    readonly v1: boolean,
  ) {
    if (v1) {
      const drop = pair.dropInstance;
      this.present = (chunks) => chunks.map(drop);
    }
  }

  get name(): string {
    return this.pair.stream;
  }

  get instance(): string {
    return this.pair.instance;
  }

  get log(): StreamLog {
    return this.pair.log;
  }

  /** A v1 form is the stream's only one (a single writer); today's forms are one per pair. */
  get key(): string {
    return this.v1 ? this.name : pairKey(this.name, this.instance);
  }

  positionLine(token: number): Buffer {
    return this.v1 ? v1Text.encodePosition(this.name, token) : encodeTodayPosition(this.name, this.instance, token, token);
  }

  tooOldError(token: number): ProtocolError {
    return tooOld(this.name, token, this.log.oldest, this.log.head, this.instance);
  }
}

/** A (stream, instance) pair: the listener of its current log, fanning each stored entry out to both forms. */
class FollowedPair {
  /** Today's row lines of this pair as v1 lines, for both live entries and catch-up chunks. */
  readonly dropInstance: (bytes: Buffer) => Buffer;
  readonly today: PairForm;
  /** Made when a v1 subscriber first asks for the stream, while it has this one writer. */
  v1: PairForm | null = null;

  constructor(
    readonly stream: string,
    readonly instance: string,
    public log: StreamLog,
    private readonly behind: FallBehind,
  ) {
    this.dropInstance = instanceDropper(stream, instance);
    this.today = new PairForm(this, false);
    this.listenTo(log);
  }

  /** The pair's next generation: its forms read `log` from now on. */
  replace(log: StreamLog): void {
    this.log = log;
    this.listenTo(log);
  }

  v1Form(): PairForm {
    return (this.v1 ??= new PairForm(this, true));
  }

  private listenTo(log: StreamLog): void {
    // An earlier generation's log may still confirm appends in flight: only the current one is heard.
    log.listen({
      stored: (entry) => {
        if (this.log === log) this.stored(entry);
      },
      gap: (afterToken) => {
        if (this.log !== log) return;
        failLive(this.today, afterToken);
        if (this.v1 !== null) failLive(this.v1, afterToken);
      },
    });
  }

  private stored(entry: LogEntry): void {
    fanOut(this.today, entry, entry.bytes, this.behind);
    const v1 = this.v1;
    // Transcoded once for every v1 subscriber.
    if (v1 !== null && v1.live.size > 0) fanOut(v1, entry, entry.bytes.length === 0 ? entry.bytes : this.dropInstance(entry.bytes), this.behind);
  }
}

/** The transport kind of a binary (MessagePack) WebSocket connection: its frames are translations of v1 lines only. */
export const MSGPACK_TRANSPORT = 'ws-msgpack';

export class FollowedStreams {
  private readonly byStream = new Map<string, Map<string, FollowedPair>>();
  /** Connections that asked `REPLICATE <stream> * ...`: each instance that appears later is theirs too, from its start. */
  private readonly wildcards = new Map<string, Map<Peer, ReadonlySet<string> | null>>();

  constructor(private readonly subscriptions: Subscriptions) {}

  /** Whether `stream` has a pair here (a v1 REPLICATE of it is served from the pair's log). */
  has(stream: string): boolean {
    return this.byStream.has(stream);
  }

  /** A pair's log is there: a new pair, or its next generation (a reset), whose subscribers move to it. */
  pairLog(stream: string, instance: string, log: StreamLog): void {
    let pairs = this.byStream.get(stream);
    if (pairs === undefined) this.byStream.set(stream, (pairs = new Map()));
    const known = pairs.get(instance);
    if (known !== undefined) {
      if (known.log === log) return;
      known.replace(log);
      this.subscriptions.moved(known.today);
      if (known.v1 !== null) this.subscriptions.moved(known.v1);
      return;
    }
    const pair = new FollowedPair(stream, instance, log, this.subscriptions);
    pairs.set(instance, pair);
    if (pairs.size > 1) this.refuseV1Readers(stream, pairs);
    for (const [peer, readable] of this.wildcards.get(stream) ?? []) {
      if (!peer.open) continue;
      try {
        this.subscriptions.subscribeTo(peer, pair.today, log.oldest, readable);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        peer.fail(err);
      }
    }
  }

  /** `REPLICATE <stream> <instance|*> <token|NOW>`; throws a ProtocolError to refuse. */
  subscribe(peer: Peer, request: SubscribeRequest & { readonly instance: string }): void {
    const { stream, instance, readable } = request;
    if (peer.transportKind === MSGPACK_TRANSPORT) throw todayNotInFrames(stream);
    const pairs = this.byStream.get(stream);
    if (instance === '*') {
      // Synapse makes pairs lazily: a stream with no writer yet is waited for, not refused.
      if (readable !== null && !readable.has(stream)) throw notPermitted('read', stream);
      let waiting = this.wildcards.get(stream);
      if (waiting === undefined) this.wildcards.set(stream, (waiting = new Map()));
      waiting.set(peer, readable);
      for (const name of [...(pairs?.keys() ?? [])].sort()) {
        const pair = pairs!.get(name)!;
        this.subscriptions.subscribeTo(peer, pair.today, fromToken(request.token, pair.log), readable);
      }
      return;
    }
    if (pairs === undefined) throw unknownFollowedStream(stream, [...this.byStream.keys()].sort());
    const pair = pairs.get(instance);
    if (pair === undefined) throw unknownInstance(stream, instance, [...pairs.keys()].sort());
    this.subscriptions.subscribeTo(peer, pair.today, fromToken(request.token, pair.log), readable);
  }

  /** `REPLICATE <stream> <token|NOW>` of a followed stream (not a declared one): v1 lines, while it has one writer. */
  subscribeV1(peer: Peer, request: SubscribeRequest): void {
    const pairs = this.byStream.get(request.stream)!;
    if (pairs.size > 1) throw multiWriter(request.stream, [...pairs.keys()].sort());
    const [pair] = pairs.values();
    this.subscriptions.subscribeTo(peer, pair!.v1Form(), request.token, request.readable);
  }

  /** The connection is gone: no later instance is subscribed for it. */
  forget(peer: Peer): void {
    for (const waiting of this.wildcards.values()) waiting.delete(peer);
  }

  /** A second writer of a stream read in v1 form: its readers cannot tell the writers apart, so they are refused. */
  private refuseV1Readers(stream: string, pairs: Map<string, FollowedPair>): void {
    const names = [...pairs.keys()].sort();
    for (const pair of pairs.values()) {
      const v1 = pair.v1;
      if (v1 === null) continue;
      pair.v1 = null;
      for (const peer of this.subscriptions.subscribersOf(v1)) peer.fail(multiWriter(stream, names));
    }
  }
}

/** `0` in the three-argument form: from the start of the gateway's history of the pair. */
function fromToken(token: number | 'NOW', log: StreamLog): number | 'NOW' {
  return token === 0 ? log.oldest : token;
}

/**
 * Today's row lines of one pair as v1 lines: `RDATA <stream> <instance> <token|batch> <row>`
 * loses its instance word, everything else byte for byte.
 */
function instanceDropper(stream: string, instance: string): (bytes: Buffer) => Buffer {
  const head = Buffer.from(`RDATA ${stream} `);
  const word = Buffer.from(`${instance} `);
  const keep = head.length;
  const skip = word.length;
  // TypedArray.set and a byte loop, not Buffer.copy/compare: measured about half the cost a row.
  return (bytes) => {
    const n = bytes.length;
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    let start = 0;
    while (start < n) {
      const lf = bytes.indexOf(0x0a, start);
      const end = lf === -1 ? n : lf + 1;
      const from = start + keep;
      for (let i = 0; i < skip; i++) {
        if (bytes[from + i] !== word[i]) throw new Error(`a stored line of ${stream}/${instance} is not that pair's RDATA: ${bytes.toString('utf8', start, Math.min(end, start + 80))}`);
      }
      out.set(head, at);
      at += keep;
      out.set(bytes.subarray(from + skip, end), at);
      at += end - from - skip;
      start = end;
    }
    return out.subarray(0, at);
  };
}

function unknownFollowedStream(stream: string, followed: string[]): ProtocolError {
  const known = followed.length === 0 ? 'none has been heard yet' : `the followed streams are ${followed.join(', ')}`;
  return new ProtocolError('UNKNOWN_STREAM', `unknown followed Synapse stream: ${stream} (${known}); REPLICATE ${stream} * <token|NOW> waits for its writers`);
}

function unknownInstance(stream: string, instance: string, instances: string[]): ProtocolError {
  return new ProtocolError(
    'UNKNOWN_STREAM',
    `stream ${stream} has no writer instance ${instance}: its instances are ${instances.join(', ')}; ask for one of them, or REPLICATE ${stream} * <token|NOW> for all`,
  );
}

function multiWriter(stream: string, instances: string[]): ProtocolError {
  return new ProtocolError(
    'BAD_ARGUMENT',
    `stream ${stream} has ${instances.length} writer instances (${instances.join(', ')}): ask for one with REPLICATE ${stream} <instance> <token> (or * for all)`,
  );
}

function todayNotInFrames(stream: string): ProtocolError {
  return new ProtocolError(
    'BAD_ARGUMENT',
    `today's Synapse lines (REPLICATE with an instance) are served as text, not MessagePack frames: open the WebSocket in text mode, or ask REPLICATE ${stream} <token|NOW> for a single-writer stream`,
  );
}

/** A three-argument REPLICATE on a gateway without --synapse-redis. */
export function followsNoDeployment(declared: string[]): ProtocolError {
  return new ProtocolError(
    'BAD_ARGUMENT',
    `this gateway follows no Synapse deployment: REPLICATE with an instance needs serve --synapse-redis; its streams (${declared.join(', ')}) are asked for with REPLICATE <stream> <token|NOW>`,
  );
}

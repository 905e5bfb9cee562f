/**
 * The client side of replication (PROTOCOL.md section 3), as one session that
 * outlives its connections: it keeps each stream's position, the syncing
 * users and the commands made while disconnected, and replays them on every
 * connect. No I/O and no timers: the binding feeds it transport events, bytes
 * and `now`, and calls `tick(now)` from one timer.
 *
 *     < AUTH <credential>                 only when configured (a v1 master would refuse it)
 *     < NAME <name>                       optional
 *     < GENERATION                        only when asked to follow it (a v1 master would refuse it)
 *     < PING <now>
 *     < REPLICATE <stream> <token|NOW>    per followed stream, from its stored token
 *     < USER_SYNC <user> start <now>      per syncing user
 *     < ...                               commands queued while disconnected
 *     > SERVER <name>                     a different expected name: < ERROR Wrong remote, close
 *     > GENERATION <id|none>              another id than the last connection's: the log started over
 *     > RDATA <stream> batch <json>       held per stream...
 *     > RDATA <stream> <token> <json>     ...and delivered with this row as one batch
 *     > POSITION <stream> <token>
 *     > PING <data> | SYNC <data> | ERROR <message>
 *
 * Synapse 2017 sends catch-up rows of one token as separate numbered lines,
 * so a lone numbered row may be followed by more with the same token. Each is
 * delivered as it comes (as v1 clients do), but the resume point stays at the
 * token before until a later token or a POSITION closes it; after a reconnect
 * the rows of that token already delivered are recognised by count and
 * skipped. Either framing thus survives a cut anywhere with nothing lost or
 * delivered twice. Synapse 2017 may also send rows at or below a POSITION
 * again right after it (its catch-up/live switch): once a stream's POSITION
 * has come on a connection, rows at or below the stored token are dropped.
 * Before it (catch-up) rows are taken as they come, since Synapse's
 * account_data catch-up is not in token order.
 *
 * Streams followed per writer instance (today's Synapse dialect, served by a
 * gateway: `REPLICATE <stream> <instance|*> <token|NOW>`) are kept by
 * src/core/instance-follows.ts, which gets their RDATA and POSITION lines.
 */
import { CLIENT_ACTION_COMMANDS, RdataCommand, type ClientActionCommand, type Command } from './commands.js';
import { v1Text } from './dialects/v1-text.js';
import { ProtocolError } from './errors.js';
import { InstanceFollows } from './instance-follows.js';
import { DEFAULT_PING_INTERVAL_MS, DEFAULT_PING_TIMEOUT_MS, keepAliveAction } from './keep-alive.js';
import { LineScanner } from './line-scanner.js';
import { RingQueue } from './ring-queue.js';
import { RowBatch, RowCollector } from './row-batch.js';

export const DEFAULT_MAX_QUEUED_COMMANDS = 1000;
export const DEFAULT_MAX_QUEUED_BYTES = 1024 * 1024;
/** A server's batch is held until its numbered row: a bound, so one that never ends cannot take all memory. */
export const DEFAULT_MAX_BATCH_BYTES = 64 * 1024 * 1024;

export interface ClientConnectionOptions {
  /** Sent as NAME on every connect. */
  name?: string;
  /** The SERVER name to insist on; anything else is `ERROR Wrong remote` and a close. */
  expectedServerName?: string;
  /** Sent as AUTH first on every connect. */
  auth?: string;
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
  /** Bounds of the queue of commands made while disconnected; past them the oldest go. */
  maxQueuedCommands?: number;
  maxQueuedBytes?: number;
  maxLineBytes?: number;
  /** `batch` rows of one stream held waiting for their numbered row, in bytes; past it: ERROR and close (default 64 MiB). */
  maxBatchBytes?: number;
  /** A writer: accept the client commands the gateway forwards to it. */
  acceptForwarded?: boolean;
  /** Ask a gateway for its log's generation on every connect (GENERATION; a v1 master would refuse it). */
  followGeneration?: boolean;
}

/** Where a session's output goes: the binding implements it. */
export interface ClientConnectionSink {
  /** Bytes for the current connection; false when the transport wants a `drain` first. */
  write(chunks: Buffer[]): boolean;
  /** The session gave up on this connection (after sending ERROR, if it had a reason): close it. */
  close(reason: ProtocolError): void;
  server(serverName: string): void;
  rows(batch: RowBatch): void;
  /**
   * The stream is at `token`; `before` is where this client was (null before
   * any token). A token below `before` means the server went back: its log
   * was wiped or replaced (a new generation), or lost rows in a crash.
   * `instance` names the writer of a stream followed per instance (a token
   * below `before` is then that writer's reset).
   */
  position(stream: string, token: number, before: number | null, instance?: string): void;
  /** The server sent ERROR (it usually closes next). */
  remoteError(message: string): void;
  sync(data: string): void;
  /** A client command the gateway forwarded to this writer. */
  forwarded(cmd: ClientActionCommand): void;
  /**
   * The server's log has another generation than on the last connection
   * (null: a log without one): its tokens started over, so the positions
   * this session resumes from belong to the old log.
   */
  generationChanged(previous: string | null, current: string | null): void;
}

type State = 'disconnected' | 'open' | 'closing';

interface StreamState {
  /** Every row up to this token was delivered: REPLICATE from here. 'NOW' until the first POSITION. */
  resumeFrom: number | 'NOW';
  /** Always REPLICATE from NOW (a writer learning the stored head). */
  fromNow: boolean;
  /** The last token handed to the caller, or null. */
  token: number | null;
  /** A lone numbered row's token, which more rows may still share (Synapse catch-up); -1 when none. */
  openToken: number;
  /** Rows of openToken delivered, over all connections. */
  openDelivered: number;
  /** Rows of openToken received on this connection: the first openDelivered of them are replays. */
  openSeen: number;
  /** POSITION came on this connection: rows are in token order from here on. */
  live: boolean;
  /** `batch` rows waiting for their numbered row. */
  batch: RowCollector;
}

export class ClientConnection {
  private readonly options: Required<Omit<ClientConnectionOptions, 'name' | 'expectedServerName' | 'auth'>> &
    Pick<ClientConnectionOptions, 'name' | 'expectedServerName' | 'auth'>;
  private readonly scanner: LineScanner;
  private readonly streams = new Map<string, StreamState>();
  /** Streams followed per writer instance (today's dialect). */
  private readonly instances: InstanceFollows;
  private readonly syncingUsers = new Set<string>();
  private readonly queue: RingQueue;
  private state: State = 'disconnected';
  private lastSentMs = 0;
  private lastReceivedMs = 0;
  private receivedPing = false;
  private readingPaused = false;
  private serverSeenNow = false;
  private wrongRemoteNow = false;
  /** Commands dropped from the full disconnected queue, over the session. */
  droppedCommands = 0;
  /** Rows received again (after a reconnect, or Synapse's repeat after a POSITION) and not delivered twice. */
  skippedReplays = 0;
  /** The generation the server last answered (null: its log has none); undefined before any answer. */
  private generationId: string | null | undefined = undefined;

  constructor(
    private readonly sink: ClientConnectionSink,
    options: ClientConnectionOptions = {},
  ) {
    this.options = {
      name: options.name,
      expectedServerName: options.expectedServerName,
      auth: options.auth,
      pingIntervalMs: options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS,
      pingTimeoutMs: options.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT_MS,
      maxQueuedCommands: options.maxQueuedCommands ?? DEFAULT_MAX_QUEUED_COMMANDS,
      maxQueuedBytes: options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES,
      maxLineBytes: options.maxLineBytes ?? 1024 * 1024,
      maxBatchBytes: options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES,
      acceptForwarded: options.acceptForwarded ?? false,
      followGeneration: options.followGeneration ?? false,
    };
    this.queue = new RingQueue(this.options.maxQueuedCommands, this.options.maxQueuedBytes);
    this.instances = new InstanceFollows(sink, this.options.maxBatchBytes);
    this.scanner = new LineScanner(
      {
        onLine: (buf, start, end) => this.onLine(buf, start, end),
        onLineError: (err) => this.fail(err),
      },
      { maxLineBytes: this.options.maxLineBytes },
    );
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** This connection saw SERVER with an acceptable name (for the backoff's notion of healthy). */
  get serverSeen(): boolean {
    return this.serverSeenNow;
  }

  /** This connection was closed because SERVER named another server. */
  get wrongRemote(): boolean {
    return this.wrongRemoteNow;
  }

  /** The server's log generation as last answered (null: none); undefined until one is (followGeneration). */
  get generation(): string | null | undefined {
    return this.generationId;
  }

  /** Commands waiting for the next connection. */
  get queuedCommands(): number {
    return this.queue.commands;
  }

  // ------------------------------------------------------------ transport events

  /** The transport opened: sends the handshake (module comment). */
  connected(now: number): void {
    this.state = 'open';
    this.receivedPing = false;
    this.serverSeenNow = false;
    this.wrongRemoteNow = false;
    this.lastReceivedMs = now;
    const out: Buffer[] = [];
    const { auth, name } = this.options;
    if (auth !== undefined) out.push(v1Text.encode({ name: 'AUTH', credential: auth }));
    if (name !== undefined) out.push(v1Text.encode({ name: 'NAME', clientName: name }));
    // Before the REPLICATEs: the answer comes ahead of their rows.
    if (this.options.followGeneration) out.push(v1Text.encode({ name: 'GENERATION' }));
    out.push(v1Text.encode({ name: 'PING', data: String(now) }));
    for (const [stream, st] of this.streams) {
      st.openSeen = 0;
      st.live = false;
      out.push(replicate(stream, st));
    }
    for (const buf of this.instances.replicates()) out.push(buf);
    for (const userId of this.syncingUsers) {
      out.push(v1Text.encode({ name: 'USER_SYNC', userId, state: 'start', lastSyncMs: now }));
    }
    for (const buf of this.queue.takeAll()) out.push(buf);
    this.writeNow(out, now);
  }

  data(chunk: Buffer, now: number): void {
    if (this.state !== 'open') return;
    this.lastReceivedMs = now;
    this.scanner.push(chunk);
  }

  /** The transport closed, whoever closed it. */
  disconnected(): void {
    this.state = 'disconnected';
    this.scanner.reset();
    // Rows of an unfinished batch were never delivered: the resume sends them again.
    for (const st of this.streams.values()) st.batch.clear();
    this.instances.disconnected();
  }

  /** Keep-alive (PROTOCOL.md, Keep-alive): PING after a quiet interval, give up after the timeout. */
  tick(now: number): void {
    if (this.state !== 'open') return;
    const due = keepAliveAction(
      now,
      { lastHeardMs: this.lastReceivedMs, lastSentMs: this.lastSentMs, timeoutArmed: this.receivedPing && !this.readingPaused },
      this.options,
    );
    if (due === 'time-out') this.fail(new ProtocolError('PING_TIMEOUT', 'ping timeout'));
    else if (due === 'ping') this.writeNow([v1Text.encode({ name: 'PING', data: String(now) })], now);
  }

  /** The caller stopped reading the transport: silence is then ours, not the server's. */
  pauseReading(): void {
    this.readingPaused = true;
  }

  resumeReading(now: number): void {
    this.readingPaused = false;
    this.lastReceivedMs = now;
  }

  // ------------------------------------------------------------ caller's commands

  /**
   * Follows `stream` from `from` (a token, or 'NOW'); without `from`, a stream
   * already followed keeps its position and a new one starts at NOW.
   * While connected the REPLICATE goes at once and replaces the old subscription.
   */
  follow(stream: string, from: number | 'NOW' | undefined, now: number): void {
    if (this.instances.has(stream)) throw mixedFollow(stream);
    let st = this.streams.get(stream);
    if (st !== undefined && from === undefined) return;
    if (st === undefined || from !== undefined) {
      st?.batch.clear();
      st = newStream(from ?? 'NOW', false);
      this.streams.set(stream, st);
    }
    if (this.state === 'open') this.writeNow([replicate(stream, st)], now);
  }

  /**
   * Follows one writer `instance` of `stream`, or every one ('*'), in
   * today's dialect (src/core/instance-follows.ts); `from` as for follow().
   */
  followInstance(stream: string, instance: string, from: number | 'NOW' | undefined, now: number): void {
    if (this.streams.has(stream)) throw mixedFollow(stream);
    const lines = this.instances.follow(stream, instance, from);
    if (lines.length > 0 && this.state === 'open') this.writeNow(lines, now);
  }

  /** Follows `stream` from NOW on every connect: the POSITION is the server's head (a writer's view). */
  followHead(stream: string, now: number): void {
    const st = newStream('NOW', true);
    this.streams.set(stream, st);
    if (this.state === 'open') this.writeNow([replicate(stream, st)], now);
  }

  /**
   * A user started or stopped syncing. Not queued while disconnected: every
   * connect announces the users syncing then, and a master forgets a lost
   * connection's users by itself.
   */
  userSync(userId: string, syncing: boolean, now: number): void {
    if (syncing) this.syncingUsers.add(userId);
    else this.syncingUsers.delete(userId);
    if (this.state === 'open') {
      this.writeNow([v1Text.encode({ name: 'USER_SYNC', userId, state: syncing ? 'start' : 'end', lastSyncMs: now })], now);
    }
  }

  /** Sends a command now, or queues it for the next connection (dropping the oldest past the bounds). */
  send(cmd: ClientActionCommand, now: number): void {
    const buf = v1Text.encode(cmd);
    if (this.state === 'open') {
      this.writeNow([buf], now);
      return;
    }
    while (!this.queue.fits(buf.length) && this.queue.length > 0) {
      this.queue.shift();
      this.droppedCommands++;
    }
    if (this.queue.push(buf)) return;
    this.droppedCommands++; // one command bigger than the whole queue
  }

  /** Raw lines (a writer's RDATA) for the open connection; false when not open or the transport is full. */
  write(chunks: Buffer[], now: number): boolean {
    if (this.state !== 'open') return false;
    return this.writeNow(chunks, now);
  }

  /** The token each followed stream has reached (the last delivery or POSITION), null before any. */
  positions(): Record<string, number | null> {
    const out: Record<string, number | null> = {};
    for (const [stream, st] of this.streams) out[stream] = st.token;
    return out;
  }

  /** Whether `stream` is followed per writer instance. */
  followsInstances(stream: string): boolean {
    return this.instances.has(stream);
  }

  /** The token each followed (stream, instance) pair has reached, per stream then instance. */
  instancePositions(): Record<string, Record<string, number | null>> {
    return this.instances.positions();
  }

  /** Sends nothing more and asks the binding to close (the caller is done). */
  close(): void {
    if (this.state === 'open') this.state = 'closing';
  }

  // ------------------------------------------------------------ input

  private onLine(buf: Buffer, start: number, end: number): void {
    if (this.state !== 'open') return; // a close is under way: the rest of the chunk is moot
    if (this.instances.size > 0 && this.instances.claims(buf, start, end)) {
      try {
        this.instances.line(buf, start, end);
      } catch (err) {
        this.fail(err as ProtocolError);
      }
      return;
    }
    let cmd: Command;
    try {
      // A writer also takes the client actions its gateway passes on; anyone else gets them as errors.
      cmd = v1Text.decode(buf, start, end, this.options.acceptForwarded ? 'gateway' : 'server');
    } catch (err) {
      this.fail(err as ProtocolError);
      return;
    }
    if (cmd instanceof RdataCommand) {
      this.onRdata(cmd, buf, start, end);
      return;
    }
    switch (cmd.name) {
      case 'SERVER':
        this.onServer(cmd.serverName);
        return;
      case 'POSITION':
        this.onPosition(cmd.stream, cmd.token);
        return;
      case 'PING':
        this.receivedPing = true;
        return;
      case 'ERROR':
        this.sink.remoteError(cmd.message);
        return;
      case 'SYNC':
        this.sink.sync(cmd.data);
        return;
      case 'GENERATION':
        this.onGeneration(cmd.id);
        return;
      default:
        // decode returns a client action only to a writer ('gateway'): the rest a server may not send.
        if (CLIENT_ACTION_COMMANDS.has(cmd.name)) this.sink.forwarded(cmd as ClientActionCommand);
        else this.fail(new ProtocolError('WRONG_DIRECTION', `${cmd.name} may not be sent by a server`));
    }
  }

  private onServer(serverName: string): void {
    const expected = this.options.expectedServerName;
    if (expected !== undefined && serverName !== expected) {
      this.wrongRemoteNow = true;
      this.fail(new ProtocolError('WRONG_REMOTE', 'Wrong remote'));
      return;
    }
    this.serverSeenNow = true;
    this.sink.server(serverName);
  }

  private onGeneration(id: string | null | undefined): void {
    if (id === undefined) {
      // The parser gives a server's GENERATION an id; the question form is a client's.
      this.fail(new ProtocolError('WRONG_DIRECTION', 'GENERATION without an id may not be sent by a server'));
      return;
    }
    const previous = this.generationId;
    this.generationId = id;
    if (previous !== undefined && previous !== id) this.sink.generationChanged(previous, id);
  }

  private onRdata(row: RdataCommand, buf: Buffer, start: number, end: number): void {
    const st = this.streams.get(row.stream);
    if (st === undefined) return; // a stream no longer followed: its rows are moot
    st.batch.add(row, buf, start, end);
    const token = row.token;
    if (token === null) {
      if (st.batch.bytes > this.options.maxBatchBytes) {
        this.fail(new ProtocolError('BATCH_TOO_LARGE', `batch of ${row.stream} over ${this.options.maxBatchBytes} bytes without its numbered row`));
      }
      return;
    }
    const framed = st.batch.length > 1;
    let skip = 0;
    if (st.live && typeof st.resumeFrom === 'number' && token <= st.resumeFrom) {
      skip = st.batch.length; // already delivered: Synapse's repeat after a POSITION
    } else if (token === st.openToken) {
      // The open token again: after a reconnect, its first rows were delivered before.
      skip = Math.min(st.batch.length, Math.max(0, st.openDelivered - st.openSeen));
      st.openSeen += st.batch.length;
      st.openDelivered += st.batch.length - skip;
      if (framed) this.closeToken(st, token);
    } else if (token > st.openToken && (st.resumeFrom === 'NOW' || token > st.resumeFrom)) {
      if (st.openToken >= 0) st.resumeFrom = st.openToken;
      if (framed) {
        this.closeToken(st, token);
      } else {
        st.openToken = token;
        st.openDelivered = 1;
        st.openSeen = 1;
      }
      st.token = token;
    }
    // Otherwise the token is behind the position (Synapse's account_data catch-up order, or
    // its duplicate at the catch-up/live switch): handed over as it came, position unchanged.
    if (skip === st.batch.length) {
      this.skippedReplays += skip;
      st.batch.clear();
      return;
    }
    this.skippedReplays += skip;
    this.sink.rows(st.batch.take(row.stream, token, skip));
  }

  private closeToken(st: StreamState, token: number): void {
    st.resumeFrom = token;
    st.openToken = -1;
    st.openDelivered = 0;
    st.openSeen = 0;
  }

  private onPosition(stream: string, token: number): void {
    const st = this.streams.get(stream);
    if (st === undefined) return;
    st.batch.clear(); // a POSITION inside a batch: the batch never completes
    const before = st.token;
    this.closeToken(st, token);
    st.live = true;
    st.token = token;
    this.sink.position(stream, token, before);
  }

  /** Says why (PROTOCOL.md, Errors: we always do), then closes. */
  private fail(err: ProtocolError): void {
    if (this.state !== 'open') return;
    this.sink.write([v1Text.encode({ name: 'ERROR', message: err.message })]);
    this.state = 'closing';
    this.sink.close(err);
  }

  private writeNow(chunks: Buffer[], now: number): boolean {
    this.lastSentMs = now;
    return this.sink.write(chunks);
  }
}

function newStream(from: number | 'NOW', fromNow: boolean): StreamState {
  return {
    resumeFrom: from,
    fromNow,
    token: from === 'NOW' ? null : from,
    openToken: -1,
    openDelivered: 0,
    openSeen: 0,
    live: false,
    batch: new RowCollector(),
  };
}

function mixedFollow(stream: string): TypeError {
  return new TypeError(`stream ${stream} is followed both as a v1 stream and per writer instance: choose one (follow or followInstance)`);
}

function replicate(stream: string, st: StreamState): Buffer {
  return v1Text.encode({ name: 'REPLICATE', stream, token: st.fromNow ? 'NOW' : st.resumeFrom });
}

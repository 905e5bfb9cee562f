/**
 * One connection on the master side, from accept to close (PROTOCOL.md
 * section 3; writers from section 4). No I/O: bytes come in through
 * `receive`, go out through a Transport, and time is the hub's clock.
 *
 *     > SERVER localhost                     (on open)
 *     > PING 1490197665618
 *     < NAME synapse.app.appservice
 *     < REPLICATE events 1                   catch-up from the log, then
 *     > RDATA events 2 [...]                 ...
 *     > POSITION events 5                    and the live head from here on
 *     < USER_SYNC @a:hs start 1490197670513  (forwarded to writers)
 *     < AUTH <writer secret>                 (a writer may then send RDATA/POSITION)
 */
import {
  encodeCommand,
  encodePosition,
  encodeError,
  parseCommand,
  parseRdataRoute,
  isRdataLine,
  assertNever,
  RdataRoute,
  type Command,
  type PositionCommand,
  type ReplicateCommand,
  type UserSyncCommand,
} from './commands.js';
import { ProtocolError } from './errors.js';
import { LineScanner, type LineSink } from './line-scanner.js';
import { RingQueue } from './ring-queue.js';
import type { LogCursor } from './stream-log.js';
import type { Transport } from './transport.js';
import type { ConnectionInfo, ConnectionRole, DisconnectReason } from './hub-types.js';
import type { ReplicationHub, StreamState } from './hub.js';

const LF = 0x0a;

interface Subscription {
  stream: StreamState;
  /** Set while catching up from the log; null once live at the head. */
  cursor: LogCursor | null;
  /** Token of the last line handed to the transport for this stream. */
  lastToken: number;
}

/** A writer's run of contiguous lines of one stream in one chunk: stored as one slice. */
interface WriterRun {
  stream: StreamState;
  buf: Buffer;
  start: number;
  end: number;
  /** End of the last complete group: a trailing `batch` tail waits for its numbered row. */
  committedEnd: number;
  committedLines: number;
  lines: number;
  firstToken: number;
  lastToken: number;
}

/** `batch` lines of a writer whose numbered row has not come yet. */
interface PendingBatch {
  parts: Buffer[];
  lines: number;
}

type State = 'open' | 'closing' | 'closed';

export class ServerConnection implements ConnectionInfo, LineSink {
  name: string | undefined;
  role: ConnectionRole = 'anonymous';
  readonly connectedAt: number;
  private state: State = 'open';
  private readonly scanner: LineScanner;
  private readonly queue: RingQueue;
  /** The transport asked us to wait for drain. */
  private blocked = false;
  private readonly subs = new Map<string, Subscription>();
  private readonly catchUps: Subscription[] = [];
  /** Streams this connection may read / write; null: all. */
  private readable: ReadonlySet<string> | null = null;
  private writable: ReadonlySet<string> | null = null;
  /** Users syncing on this connection, with their last sync time. */
  readonly syncingUsers = new Map<string, number>();
  private run: WriterRun | null = null;
  /** Reused for every RDATA line a writer sends. */
  private readonly route = new RdataRoute();
  private readonly pendingBatches = new Map<string, PendingBatch>();
  private peerPinged = false;
  /** When the peer last sent anything (health: a stalled writer shows here). */
  lastReceivedAt: number;
  private lastSentAt: number;
  private lastProgressAt: number;
  private closingSince = 0;

  constructor(
    private readonly hub: ReplicationHub,
    private readonly transport: Transport,
    readonly id: number,
    readonly transportKind: string,
    readonly remoteAddress: string,
  ) {
    const opts = hub.options;
    const now = opts.clock();
    this.connectedAt = now;
    this.lastReceivedAt = now;
    this.lastSentAt = now;
    this.lastProgressAt = now;
    this.scanner = new LineScanner(this, { maxLineBytes: opts.maxLineBytes });
    this.queue = new RingQueue(opts.maxQueueCommands, opts.maxQueueBytes);
    this.enqueue(encodeCommand({ name: 'SERVER', serverName: opts.serverName }), 1);
    this.enqueue(encodeCommand({ name: 'PING', data: String(now) }), 1);
  }

  get open(): boolean {
    return this.state === 'open';
  }

  get queuedCommands(): number {
    return this.queue.commands;
  }

  get queuedBytes(): number {
    return this.queue.bytes;
  }

  subscriptions(): { stream: string; catchingUp: boolean; lastToken: number }[] {
    return [...this.subs.values()].map((s) => ({
      stream: s.stream.name,
      catchingUp: s.cursor !== null,
      lastToken: s.lastToken,
    }));
  }

  // ------------------------------------------------------------ input

  /** Bytes from the peer. */
  receive(chunk: Buffer): void {
    if (this.state !== 'open') return;
    this.lastReceivedAt = this.hub.options.clock();
    this.scanner.push(chunk);
    // A run never outlives its chunk: store it now so rows go out this tick.
    this.endRun();
  }

  onLine(buf: Buffer, start: number, end: number): void {
    if (this.state !== 'open') return;
    let cmd: Command;
    try {
      if (this.role === 'writer' && isRdataLine(buf, start, end)) {
        // Most of a writer's lines: routed without making a command object.
        const route = this.route;
        parseRdataRoute(buf, start + 6, end, route);
        this.hub.commandsIn.RDATA++;
        this.writeRow(route.stream, route.token, buf, start, end);
        return;
      }
      cmd = parseCommand(buf, start, end, this.role === 'writer' ? 'writer' : 'client');
      this.hub.commandsIn[cmd.name]++;
      if (this.hub.options.requireAuth && this.role === 'anonymous' && cmd.name !== 'PING' && cmd.name !== 'AUTH') {
        throw new ProtocolError('AUTH_REQUIRED', `authentication required: send AUTH <token> before ${cmd.name}`);
      }
      this.handle(cmd, buf, start, end);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.fail(err);
    }
  }

  onLineError(err: ProtocolError): void {
    this.fail(err);
  }

  private handle(cmd: Command, buf: Buffer, start: number, end: number): void {
    switch (cmd.name) {
      case 'RDATA':
        return this.writeRow(cmd.stream, cmd.token, buf, start, end);
      case 'POSITION':
        return this.writePosition(cmd);
      case 'PING':
        this.peerPinged = true;
        return;
      case 'ERROR':
        this.hub.options.events.remoteError?.(this, cmd.message);
        return;
      case 'NAME':
        this.name = cmd.clientName;
        return;
      case 'AUTH':
        return this.authenticate(cmd.credential);
      case 'REPLICATE':
        return this.replicate(cmd);
      case 'USER_SYNC':
        this.userSync(cmd);
        return this.hub.clientCommand(this, cmd);
      case 'FEDERATION_ACK':
      case 'REMOVE_PUSHER':
      case 'INVALIDATE_CACHE':
      case 'USER_IP':
        return this.hub.clientCommand(this, cmd);
      case 'SERVER':
      case 'SYNC':
        // The parser refuses these from a client; kept for exhaustiveness.
        throw new ProtocolError('WRONG_DIRECTION', `${cmd.name} may not be sent by a client`);
      default:
        return assertNever(cmd);
    }
  }

  private authenticate(secret: string): void {
    if (this.role !== 'anonymous') throw new ProtocolError('BAD_ARGUMENT', `already authenticated as a ${this.role}`);
    const credential = this.hub.options.credentials.find((c) => c.secret === secret);
    if (!credential) throw new ProtocolError('AUTH_FAILED', 'AUTH failed: the token matches no configured credential');
    this.role = credential.role;
    const streams = credential.streams ? new Set(credential.streams) : null;
    if (credential.role === 'writer') {
      this.writable = streams;
      this.hub.addWriter(this);
    } else {
      this.readable = streams;
    }
  }

  private replicate(cmd: ReplicateCommand): void {
    if (cmd.stream === 'ALL') {
      for (const stream of this.hub.streams()) if (this.mayRead(stream.name)) this.subscribeAtHead(stream);
      return;
    }
    const stream = this.hub.stream(cmd.stream);
    if (!stream) throw new ProtocolError('UNKNOWN_STREAM', `unknown stream: ${cmd.stream}`);
    if (!this.mayRead(stream.name)) throw new ProtocolError('NOT_PERMITTED', `not permitted to read stream ${stream.name}`);
    this.unsubscribe(stream.name);
    const log = stream.log;
    const head = log.head;
    if (cmd.token === 'NOW' || cmd.token >= head) {
      // A token ahead of the head means the source went back (an in-memory
      // stream after a restart): move the worker back, as Synapse 2017 did.
      if (cmd.token !== 'NOW' && cmd.token > head) this.hub.tokenAhead(this, stream.name, cmd.token, head);
      this.subscribeAtHead(stream);
      return;
    }
    const cursor = log.cursorAfter(cmd.token);
    if (cursor === null) {
      if (stream.tooOld === 'jump') return this.subscribeAtHead(stream);
      throw tooOld(stream.name, cmd.token, log.oldest, head);
    }
    const sub: Subscription = { stream, cursor, lastToken: cmd.token };
    this.subs.set(stream.name, sub);
    this.catchUps.push(sub);
    this.hub.markDirty(this);
  }

  private subscribeAtHead(stream: StreamState): void {
    this.unsubscribe(stream.name);
    const head = stream.log.head;
    this.enqueue(encodePosition(stream.name, head), 1);
    this.subs.set(stream.name, { stream, cursor: null, lastToken: head });
    stream.live.add(this);
  }

  private unsubscribe(name: string): void {
    const sub = this.subs.get(name);
    if (!sub) return;
    this.subs.delete(name);
    sub.stream.live.delete(this);
    const i = this.catchUps.indexOf(sub);
    if (i !== -1) this.catchUps.splice(i, 1);
  }

  private mayRead(stream: string): boolean {
    return this.readable === null || this.readable.has(stream);
  }

  private userSync(cmd: UserSyncCommand): void {
    if (cmd.state === 'start') {
      const known = this.syncingUsers.has(cmd.userId);
      this.syncingUsers.set(cmd.userId, cmd.lastSyncMs);
      if (!known) this.hub.userSyncing(this, cmd.userId, true, cmd.lastSyncMs);
    } else if (this.syncingUsers.delete(cmd.userId)) {
      this.hub.userSyncing(this, cmd.userId, false, cmd.lastSyncMs);
    }
  }

  // ------------------------------------------------------------ writers

  private writableStream(name: string): StreamState {
    const stream = this.hub.stream(name);
    if (!stream) throw new ProtocolError('UNKNOWN_STREAM', `unknown stream: ${name}`);
    if (this.writable !== null && !this.writable.has(name)) {
      throw new ProtocolError('NOT_PERMITTED', `not permitted to write stream ${name}`);
    }
    return stream;
  }

  /** The head as this writer has written it, counting its run not yet stored. */
  private headOf(stream: StreamState): number {
    const run = this.run;
    return run !== null && run.stream === stream && run.lastToken >= 0 ? run.lastToken : stream.log.head;
  }

  private writeRow(streamName: string, token: number | null, buf: Buffer, start: number, end: number): void {
    const stream = this.writableStream(streamName);
    if (token !== null) {
      const head = this.headOf(stream);
      if (token <= head) throw notRising(stream.name, token, head);
    }
    let run = this.run;
    // A run this line cannot extend ends first: a batch tail it holds becomes pending, which this line must join.
    if (run !== null && (run.stream !== stream || run.buf !== buf || run.end !== start)) {
      this.endRun();
      run = null;
    }
    if (this.pendingBatches.has(stream.name) || buf[end] !== LF) {
      this.writeRowApart(stream, token, lineWithLf(buf, start, end));
      return;
    }
    if (run === null) {
      run = this.run = {
        stream,
        buf,
        start,
        end: start,
        committedEnd: start,
        committedLines: 0,
        lines: 0,
        firstToken: -1,
        lastToken: -1,
      };
    }
    run.end = end + 1;
    run.lines++;
    if (token !== null) {
      if (run.firstToken < 0) run.firstToken = token;
      run.lastToken = token;
      run.committedEnd = run.end;
      run.committedLines = run.lines;
    }
  }

  /** A row that cannot extend a run (a batch spanning chunks, a CR line): stored on its own. */
  private writeRowApart(stream: StreamState, token: number | null, line: Buffer): void {
    // Ending the run first: a batch tail it holds for this stream becomes pending, and this line joins it.
    this.endRun();
    const batch = this.pendingBatches.get(stream.name) ?? { parts: [], lines: 0 };
    batch.parts.push(line);
    batch.lines++;
    if (token === null) {
      this.pendingBatches.set(stream.name, batch);
      return;
    }
    this.pendingBatches.delete(stream.name);
    const bytes = batch.parts.length === 1 ? line : Buffer.concat(batch.parts);
    this.hub.append(stream, { firstToken: token, lastToken: token, bytes, lines: batch.lines, rows: batch.lines });
  }

  /** Stores the complete groups of the current run; a trailing batch tail waits for its numbered row. */
  private endRun(): void {
    const run = this.run;
    if (run === null) return;
    this.run = null;
    if (run.committedEnd > run.start) {
      this.hub.append(run.stream, {
        firstToken: run.firstToken,
        lastToken: run.lastToken,
        bytes: run.buf.subarray(run.start, run.committedEnd),
        lines: run.committedLines,
        rows: run.committedLines,
      });
    }
    if (run.end > run.committedEnd) {
      this.pendingBatches.set(run.stream.name, {
        parts: [run.buf.subarray(run.committedEnd, run.end)],
        lines: run.lines - run.committedLines,
      });
    }
  }

  private writePosition(cmd: PositionCommand): void {
    this.endRun();
    const stream = this.writableStream(cmd.stream);
    if (this.pendingBatches.has(stream.name)) {
      throw new ProtocolError('BAD_ARGUMENT', `POSITION ${stream.name} inside a batch: a batch ends with a numbered RDATA`);
    }
    const head = stream.log.head;
    if (cmd.token < head) throw notRising(stream.name, cmd.token, head);
    if (cmd.token > head) this.hub.advance(stream, cmd.token);
  }

  // ------------------------------------------------------------ output

  /** Queues bytes holding `lines` commands; crossing a queue limit cuts the connection. */
  enqueue(bytes: Buffer, lines: number, stream?: StreamState, lastToken?: number): void {
    if (this.state !== 'open') return;
    if (stream !== undefined) {
      const sub = this.subs.get(stream.name);
      if (sub !== undefined && lastToken !== undefined) sub.lastToken = lastToken;
    }
    if (this.queue.push(bytes, lines)) {
      this.hub.markDirty(this);
      return;
    }
    if (!this.blocked) {
      // The socket is taking bytes: an entry larger than the queue's limits goes straight to it.
      this.flush();
      if (!this.blocked) {
        this.writeOut([bytes]);
        return;
      }
      if (this.queue.push(bytes, lines)) return;
    }
    this.cutSlowConsumer(this.queue.commands + lines > this.queue.maxCommands ? 'commands' : 'bytes', stream?.name);
  }

  /** Writes what is queued, then reads catch-ups from the log while the transport takes them. */
  flush(): void {
    if (this.state !== 'open' || this.blocked) return;
    if (this.queue.length > 0) this.writeOut(this.queue.takeAll());
    while (!this.blocked && this.catchUps.length > 0 && this.state === 'open') {
      const sub = this.catchUps[0]!;
      const log = sub.stream.log;
      const read = log.read(sub.cursor!, this.hub.options.catchUpChunkBytes);
      if (read === null) {
        this.fail(tooOld(sub.stream.name, sub.lastToken, log.oldest, log.head), 'too_old');
        return;
      }
      if (read.chunks.length > 0) {
        sub.lastToken = read.lastToken;
        this.writeOut(read.chunks);
        continue;
      }
      // At the head: POSITION, then live rows, with nothing between them to miss.
      this.catchUps.shift();
      sub.cursor = null;
      sub.lastToken = log.head;
      sub.stream.live.add(this);
      this.writeOut([encodePosition(sub.stream.name, log.head)]);
    }
  }

  private writeOut(chunks: Buffer[]): void {
    const now = this.hub.options.clock();
    this.lastSentAt = now;
    this.lastProgressAt = now;
    if (!this.transport.write(chunks)) this.blocked = true;
  }

  /** The transport has sent what it held and takes more. */
  drained(): void {
    this.blocked = false;
    this.lastProgressAt = this.hub.options.clock();
    if (this.state === 'open') this.flush();
  }

  // ------------------------------------------------------------ time

  /** The hub's periodic sweep: keep-alive, timeouts, stalls, hanging closes. */
  tick(now: number): void {
    const opts = this.hub.options;
    if (this.state === 'closing') {
      if (now - this.closingSince > opts.pingTimeoutMs) this.transport.destroy();
      return;
    }
    if (this.state !== 'open') return;
    if (this.peerPinged && now - this.lastReceivedAt > opts.pingTimeoutMs) {
      this.close('ping_timeout', 'ping timeout');
    } else if (this.blocked && this.queue.length > 0 && now - this.lastProgressAt > opts.maxStallMs) {
      this.cutSlowConsumer('stall');
    } else if (!this.blocked && now - this.lastSentAt >= opts.pingIntervalMs) {
      // A blocked socket has rows queued: a PING behind them would tell the peer nothing sooner.
      this.enqueue(encodeCommand({ name: 'PING', data: String(now) }), 1);
    }
  }

  // ------------------------------------------------------------ closing

  private cutSlowConsumer(limit: 'commands' | 'bytes' | 'stall', stream?: string): void {
    this.hub.options.events.slowConsumer?.(this, {
      queuedCommands: this.queue.commands,
      queuedBytes: this.queue.bytes,
      limit,
      ...(stream !== undefined ? { stream } : {}),
    });
    this.close('slow_consumer', 'Failed to keep up');
  }

  fail(err: ProtocolError, reason?: DisconnectReason): void {
    this.close(reason ?? reasonFor(err), err.message);
  }

  /** Sends `ERROR <message>` past the queue, frees the queue and closes. */
  close(reason: DisconnectReason, message: string): void {
    if (this.state !== 'open') return;
    // Rows already validated in this chunk are kept; an unfinished batch is not.
    this.endRun();
    this.pendingBatches.clear();
    this.state = 'closing';
    this.closingSince = this.hub.options.clock();
    this.queue.clear();
    this.catchUps.length = 0;
    this.hub.detach(this);
    this.subs.clear();
    this.scanner.reset();
    this.transport.write([encodeError(message)]);
    this.transport.end();
    this.hub.options.events.closed?.(this, reason, message);
  }

  /** The transport is gone (peer closed, or our close completed). */
  transportClosed(): void {
    if (this.state === 'open') {
      this.endRun();
      this.pendingBatches.clear();
      this.queue.clear();
      this.catchUps.length = 0;
      this.hub.detach(this);
      this.subs.clear();
      this.hub.options.events.closed?.(this, 'peer_closed', 'connection closed by peer');
    }
    this.state = 'closed';
    this.hub.forget(this);
  }

  /** Writers hear what subscribers ask of the master. */
  forward(bytes: Buffer): void {
    this.enqueue(bytes, 1);
  }
}

function lineWithLf(buf: Buffer, start: number, end: number): Buffer {
  if (buf[end] === LF) return buf.subarray(start, end + 1);
  // The line ended in CR LF: the stored copy ends in LF alone.
  const line = Buffer.allocUnsafe(end - start + 1);
  buf.copy(line, 0, start, end);
  line[end - start] = LF;
  return line;
}

/** Names the stream, so a relay downstream knows which catch-up was refused (relay-store.ts, catchUpRefusal). */
function tooOld(stream: string, token: number, oldest: number, head: number): ProtocolError {
  return new ProtocolError(
    'TOKEN_TOO_OLD',
    `token ${token} is older than the oldest retained token ${oldest} (stream=${stream} oldest=${oldest} head=${head})`,
  );
}

function notRising(stream: string, token: number, head: number): ProtocolError {
  return new ProtocolError('TOKEN_NOT_RISING', `token ${token} for ${stream} is not above the stream's head ${head}`);
}

function reasonFor(err: ProtocolError): DisconnectReason {
  switch (err.code) {
    case 'TOKEN_TOO_OLD':
      return 'too_old';
    case 'UNKNOWN_STREAM':
      return 'unknown_stream';
    case 'AUTH_FAILED':
    case 'AUTH_REQUIRED':
    case 'NOT_PERMITTED':
      return 'auth';
    default:
      return 'protocol_error';
  }
}

/**
 * One connection on the master side, from accept to close (PROTOCOL.md
 * sections 3 and 4). No I/O: bytes come in through `receive`, go out
 * through a Transport, and time is the host's clock. It knows the hub only
 * as a ConnectionHost (connection-host.ts); what its credential allows is a
 * ConnectionAccess, a writer's rows go to its WriterIngest, and what the
 * sweep owes it is connection-sweep.ts.
 *
 *     > SERVER localhost  > PING 1490197665618   (on open)
 *     < REPLICATE events 1                       catch-up from the log, then the live head
 *     < USER_SYNC @a:hs start 1490197670513      (forwarded to writers)
 *     < AUTH <writer secret>                     (a writer may then send RDATA and POSITION)
 */
import { assertNever, type ClientActionCommand, type Command, type CommandName } from './commands.js';
import { httpRequestRefusal, tlsHelloRefusal } from './access-refusal.js';
import { ConnectionAccess } from './connection-access.js';
import { reasonFor } from './disconnect-reason.js';
import { RowRoute } from './dialect.js';
import { v1Text } from './dialects/v1-text.js';
import { ProtocolError } from './errors.js';
import { sweepAction, WriteProgress } from './connection-sweep.js';
import { LineScanner, type LineSink } from './line-scanner.js';
import { RingQueue } from './ring-queue.js';
import { SyncingUsers } from './syncing-users.js';
import { UnfinishedLine } from './unfinished-line.js';
import type { Transport } from './transport.js';
import type { ConnectionHost, Peer } from './connection-host.js';
import { DEFAULT_CATCH_UP_CHUNK_BYTES, subscriptionKey, type ConnectionRole, type DisconnectReason, type SubscriptionState } from './hub-types.js';

type State = 'open' | 'closing' | 'closed';

/** The most one write hands the transport: a catch-up chunk's worth. */
const WRITE_REQUEST_BYTES = DEFAULT_CATCH_UP_CHUNK_BYTES;

export class ServerConnection implements Peer, LineSink {
  name: string | undefined;
  readonly connectedAt: number;
  private state: State = 'open';
  private readonly scanner: LineScanner;
  private readonly queue: RingQueue;
  /** The transport asked us to wait for drain. */
  private isBlocked = false;
  private readonly access: ConnectionAccess;
  private readonly syncingUsers = new SyncingUsers();
  /** Reused for every RDATA line a writer sends. */
  private readonly route = new RowRoute();
  private peerPinged = false;
  /** When the peer last sent anything (health: a stalled writer shows here). */
  lastReceivedAt: number;
  /** Bytes read from and handed to the transport (GET /connections). */
  bytesIn = 0;
  bytesOut = 0;
  private readonly progress: WriteProgress;
  private readonly unfinishedLine: UnfinishedLine;
  private closingSince = 0;

  constructor(
    private readonly host: ConnectionHost,
    private readonly transport: Transport,
    readonly id: number,
    readonly transportKind: string,
    readonly remoteAddress: string,
    serverName: string,
    /** Opened by a browser page: it reads, and its client commands are refused. */
    fromPage = false,
  ) {
    const limits = host.limits;
    const now = host.now();
    this.connectedAt = now;
    this.lastReceivedAt = now;
    this.progress = new WriteProgress(now);
    this.unfinishedLine = new UnfinishedLine(host.lineBudget, (message) => this.close('partial_line_budget', message));
    this.access = new ConnectionAccess(host, this, fromPage, (err) => this.fail(err, 'store_failed'));
    this.scanner = new LineScanner(this, { maxLineBytes: limits.maxLineBytes });
    this.queue = new RingQueue(limits.maxQueueCommands, limits.maxQueueBytes);
    this.enqueue(v1Text.encode({ name: 'SERVER', serverName }), 1, 'SERVER');
    this.enqueue(v1Text.encode({ name: 'PING', data: String(now) }), 1, 'PING');
  }

  get role(): ConnectionRole {
    return this.access.role;
  }

  get open(): boolean {
    return this.state === 'open';
  }

  get blocked(): boolean {
    return this.isBlocked;
  }

  get queuedCommands(): number {
    return this.queue.commands;
  }

  get queuedBytes(): number {
    return this.queue.bytes;
  }

  subscriptions(): SubscriptionState[] {
    return this.host.subscriptionsOf(this);
  }

  // ------------------------------------------------------------ input

  /** Bytes from the peer. */
  receive(chunk: Buffer): void {
    if (this.state !== 'open') return;
    const now = this.host.now();
    this.lastReceivedAt = now;
    if (this.bytesIn === 0) {
      // Checked once, on the first chunk: a TLS client on this plaintext port sends a ClientHello, not lines.
      const tls = tlsHelloRefusal(chunk);
      if (tls !== null) {
        this.bytesIn = chunk.length;
        this.fail(tls);
        return;
      }
    }
    const heldBefore = this.scanner.pendingBytes;
    this.bytesIn += chunk.length;
    this.scanner.push(chunk);
    // May cut this connection (it holds the most): the close has released what it held.
    this.unfinishedLine.afterChunk(now, heldBefore, chunk.length, this.scanner.pendingBytes);
    // A writer's run never outlives its chunk: store it now so rows go out this tick.
    this.access.ingest?.endChunk();
  }

  onLine(buf: Buffer, start: number, end: number): void {
    if (this.state !== 'open') return;
    let cmd: Command;
    try {
      const ingest = this.access.ingest;
      if (ingest !== null && v1Text.isRow(buf, start, end)) {
        // Most of a writer's lines: routed without making a command object.
        const route = this.route;
        v1Text.routeRow(buf, start, end, route);
        this.host.commandsIn.RDATA++;
        ingest.row(route.stream, route.token, buf, start, route.rowStart, end);
        return;
      }
      cmd = v1Text.decode(buf, start, end, this.access.sender);
      this.host.commandsIn[cmd.name]++;
      this.access.checkMaySend(cmd.name);
      this.handle(cmd, buf, start, end);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.fail(err.code === 'UNKNOWN_COMMAND' ? (httpRequestRefusal(buf, start, end) ?? err) : err);
    }
  }

  onLineError(err: ProtocolError): void {
    this.fail(err);
  }

  private handle(cmd: Command, buf: Buffer, start: number, end: number): void {
    switch (cmd.name) {
      case 'RDATA':
        return this.access.writerIngest(cmd.name).row(cmd.stream, cmd.token, buf, start, end - cmd.rowJson.length, end);
      case 'POSITION':
        return this.access.writerIngest(cmd.name).position(cmd.stream, cmd.token);
      case 'PING':
        this.peerPinged = true;
        return;
      case 'ERROR':
        this.host.events.remoteError?.(this, cmd.message);
        return;
      case 'NAME':
        this.name = cmd.clientName;
        return;
      case 'AUTH':
        return this.access.authenticate(cmd.credential, false);
      case 'GENERATION':
        return this.enqueue(v1Text.encode({ name: 'GENERATION', id: this.host.generation }), 1, 'GENERATION');
      case 'REPLICATE':
        if (cmd.stream === 'ALL') return this.host.subscribeAll(this, this.access.readable);
        return this.host.subscribe(this, { stream: cmd.stream, instance: cmd.instance, token: cmd.token, readable: this.access.readable });
      case 'USER_SYNC':
        this.access.checkNotPageOnly(cmd.name);
        if (this.syncingUsers.apply(cmd)) this.host.userSyncing(this, cmd.userId, cmd.state === 'start', cmd.lastSyncMs);
        return this.host.clientCommand(this, cmd);
      case 'FEDERATION_ACK':
      case 'REMOVE_PUSHER':
      case 'INVALIDATE_CACHE':
      case 'USER_IP':
        this.access.checkNotPageOnly(cmd.name);
        return this.host.clientCommand(this, cmd);
      case 'SERVER':
      case 'SYNC':
        // The parser refuses these from a client; kept for exhaustiveness.
        throw new ProtocolError('WRONG_DIRECTION', `${cmd.name} may not be sent by a client`);
      default:
        return assertNever(cmd);
    }
  }

  /** The secret the WebSocket upgrade carried (a cookie): authenticates as AUTH would, before any command. */
  authenticateByUpgrade(secret: string): void {
    try {
      this.access.authenticate(secret, true);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.fail(err);
    }
  }

  // ------------------------------------------------------------ output

  /** As a writer: a subscriber's command for the master, sent as its line. */
  masterCommand(cmd: ClientActionCommand, line: Buffer): void {
    this.enqueue(line, 1, cmd.name);
  }

  /** Queues bytes holding `lines` commands, all `command`; crossing a queue limit cuts the connection. */
  enqueue(bytes: Buffer, lines: number, command: CommandName): void {
    if (this.offer(bytes, lines, command)) return;
    this.cutSlowConsumer(this.queue.commands + lines > this.queue.maxCommands ? 'commands' : 'bytes');
  }

  /**
   * Queues a stream's entry unless it would cross a queue limit while the
   * socket is full: then false, nothing queued, and the caller reads the
   * entry from the log later instead (subscriptions.ts).
   */
  offer(bytes: Buffer, lines: number, command: CommandName): boolean {
    if (this.state !== 'open') return true;
    if (this.queue.push(bytes, lines)) {
      this.host.commandsOut[command] += lines;
      this.host.markDirty(this);
      return true;
    }
    if (this.isBlocked) return false;
    // The socket is taking bytes: an entry larger than the queue's limits goes straight to it.
    this.flush();
    if (!this.isBlocked) {
      this.writeOut([bytes], lines, command);
      return true;
    }
    if (!this.queue.push(bytes, lines)) return false;
    this.host.commandsOut[command] += lines;
    return true;
  }

  /**
   * Writes what is queued (counted when queued) in requests of at most WRITE_REQUEST_BYTES while the
   * transport takes them, then lets the host read catch-ups. A socket lowers its unsent bytes only
   * as a whole request is sent: bounded requests are what lets the stall limit see a slow reader's progress.
   */
  flush(): void {
    if (this.state !== 'open' || this.isBlocked) return;
    while (this.queue.length > 0 && !this.isBlocked) this.write(this.queue.takeUpTo(WRITE_REQUEST_BYTES));
    if (!this.isBlocked) this.host.catchUp(this);
  }

  writeOut(chunks: Buffer[], lines: number, command: CommandName): void {
    this.host.commandsOut[command] += lines;
    this.write(chunks);
  }

  private write(chunks: Buffer[]): void {
    for (let i = 0; i < chunks.length; i++) this.bytesOut += chunks[i]!.length;
    if (!this.transport.write(chunks)) this.isBlocked = true;
    this.progress.wrote(this.host.now(), this.transport.unsentBytes());
  }

  /** The transport has sent what it held and takes more. */
  drained(): void {
    this.isBlocked = false;
    this.progress.drained(this.host.now());
    if (this.state === 'open') this.flush();
  }

  // ------------------------------------------------------------ time

  /** The host's periodic sweep: keep-alive, timeouts, stalls, hanging closes. */
  tick(now: number): void {
    const limits = this.host.limits;
    if (this.state === 'closing') {
      if (now - this.closingSince > limits.pingTimeoutMs) this.transport.destroy();
      return;
    }
    if (this.state !== 'open') return;
    const action = sweepAction(
      now,
      {
        lastHeardMs: this.lastReceivedAt,
        lastSentMs: this.progress.lastSentMs,
        timeoutArmed: this.peerPinged,
        lineStartedMs: this.unfinishedLine.startedAt,
        // Blocked: the transport holds bytes the peer has not taken (queued rows, or a catch-up's chunk).
        stalledMs: this.isBlocked ? this.progress.stalledFor(now, this.transport.unsentBytes()) : null,
      },
      limits,
    );
    if (action === 'line-timeout') {
      this.close('line_timeout', `timed out in the middle of a line (${this.scanner.pendingBytes} bytes, no end of line for ${limits.lineTimeoutMs} ms)`);
    } else if (action === 'ping-timeout') {
      this.close('ping_timeout', 'ping timeout');
    } else if (action === 'stall') {
      this.cutSlowConsumer('stall');
    } else if (action === 'ping') {
      this.enqueue(v1Text.encode({ name: 'PING', data: String(now) }), 1, 'PING');
    }
  }

  // ------------------------------------------------------------ closing

  private cutSlowConsumer(limit: 'commands' | 'bytes' | 'stall'): void {
    const catchingUp = this.host.subscriptionsOf(this).find((sub) => sub.catchingUp);
    const behind = catchingUp === undefined ? undefined : subscriptionKey(catchingUp);
    this.host.events.slowConsumer?.(this, {
      queuedCommands: this.queue.commands,
      queuedBytes: this.queue.bytes,
      limit,
      ...(behind !== undefined ? { stream: behind } : {}),
    });
    this.close('slow_consumer', 'Failed to keep up');
  }

  fail(err: ProtocolError, reason?: DisconnectReason): void {
    this.close(reason ?? reasonFor(err), err.message);
  }

  /** Sends `ERROR <message>` past the queue, frees the queue and closes. */
  close(reason: DisconnectReason, message: string): void {
    if (this.state !== 'open') return;
    this.leave();
    this.state = 'closing';
    this.closingSince = this.host.now();
    const error = v1Text.encode({ name: 'ERROR', message });
    this.bytesOut += error.length;
    this.host.commandsOut.ERROR++;
    this.transport.write([error]);
    this.transport.end();
    this.host.events.closed?.(this, reason, message);
  }

  /** The transport is gone (peer closed, or our close completed). */
  transportClosed(): void {
    if (this.state === 'open') {
      this.leave();
      this.host.events.closed?.(this, 'peer_closed', 'connection closed by peer');
    }
    this.state = 'closed';
    this.host.forget(this);
  }

  /** Out of the hub: the unfinished line dropped, validated rows stored, queue freed, subscriptions and syncing users ended. */
  private leave(): void {
    this.scanner.reset();
    this.unfinishedLine.release();
    this.access.ingest?.close();
    this.queue.clear();
    this.host.detach(this, this.syncingUsers.userIds());
    this.syncingUsers.clear();
  }
}

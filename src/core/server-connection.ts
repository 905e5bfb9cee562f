/**
 * One connection on the master side, from accept to close (PROTOCOL.md
 * section 3; writers from section 4). No I/O: bytes come in through
 * `receive`, go out through a Transport, and time is the host's clock.
 * It knows the hub only as a ConnectionHost (connection-host.ts): the
 * subscriptions are the hub's, a writer's lines go to its WriterIngest.
 *
 *     > SERVER localhost                     (on open)
 *     > PING 1490197665618
 *     < NAME synapse.app.appservice
 *     < REPLICATE events 1                   catch-up from the log, then
 *     > RDATA events 2 [...]                 ...
 *     > POSITION events 5                    and the live head from here on
 *     < USER_SYNC @a:hs start 1490197670513  (forwarded to writers)
 *     < AUTH <writer secret>                 (a writer may then send RDATA/POSITION)
 *                                            (or the secret came in the WebSocket upgrade's cookie)
 *     < GENERATION                           (a gateway extension: only our own clients ask)
 *     > GENERATION 9f2c...                   the log's generation id, or `none`
 */
import { assertNever, type ClientActionCommand, type Command, type CommandName } from './commands.js';
import { authRequired, fromPage, httpRequestRefusal, tlsHelloRefusal } from './access-refusal.js';
import { admit } from './admission.js';
import { reasonFor } from './disconnect-reason.js';
import { RowRoute } from './dialect.js';
import { v1Text } from './dialects/v1-text.js';
import { ProtocolError } from './errors.js';
import { keepAliveAction } from './keep-alive.js';
import { LineScanner, type LineSink } from './line-scanner.js';
import { RingQueue } from './ring-queue.js';
import { SyncingUsers } from './syncing-users.js';
import { writerIngestFor } from './writer-access.js';
import type { WriterIngest } from './writer-ingest.js';
import type { Transport } from './transport.js';
import type { ConnectionHost, Peer } from './connection-host.js';
import type { Access } from './credentials.js';
import type { LineHolder } from './partial-line-budget.js';
import type { ConnectionRole, DisconnectReason } from './hub-types.js';

type State = 'open' | 'closing' | 'closed';

export class ServerConnection implements Peer, LineSink, LineHolder {
  name: string | undefined;
  role: ConnectionRole = 'anonymous';
  readonly connectedAt: number;
  private state: State = 'open';
  private readonly scanner: LineScanner;
  private readonly queue: RingQueue;
  /** The transport asked us to wait for drain. */
  private isBlocked = false;
  /** What its credential allows; null until it authenticates (anonymous: reads every stream). */
  private access: Access | null = null;
  /** The credential came with the WebSocket upgrade (a cookie), not from AUTH: an AUTH may still replace it. */
  private authenticatedByUpgrade = false;
  private readonly syncingUsers = new SyncingUsers();
  /** Set once AUTH makes this a writer. */
  private ingest: WriterIngest | null = null;
  /** Reused for every RDATA line a writer sends. */
  private readonly route = new RowRoute();
  private peerPinged = false;
  /** When the peer last sent anything (health: a stalled writer shows here). */
  lastReceivedAt: number;
  /** Bytes read from and handed to the transport (GET /connections). */
  bytesIn = 0;
  bytesOut = 0;
  private lastSentAt: number;
  private lastProgressAt: number;
  /** The transport's unsent bytes after the last write or progress seen: less than this is progress. */
  private unsentSeen = 0;
  /** When the unfinished line the scanner holds began arriving; null when none is held. */
  private lineStartedAt: number | null = null;
  /** What the hub's budget of unfinished lines counts for this connection (the scanner's pendingBytes when last told). */
  heldLineBytes = 0;
  private closingSince = 0;

  constructor(
    private readonly host: ConnectionHost,
    private readonly transport: Transport,
    readonly id: number,
    readonly transportKind: string,
    readonly remoteAddress: string,
    serverName: string,
    /** Opened by a browser page: it reads, and its client commands are refused. */
    private readonly fromPage = false,
  ) {
    const limits = host.limits;
    const now = host.now();
    this.connectedAt = now;
    this.lastReceivedAt = now;
    this.lastSentAt = now;
    this.lastProgressAt = now;
    this.scanner = new LineScanner(this, { maxLineBytes: limits.maxLineBytes });
    this.queue = new RingQueue(limits.maxQueueCommands, limits.maxQueueBytes);
    this.enqueue(v1Text.encode({ name: 'SERVER', serverName }), 1, 'SERVER');
    this.enqueue(v1Text.encode({ name: 'PING', data: String(now) }), 1, 'PING');
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

  subscriptions(): { stream: string; catchingUp: boolean; lastToken: number }[] {
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
    const held = this.scanner.pendingBytes;
    // Bytes consumed means a line ended in this chunk: what is held now began in it.
    if (held === 0) this.lineStartedAt = null;
    else if (this.lineStartedAt === null || heldBefore + chunk.length > held) this.lineStartedAt = now;
    // May cut this connection (it holds the most): the close has released what it held.
    if (held !== this.heldLineBytes) this.holdLineBytes(held);
    // A writer's run never outlives its chunk: store it now so rows go out this tick.
    this.ingest?.endChunk();
  }

  onLine(buf: Buffer, start: number, end: number): void {
    if (this.state !== 'open') return;
    let cmd: Command;
    try {
      const ingest = this.ingest;
      if (ingest !== null && v1Text.isRow(buf, start, end)) {
        // Most of a writer's lines: routed without making a command object.
        const route = this.route;
        v1Text.routeRow(buf, start, end, route);
        this.host.commandsIn.RDATA++;
        ingest.row(route.stream, route.token, buf, start, route.rowStart, end);
        return;
      }
      cmd = v1Text.decode(buf, start, end, this.access?.credential.role === 'writer' ? 'writer' : 'client');
      this.host.commandsIn[cmd.name]++;
      if (this.host.limits.requireAuth && this.role === 'anonymous' && cmd.name !== 'PING' && cmd.name !== 'AUTH') {
        throw authRequired(cmd.name);
      }
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
        return this.writerIngest(cmd.name).row(cmd.stream, cmd.token, buf, start, end - cmd.rowJson.length, end);
      case 'POSITION':
        return this.writerIngest(cmd.name).position(cmd.stream, cmd.token);
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
        return this.authenticate(cmd.credential);
      case 'GENERATION':
        return this.enqueue(v1Text.encode({ name: 'GENERATION', id: this.host.generation }), 1, 'GENERATION');
      case 'REPLICATE':
        if (cmd.stream === 'ALL') return this.host.subscribeAll(this, this.readable);
        return this.host.subscribe(this, { stream: cmd.stream, token: cmd.token, readable: this.readable });
      case 'USER_SYNC':
        this.checkNotPageOnly(cmd.name);
        if (this.syncingUsers.apply(cmd)) this.host.userSyncing(this, cmd.userId, cmd.state === 'start', cmd.lastSyncMs);
        return this.host.clientCommand(this, cmd);
      case 'FEDERATION_ACK':
      case 'REMOVE_PUSHER':
      case 'INVALIDATE_CACHE':
      case 'USER_IP':
        this.checkNotPageOnly(cmd.name);
        return this.host.clientCommand(this, cmd);
      case 'SERVER':
      case 'SYNC':
        // The parser refuses these from a client; kept for exhaustiveness.
        throw new ProtocolError('WRONG_DIRECTION', `${cmd.name} may not be sent by a client`);
      default:
        return assertNever(cmd);
    }
  }

  /** Streams this connection may read; null: all. */
  private get readable(): ReadonlySet<string> | null {
    return this.access === null ? null : this.access.readable;
  }

  /** A page's commands would reach the writers: only a credential that allows it (`+page`) lets them through. */
  private checkNotPageOnly(command: string): void {
    if (this.fromPage && this.access?.fromPages !== true) throw fromPage(command);
  }

  /** The parser lets RDATA and POSITION through only from a writer's credential; a page's only with `+page`. */
  private writerIngest(command: 'RDATA' | 'POSITION'): WriterIngest {
    if (this.ingest !== null) return this.ingest;
    if (this.fromPage) throw fromPage(command);
    throw new ProtocolError('WRONG_DIRECTION', 'only a writer may send rows');
  }

  /** The secret the WebSocket upgrade carried (a cookie): authenticates as AUTH would, before any command. */
  authenticateByUpgrade(secret: string): void {
    try {
      this.authenticate(secret);
      this.authenticatedByUpgrade = true;
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.fail(err);
    }
  }

  private authenticate(secret: string): void {
    if (this.role !== 'anonymous' && !this.mayReplaceCredential()) {
      throw new ProtocolError('BAD_ARGUMENT', `already authenticated as a ${this.role}`);
    }
    const access = admit(this.host, this, secret);
    this.access = access;
    this.authenticatedByUpgrade = false;
    this.role = access.credential.role;
    // A page's writer credential without `+page` only reads: its rows are refused (writerIngest).
    if (this.role === 'writer' && (!this.fromPage || access.fromPages)) {
      this.ingest = writerIngestFor(this.host, access, (err) => this.fail(err, 'store_failed'));
      this.host.addWriter(this);
    }
  }

  /**
   * An AUTH after a cookie's credential replaces it while that changed
   * nothing yet: a subscriber with no subscription (a page that also AUTHs).
   */
  private mayReplaceCredential(): boolean {
    return this.authenticatedByUpgrade && this.ingest === null && this.host.subscriptionsOf(this).length === 0;
  }

  /** Tells the hub's budget what this connection holds now (before it may be cut for it). */
  private holdLineBytes(held: number): void {
    const before = this.heldLineBytes;
    this.heldLineBytes = held;
    this.host.lineBudget.changed(this, before, held);
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

  /** Writes what is queued (counted when queued), then lets the host read catch-ups while the transport takes them. */
  flush(): void {
    if (this.state !== 'open' || this.isBlocked) return;
    if (this.queue.length > 0) this.write(this.queue.takeAll());
    if (!this.isBlocked) this.host.catchUp(this);
  }

  writeOut(chunks: Buffer[], lines: number, command: CommandName): void {
    this.host.commandsOut[command] += lines;
    this.write(chunks);
  }

  private write(chunks: Buffer[]): void {
    const now = this.host.now();
    this.lastSentAt = now;
    this.lastProgressAt = now;
    for (let i = 0; i < chunks.length; i++) this.bytesOut += chunks[i]!.length;
    if (!this.transport.write(chunks)) this.isBlocked = true;
    this.unsentSeen = this.transport.unsentBytes();
  }

  /** The transport has sent what it held and takes more. */
  drained(): void {
    this.isBlocked = false;
    this.lastProgressAt = this.host.now();
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
    // Half a line held for the line timeout, however slowly it trickles in, is cut: no peer pins
    // up to --max-line-bytes of memory indefinitely (keep-alive alone waits for a PING first).
    if (this.lineStartedAt !== null && now - this.lineStartedAt > limits.lineTimeoutMs) {
      this.close('line_timeout', `timed out in the middle of a line (${this.scanner.pendingBytes} bytes, no end of line for ${limits.lineTimeoutMs} ms)`);
      return;
    }
    const due = keepAliveAction(
      now,
      { lastHeardMs: this.lastReceivedAt, lastSentMs: this.lastSentAt, timeoutArmed: this.peerPinged },
      limits,
    );
    if (due === 'time-out') {
      this.close('ping_timeout', 'ping timeout');
    } else if (this.isBlocked && this.stalledSince(now) > limits.maxStallMs) {
      // Blocked: the transport holds bytes the peer has not taken (queued rows, or a catch-up's chunk).
      this.cutSlowConsumer('stall');
    } else if (due === 'ping' && !this.isBlocked) {
      // A blocked socket has rows queued: a PING behind them would tell the peer nothing sooner.
      this.enqueue(v1Text.encode({ name: 'PING', data: String(now) }), 1, 'PING');
    }
  }

  /** How long a blocked transport has sent nothing: its unsent bytes not falling since the last progress. */
  private stalledSince(now: number): number {
    const unsent = this.transport.unsentBytes();
    if (unsent < this.unsentSeen) {
      this.unsentSeen = unsent;
      this.lastProgressAt = now;
    }
    return now - this.lastProgressAt;
  }

  // ------------------------------------------------------------ closing

  private cutSlowConsumer(limit: 'commands' | 'bytes' | 'stall'): void {
    const behind = this.host.subscriptionsOf(this).find((sub) => sub.catchingUp)?.stream;
    this.host.events.slowConsumer?.(this, {
      queuedCommands: this.queue.commands,
      queuedBytes: this.queue.bytes,
      limit,
      ...(behind !== undefined ? { stream: behind } : {}),
    });
    this.close('slow_consumer', 'Failed to keep up');
  }

  cutForLineBudget(message: string): void {
    this.close('partial_line_budget', message);
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
    if (this.heldLineBytes !== 0) this.holdLineBytes(0);
    this.ingest?.close();
    this.queue.clear();
    this.host.detach(this, this.syncingUsers.userIds());
    this.syncingUsers.clear();
  }
}

/**
 * What one server connection's credential lets it do, from its AUTH (or the
 * WebSocket upgrade's cookie) on: its role, the streams it may read, whether
 * it writes (a WriterIngest bound to the streams it may write), and what a
 * browser page may send.
 */
import { authRequired, fromPage } from './access-refusal.js';
import { admit } from './admission.js';
import { ProtocolError } from './errors.js';
import { writerIngestFor } from './writer-access.js';
import type { CommandName } from './commands.js';
import type { ConnectionHost, Peer } from './connection-host.js';
import type { Access } from './credentials.js';
import type { ConnectionRole } from './hub-types.js';
import type { WriterIngest } from './writer-ingest.js';

export class ConnectionAccess {
  role: ConnectionRole = 'anonymous';
  /** Set once AUTH makes the connection a writer. */
  ingest: WriterIngest | null = null;
  /** Null until it authenticates (anonymous: reads every stream). */
  private access: Access | null = null;
  /** The credential came with the WebSocket upgrade (a cookie), not from AUTH: an AUTH may still replace it. */
  private byUpgrade = false;

  constructor(
    private readonly host: ConnectionHost,
    private readonly peer: Peer,
    /** Opened by a browser page: it reads, and its client commands are refused. */
    private readonly fromPage: boolean,
    /** A writer's rows could not be stored. */
    private readonly storeFailed: (err: ProtocolError) => void,
  ) {}

  /** Whom the codec decodes for: a writer's credential may send rows. */
  get sender(): 'writer' | 'client' {
    return this.access?.credential.role === 'writer' ? 'writer' : 'client';
  }

  /** Streams the connection may read; null: all. */
  get readable(): ReadonlySet<string> | null {
    return this.access === null ? null : this.access.readable;
  }

  /** Where AUTH is required, nothing but PING and AUTH comes before it. */
  checkMaySend(command: CommandName): void {
    if (this.host.limits.requireAuth && this.role === 'anonymous' && command !== 'PING' && command !== 'AUTH') throw authRequired(command);
  }

  /** A page's commands would reach the writers: only a credential that allows it (`+page`) lets them through. */
  checkNotPageOnly(command: string): void {
    if (this.fromPage && this.access?.fromPages !== true) throw fromPage(command);
  }

  /** The parser lets RDATA and POSITION through only from a writer's credential; a page's only with `+page`. */
  writerIngest(command: 'RDATA' | 'POSITION'): WriterIngest {
    if (this.ingest !== null) return this.ingest;
    if (this.fromPage) throw fromPage(command);
    throw new ProtocolError('WRONG_DIRECTION', 'only a writer may send rows');
  }

  /** AUTH, or the upgrade's secret (`byUpgrade`): throws a ProtocolError to refuse. */
  authenticate(secret: string, byUpgrade: boolean): void {
    if (this.role !== 'anonymous' && !this.mayReplaceCredential()) {
      throw new ProtocolError('BAD_ARGUMENT', `already authenticated as a ${this.role}`);
    }
    const access = admit(this.host, this.peer, secret);
    this.access = access;
    this.byUpgrade = byUpgrade;
    this.role = access.credential.role;
    // A page's writer credential without `+page` only reads: its rows are refused (writerIngest).
    if (this.role === 'writer' && (!this.fromPage || access.fromPages)) {
      this.ingest = writerIngestFor(this.host, access, this.storeFailed);
      this.host.addWriter(this.peer);
    }
  }

  /**
   * An AUTH after a cookie's credential replaces it while that changed
   * nothing yet: a subscriber with no subscription (a page that also AUTHs).
   */
  private mayReplaceCredential(): boolean {
    return this.byUpgrade && this.ingest === null && this.host.subscriptionsOf(this.peer).length === 0;
  }
}

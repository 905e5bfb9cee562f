/** The users one connection says are syncing (USER_SYNC), with their last sync time; ended with the connection. */
import type { UserSyncCommand } from './commands.js';

export class SyncingUsers {
  private readonly lastSyncMs = new Map<string, number>();

  /** Applies one USER_SYNC; true when it changed whether that user syncs here (a new start, or the end of a known one). */
  apply(cmd: UserSyncCommand): boolean {
    if (cmd.state === 'start') {
      const known = this.lastSyncMs.has(cmd.userId);
      this.lastSyncMs.set(cmd.userId, cmd.lastSyncMs);
      return !known;
    }
    return this.lastSyncMs.delete(cmd.userId);
  }

  userIds(): IterableIterator<string> {
    return this.lastSyncMs.keys();
  }

  clear(): void {
    this.lastSyncMs.clear();
  }
}

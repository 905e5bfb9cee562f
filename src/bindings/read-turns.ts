/**
 * Fairness between connections within one event-loop turn. libuv reads a
 * busy socket up to 32 times 64 KiB in one go, so one peer flooding (PINGs,
 * rows) could take ~2 MB worth of the hub's work per turn while every other
 * connection waits. A socket that has handed over READ_BYTES_PER_TURN in
 * this turn is paused until the next (setImmediate): what it sent waits in
 * its kernel buffer, and everyone else is read first. (Writers, on TCP or
 * WebSocket, are not metered: their rows are the work, and reading them in
 * big gulps batches the fan-out: metered, W1 at S = 1 lost a quarter to a
 * third in A/B runs.) WebSocket links meter their own lines (ws-bridge.ts).
 */

/** One libuv read: a flood costs the others at most about this much parsing per turn. */
export const READ_BYTES_PER_TURN = 64 * 1024;

export interface PausableSource {
  pause(): unknown;
  resume(): unknown;
}

/** The turns of one event loop, counted only while data comes in: one setImmediate per turn that read anything. */
export class ReadTurns {
  private turn = 0;
  private turnEnding = false;
  private readonly endTurn = (): void => {
    this.turn++;
    this.turnEnding = false;
  };

  /** For one source: call it with the size of each chunk once handled; past the budget it pauses the source until the next turn. */
  meter(source: PausableSource): (bytes: number) => void {
    let readTurn = -1;
    let readBytes = 0;
    const resume = (): void => void source.resume();
    return (bytes) => {
      if (!this.turnEnding) {
        this.turnEnding = true;
        setImmediate(this.endTurn);
      }
      if (readTurn !== this.turn) {
        readTurn = this.turn;
        readBytes = 0;
      }
      readBytes += bytes;
      if (readBytes >= READ_BYTES_PER_TURN) {
        readBytes = 0;
        source.pause();
        setImmediate(resume);
      }
    };
  }
}

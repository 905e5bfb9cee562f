// The fairness tests' watch on an event loop's turns (TCP and WebSocket):
// every turn, how much a byte count (the busiest connection's bytesIn)
// grew since the turn before.

export interface TurnWatch {
  /** Stops watching: the most the count grew in one turn, in how many turns it grew, and its last value. */
  stop(): { maxPerTurn: number; turnsGrowing: number; last: number };
}

export function watchTurns(bytes: () => number): TurnWatch {
  let last = 0;
  let maxPerTurn = 0;
  let turnsGrowing = 0;
  let watching = true;
  const watch = (): void => {
    const now = bytes();
    if (now > last) {
      maxPerTurn = Math.max(maxPerTurn, now - last);
      turnsGrowing++;
    }
    last = now;
    if (watching) setImmediate(watch);
  };
  setImmediate(watch);
  return {
    stop() {
      watching = false;
      return { maxPerTurn, turnsGrowing, last };
    },
  };
}

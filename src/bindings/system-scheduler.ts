/**
 * The host's clock and timers as core's Scheduler (src/core/session-loop.ts),
 * for Node and browsers alike: no Node import, so src/browser bundles it too.
 * Arrows, not the bare functions: a browser's setTimeout called as a method of
 * another object throws "Illegal invocation", and a test's mocked globals
 * (node:test mock.timers) are looked up at each call.
 */
import type { Scheduler } from '../core/session-loop.js';

type TimerHandle = ReturnType<typeof setTimeout>;

export const systemScheduler: Scheduler = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as TimerHandle),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (handle) => clearInterval(handle as TimerHandle),
};

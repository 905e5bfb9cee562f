import type { TestContext } from 'node:test';

/** One test of a recorded session (test/e2e/synapse-2017-sessions.test.ts runs them). */
export interface SessionCase {
  /** What stands in for which Synapse program, e.g. "our server in place of Synapse's master". */
  title: string;
  timeoutMs?: number;
  run(t: TestContext): Promise<void>;
}

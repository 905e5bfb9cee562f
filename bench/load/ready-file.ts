// The runner's side of the ready-file handshake with bench child processes
// (and gateways): a child writes one JSON object to a path the runner chose
// once it can take load (src/bindings/ready-file.ts, whole or not at all);
// the runner polls for the file.
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** Polls until `path` holds a ready JSON; fails after timeoutMs or as soon as `alive()` says the child died. */
export async function waitForReadyFile<T = Record<string, unknown>>(
  path: string,
  timeoutMs: number,
  alive: () => boolean = () => true,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return JSON.parse(await readFile(path, 'utf8')) as T;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (!alive()) throw new Error(`process exited before writing ${path}`);
    if (Date.now() > deadline) throw new Error(`no ready file at ${path} after ${timeoutMs} ms`);
    await sleep(20);
  }
}

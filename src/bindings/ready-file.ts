/**
 * A ready file: one JSON object a process writes once it can take load, for
 * whoever started it (a supervisor, a test, the bench runner) to poll for.
 * Both sides of that handshake: written to a temp file and renamed, so the
 * reader never sees half of it, and a missing file only means "not yet".
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** How often waitForReadyFile looks. */
const POLL_MS = 20;

export async function writeReadyFile(path: string, content: object): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(content)}\n`);
  await rename(tmp, path);
}

/** Polls until `path` holds a ready JSON; fails after timeoutMs or as soon as `alive()` says the writer died. */
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
    await sleep(POLL_MS);
  }
}

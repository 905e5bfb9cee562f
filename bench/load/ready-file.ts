// The ready-file handshake between bench child processes and the runner: a
// child writes one JSON object to a path the runner chose once it can take
// load; the runner polls for the file. Writing a temp file and renaming it
// makes the file appear whole, so the runner never reads half a JSON.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export async function writeReadyFile(path: string, content: object): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(content) + '\n');
  await rename(tmp, path);
}

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

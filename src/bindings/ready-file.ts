/**
 * A ready file: one JSON object a process writes once it can take load, for
 * whoever started it (a supervisor, a test, the bench runner) to poll for.
 * Written to a temp file and renamed, so a reader never sees half of it.
 */
import { rename, writeFile } from 'node:fs/promises';

export async function writeReadyFile(path: string, content: object): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(content)}\n`);
  await rename(tmp, path);
}

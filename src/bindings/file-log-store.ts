/**
 * The log directory of `--log file:DIR`: one FileStreamLog per declared
 * stream, a generation id and a lock:
 *
 *     DIR/generation          {"id":"9f2c…","createdAt":"2026-12-02T01:47:15.000Z"}
 *     DIR/lock                the pid of the gateway using DIR
 *     DIR/streams/<stream>/   that stream's segments (file-log.ts)
 *
 * The generation is made, at random, when the directory holds none: a wiped
 * or replaced directory is a new generation, and clients that knew the old
 * one learn that its tokens mean nothing here any more.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { FileStreamLog, type FileLogEvents, type FileLogOptions } from './file-log.js';

export interface Generation {
  id: string;
  createdAt: string;
  /** Made by this open (the directory was new, wiped or replaced). */
  created: boolean;
}

export interface FileLogDirOptions extends Omit<FileLogOptions, 'events'> {
  streams: readonly string[];
  events?: Partial<FileLogEvents & FileLogDirEvents>;
}

export interface FileLogDirEvents {
  generationCreated(generation: Generation, leftoverStreams: string[]): void;
  /** Segments of a stream the gateway does not declare: kept, not served. */
  undeclaredStream(stream: string): void;
}

export class FileLogDir {
  private constructor(
    readonly dir: string,
    readonly generation: Generation,
    readonly logs: ReadonlyMap<string, FileStreamLog>,
    private readonly lockFile: string,
  ) {}

  static async open(dir: string, options: FileLogDirOptions): Promise<FileLogDir> {
    await fs.promises.mkdir(path.join(dir, 'streams'), { recursive: true });
    const lockFile = takeLock(dir);
    try {
      const existing = await fs.promises.readdir(path.join(dir, 'streams'));
      const generation = await readOrCreateGeneration(dir, existing, options.events ?? {});
      for (const name of existing) if (!options.streams.includes(name)) options.events?.undeclaredStream?.(name);
      const logs = new Map<string, FileStreamLog>();
      for (const stream of options.streams) {
        logs.set(stream, await FileStreamLog.open(stream, path.join(dir, 'streams', stream), options));
      }
      return new FileLogDir(dir, generation, logs, lockFile);
    } catch (err) {
      fs.rmSync(lockFile, { force: true });
      throw err;
    }
  }

  /** Whether the directory still holds this generation (it was not wiped or replaced under us). */
  stillOurs(): boolean {
    try {
      return (JSON.parse(fs.readFileSync(path.join(this.dir, 'generation'), 'utf8')) as { id?: unknown }).id === this.generation.id;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.logs.values()].map((l) => l.close()));
    fs.rmSync(this.lockFile, { force: true });
  }
}

/** One gateway per directory: a second one would interleave its writes with ours. A lock left by a killed process is taken over. */
function takeLock(dir: string): string {
  const lockFile = path.join(dir, 'lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(lockFile, String(process.pid), { flag: 'wx' });
      return lockFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(fs.readFileSync(lockFile, 'utf8'));
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new Error(`the log directory ${dir} is in use by process ${pid} (${lockFile}); stop that gateway or use another directory`);
      }
      fs.rmSync(lockFile, { force: true });
    }
  }
  throw new Error(`could not lock the log directory ${dir} (${lockFile})`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readOrCreateGeneration(dir: string, existingStreams: string[], events: Partial<FileLogDirEvents>): Promise<Generation> {
  const file = path.join(dir, 'generation');
  try {
    const stored = JSON.parse(await fs.promises.readFile(file, 'utf8')) as { id?: unknown; createdAt?: unknown };
    if (typeof stored.id === 'string' && /^[0-9a-f]{32}$/.test(stored.id) && typeof stored.createdAt === 'string') {
      return { id: stored.id, createdAt: stored.createdAt, created: false };
    }
    throw new Error(`${file} is not a generation file ({"id":"<32 hex digits>","createdAt":"..."}): remove it to start a new generation`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const generation: Generation = { id: randomBytes(16).toString('hex'), createdAt: new Date().toISOString(), created: true };
  // Written whole or not at all: a crash mid-write never leaves half an id.
  const tmp = `${file}.tmp`;
  await fs.promises.writeFile(tmp, `${JSON.stringify({ id: generation.id, createdAt: generation.createdAt })}\n`);
  const handle = await fs.promises.open(tmp, 'r');
  await handle.sync();
  await handle.close();
  await fs.promises.rename(tmp, file);
  events.generationCreated?.(generation, existingStreams);
  return generation;
}


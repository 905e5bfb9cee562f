// The file log keeps the stream log contract unchanged: once with the
// default memory window (reads mostly from memory), once with none, so
// every catch-up read goes to the segment files.
import { after } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileStreamLog, type FileLogOptions } from '../../src/bindings/file-log.js';
import { DEFAULT_RETENTION_BYTES, DEFAULT_RETENTION_ROWS, type MemoryLogOptions } from '../../src/core/stream-log.js';
import { contract } from '../core/support/log-contract.js';

const opened: FileStreamLog[] = [];
const dirs: string[] = [];
after(async () => {
  await Promise.all(opened.map((l) => l.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function factory(extra: Partial<FileLogOptions>) {
  return async (options: MemoryLogOptions = {}): Promise<FileStreamLog> => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rg-file-log-'));
    dirs.push(dir);
    const log = await FileStreamLog.open('s', dir, {
      retentionRows: options.retentionRows ?? DEFAULT_RETENTION_ROWS,
      retentionBytes: options.retentionBytes ?? DEFAULT_RETENTION_BYTES,
      retentionAgeMs: null,
      fsync: { kind: 'interval', ms: 100 },
      ...(options.startToken !== undefined ? { startToken: options.startToken } : {}),
      ...extra,
    });
    opened.push(log);
    return log;
  };
}

contract('file log', factory({}));
contract('file log, every read from the segment files (no memory window, small segments)', factory({ memoryBytes: 0, segmentBytes: 4096 }), 100);

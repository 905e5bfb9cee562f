/** A writer's ingest bound to what its credential may write: a row for a stream outside it is refused (NOT_PERMITTED). */
import { notPermitted } from './access-refusal.js';
import { WriterIngest } from './writer-ingest.js';
import type { ConnectionHost } from './connection-host.js';
import type { Access } from './credentials.js';
import type { ProtocolError } from './errors.js';

export function writerIngestFor(hub: ConnectionHost, access: Access, storeFailed: (err: ProtocolError) => void): WriterIngest {
  const writable = access.writable;
  return new WriterIngest({
    logOf: (stream) => {
      // The stream's own refusal (unknown stream) comes before the credential's.
      const log = hub.logOf(stream);
      if (writable !== null && !writable.has(stream)) throw notPermitted('write', stream);
      return log;
    },
    storeFailed,
  });
}

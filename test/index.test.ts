// The package's one entry, imported by its name as a program that depends on
// it would (Node resolves the package's own name through package.json `exports`).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from './support/project-root.js';

/** Every value src/index.ts exports (types leave nothing at run time). */
const VALUES = [
  'EncoderPool',
  'FileStreamLog',
  'MemoryStreamLog',
  'ProtocolError',
  'ReplicationClient',
  'ReplicationRelay',
  'ReplicationServer',
  'ReplicationWriter',
  'RowBatch',
  'RowEncodingError',
  'SYNAPSE_STREAMS',
  'encodeCommand',
  'parseCommand',
  'v1Text',
];

test('the package entry exports the server, the relay, the client and the writer, and nothing of the internals', async () => {
  const name = 'replication-gateway';
  const entry = (await import(name)) as Record<string, unknown>;
  assert.deepEqual(Object.keys(entry).sort(), VALUES);
  for (const cls of ['ReplicationServer', 'ReplicationRelay', 'ReplicationClient', 'ReplicationWriter']) {
    assert.equal(typeof entry[cls], 'function', cls);
  }
});

test("package.json's main, types and `exports` name the same entry", () => {
  const pkg = JSON.parse(readFileSync(path.join(projectRoot(), 'package.json'), 'utf8')) as {
    main: string;
    types: string;
    exports: Record<string, { types: string; default: string }>;
  };
  assert.deepEqual(pkg.exports['.'], { types: pkg.types, default: pkg.main });
  assert.equal(pkg.main, './dist/src/index.js');
});

// The clients' events are typed: a misspelt event or a wrong listener does not
// compile. `npm test` builds with tsc first, and an @ts-expect-error that
// finds no error fails that build, so these lines are checked on every run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplicationClient, ReplicationWriter, type RowBatch } from '../../src/index.js';
import { ReplicationClient as BrowserClient } from '../../src/browser/client.js';

/** Compiled, never run: what must not type-check. */
export function mistakesTheCompilerCatches(client: ReplicationClient, writer: ReplicationWriter, page: BrowserClient): void {
  // @ts-expect-error: there is no 'rowz' event
  client.on('rowz', () => {});
  // @ts-expect-error: 'position' gives (stream: string, token: number)
  client.on('position', (stream: number) => void stream);
  // @ts-expect-error: 'position' gives the instance as string | null (null: a v1 stream)
  client.on('position', (stream: string, token: number, instance: string) => void [stream, token, instance]);
  // @ts-expect-error: the browser client's position event has `instance`, not `writer`
  page.on('position', ({ writer }: { writer: string }) => void writer);
  // @ts-expect-error: a writer has no 'rows' event
  writer.on('rows', () => {});
  // @ts-expect-error: the browser client has no 'rowz' event either
  page.on('rowz', () => {});
}

test('typed listeners register as on any EventEmitter', async () => {
  const client = new ReplicationClient({ port: 9, streams: ['events'] });
  client.on('rows', (stream: string, token: number, rows, batch: RowBatch) => void [stream, token, rows.length, batch]);
  client.on('stopped', (err) => void err.code);
  const writer = new ReplicationWriter({ port: 9, auth: 'w', streams: ['events'] });
  writer.on('head', (stream: string, token: number) => void [stream, token]);
  assert.equal(client.listenerCount('rows'), 1);
  assert.equal(writer.listenerCount('head'), 1);
  await Promise.all([client.close(), writer.close()]);
});

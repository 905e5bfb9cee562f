// Our ReplicationClient and `tail` follow Synapse's own 2017 master, as
// recorded (../shared/synapse-2017, m-* sessions): a replaying master
// (test/support/recorded-master.ts) sends the master's recorded lines over a
// real socket and checks that our client's lines are the recorded client's.
// Where the recorded plain-socket client sent less than ours (no NAME, no
// PING at connect), the extra lines are named per test.

import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ReplicationClient, type ReplicationClientOptions } from '../../src/client.js';
import { JsonLineLog } from '../support/json-line-log.js';
import { projectRoot } from '../support/project-root.js';
import { handedOver, startRecordedMaster } from '../support/recorded-master.js';
import { loadSession, recordingsSkip, varyingPatterns } from '../support/synapse-2017.js';

const skip = recordingsSkip();

// Fast reconnects; the keep-alive stays at its default (the master PINGs every 5 s).
const BACKOFF = { initialMs: 20, maxMs: 100, healthyAfterMs: 0 };

function client(t: TestContext, options: ReplicationClientOptions): ReplicationClient {
  const c = new ReplicationClient({ backoff: BACKOFF, ...options });
  t.after(() => c.close());
  return c;
}

/** Our client's PING at connect (its clock): the recorded plain-socket clients sent none. */
const isPing = (line: string): boolean => /^PING [0-9]+\n$/.test(line);

/** A worker's clock in PING and USER_SYNC, as the worker recordings mark it; master recordings mark only the master's. */
const WORKER_CLOCK = skip === false ? varyingPatterns(loadSession('w-connect'), 'c2s') : [];

/** The rows master.py's fake store holds (the recordings' setup.history). */
const eventRow = (n: number): unknown[] => [`$${n}:example.com`, `!room${n % 7}:example.com`, 'm.room.message', '', null];
const cacheRow = (n: number, k: number, ts: number): unknown[] => ['get_user_by_id', [`@user${n}_${k}:example.com`], ts];
const typingRow = (n: number): unknown[] => [`!room${n}_0:example.com`, [`@user${n}:example.com`]];
const rdata = (stream: string, token: number, rows: unknown[][]) => ({ type: 'rdata', stream, token, rows });
const position = (stream: string, token: number) => ({ type: 'position', stream, token, rows: [] });
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('our client and `tail` against recorded Synapse 2017 masters', { skip }, () => {
  it('catches up from a token, then live rows (m-catchup-from-token)', { timeout: 20_000 }, async (t) => {
    const m = await startRecordedMaster(t, 'm-catchup-from-token', { extra: isPing });
    const c = client(t, { port: m.port, serverName: 'master.test', streams: { events: 10 } });
    const got = handedOver(c);
    c.start();
    await m.until(() => c.positions()['events'] === 21, 'events 21');
    await c.close();
    await m.finished();
    assert.deepEqual(got, [...range(11, 20).map((n) => rdata('events', n, [eventRow(n)])), position('events', 20), rdata('events', 21, [eventRow(21)])]);
  });

  it('from NOW: the POSITION, then live rows and a live batch as one delivery (m-replicate-now-live)', { timeout: 20_000 }, async (t) => {
    const m = await startRecordedMaster(t, 'm-replicate-now-live', { extra: isPing });
    const c = client(t, { port: m.port, serverName: 'master.test', streams: ['events'] });
    const got = handedOver(c);
    c.start();
    // As recorded, caches is followed once the first live row has come: the master then sends only what is newer.
    await m.until(() => c.positions()['events'] === 21, 'events 21');
    c.follow('caches');
    await m.until(() => c.positions()['caches'] === 6, 'caches 6');
    await c.close();
    await m.finished();
    assert.deepEqual(got, [
      position('events', 20),
      rdata('events', 21, [eventRow(21)]),
      position('caches', 5),
      rdata('events', 22, [eventRow(22)]),
      rdata('caches', 6, [0, 1, 2].map((k) => cacheRow(6, k, 1490197670519))),
    ]);
  });

  it("Synapse's un-batched catch-up is delivered row by row, the live batch that follows as one (m-catchup-unbatched-then-live-batch)", { timeout: 20_000 }, async (t) => {
    const m = await startRecordedMaster(t, 'm-catchup-unbatched-then-live-batch', { extra: isPing });
    const c = client(t, { port: m.port, serverName: 'master.test', streams: { caches: 2 } });
    const got = handedOver(c);
    c.start();
    await m.until(() => c.positions()['caches'] === 5, 'caches 5');
    await c.close();
    await m.finished();
    // Each catch-up line carries its token, so each row is its own delivery, as Synapse's worker handed them over.
    assert.deepEqual(got, [
      ...[3, 4].flatMap((n) => [0, 1, 2].map((k) => rdata('caches', n, [cacheRow(n, k, 1490197670513 + n)]))),
      position('caches', 4),
      rdata('caches', 5, [0, 1, 2].map((k) => cacheRow(5, k, 1490197670518))),
    ]);
  });

  it("opens like Synapse's worker (NAME, PING, a REPLICATE per stream, USER_SYNC) and takes answers in any stream order (m-worker-style-connect)", { timeout: 20_000 }, async (t) => {
    // No extra lines allowed: the recorded client sent what a worker sends.
    const m = await startRecordedMaster(t, 'm-worker-style-connect', { varying: WORKER_CLOCK });
    const c = client(t, {
      port: m.port,
      name: 'synapse.app.test',
      serverName: 'master.test',
      streams: { events: 10, caches: 'NOW', typing: 0 },
      syncingUsers: ['@alice:example.com'],
    });
    const got = handedOver(c);
    c.start();
    await m.until(() => c.positions()['typing'] === 5, 'typing 5');
    await c.close();
    await m.finished();
    assert.deepEqual(got, [
      position('caches', 4),
      ...range(11, 20).map((n) => rdata('events', n, [eventRow(n)])),
      position('events', 20),
      ...range(1, 5).map((n) => rdata('typing', n, [typingRow(n)])),
      position('typing', 5),
    ]);
  });

  it('sends every client command as the master took it (m-client-commands)', { timeout: 20_000 }, async (t) => {
    const m = await startRecordedMaster(t, 'm-client-commands', {
      varying: WORKER_CLOCK,
      // The recorded client's PING carried text; ours carries its clock.
      optional: (l) => l.line === 'PING hello world\n',
      extra: isPing,
    });
    const c = client(t, { port: m.port, name: 'my worker', serverName: 'master.test' });
    c.start();
    await new Promise((resolve) => c.once('connected', resolve));
    c.userSync('@alice:example.com', true);
    c.userSync('@alice:example.com', false);
    c.federationAck(17);
    c.invalidateCache('get_user_by_id', ['@alice:example.com']);
    c.userIp('@alice:example.com', 'tok', '127.0.0.1', 'Mozilla/5.0', 'DEV', 1490197670513);
    await m.until(() => m.played[0]!.lines.some((l) => l.line.startsWith('USER_IP ')), 'USER_IP');
    await c.close();
    await m.finished();
    // The master answered none of them on the wire and kept the connection: it was our client that closed.
    assert.equal(m.played[0]!.closedBy, 'client');
    assert.deepEqual(
      m.played[0]!.lines.map((l) => l.line.replace(/ [0-9]{13}\n$/, ' <ms>\n')),
      [
        'NAME my worker\n',
        'PING <ms>\n',
        'USER_SYNC @alice:example.com start <ms>\n',
        'USER_SYNC @alice:example.com end <ms>\n',
        'FEDERATION_ACK 17\n',
        'INVALIDATE_CACHE get_user_by_id ["@alice:example.com"]\n',
        'USER_IP @alice:example.com ["tok","127.0.0.1","Mozilla/5.0","DEV",1490197670513]\n',
      ],
    );
  });

  it('REMOVE_PUSHER: the pushers row the master writes for it comes back live (m-remove-pusher)', { timeout: 20_000 }, async (t) => {
    const m = await startRecordedMaster(t, 'm-remove-pusher', { extra: isPing });
    const c = client(t, { port: m.port, serverName: 'master.test', streams: ['pushers'] });
    const got = handedOver(c);
    c.start();
    await m.until(() => c.positions()['pushers'] === 0, 'POSITION pushers 0');
    c.removePusher('m.http', 'pushkey1', '@alice:example.com');
    await m.until(() => c.positions()['pushers'] === 1, 'pushers 1');
    await c.close();
    await m.finished();
    assert.deepEqual(got, [position('pushers', 0), rdata('pushers', 1, [['@alice:example.com', 'm.http', 'pushkey1', true]])]);
  });

  it('answers a master with another name with ERROR Wrong remote, closes, and stops (m-greeting)', { timeout: 20_000 }, async (t) => {
    // The recorded client said nothing; ours sends its opening lines, then the ERROR.
    const ours = new Set(['REPLICATE events NOW\n', 'ERROR Wrong remote\n']);
    const m = await startRecordedMaster(t, 'm-greeting', { extra: (l) => isPing(l) || ours.has(l) });
    // The shipped wrong-remote delay: only the fast-reconnect settings are the test's.
    const c = client(t, { port: m.port, serverName: 'other.test', streams: ['events'] });
    const errors: string[] = [];
    const retries: number[] = [];
    c.on('error', (e: { code: string }) => errors.push(e.code));
    c.on('disconnected', (_reason: string, retryInMs: number) => retries.push(retryInMs));
    const stopped = new Promise<string>((resolve) => c.once('stopped', (err) => resolve(err.code)));
    c.start();
    await m.finished();
    assert.equal(await stopped, 'WRONG_REMOTE');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(m.played.at(-1)!.lines.at(-1)!.line, 'ERROR Wrong remote\n');
    assert.equal(m.played[0]!.closedBy, 'client');
    assert.deepEqual(errors, ['WRONG_REMOTE']);
    assert.equal(m.played.length, 1, 'no second connection');
    // Synapse's worker came back in ~2.7 s like after any drop; ours stops: talking to the wrong server is a configuration error.
    assert.deepEqual(retries, []);
  });

  it('resumes after the master aborts the connection, nothing lost or repeated (m-abort-reconnect)', { timeout: 20_000 }, async (t) => {
    // The recorded client resumed from 21, the token of the last row it was handed. Ours asks from 20: a lone
    // numbered row may be followed by more of its token (Synapse's un-batched catch-up), so the token stays open
    // until a later token or a POSITION; rows of it that come again are recognised by count and not delivered twice.
    const m = await startRecordedMaster(t, 'm-abort-reconnect', {
      extra: isPing,
      expected: (l) => (l.conn === 2 && l.line === 'REPLICATE events 21\n' ? 'REPLICATE events 20\n' : l.line),
    });
    const c = client(t, { port: m.port, name: 'resume.client', serverName: 'master.test', streams: { events: 10 } });
    const got = handedOver(c);
    const reasons: string[] = [];
    c.on('disconnected', (reason: string) => reasons.push(reason));
    c.start();
    await m.until(() => c.positions()['events'] === 22, 'events 22');
    await c.close();
    await m.finished();
    assert.equal(m.played[0]!.closedBy, 'server');
    assert.deepEqual(reasons, ['ECONNRESET']);
    assert.deepEqual(got, [
      ...range(11, 20).map((n) => rdata('events', n, [eventRow(n)])),
      position('events', 20),
      rdata('events', 21, [eventRow(21)]),
      position('events', 21),
      rdata('events', 22, [eventRow(22)]),
    ]);
  });

  it('`tail` follows the master: catch-up and live rows as JSON lines (m-catchup-unbatched-then-live-batch)', { timeout: 20_000 }, async (t) => {
    const m = await startRecordedMaster(t, 'm-catchup-unbatched-then-live-batch', { extra: (l) => isPing(l) || l === 'NAME replication-gateway-tail\n' });
    const bin = path.join(projectRoot(), 'bin', 'replication-gateway.js');
    const child = spawn(process.execPath, [bin, 'tail', '--connect', `127.0.0.1:${m.port}`, '--stream', 'caches:2', '--server-name', 'master.test'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    t.after(() => void child.kill('SIGKILL'));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const out = new JsonLineLog<{ stream: string; token: number; row: unknown[] }>('tail stdout');
    out.attach(child.stdout);
    await out.waitFor((l) => l.token === 5 && JSON.stringify(l.row).includes('@user5_2:'), 10_000, 'the last row of the live batch');
    child.kill('SIGINT');
    assert.equal(await exited, 0);
    await m.finished();
    assert.deepEqual(out.all(), [
      ...[3, 4].flatMap((n) => [0, 1, 2].map((k) => ({ stream: 'caches', token: n, row: cacheRow(n, k, 1490197670513 + n) }))),
      ...[0, 1, 2].map((k) => ({ stream: 'caches', token: 5, row: cacheRow(5, k, 1490197670518) })),
    ]);
  });
});

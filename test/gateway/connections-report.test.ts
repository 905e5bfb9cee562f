import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConnectionInfo, ConnectionRole } from '../../src/core/hub-types.js';
import { ConnectionsQueryError, connectionsPage, parseConnectionsQuery } from '../../src/gateway/connections-report.js';
import { StreamTimeline } from '../../src/gateway/stream-timeline.js';

function conn(id: number, role: ConnectionRole, subs: { stream: string; lastToken: number; catchingUp?: boolean }[], queuedBytes = 0): ConnectionInfo {
  return {
    id,
    transportKind: 'tcp',
    remoteAddress: `127.0.0.1:${40_000 + id}`,
    name: `worker${id}`,
    role,
    open: true,
    connectedAt: 1_000,
    lastReceivedAt: 1_000,
    queuedCommands: queuedBytes > 0 ? 1 : 0,
    queuedBytes,
    bytesIn: 10 * id,
    bytesOut: 100 * id,
    subscriptions: () => subs.map((s) => ({ stream: s.stream, instance: null, lastToken: s.lastToken, catchingUp: s.catchingUp ?? false })),
  };
}

describe('GET /connections query', () => {
  it('defaults to the first 100 by id', () => {
    assert.deepEqual(parseConnectionsQuery(''), { offset: 0, limit: 100, sort: 'id' });
    assert.deepEqual(parseConnectionsQuery('offset=5&limit=1000&sort=lag'), { offset: 5, limit: 1000, sort: 'lag' });
  });

  it('refuses a bad value or parameter, naming it and what is allowed', () => {
    const refused = (q: string, message: RegExp): void => assert.throws(() => parseConnectionsQuery(q), (e) => e instanceof ConnectionsQueryError && message.test(e.message));
    refused('limit=1001', /^limit=1001 is not a whole number from 1 to 1000$/);
    refused('limit=0', /^limit=0 is not/);
    refused('offset=-1', /^offset=-1 is not a whole number from 0/);
    refused('offset=1.5', /^offset=1\.5 is not/);
    refused('sort=name', /^sort=name is not one of id, lag, queued$/);
    refused('order=lag', /^unknown parameter order: \/connections takes offset, limit and sort$/);
  });
});

describe('connectionsPage', () => {
  const timeline = new StreamTimeline();
  timeline.written('events', 1, 1, 2_000);
  timeline.written('events', 1, 2, 3_000);
  timeline.written('events', 1, 3, 4_000);
  timeline.written('typing', 1, 7, 4_000);
  const conns = [
    conn(1, 'subscriber', [{ stream: 'events', lastToken: 3 }]),
    conn(2, 'anonymous', [{ stream: 'events', lastToken: 1, catchingUp: true }, { stream: 'typing', lastToken: 7 }], 500),
    conn(3, 'writer', [], 9_000),
    conn(4, 'anonymous', [{ stream: 'events', lastToken: 0, catchingUp: true }]),
  ];

  it('tells each connection its streams, tokens, lag, queue and bytes', () => {
    const page = connectionsPage(conns, timeline, parseConnectionsQuery(''), 6_000);
    assert.equal(page.total, 4);
    assert.deepEqual(page.connections[1], {
      id: 2,
      name: 'worker2',
      address: '127.0.0.1:40002',
      transport: 'tcp',
      role: 'anonymous',
      connectedSince: new Date(1_000).toISOString(),
      connectedSeconds: 5,
      streams: [
        { stream: 'events', instance: null, token: 1, catchingUp: true, lagRows: 2, lagSeconds: 3 },
        { stream: 'typing', instance: null, token: 7, catchingUp: false, lagRows: 0, lagSeconds: 0 },
      ],
      lagRows: 2,
      lagSeconds: 3,
      queuedCommands: 1,
      queuedBytes: 500,
      bytesIn: 20,
      bytesOut: 200,
    });
    assert.deepEqual(page.connections[2]!.streams, []);
  });

  it('sorts by lag or queued bytes, largest first, and pages with the total kept', () => {
    const ids = (q: string): number[] => connectionsPage(conns, timeline, parseConnectionsQuery(q), 6_000).connections.map((c) => c.id);
    assert.deepEqual(ids('sort=lag'), [4, 2, 1, 3]);
    assert.deepEqual(ids('sort=queued'), [3, 2, 1, 4]);
    assert.deepEqual(ids('sort=lag&offset=1&limit=2'), [2, 1]);
    assert.deepEqual(ids('offset=10'), []);
    assert.equal(connectionsPage(conns, timeline, parseConnectionsQuery('offset=3'), 6_000).total, 4);
  });
});

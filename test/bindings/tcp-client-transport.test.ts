import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { TcpClientTransport } from '../../src/bindings/tcp-client-transport.js';
import type { TransportEvents } from '../../src/core/client-transport.js';

async function rawServer(t: TestContext, onSocket: (s: net.Socket) => void): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    onSocket(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return (server.address() as net.AddressInfo).port;
}

function recorder(): { events: TransportEvents; log: string[]; closed: Promise<string>; opened: Promise<void>; drained: Promise<void> } {
  const log: string[] = [];
  let onClose!: (reason: string) => void;
  let onOpen!: () => void;
  let onDrain!: () => void;
  const closed = new Promise<string>((r) => (onClose = r));
  const opened = new Promise<void>((r) => (onOpen = r));
  const drained = new Promise<void>((r) => (onDrain = r));
  return {
    log,
    closed,
    opened,
    drained,
    events: {
      open: () => {
        log.push('open');
        onOpen();
      },
      data: (chunk) => log.push(`data ${chunk.toString()}`),
      drain: () => {
        log.push('drain');
        onDrain();
      },
      close: (reason) => {
        log.push(`close ${reason}`);
        onClose(reason);
      },
    },
  };
}

test('opens, writes chunks in order, receives data, and reports the server closing once', { timeout: 5000 }, async (t) => {
  let received = '';
  const port = await rawServer(t, (s) => {
    s.on('data', (c) => {
      received += c.toString();
      if (received.endsWith('C\n')) s.end('SERVER x\n');
    });
  });
  const tr = new TcpClientTransport({ host: '127.0.0.1', port });
  const r = recorder();
  tr.connect(r.events);
  await r.opened;
  assert.equal(tr.write([Buffer.from('A\n'), Buffer.from('B\n'), Buffer.from('C\n')]), true);
  assert.equal(await r.closed, 'closed by the server');
  assert.equal(received, 'A\nB\nC\n');
  assert.deepEqual(r.log, ['open', 'data SERVER x\n', 'close closed by the server']);
  assert.equal(tr.write([Buffer.from('late\n')]), false);
});

test('reports a refused connection as a close, without opening', { timeout: 5000 }, async () => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const r = recorder();
  new TcpClientTransport({ host: '127.0.0.1', port }).connect(r.events);
  assert.equal(await r.closed, 'ECONNREFUSED');
  assert.deepEqual(r.log, ['close ECONNREFUSED']);
});

test('close() sends what was written, then closes', { timeout: 5000 }, async (t) => {
  let received = '';
  let ended!: () => void;
  const gotEnd = new Promise<void>((r) => (ended = r));
  const port = await rawServer(t, (s) => {
    s.on('data', (c) => (received += c.toString()));
    s.on('end', ended);
  });
  const tr = new TcpClientTransport({ host: '127.0.0.1', port });
  const r = recorder();
  tr.connect(r.events);
  await r.opened;
  tr.write([Buffer.from('ERROR ping timeout\n')]);
  tr.close();
  await r.closed;
  await gotEnd;
  assert.equal(received, 'ERROR ping timeout\n');
});

test('write() returns false when the peer does not read, and drain follows once it does', { timeout: 10_000 }, async (t) => {
  let peer!: net.Socket;
  const port = await rawServer(t, (s) => {
    peer = s;
    s.pause();
  });
  const tr = new TcpClientTransport({ host: '127.0.0.1', port });
  const r = recorder();
  tr.connect(r.events);
  await r.opened;
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  let writes = 0;
  while (tr.write([chunk]) && writes < 256) writes++;
  assert.ok(writes < 256, 'the socket pushed back');
  peer.resume();
  await r.drained;
  tr.close();
  await r.closed;
});

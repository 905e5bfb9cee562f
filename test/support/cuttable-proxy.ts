// A TCP proxy for fault tests: forwards 127.0.0.1:<port> to a target, and
// can cut a connection after exactly N more bytes from the server, so a cut
// lands anywhere: between lines, inside a line, inside a batch.
//
//   const proxy = await startCuttableProxy(server.port);
//   proxy.cutAfter(12_345);      // the next 12,345 server bytes pass, then both sides are destroyed

import net from 'node:net';

export interface CuttableProxy {
  readonly port: number;
  /** Connections cut so far. */
  readonly cuts: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Cuts the current connection after `bytes` more bytes towards the client (0: now). */
  cutAfter(bytes: number): void;
  /** Stops (true) or goes on (false) reading from the server: its socket then fills, as behind a reader that stopped. */
  hold(on: boolean): void;
  /** Called on each accepted connection (e.g. to arm the next cut). */
  onConnection: (() => void) | null;
  close(): Promise<void>;
}

export async function startCuttableProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<CuttableProxy> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  let budget = Infinity;
  let cuts = 0;
  let accepted = 0;
  let current: [net.Socket, net.Socket] | null = null;
  let held = false;

  const cut = (pair: [net.Socket, net.Socket]): void => {
    if (pair[0].destroyed && pair[1].destroyed) return;
    cuts++;
    pair[0].destroy();
    pair[1].destroy();
  };

  const server = net.createServer((client) => {
    accepted++;
    const upstream = net.connect({ host: targetHost, port: targetPort, noDelay: true });
    client.setNoDelay(true);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    current = pair;
    budget = Infinity;
    const drop = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
    client.on('data', (chunk: Buffer) => {
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    let cutting = false;
    upstream.on('data', (chunk: Buffer) => {
      if (cutting) return;
      if (current === pair && chunk.length >= budget) {
        const part = chunk.subarray(0, budget);
        budget = Infinity;
        cutting = true;
        upstream.pause();
        if (part.length > 0) client.write(part, () => cut(pair));
        else cut(pair);
        return;
      }
      if (current === pair) budget -= chunk.length;
      if (!client.write(chunk)) upstream.pause();
    });
    client.on('drain', () => {
      if (!held) upstream.resume();
    });
    if (held) upstream.pause();
    proxy.onConnection?.();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;

  const proxy: CuttableProxy = {
    port,
    get cuts() {
      return cuts;
    },
    get accepted() {
      return accepted;
    },
    onConnection: null,
    hold(on: boolean) {
      held = on;
      if (current !== null) {
        if (on) current[1].pause();
        else current[1].resume();
      }
    },
    cutAfter(bytes: number) {
      if (bytes <= 0 && current !== null) cut(current);
      else budget = bytes;
    },
    async close() {
      for (const pair of pairs) {
        pair[0].destroy();
        pair[1].destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}

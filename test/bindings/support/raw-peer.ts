// A plain socket that types lines at a ReplicationServer the way a person
// with netcat would, and collects what comes back as lines; and a fixture
// that starts a server on 127.0.0.1:0 and stops it with every peer it made.

import net from 'node:net';
import { ReplicationServer, type ReplicationServerOptions } from '../../../src/server.js';

const DEFAULT_WAIT_MS = 5_000;

interface Waiter {
  check(): boolean;
  resolve(): void;
}

export class RawPeer {
  /** Complete lines received, without their LF. */
  readonly lines: string[] = [];
  /** Bytes received in all. */
  receivedBytes = 0;
  /** Set once the server closed the connection (EOF or reset). */
  closedBy: 'eof' | 'reset' | null = null;
  private partial = '';
  private readonly waiters = new Set<Waiter>();

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.receivedBytes += Buffer.byteLength(text);
      const parts = (this.partial + text).split('\n');
      this.partial = parts.pop()!;
      for (const p of parts) this.lines.push(p);
      this.poke();
    });
    socket.on('end', () => {
      this.closedBy ??= 'eof';
      this.poke();
    });
    socket.on('error', () => {
      this.closedBy ??= 'reset';
      this.poke();
    });
    socket.on('close', () => {
      this.closedBy ??= 'eof';
      this.poke();
    });
  }

  static connect(port: number, options: { paused?: boolean } = {}): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        const peer = new RawPeer(socket);
        if (options.paused) socket.pause();
        resolve(peer);
      });
    });
  }

  /** Sends each line with an LF. */
  send(...lines: string[]): void {
    this.socket.write(lines.map((l) => `${l}\n`).join(''));
  }

  write(raw: string | Buffer): void {
    this.socket.write(raw);
  }

  /** Resolves once `check` holds (checked now and on each arrival); rejects after timeoutMs, saying what it saw. */
  until(check: () => boolean, what: string, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        check,
        resolve: () => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        const tail = this.lines.slice(-5).map((l) => (l.length > 200 ? `${l.slice(0, 200)}...` : l));
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${this.lines.length} lines, closed: ${this.closedBy}, last: ${JSON.stringify(tail)}`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  /** Index of the first line from `from` matching `pattern`, once it has come. */
  async line(pattern: RegExp | string, from = 0, timeoutMs = DEFAULT_WAIT_MS): Promise<number> {
    const matches = (l: string): boolean => (typeof pattern === 'string' ? l === pattern : pattern.test(l));
    let found = -1;
    await this.until(
      () => {
        for (let i = Math.max(from, 0); i < this.lines.length; i++) {
          if (matches(this.lines[i]!)) {
            found = i;
            return true;
          }
        }
        return false;
      },
      `a line ${String(pattern)}`,
      timeoutMs,
    );
    return found;
  }

  /** Waits for the server to close the connection. */
  closed(timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    return this.until(() => this.closedBy !== null, 'the server to close the connection', timeoutMs);
  }

  /** Lines that are neither PING nor the greeting. */
  content(): string[] {
    return this.lines.filter((l) => !l.startsWith('PING ') && !l.startsWith('SERVER '));
  }

  destroy(): void {
    this.socket.destroy();
  }

  private poke(): void {
    for (const w of [...this.waiters]) if (w.check()) w.resolve();
  }
}

export interface Fixture {
  server: ReplicationServer;
  port: number;
  peer(options?: { paused?: boolean }): Promise<RawPeer>;
  /** Destroys every peer, then closes the server. */
  close(): Promise<void>;
}

/** A server on 127.0.0.1:0 with a fast sweep, and the peers of one test. */
export async function startServer(options: ReplicationServerOptions = {}): Promise<Fixture> {
  const server = new ReplicationServer({ serverName: 'gw.test', sweepIntervalMs: 20, ...options });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const peers: RawPeer[] = [];
  return {
    server,
    port,
    async peer(opts) {
      const p = await RawPeer.connect(port, opts);
      peers.push(p);
      return p;
    },
    async close() {
      for (const p of peers) p.destroy();
      await server.close();
    },
  };
}

/** A peer that has read its greeting and, with `auth`, authenticated. */
export async function greeted(f: Fixture, auth?: string): Promise<RawPeer> {
  const p = await f.peer();
  await p.line(/^PING \d+$/);
  if (auth !== undefined) p.send(`AUTH ${auth}`);
  return p;
}

/** `RDATA <stream> <token> <row>` lines. */
export function rdata(stream: string, tokens: number[]): string[] {
  return tokens.map((t) => `RDATA ${stream} ${t} ["$${t}:hs","!r:hs","m.room.message","",null]`);
}

export function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let t = from; t <= to; t++) out.push(t);
  return out;
}

/** Waits until `check` holds, polling: for server-side state that no line announces. */
export async function eventually(check: () => boolean, what: string, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

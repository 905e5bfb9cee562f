// A gateway (TCP + the HTTP listener on one hub) on 127.0.0.1 with
// OS-picked ports, on each engine that runs here, and small WebSocket / TCP
// peers with bounded waits.
import net from 'node:net';
import { describe } from 'node:test';
import { unpackMultiple } from 'msgpackr';
import WebSocket from 'ws';
import { ReplicationServer, type ReplicationServerOptions } from '../../src/server.js';
import type { WsEngineName } from '../../src/bindings/edge-engine.js';
import { chooseEngine, engineAvailability } from '../../src/bindings/engine-choice.js';
import { HttpListener, type HttpListenerOptions } from '../../src/bindings/http-app.js';

export const WAIT_MS = 5000;

export interface Gateway {
  server: ReplicationServer;
  http: HttpListener;
  tcpPort: number;
  httpPort: number;
  /** ws://127.0.0.1:<port>/replication (wss:// with TLS) */
  wsUrl: string;
  httpUrl: string;
  close(): Promise<void>;
}

export async function startGateway(
  options: ReplicationServerOptions = {},
  httpOptions: HttpListenerOptions = {},
): Promise<Gateway> {
  const server = new ReplicationServer({ streams: ['events', 'typing', 'caches'], ...options });
  const tcp = await server.listen({ host: '127.0.0.1', port: 0 });
  const http = new HttpListener(server, { closeGraceMs: 50, ...httpOptions });
  const { port } = await http.listen('127.0.0.1', 0);
  return {
    server,
    http,
    tcpPort: tcp.port,
    httpPort: port,
    // With TLS: wss:// and https://.
    wsUrl: `ws${httpOptions.tls ? 's' : ''}://127.0.0.1:${port}/replication`,
    httpUrl: `http${httpOptions.tls ? 's' : ''}://127.0.0.1:${port}`,
    async close() {
      // As the gateway stops: both at once (ReplicationServer.close() has written its ERRORs before http.close() runs).
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all([server.close(), http.close()]), new Promise((r) => (timer = setTimeout(r, 2000)))]);
      clearTimeout(timer);
    },
  };
}

/** Every engine, with why it cannot run here (false: it runs). */
export const ENGINES: readonly { name: WsEngineName; skip: string | false }[] = Object.entries(engineAvailability()).map(
  ([name, available]) => ({ name: name as WsEngineName, skip: available === true ? false : `${name} cannot run here: ${available}` }),
);

export interface EdgeUnderTest {
  engine: WsEngineName;
  /** startGateway on this engine. */
  start(options?: ReplicationServerOptions, httpOptions?: HttpListenerOptions): Promise<Gateway>;
}

/** `body` once per engine, each in a describe named for it; one that cannot run here is skipped, saying why. */
export function describeEachEngine(title: string, body: (edge: EdgeUnderTest) => void): void {
  for (const { name, skip } of ENGINES) {
    const edge: EdgeUnderTest = { engine: name, start: (o, h) => startGateway(o, { ...h, engine: chooseEngine(name) }) };
    describe(`${title} [${name}]`, skip === false ? {} : { skip }, () => body(edge));
  }
}

/** Resolves when `check` returns a value other than undefined, or rejects after `ms`. */
export async function waitUntil<T>(what: string, check: () => T | undefined, ms = WAIT_MS): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export interface WsPeerOptions {
  protocol?: string;
  origin?: string;
  /** A Cookie header for the upgrade. */
  cookie?: string;
  autoPong?: boolean;
  /** For wss://: the CA to trust, and a client certificate (PEM contents). */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
}

/** A WebSocket client that records what it receives: text lines, or decoded MessagePack frames. */
export class WsPeer {
  readonly ws: WebSocket;
  /** Every text line received, in order (without LF). */
  readonly lines: string[] = [];
  /** Every text message received, as it came. */
  readonly messages: string[] = [];
  /** Binary mode: every frame received, decoded. */
  readonly frames: unknown[][] = [];
  closeCode: number | null = null;
  pings = 0;
  readonly opened: Promise<void>;
  readonly closed: Promise<number>;

  constructor(url: string, options: WsPeerOptions = {}) {
    this.ws = new WebSocket(url, options.protocol === undefined ? [] : [options.protocol], {
      ...(options.origin !== undefined ? { origin: options.origin } : {}),
      ...(options.cookie !== undefined ? { headers: { cookie: options.cookie } } : {}),
      autoPong: options.autoPong ?? true,
      ...options.tls,
    });
    this.ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        for (const f of unpackMultiple(data) as unknown[][]) this.frames.push(f);
        return;
      }
      const text = data.toString('utf8');
      this.messages.push(text);
      for (const line of text.split('\n')) if (line !== '') this.lines.push(line);
    });
    this.ws.on('ping', () => this.pings++);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code: number) => {
        this.closeCode = code;
        resolve(code);
      });
    });
    this.ws.on('error', () => {});
  }

  static async open(url: string, options: WsPeerOptions = {}): Promise<WsPeer> {
    const peer = new WsPeer(url, options);
    await peer.opened;
    return peer;
  }

  send(text: string | Buffer): void {
    this.ws.send(text);
  }

  /** Waits for a line matching `pattern` and returns it. */
  line(pattern: RegExp | string, ms = WAIT_MS): Promise<string> {
    const test = (l: string): boolean => (typeof pattern === 'string' ? l === pattern : pattern.test(l));
    return waitUntil(`a line matching ${String(pattern)} (got ${JSON.stringify(this.lines.slice(-5))})`, () =>
      this.lines.find(test),
    ms);
  }

  /** Waits for the socket to close; returns its close code. */
  async waitClosed(ms = WAIT_MS): Promise<number> {
    return waitUntil('the close', () => this.closeCode ?? undefined, ms);
  }

  rdata(stream?: string): string[] {
    return this.lines.filter((l) => l.startsWith(stream === undefined ? 'RDATA ' : `RDATA ${stream} `));
  }

  terminate(): void {
    this.ws.terminate();
  }
}

/** A raw TCP peer (a writer or subscriber) that records lines. */
export class TcpPeer {
  readonly socket: net.Socket;
  readonly lines: string[] = [];
  private rest = '';

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      const parts = (this.rest + text).split('\n');
      this.rest = parts.pop()!;
      this.lines.push(...parts.filter((p) => p !== ''));
    });
    socket.on('error', () => {});
  }

  static connect(port: number): Promise<TcpPeer> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => resolve(new TcpPeer(socket)));
      socket.once('error', reject);
    });
  }

  send(text: string): void {
    this.socket.write(text);
  }

  line(pattern: RegExp, ms = WAIT_MS): Promise<string> {
    return waitUntil(`a TCP line matching ${String(pattern)}`, () => this.lines.find((l) => pattern.test(l)), ms);
  }

  close(): void {
    this.socket.destroy();
  }
}

export function row(i: number): unknown[] {
  return [`$ev${i}:hs`, '!room:hs', 'm.room.message', '', null];
}

// A scripted gateway for the clients' tests: speaks exactly the wire contract
// of a gateway serving today's Synapse dialect (docs/protocol.md), over TCP
// and WebSocket on 127.0.0.1, from per-pair logs the test fills:
//
//   < REPLICATE <stream> <instance|*> <token|NOW>
//   > RDATA <stream> <instance> <token|batch> <row>      the pair's entries after token, as stored
//   > POSITION <stream> <instance> <head> <head>         ending each pair's catch-up, and for advances
//
// `*` subscribes every pair of the stream from the token (`0`: from its
// start), and pairs that appear later from their start. As on the gateway, a
// REPLICATE of a pair already subscribed replaces its subscription, and the
// catch-ups are read after the lines at hand (one read's, here). reset() starts a pair's new generation: its
// subscribers get `POSITION s i <start> <start>`. Every line a client sends is
// kept per connection (`received`), so tests can check what was asked.

import http from 'node:http';
import net from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

interface Entry {
  token: number;
  /** The stored lines, LF-terminated; '' for an advance. */
  text: string;
}

interface Pair {
  head: number;
  entries: Entry[];
}

interface PeerConnection {
  /** What the client sent. */
  readonly lines: string[];
  write(text: string): void;
  destroy(): void;
  /** Pairs subscribed, as `stream instance`. */
  readonly pairs: Set<string>;
  /** Streams asked as `*`. */
  readonly every: Set<string>;
}

export class TodayPeer {
  /** The lines each connection sent, in connection order. */
  readonly received: string[][] = [];
  private readonly logs = new Map<string, Map<string, Pair>>();
  private readonly conns = new Set<PeerConnection>();
  private readonly sockets = new Set<net.Socket>();
  private tcp!: net.Server;
  private web!: http.Server;
  private wss!: WebSocketServer;
  port = 0;
  wsPort = 0;

  /**
   * `lineByLine`: each line is its own read, so a REPLICATE's catch-up is
   * written before the next line is seen (as a gateway does when the lines
   * come in separate segments): a later REPLICATE of a pair then replaces a
   * subscription whose first rows are already out.
   */
  constructor(private readonly lineByLine = false) {}

  static async start(options: { lineByLine?: boolean } = {}): Promise<TodayPeer> {
    const peer = new TodayPeer(options.lineByLine ?? false);
    await peer.listen();
    return peer;
  }

  /** One group of rows at `token` (several: `batch` lines, then the numbered one), to the pair's log and its subscribers. */
  append(stream: string, instance: string, token: number, rows: readonly string[]): void {
    const text = rows.map((row, i) => `RDATA ${stream} ${instance} ${i === rows.length - 1 ? token : 'batch'} ${row}\n`).join('');
    this.store(stream, instance, { token, text });
  }

  /** A group below the pair's head, right after a row (backfill publishes descending): stored at the head's token, as the gateway's history keeps it. */
  descend(stream: string, instance: string, token: number, rows: readonly string[]): void {
    const head = this.pair(stream, instance).head;
    const text = rows.map((row, i) => `RDATA ${stream} ${instance} ${i === rows.length - 1 ? token : 'batch'} ${row}\n`).join('');
    this.store(stream, instance, { token: head, text });
  }

  /** The pair advanced to `token` without rows (an empty entry). */
  advance(stream: string, instance: string, token: number): void {
    this.store(stream, instance, { token, text: '' });
  }

  /** A new generation of the pair from `start` (lower than its head): its log starts over. */
  reset(stream: string, instance: string, start: number): void {
    const pair = this.pair(stream, instance);
    pair.entries = [];
    pair.head = start;
    for (const c of this.subscribers(stream, instance)) c.write(position(stream, instance, start));
  }

  /** Destroys every open connection (a cut between lines). */
  cut(): void {
    for (const c of this.conns) c.destroy();
  }

  get connections(): number {
    return this.received.length;
  }

  async close(): Promise<void> {
    this.cut();
    for (const s of this.sockets) s.destroy();
    this.wss.close();
    await Promise.all([
      new Promise<void>((resolve) => this.tcp.close(() => resolve())),
      new Promise<void>((resolve) => this.web.close(() => resolve())),
    ]);
  }

  // ------------------------------------------------------------------ serving

  private async listen(): Promise<void> {
    this.tcp = net.createServer((socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      socket.on('error', () => {});
      socket.setNoDelay(true);
      const conn = this.open(
        (text) => void (socket.writable && socket.write(text)),
        () => socket.destroy(),
      );
      let pending = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        const lines = (pending + chunk).split('\n');
        pending = lines.pop()!;
        if (this.lineByLine) for (const line of lines) this.onLines(conn, [line]);
        else this.onLines(conn, lines);
      });
      socket.once('close', () => this.conns.delete(conn));
    });
    this.web = http.createServer();
    this.web.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    this.wss = new WebSocketServer({ server: this.web, path: '/replication' });
    this.wss.on('connection', (ws: WebSocket) => {
      const conn = this.open(
        (text) => void (ws.readyState === ws.OPEN && ws.send(text)),
        () => ws.terminate(),
      );
      ws.on('message', (data) => this.onLines(conn, data.toString().split('\n').filter((l) => l !== '')));
      ws.once('close', () => this.conns.delete(conn));
    });
    await new Promise<void>((resolve) => this.tcp.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => this.web.listen(0, '127.0.0.1', resolve));
    this.port = (this.tcp.address() as net.AddressInfo).port;
    this.wsPort = (this.web.address() as net.AddressInfo).port;
  }

  private open(write: (text: string) => void, destroy: () => void): PeerConnection {
    const lines: string[] = [];
    this.received.push(lines);
    const conn: PeerConnection = {
      lines,
      write,
      destroy: () => {
        this.conns.delete(conn);
        destroy();
      },
      pairs: new Set(),
      every: new Set(),
    };
    this.conns.add(conn);
    write('SERVER gw.test\n');
    return conn;
  }

  private onLines(conn: PeerConnection, lines: string[]): void {
    // The pairs asked for, in order; a later request for a pair replaces an earlier one.
    const asked = new Map<string, [string, string, number | 'NOW']>();
    for (const line of lines) {
      conn.lines.push(line);
      const words = line.split(' ');
      if (words[0] !== 'REPLICATE') continue;
      if (words.length !== 4) {
        conn.write('ERROR this scripted peer only serves REPLICATE <stream> <instance|*> <token|NOW>\n');
        continue;
      }
      const [, stream, instance, tokenText] = words as [string, string, string, string];
      const from = tokenText === 'NOW' ? 'NOW' : Number(tokenText);
      if (instance === '*') conn.every.add(stream);
      for (const i of instance === '*' ? [...(this.logs.get(stream)?.keys() ?? [])] : [instance]) {
        asked.delete(`${stream} ${i}`);
        asked.set(`${stream} ${i}`, [stream, i, from]);
      }
    }
    for (const [stream, instance, from] of asked.values()) this.subscribe(conn, stream, instance, from);
  }

  /** Catch-up after `from` from the pair's log, then its head; live from here on. */
  private subscribe(conn: PeerConnection, stream: string, instance: string, from: number | 'NOW'): void {
    const pair = this.pair(stream, instance);
    conn.pairs.add(`${stream} ${instance}`);
    let out = '';
    if (from !== 'NOW') for (const e of pair.entries) if (e.token > from) out += e.text;
    conn.write(out + position(stream, instance, pair.head));
  }

  private store(stream: string, instance: string, entry: Entry): void {
    const isNew = this.logs.get(stream)?.has(instance) !== true;
    const pair = this.pair(stream, instance);
    pair.entries.push(entry);
    pair.head = entry.token;
    const live = entry.text === '' ? position(stream, instance, entry.token) : entry.text;
    for (const c of this.subscribers(stream, instance)) c.write(live);
    // A writer that appears: every `*` subscriber of its stream gets it from the start.
    if (isNew) for (const c of this.conns) if (c.every.has(stream)) this.subscribe(c, stream, instance, -1);
  }

  private subscribers(stream: string, instance: string): PeerConnection[] {
    return [...this.conns].filter((c) => c.pairs.has(`${stream} ${instance}`));
  }

  private pair(stream: string, instance: string): Pair {
    let pairs = this.logs.get(stream);
    if (pairs === undefined) this.logs.set(stream, (pairs = new Map()));
    let pair = pairs.get(instance);
    if (pair === undefined) pairs.set(instance, (pair = { head: 0, entries: [] }));
    return pair;
  }
}

function position(stream: string, instance: string, token: number): string {
  return `POSITION ${stream} ${instance} ${token} ${token}\n`;
}

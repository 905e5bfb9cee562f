// A raw subscriber that checks one stream's rows as they arrive, without
// keeping them: every numbered RDATA must carry the token after the last one
// (the tests write consecutive tokens), so a gap, a duplicate or a reorder is
// caught at the line where it happens. Memory stays flat for millions of rows.

import net from 'node:net';

const LF = 0x0a;

export class TokenCounter {
  /** Last numbered token seen (starts at the REPLICATE token). */
  last: number;
  rows = 0;
  /** POSITION lines of the stream: [token, rows seen before it]. */
  readonly positions: [number, number][] = [];
  /** The first few problems: gaps, duplicates, reorders, a POSITION that is not the last token. */
  readonly problems: string[] = [];
  /** Lines other than RDATA/POSITION of the stream, PING and SERVER (ERRORs, mostly). */
  readonly other: string[] = [];
  closed = false;
  private tail: Buffer | null = null;
  private readonly rdataPrefix: Buffer;
  private readonly positionPrefix: Buffer;
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly socket: net.Socket,
    readonly stream: string,
    from: number,
  ) {
    this.last = from;
    this.rdataPrefix = Buffer.from(`RDATA ${stream} `);
    this.positionPrefix = Buffer.from(`POSITION ${stream} `);
    socket.on('data', (chunk: Buffer) => this.push(chunk));
    const done = (): void => {
      this.closed = true;
      this.poke();
    };
    socket.on('close', done);
    socket.on('error', done);
  }

  static connect(port: number, stream: string, from: number): Promise<TokenCounter> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new TokenCounter(socket, stream, from));
      });
    });
  }

  send(line: string): void {
    this.socket.write(`${line}\n`);
  }

  /** Resolves once `check` holds; checked on each chunk. */
  until(check: () => boolean, what: string, timeoutMs: number): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = (): void => {
        if (!check()) return;
        clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}: last ${this.last}, rows ${this.rows}, closed ${this.closed}, problems ${JSON.stringify(this.problems)}, other ${JSON.stringify(this.other.slice(-3))}`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  private push(chunk: Buffer): void {
    let buf = chunk;
    if (this.tail !== null) {
      buf = Buffer.concat([this.tail, chunk]);
      this.tail = null;
    }
    let pos = 0;
    for (let lf = buf.indexOf(LF); lf !== -1; lf = buf.indexOf(LF, pos)) {
      this.line(buf, pos, lf);
      pos = lf + 1;
    }
    if (pos < buf.length) this.tail = Buffer.from(buf.subarray(pos));
    this.poke();
  }

  private line(buf: Buffer, start: number, end: number): void {
    if (startsWith(buf, start, this.rdataPrefix)) {
      const at = start + this.rdataPrefix.length;
      this.rows++;
      if (buf[at] === 0x62) return; // batch: the numbered row closes it
      const token = readInt(buf, at);
      if (token !== this.last + 1) this.problem(`RDATA ${token} after ${this.last}`);
      this.last = token;
    } else if (startsWith(buf, start, this.positionPrefix)) {
      const token = readInt(buf, start + this.positionPrefix.length);
      if (token !== this.last) this.problem(`POSITION ${token} after RDATA ${this.last}`);
      this.positions.push([token, this.rows]);
    } else if (buf[start] !== 0x50 /* PING */ && buf[start] !== 0x53 /* SERVER */) {
      if (this.other.length < 20) this.other.push(buf.toString('utf8', start, Math.min(end, start + 300)));
    }
  }

  private problem(text: string): void {
    if (this.problems.length < 10) this.problems.push(text);
  }

  private poke(): void {
    for (const w of [...this.waiters]) w();
  }
}

function startsWith(buf: Buffer, at: number, prefix: Buffer): boolean {
  return buf.compare(prefix, 0, prefix.length, at, at + prefix.length) === 0;
}

function readInt(buf: Buffer, at: number): number {
  let n = 0;
  for (let i = at; ; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return n;
    n = n * 10 + d;
  }
}

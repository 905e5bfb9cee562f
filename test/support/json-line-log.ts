// Collects the JSON-lines output of a child process (a gateway's pino logs,
// `tail`'s rows) and lets a test wait for an event. Lines that are not a JSON
// object are ignored: a test only cares about the events.

import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

export type JsonObject = { [key: string]: unknown };

/** How many events a failed waitFor lists, and how much of each. */
const SHOWN_EVENTS = 6;
const SHOWN_EVENT_CHARS = 300;

interface Waiter<T> {
  predicate: (event: T) => boolean;
  resolve: (event: T) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  what: string;
}

export class JsonLineLog<T extends object = JsonObject> {
  readonly #events: T[] = [];
  readonly #waiters = new Set<Waiter<T>>();
  readonly #decoder = new StringDecoder('utf8');
  #pending = '';
  #ended = false;
  #endReason = '';

  /** `label` names the source in error messages, e.g. "master.py (pid 12, stderr /tmp/x/master.err)". */
  constructor(public label: string) {}

  /** Reads `stream` to its end; `onChunk` sees the raw bytes too (for a log file). */
  attach(stream: Readable, onChunk?: (chunk: Buffer) => void): void {
    stream.on('data', (chunk: Buffer) => {
      onChunk?.(chunk);
      this.push(chunk);
    });
    stream.once('end', () => this.end('its output ended'));
    stream.once('error', (err: Error) => this.end(`its output failed: ${err.message}`));
  }

  /** Feeds raw bytes; a chunk may end anywhere, even inside a UTF-8 character. */
  push(chunk: Buffer | string): void {
    this.#pending += typeof chunk === 'string' ? chunk : this.#decoder.write(chunk);
    let nl: number;
    while ((nl = this.#pending.indexOf('\n')) !== -1) {
      const line = this.#pending.slice(0, nl);
      this.#pending = this.#pending.slice(nl + 1);
      this.#line(line);
    }
  }

  /** No more events will come: pending waiters fail now rather than at their timeout. */
  end(reason = 'ended'): void {
    if (this.#ended) return;
    this.#pending += this.#decoder.end();
    if (this.#pending !== '') this.#line(this.#pending);
    this.#pending = '';
    this.#ended = true;
    this.#endReason = reason;
    for (const w of this.#waiters) this.#fail(w, `${this.label}: ${reason} before ${w.what}`);
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Every event so far, in arrival order. */
  all(): readonly T[] {
    return this.#events;
  }

  /**
   * The first event, already seen or still to come, that satisfies `predicate`.
   * Rejects after `timeoutMs`, or as soon as the output ends, listing the last events.
   */
  waitFor<U extends T>(predicate: (event: T) => event is U, timeoutMs: number, what?: string): Promise<U>;
  waitFor(predicate: (event: T) => boolean, timeoutMs: number, what?: string): Promise<T>;
  waitFor(predicate: (event: T) => boolean, timeoutMs: number, what = 'a matching event'): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      try {
        const seen = this.#events.find(predicate);
        if (seen !== undefined) return resolve(seen);
      } catch (err) {
        return reject(err as Error);
      }
      if (this.#ended) {
        return reject(new Error(this.#describe(`${this.label}: ${this.#endReason} before ${what}`)));
      }
      const waiter: Waiter<T> = {
        predicate,
        resolve,
        reject,
        what,
        timer: setTimeout(
          () => this.#fail(waiter, `${this.label}: timed out after ${timeoutMs} ms waiting for ${what}`),
          timeoutMs,
        ),
      };
      this.#waiters.add(waiter);
    });
  }

  #line(line: string): void {
    const text = line.trim();
    if (!text.startsWith('{')) return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return;
    const event = value as T;
    this.#events.push(event);
    for (const w of this.#waiters) {
      let hit: boolean;
      try {
        hit = w.predicate(event);
      } catch (err) {
        this.#settle(w);
        w.reject(err as Error);
        continue;
      }
      if (hit) {
        this.#settle(w);
        w.resolve(event);
      }
    }
  }

  #settle(w: Waiter<T>): void {
    clearTimeout(w.timer);
    this.#waiters.delete(w);
  }

  #fail(w: Waiter<T>, message: string): void {
    this.#settle(w);
    w.reject(new Error(this.#describe(message)));
  }

  #describe(message: string): string {
    const last = this.#events.slice(-SHOWN_EVENTS).map((e) => {
      const text = JSON.stringify(e);
      return '  ' + (text.length > SHOWN_EVENT_CHARS ? text.slice(0, SHOWN_EVENT_CHARS) + '...' : text);
    });
    const head = `${message} (${this.#events.length} events`;
    return last.length === 0 ? `${head}, none)` : `${head}; the last ${last.length}:\n${last.join('\n')})`;
  }
}

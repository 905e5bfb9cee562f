/**
 * The `--monitor` listener: plain node:http serving only what a monitoring
 * system scrapes (the paths it is given: /metrics, /healthz, /connections),
 * never stream data, no WebSocket, no status page. So it may listen on a
 * public address without the subscriber token that `--http` demands there.
 *
 *     GET|HEAD <path>   the gateway's answer for a served path
 *     anything else     404, or 405 for another method
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HTTP_IDLE_TIMEOUT_MS, HTTP_MAX_HEADER_BYTES } from './edge-engine.js';
import type { FallbackHandler } from './http-app.js';

const TEXT_TYPE = 'text/plain; charset=utf-8';

export class MonitorListener {
  private readonly server: Server;
  private bound: AddressInfo | null = null;

  /** `answer` is called only for `paths`; every other path is 404 here. */
  constructor(paths: readonly string[], answer: FallbackHandler) {
    const served = new Set(paths);
    this.server = createServer(
      { maxHeaderSize: HTTP_MAX_HEADER_BYTES, keepAliveTimeout: HTTP_IDLE_TIMEOUT_MS, headersTimeout: HTTP_IDLE_TIMEOUT_MS, requestTimeout: HTTP_IDLE_TIMEOUT_MS },
      (req, res) => {
        const url = req.url ?? '/';
        const q = url.indexOf('?');
        const path = q === -1 ? url : url.slice(0, q);
        const method = req.method ?? 'GET';
        const reply = (status: number, headers: Record<string, string>, body: string): void => {
          if (res.destroyed) return;
          res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(body) });
          // Node sends no body for HEAD by itself.
          res.end(body);
        };
        if (!served.has(path)) {
          reply(404, { 'content-type': TEXT_TYPE }, `not found: ${path} (the monitor listener serves ${paths.join(', ')})\n`);
          return;
        }
        answer(method, path, q === -1 ? '' : url.slice(q + 1)).then(
          (a) => reply(a.status, a.headers, a.body),
          (err: unknown) => reply(500, { 'content-type': TEXT_TYPE }, `internal error: ${err instanceof Error ? err.message : String(err)}\n`),
        );
      },
    );
  }

  /** Resolves with the bound address (port 0: one the OS picked); rejects when the address is in use or cannot be bound. */
  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const failed = (err: Error): void => reject(new Error(`cannot listen for monitoring on ${host}:${port}: ${err.message}`));
      this.server.once('error', failed);
      this.server.listen({ host, port }, () => {
        this.server.off('error', failed);
        this.bound = this.server.address() as AddressInfo;
        resolve(this.bound);
      });
    });
  }

  address(): AddressInfo | null {
    return this.bound;
  }

  /** Stops listening and closes every connection, idle keep-alive ones too. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) {
        resolve();
        return;
      }
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

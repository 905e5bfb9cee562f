/**
 * The uWebSockets.js engine of the `--http` listener (edge-engine.ts): one
 * App, the bridge's WebSocket route on REPLICATION_PATH, every other request
 * to the core. uWS sockets are the core's EdgeSocket as they are. The
 * module comes from engine-choice.ts, which loads it only where a native
 * build runs.
 *
 * uWS rules kept here: a request is valid only inside its handler (read it
 * at once); a response answered later needs onAborted, and cork; a
 * message's ArrayBuffer dies with its callback (the core copies what it
 * keeps).
 */
import { STATUS_CODES } from 'node:http';
import type * as uWS from 'uWebSockets.js';
import {
  bodyBytes,
  REPLICATION_PATH,
  type AcceptedUpgrade,
  type EdgeCore,
  type EdgeEngine,
  type EdgeEngineFactory,
  type EdgeTls,
  type HttpReply,
  type SocketEvents,
} from './edge-engine.js';

export type UwsModule = typeof uWS;

interface SocketData {
  accepted: AcceptedUpgrade;
  events: SocketEvents | null;
}

/** Listen flag of this build (not in its typings): refuse a port in use, as node:net does, instead of sharing it. */
const LIBUS_LISTEN_EXCLUSIVE_PORT = 1;

type ListenWithOptions = (host: string, port: number, options: number, cb: (socket: uWS.us_listen_socket | false) => void) => void;

export function uwsEngine(uws: UwsModule): EdgeEngineFactory {
  return (core, tls) => new UwsEngine(uws, core, tls);
}

class UwsEngine implements EdgeEngine {
  /** The app new connections reach. */
  private app: uWS.TemplatedApp;
  /** Apps replaced by a new certificate: their connections stay open on them until they end or closeAll(). */
  private readonly retired: uWS.TemplatedApp[] = [];
  private listenSocket: uWS.us_listen_socket | null = null;
  private bound: { host: string; port: number } | null = null;
  private readonly tls: boolean;

  constructor(
    private readonly uws: UwsModule,
    private readonly core: EdgeCore,
    tls: EdgeTls | null,
  ) {
    this.tls = tls !== null;
    this.app = this.makeApp(tls);
  }

  /**
   * An App (an SSLApp with TLS: uWS reads the PEM files itself, and with a
   * CA file requires client certificates) with the bridge's WebSocket route
   * and every other request to the core.
   */
  private makeApp(tls: EdgeTls | null): uWS.TemplatedApp {
    const { uws, core } = this;
    const bridge = core.bridge;
    const app =
      tls === null
        ? uws.App()
        : uws.SSLApp({ cert_file_name: tls.files.cert, key_file_name: tls.files.key, ...(tls.files.ca !== null ? { ca_file_name: tls.files.ca } : {}) });
    app.ws<SocketData>(REPLICATION_PATH, {
      maxPayloadLength: bridge.maxPayloadBytes,
      // 0: no uWS limit, so no message is ever dropped; the hub bounds what is queued.
      maxBackpressure: 0,
      closeOnBackpressureLimit: 0,
      // Liveness is the core's, off one clock.
      idleTimeout: 0,
      sendPingsAutomatically: false,
      compression: uws.DISABLED,
      upgrade: (res, req, context) => {
        const key = req.getHeader('sec-websocket-key');
        const extensions = req.getHeader('sec-websocket-extensions');
        const answer = bridge.upgrade({
          origin: req.getHeader('origin'),
          host: req.getHeader('host'),
          protocols: req.getHeader('sec-websocket-protocol'),
          remoteAddress: Buffer.from(res.getRemoteAddressAsText()).toString('latin1'),
        });
        if ('refused' in answer) {
          writeReply(res, answer.refused);
          return;
        }
        res.upgrade<SocketData>({ accepted: answer.accepted, events: null }, key, answer.accepted.protocol, extensions, context);
      },
      open: (ws) => {
        const data = ws.getUserData();
        data.events = bridge.link(ws, data.accepted);
        // Only now: accepting may close the socket, and uWS runs the close handler inside that call.
        data.events.start();
      },
      message: (ws, message, isBinary) => ws.getUserData().events?.message(Buffer.from(message), isBinary),
      drain: (ws) => ws.getUserData().events?.drain(),
      pong: (ws) => ws.getUserData().events?.heard(),
      close: (ws) => ws.getUserData().events?.socketClosed(),
    });
    app.any('/*', (res, req) => {
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      // uWS's request is valid only now: read what the core needs before anything waits.
      const request = {
        method: req.getCaseSensitiveMethod().toUpperCase(),
        path: req.getUrl(),
        // undefined when the URL has no `?` (this build; its typings say string).
        query: (req.getQuery() as string | undefined) ?? '',
        origin: req.getHeader('origin'),
        host: req.getHeader('host'),
      };
      core.serve(request, (r) => {
        if (!aborted) res.cork(() => writeReply(res, r));
      });
    });
    return app;
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const socket = this.listenOn(this.app, host, port);
      if (socket === false) {
        reject(new Error('the address is in use or cannot be bound'));
        return;
      }
      this.listenSocket = socket;
      const bound = this.uws.us_socket_local_port(socket as unknown as uWS.us_socket);
      this.bound = { host, port: bound };
      resolve(bound);
    });
  }

  /** The listen socket, or false; uWS calls back before listen returns. */
  private listenOn(app: uWS.TemplatedApp, host: string, port: number): uWS.us_listen_socket | false {
    let result: uWS.us_listen_socket | false = false;
    (app.listen as unknown as ListenWithOptions).call(app, host, port, LIBUS_LISTEN_EXCLUSIVE_PORT, (socket) => (result = socket));
    return result;
  }

  /**
   * uWS cannot change an SSLApp's certificate, so a new SSLApp takes over the
   * port: the old listen socket is closed and the new one bound in the same
   * turn (a connection attempt in that instant is refused, and retried by
   * clients), and the old app keeps serving the connections it has.
   */
  setTls(tls: EdgeTls): void {
    if (!this.tls) throw new TypeError('this listener was started without TLS: a certificate can only replace another');
    const next = this.makeApp(tls);
    if (this.listenSocket === null || this.bound === null) {
      this.retired.push(this.app);
      this.app = next;
      return;
    }
    const { host, port } = this.bound;
    this.uws.us_listen_socket_close(this.listenSocket);
    const socket = this.listenOn(next, host, port);
    if (socket === false) {
      // Someone took the port in that instant: keep serving with the old certificate.
      this.listenSocket = this.listenOn(this.app, host, port) || null;
      throw new Error(`could not listen on ${host}:${port} again with the new certificate; the old one stays${this.listenSocket === null ? ' but the port is lost: restart the gateway' : ''}`);
    }
    this.listenSocket = socket;
    this.retired.push(this.app);
    this.app = next;
  }

  stopListening(): void {
    if (this.listenSocket !== null) this.uws.us_listen_socket_close(this.listenSocket);
    this.listenSocket = null;
  }

  closeAll(): void {
    // Idle keep-alive HTTP connections too (App.close is in this uWS build, not in its typings).
    for (const app of [...this.retired, this.app]) (app as unknown as { close?: () => void }).close?.();
  }
}

function writeReply(res: uWS.HttpResponse, r: HttpReply): void {
  res.writeStatus(`${r.status} ${STATUS_CODES[r.status] ?? ''}`);
  for (const [name, value] of Object.entries(r.headers)) res.writeHeader(name, value);
  if (r.headOnly) res.endWithoutBody(bodyBytes(r.body));
  else res.end(r.body);
}

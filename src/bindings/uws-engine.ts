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
  HEADERS_TOO_LARGE,
  HTTP_MAX_HEADER_BYTES,
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
  private readonly app: uWS.TemplatedApp;
  private listenSocket: uWS.us_listen_socket | null = null;

  constructor(
    private readonly uws: UwsModule,
    private readonly core: EdgeCore,
    tls: EdgeTls | null,
  ) {
    this.app = this.makeApp(tls);
  }

  /**
   * An App (an SSLApp with TLS: uWS reads the PEM files itself) with the
   * bridge's WebSocket route and every other request to the core.
   */
  private makeApp(tls: EdgeTls | null): uWS.TemplatedApp {
    const { uws, core } = this;
    const bridge = core.bridge;
    // engine-choice.ts never picks this engine for a CA: uWS would ask for client certificates but admit a client without one.
    if (tls !== null && tls.files.ca !== null) throw new TypeError('the uws engine cannot require client certificates: use the ws engine');
    const app = tls === null ? uws.App() : uws.SSLApp({ cert_file_name: tls.files.cert, key_file_name: tls.files.key });
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
        if (headerBlockBytes(req) > HTTP_MAX_HEADER_BYTES) {
          writeReply(res, HEADERS_TOO_LARGE, true);
          return;
        }
        const key = req.getHeader('sec-websocket-key');
        const extensions = req.getHeader('sec-websocket-extensions');
        const answer = bridge.upgrade({
          origin: req.getHeader('origin'),
          host: req.getHeader('host'),
          protocols: req.getHeader('sec-websocket-protocol'),
          cookie: req.getHeader('cookie'),
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
      // uWS takes a header block of about 128 KiB when it comes in one read: hold it to the same limit as node:http.
      if (headerBlockBytes(req) > HTTP_MAX_HEADER_BYTES) {
        res.cork(() => writeReply(res, HEADERS_TOO_LARGE, true));
        return;
      }
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
      (this.app.listen as unknown as ListenWithOptions).call(this.app, host, port, LIBUS_LISTEN_EXCLUSIVE_PORT, (socket) => {
        if (socket === false) {
          reject(new Error('the address is in use or cannot be bound'));
          return;
        }
        this.listenSocket = socket;
        resolve(this.uws.us_socket_local_port(socket as unknown as uWS.us_socket));
      });
    });
  }

  /**
   * uWS 20.30 cannot change an SSLApp's certificate, and a second app cannot
   * take over the port while connections accepted on it are open (the port
   * is bound exclusively, without address reuse): a restart is needed.
   */
  setTls(_tls: EdgeTls): void {
    throw new Error('the uws engine cannot change its certificate while running (uWebSockets.js has no way to): restart the gateway, or run the HTTP listener on --ws-engine ws, which can');
  }

  stopListening(): void {
    if (this.listenSocket !== null) this.uws.us_listen_socket_close(this.listenSocket);
    this.listenSocket = null;
  }

  closeAll(): void {
    // Idle keep-alive HTTP connections too (App.close is in this uWS build, not in its typings).
    (this.app as unknown as { close?: () => void }).close?.();
  }
}

function writeReply(res: uWS.HttpResponse, r: HttpReply, closeConnection = false): void {
  res.writeStatus(`${r.status} ${STATUS_CODES[r.status] ?? ''}`);
  for (const [name, value] of Object.entries(r.headers)) res.writeHeader(name, value);
  if (r.headOnly) res.endWithoutBody(bodyBytes(r.body), closeConnection);
  else res.end(r.body, closeConnection);
}

/** The request's header block as sent, near enough: its request line, and each `name: value` line with its CRLF. */
function headerBlockBytes(req: uWS.HttpRequest): number {
  // "GET " + url + "?" + query + " HTTP/1.1\r\n" + the blank line's CRLF.
  let bytes = req.getMethod().length + req.getUrl().length + ((req.getQuery() as string | undefined)?.length ?? 0) + 14;
  req.forEach((name, value) => {
    bytes += name.length + value.length + 4;
  });
  return bytes;
}

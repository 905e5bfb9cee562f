/**
 * The entry of /client.js, the browser client as one ES module:
 *
 *     import { ReplicationClient } from '/client.js';
 */
export { ReplicationClient, type BrowserClientOptions, type ClientEvents, type RowsEvent } from './client.js';
export { WsClientTransport, wsClientTransport, type WebSocketLike, type WebSocketConstructor } from './ws-transport.js';
export { RowBatch } from '../core/row-batch.js';
export type { InstanceFollow } from '../core/instance-follows.js';

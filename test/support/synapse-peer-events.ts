// The JSON-lines events the Synapse reference peers print on stdout
// (../shared/synapse-peer/README.md), as types and type guards for tests.

import type { JsonObject } from './json-line-log.js';

/** master.py's stdout: {"ts":..., "event":"...", ...}. */
export interface MasterEvent {
  ts: number;
  event: string;
  [field: string]: unknown;
}
export interface MasterListening extends MasterEvent {
  event: 'listening';
  port: number;
  server_name: string;
  pid: number;
  json: string;
  synapse_commit: string | null;
  streams_available: string[];
  /** Current token per generated stream (the prefill). */
  tokens: Record<string, number>;
}
export interface MasterConnectionMade extends MasterEvent {
  event: 'connection_made';
  conn: string;
  conn_id: string;
  peer: string;
}
/** A command from a client: `conn` is "<NAME>-<conn_id>" ("anon-..." before NAME). */
export interface MasterRecv extends MasterEvent {
  event: 'recv';
  conn: string;
  cmd: string;
  args: JsonObject;
  line: string | null;
}
/** A command sent: every one with logSent, else only ERRORs. `line` has no LF. */
export interface MasterSend extends MasterEvent {
  event: 'send';
  conn: string;
  cmd: string;
  line: string;
  state: string;
  buffered: boolean;
}
export interface MasterConnectionLost extends MasterEvent {
  event: 'connection_lost';
  conn: string;
  reason: string;
}
interface MasterEventMap {
  listening: MasterListening;
  connection_made: MasterConnectionMade;
  recv: MasterRecv;
  send: MasterSend;
  connection_lost: MasterConnectionLost;
}

/** A type guard for waitFor/filter: `master.events.all().filter(masterEvent('recv'))`. */
export function masterEvent<K extends keyof MasterEventMap>(name: K): (e: MasterEvent) => e is MasterEventMap[K];
export function masterEvent(name: string): (e: MasterEvent) => boolean;
export function masterEvent(name: string): (e: MasterEvent) => boolean {
  return (e) => e.event === name;
}

export type StreamToken = number | 'NOW';

/** worker.py's stdout: one object per call of Synapse's handler, and its own life cycle. */
export type WorkerEvent =
  | { type: 'rdata'; stream: string; token: number; rows: unknown[][]; ts: number }
  | { type: 'position'; stream: string; token: number; rows: []; ts: number }
  | { type: 'server'; name: string; ts: number }
  | { type: 'error'; data: string; ts: number }
  | { type: 'sync'; data: string; ts: number }
  | { type: 'connected'; connection: number; replicate: Record<string, StreamToken>; ts: number }
  | { type: 'connection_lost'; reason: string; ts: number }
  | {
      type: 'done';
      why: string;
      positions: Record<string, StreamToken> | null;
      rdata_calls: number;
      rows: number;
      connections: number;
      ts: number;
    }
  | { type: 'bad_op'; op?: unknown; line?: string; error?: string; ts: number };

export function workerEvent<K extends WorkerEvent['type']>(
  type: K,
): (e: WorkerEvent) => e is Extract<WorkerEvent, { type: K }> {
  return (e): e is Extract<WorkerEvent, { type: K }> => e.type === type;
}

/** What `send()` writes to a worker started with `stdin: true` (worker.py's send_op). */
export type WorkerOp =
  | { op: 'user_sync'; user_id: string; syncing?: boolean; last_sync_ms?: number }
  | { op: 'federation_ack'; token: number }
  | { op: 'remove_pusher'; app_id: string; push_key: string; user_id: string }
  | { op: 'invalidate_cache'; cache_func: string; keys: unknown }
  | {
      op: 'user_ip';
      user_id: string;
      access_token: string;
      ip: string;
      user_agent: string;
      device_id?: string | null;
      last_seen: number;
    }
  | { op: 'quit' };

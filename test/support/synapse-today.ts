// The recordings of a current Synapse deployment on Redis
// (../shared/synapse-today/recordings, described by its README.md): loading
// and the kinds of event and observation the tests read.
//
//   const r = loadRecording('02_live_multiwriter_events_and_caches');
//   for (const p of publishes(r)) ...            // every PUBLISH, in wire order
//
// The recordings are shared data, not part of the project: a test that needs
// them asks todayRecordingsSkip() for its skip option (missing data fails
// under CI=true).

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from './project-root.js';

export const TODAY_RECORDINGS_ENV = 'SYNAPSE_TODAY_DIR';

export function todayRecordingsDir(): string {
  const override = process.env[TODAY_RECORDINGS_ENV];
  return path.join(override ? path.resolve(override) : path.join(projectRoot(), '..', 'shared', 'synapse-today'), 'recordings');
}

export function todayRecordingsSkip(): false | string {
  const dir = todayRecordingsDir();
  if (existsSync(dir)) return false;
  const missing = `the recordings of today's Synapse are not at ${dir}: put the project's shared/ folder beside the project root (../shared), or set ${TODAY_RECORDINGS_ENV}`;
  if (process.env['CI'] === 'true') throw new Error(`CI=true and ${missing}`);
  return `skipped: ${missing}`;
}

export interface PublishEvent { t: number; kind: 'publish'; from: string; channel: string; payload: string }
export interface RedisEvent { t: number; kind: 'redis'; from: string; command: string[] }
export interface NoteEvent { t: number; kind: 'note'; text: string; process?: string }
export interface HttpEvent {
  t: number;
  kind: 'http';
  client: string;
  server: string;
  request: { method: string; target: string; path: string; query: Record<string, string>; headers: [string, string][] };
  response: { status: number; headers: [string, string][]; body_raw: string; body: unknown };
}
export type RecordedEvent = PublishEvent | RedisEvent | NoteEvent | HttpEvent;

export interface ObservedRdata { t: number; process: string; kind: 'rdata'; stream: string; instance: string; token: number; rows: unknown[]; via: 'live' | 'catch-up' }
export interface ObservedPosition { t: number; process: string; kind: 'position'; stream: string; instance: string; token: number }
export interface ObservedOther { t: number; process: string; kind: 'fetch' | 'rdata_dropped' | 'effect'; [key: string]: unknown }
export type Observed = ObservedRdata | ObservedPosition | ObservedOther;

export interface Recording {
  name: string;
  server_name: string;
  stream_writers: Record<string, string[]>;
  observed_processes: string[];
  wire_final_positions: Record<string, Record<string, number>>;
  events: RecordedEvent[];
  observed: Observed[];
}

export function recordingNames(): string[] {
  return readdirSync(todayRecordingsDir())
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -'.json'.length))
    .sort();
}

const cache = new Map<string, Recording>();

export function loadRecording(name: string): Recording {
  let r = cache.get(name);
  if (r === undefined) {
    r = JSON.parse(readFileSync(path.join(todayRecordingsDir(), `${name}.json`), 'utf8')) as Recording;
    cache.set(name, r);
  }
  return r;
}

export function publishes(r: Recording): PublishEvent[] {
  return r.events.filter((e): e is PublishEvent => e.kind === 'publish');
}

/** Publishes made by Synapse's own processes (not file 09's hazard demo). */
export function synapsePublishes(r: Recording): PublishEvent[] {
  return publishes(r).filter((e) => e.from.endsWith('/outbound'));
}

/** The RDATA lines received, by `stream/instance` (today's form), each pair's in order. */
export function byPair(lines: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const l of lines) {
    if (!l.startsWith('RDATA ')) continue;
    const [, stream, instance] = l.split(' ');
    const key = `${stream}/${instance}`;
    out.set(key, [...(out.get(key) ?? []), l]);
  }
  return out;
}

/**
 * Rows fetched from Synapse's HTTP replication endpoint
 * (`get_repl_stream_updates`), as the lines Synapse would have published:
 *
 *     {"updates":[[419,["@alice:hs"]],[419,["remote.net"]]],"upto_token":419,"limited":false}
 *     RDATA to_device to_device_writer1 batch ["@alice:hs"]
 *     RDATA to_device to_device_writer1 419 ["remote.net"]
 *
 * Rows sharing a token are one group (every row but the last a `batch` row).
 * The JSON is compact and ASCII-only, non-ASCII as \uXXXX (surrogate pairs
 * for astral characters), as Synapse's own encoder writes it.
 */
import { encodeTodayRow } from './dialects/synapse-today.js';

export interface StreamUpdates {
  updates: [number, unknown][];
  uptoToken: number;
  limited: boolean;
}

export interface FetchedGroup {
  token: number;
  bytes: Buffer;
  lines: number;
}

/** The answer's body, checked: what the endpoint sent, or an Error naming what is wrong with it. */
export function parseStreamUpdates(body: string): StreamUpdates {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (err) {
    throw new Error(`the replication endpoint's answer is not JSON: ${(err as Error).message}`);
  }
  const v = value as { updates?: unknown; upto_token?: unknown; limited?: unknown };
  if (
    !Array.isArray(v.updates) ||
    !Number.isSafeInteger(v.upto_token) ||
    typeof v.limited !== 'boolean' ||
    !v.updates.every((u) => Array.isArray(u) && u.length === 2 && Number.isSafeInteger(u[0]))
  ) {
    throw new Error('the replication endpoint\'s answer is not {"updates":[[token,row],...],"upto_token":N,"limited":bool}');
  }
  return { updates: v.updates as [number, unknown][], uptoToken: v.upto_token as number, limited: v.limited };
}

/** Synapse's JSON text of a row: compact, ASCII-only. */
export function synapseJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The updates as groups of today's RDATA lines, in the answer's (token) order. */
export function updateGroups(stream: string, instance: string, updates: readonly [number, unknown][]): FetchedGroup[] {
  const out: FetchedGroup[] = [];
  let i = 0;
  while (i < updates.length) {
    const token = updates[i]![0];
    let j = i;
    while (j + 1 < updates.length && updates[j + 1]![0] === token) j++;
    const lines: Buffer[] = [];
    for (let k = i; k <= j; k++) lines.push(encodeTodayRow(stream, instance, k === j ? token : null, synapseJson(updates[k]![1])));
    out.push({ token, bytes: lines.length === 1 ? lines[0]! : Buffer.concat(lines), lines: lines.length });
    i = j + 1;
  }
  return out;
}

// Runs fairness-peer.js in a child process and reads its answer: shared by
// the fairness test and M7.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const PEER = fileURLToPath(new URL('./fairness-peer.js', import.meta.url));

/** One probe's row delivery times, in ms from the writer's send to the subscriber's read. */
export interface Latency {
  rows: number;
  p50: number;
  p99: number;
  max: number;
}

/** Floods `port` with PINGs for `ms` ms; resolves when the flooder exits. */
export function floodPings(port: number, ms: number): Promise<void> {
  return runPeer(['flood', String(port), String(ms)], ms + 15_000).then(() => undefined);
}

/** What a WebSocket flood sent, and the gateway's ERROR if it cut the flooder. */
export interface WsFlood {
  sentBytes: number;
  cut: string | null;
}

/** Floods the WebSocket at `url` with ~1 MB messages of PINGs for `ms` ms (or until the gateway cuts it). */
export async function floodWsPings(url: string, ms: number): Promise<WsFlood> {
  return JSON.parse(await runPeer(['wsflood', url, String(ms)], ms + 15_000)) as WsFlood;
}

/** Writes `rows` rows 5 ms apart to `events` on `port` (writer token `w`) and times their return to a subscriber. */
export async function probeLatency(port: number, rows: number): Promise<Latency> {
  return JSON.parse(await runPeer(['probe', String(port), String(rows)], 15_000 + rows * 20)) as Latency;
}

function runPeer(args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [PEER, ...args], { timeout: timeoutMs }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
}

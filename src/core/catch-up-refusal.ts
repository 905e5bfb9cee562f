/**
 * The ERROR that refuses a catch-up, written by our server and read back by
 * a relay whose upstream sent it, in one place so the two cannot drift:
 *
 *     ERROR token 0 is older than the oldest retained token 500 (stream=events oldest=500 head=900)   a gateway
 *     ERROR token 0 is older than ... (stream=events instance=event_persister1 oldest=500 head=900)   a followed Synapse pair
 *     ERROR failed to handle replicate: Exception('stream events has fallen behined')             Synapse 2017 (sic)
 *
 * Only the gateway's form is part of its protocol (docs/protocol.md section
 * 4); Synapse's is read so that a relay in front of a Synapse master can
 * follow a refused stream from NOW.
 */

/** The reason text of our too-old ERROR (no `ERROR ` prefix); a followed Synapse pair's also names its instance. */
export function tooOldReason(stream: string, token: number, oldest: number, head: number, instance?: string): string {
  const pair = instance === undefined ? '' : ` instance=${instance}`;
  return `token ${token} is older than the oldest retained token ${oldest} (stream=${stream}${pair} oldest=${oldest} head=${head})`;
}

const GATEWAY_TOO_OLD = /\bis older than the oldest retained token \d+(?: \(stream=([A-Za-z0-9_.-]+)[ )])?/;
const SYNAPSE_FALLEN_BEHIND = /\bstream ([A-Za-z0-9_.-]+) has fallen behine?d\b/;

/**
 * Whether an upstream ERROR's text refuses a catch-up, and of which stream:
 * `{ stream: null }` for a gateway's too-old ERROR that names no stream (an
 * older build); null for any other ERROR.
 */
export function catchUpRefusal(message: string): { stream: string | null } | null {
  const synapse = SYNAPSE_FALLEN_BEHIND.exec(message);
  if (synapse !== null) return { stream: synapse[1]! };
  const gateway = GATEWAY_TOO_OLD.exec(message);
  if (gateway !== null) return { stream: gateway[1] ?? null };
  return null;
}

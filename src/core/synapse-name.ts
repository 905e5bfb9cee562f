/**
 * What a followed Synapse stream or writer instance may be called here: the
 * history keeps each pair under `<stream>/<instance>/` on disk, and the
 * three-argument REPLICATE names them, so both hold to one rule.
 */
export const SYNAPSE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** Whether `name` can be the instance word of a three-argument REPLICATE: a writer's name, or '*' (every writer). */
export function isInstanceWord(name: string): boolean {
  return name === '*' || SYNAPSE_NAME.test(name);
}

/** How one (stream, writer instance) pair is named where a stream's name alone is not enough: `events/event_persister1`. */
export function pairKey(stream: string, instance: string): string {
  return `${stream}/${instance}`;
}

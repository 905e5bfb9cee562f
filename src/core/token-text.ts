/**
 * A token, or where a REPLICATE starts, as a person writes it on a command
 * line (`tail --stream events:54`, `publish --start-token 1`, the bench's
 * `--from NOW`): the wire's rule for a token (the v1 dialect's: decimal digits,
 * 0 to 2^53-1) applied to text, and NOW in the two spellings REPLICATE takes.
 */
import { parseTokenBytes } from './dialects/v1-text.js';

/** `text` as a token, or null. */
export function parseTokenText(text: string): number | null {
  const bytes = Buffer.from(text, 'utf8');
  const token = parseTokenBytes(bytes, 0, bytes.length);
  return token < 0 ? null : token;
}

/** `text` as REPLICATE's starting point: a token, or 'NOW' (written `NOW` or `now`); null otherwise. */
export function parseReplicateFrom(text: string): number | 'NOW' | null {
  return text === 'NOW' || text === 'now' ? 'NOW' : parseTokenText(text);
}

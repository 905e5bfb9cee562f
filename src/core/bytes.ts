/** Byte tests the line readers share: lines stay bytes, so a prefix is compared in place. */

/** Whether `buf[start, end)` begins with `prefix`. */
export function startsWith(buf: Buffer, start: number, end: number, prefix: Buffer): boolean {
  const n = prefix.length;
  if (end - start < n) return false;
  for (let i = 0; i < n; i++) if (buf[start + i] !== prefix[i]) return false;
  return true;
}

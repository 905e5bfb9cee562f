/** A buffer of ~200-byte RDATA lines like Synapse's events stream, for the micro-benchmarks. */
export function rdataLines(totalBytes: number): { data: Buffer; lines: number } {
  const lines: string[] = [];
  let size = 0;
  for (let token = 1; size < totalBytes; token++) {
    const id = token.toString(36).padStart(8, '0');
    const line = `RDATA events ${token} ["$${id}:example.com","!${id.slice(-4)}room:example.com","m.room.message","@alice:example.com",null,"${'x'.repeat(80)}"]\n`;
    lines.push(line);
    size += line.length;
  }
  return { data: Buffer.from(lines.join('')), lines: lines.length };
}

/** Socket-sized views of `data`, as a reader would receive it. */
export function chunksOf(data: Buffer, chunkBytes = 64 * 1024): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += chunkBytes) out.push(data.subarray(i, i + chunkBytes));
  return out;
}

/** A TCP address as people write it: `HOST:PORT`, IPv6 as `[::1]:PORT`. */
export interface HostPort {
  host: string;
  port: number;
}

/** `text` as HOST:PORT with a port from `minPort` to 65535, or null; callers say what they expected. */
export function parseHostPort(text: string, minPort: number): HostPort | null {
  const m = /^(?:\[([^\]\s]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(text);
  if (m === null) return null;
  const port = Number(m[3]);
  return port < minPort || port > 65535 ? null : { host: m[1] ?? m[2]!, port };
}

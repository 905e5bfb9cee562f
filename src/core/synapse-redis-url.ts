/**
 * `--synapse-redis`: where a followed Synapse's Redis is, from the URL an
 * operator writes. Apart from the link itself (bindings/synapse-redis.ts),
 * so reading settings never loads the Redis client.
 *
 *     redis://[USER:PASSWORD@]HOST[:PORT][/DB]   rediss://... (TLS)   unix:/PATH[?db=N]
 */

/** `--synapse-redis`: where Synapse's Redis is. */
export interface SynapseRedisSpec {
  address: { host: string; port: number } | { path: string };
  tls: boolean;
  db: number;
  username: string | null;
  password: string | null;
}

/** `redis://[USER:PASSWORD@]HOST[:PORT][/DB]`, `rediss://...` (TLS) or `unix:/PATH[?db=N]`; null when it is none of these. */
export function parseSynapseRedisUrl(text: string): SynapseRedisSpec | null {
  if (text.startsWith('unix:')) {
    const [file, query] = text.slice('unix:'.length).split('?', 2) as [string, string | undefined];
    const db = query === undefined ? 0 : /^db=([0-9]{1,2})$/.exec(query)?.[1];
    if (!file.startsWith('/') || db === undefined) return null;
    return { address: { path: file }, tls: false, db: Number(db), username: null, password: null };
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if ((url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '' || url.search !== '' || url.hash !== '') return null;
  const dbText = url.pathname.replace(/^\//, '');
  if (dbText !== '' && !/^[0-9]{1,2}$/.test(dbText)) return null;
  return {
    address: { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port === '' ? 6379 : Number(url.port) },
    tls: url.protocol === 'rediss:',
    db: dbText === '' ? 0 : Number(dbText),
    username: url.username === '' ? null : decodeURIComponent(url.username),
    password: url.password === '' ? null : decodeURIComponent(url.password),
  };
}

export function describeSynapseRedis(spec: SynapseRedisSpec): string {
  if ('path' in spec.address) return `unix:${spec.address.path}?db=${spec.db}`;
  return `${spec.tls ? 'rediss' : 'redis'}://${spec.address.host}:${spec.address.port}/${spec.db}`;
}

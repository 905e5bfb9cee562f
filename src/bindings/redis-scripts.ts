/**
 * The Lua scripts of the Redis Streams log (redis-log.ts): each runs
 * atomically in Redis, so every gateway on one Redis sees one order of
 * appends and one token per entry. Per replication stream two keys:
 *
 *     <prefix>:stream:<name>   a Redis stream, one entry per log entry, id `<lastToken>-0`,
 *                              fields v (the wire lines), p (the head before it),
 *                              l (lines), r (rows), n (bytes of v), g (group ends, when several)
 *     <prefix>:meta:<name>     a hash: head, oldest, rows, bytes, w (tag of the last append)
 *
 * `p` chains the entries: a reader that finds `p` above what it last heard
 * knows entries were trimmed or lost under it, never a silent gap. Numbers
 * leave Lua through string.format('%.0f'), as tostring would write 1e+15.
 */

/** Field order of a stored entry: readers take values by position. */
export const FIELD = { v: 1, p: 3, l: 5, r: 7, n: 9, g: 11 } as const;

/**
 * KEYS stream, meta. ARGV lastToken, firstToken, prevTag ('' unless an
 * append of this log is still in flight: then the head must be that one),
 * tag, floor (the head this log knows), v, lines, rows, bytes, retentionRows,
 * retentionBytes, groups ('' for one group). Returns {oldest, rows, bytes}.
 */
export const APPEND_LUA = `
local m = redis.call('HMGET', KEYS[2], 'head', 'oldest', 'rows', 'bytes', 'w')
if ARGV[3] ~= '' and m[5] ~= ARGV[3] then
  return redis.error_reply('CHAIN_BROKEN another writer appended to this stream first (its head is ' .. tostring(m[1]) .. ')')
end
local first = tonumber(ARGV[2])
local known = tonumber(ARGV[5])
if m[1] then known = math.max(known, tonumber(m[1])) end
if first <= known then
  return redis.error_reply('TOKEN_NOT_RISING token ' .. ARGV[2] .. ' is not above the stream head ' .. string.format('%.0f', known))
end
local rowsIn = tonumber(ARGV[8])
local oldest = tonumber(m[2])
if oldest == nil then
  if rowsIn > 0 then oldest = first - 1 else oldest = tonumber(ARGV[1]) end
end
local rows = (tonumber(m[3]) or 0) + rowsIn
local bytes = (tonumber(m[4]) or 0) + tonumber(ARGV[9])
local prev = string.format('%.0f', known)
if ARGV[12] == '' then
  redis.call('XADD', KEYS[1], ARGV[1] .. '-0', 'v', ARGV[6], 'p', prev, 'l', ARGV[7], 'r', ARGV[8], 'n', ARGV[9])
else
  redis.call('XADD', KEYS[1], ARGV[1] .. '-0', 'v', ARGV[6], 'p', prev, 'l', ARGV[7], 'r', ARGV[8], 'n', ARGV[9], 'g', ARGV[12])
end
local maxRows = tonumber(ARGV[10])
local maxBytes = tonumber(ARGV[11])
if rows > maxRows or bytes > maxBytes then
  -- Oldest whole entries go first; the newest stays however large.
  local len = redis.call('XLEN', KEYS[1])
  local from = '-'
  local cut = nil
  while (rows > maxRows or bytes > maxBytes) and len > 1 do
    local e = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', 1)[1]
    rows = rows - tonumber(e[2][8])
    bytes = bytes - tonumber(e[2][10])
    cut = tonumber(string.match(e[1], '^(%d+)'))
    from = '(' .. e[1]
    len = len - 1
  end
  if cut then
    oldest = cut
    redis.call('XTRIM', KEYS[1], 'MINID', string.format('%.0f-0', cut + 1))
  end
end
redis.call('HSET', KEYS[2], 'head', ARGV[1], 'oldest', string.format('%.0f', oldest),
  'rows', string.format('%.0f', rows), 'bytes', string.format('%.0f', bytes), 'w', ARGV[4])
return {oldest, rows, bytes}
`;

/**
 * KEYS meta. ARGV startToken ('' when the history's start is unknown): a
 * stream seen for the first time starts there. Returns {head, oldest, rows,
 * bytes}, false for what is not known yet.
 */
export const OPEN_LUA = `
if ARGV[1] ~= '' and redis.call('HEXISTS', KEYS[1], 'head') == 0 then
  redis.call('HSET', KEYS[1], 'head', ARGV[1], 'oldest', ARGV[1], 'rows', '0', 'bytes', '0')
end
return redis.call('HMGET', KEYS[1], 'head', 'oldest', 'rows', 'bytes')
`;

/** KEYS stream, meta. ARGV token: every entry goes; the history before `token` is unknown. */
export const RESTART_LUA = `
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], 'head', ARGV[1], 'oldest', ARGV[1], 'rows', '0', 'bytes', '0', 'w', '')
return 1
`;

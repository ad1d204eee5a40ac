-- The wallet book shared by every replica (dizuo.billing.shared): the keys and functions each of
-- its scripts starts with. KEYS[1 … 5] are the organization's wallet hash, its holds (hash and
-- expiry set) and its pending charges (hash and expiry set); dizuo.billing.shared._keys names them.
local w, h, hx, p, px = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local NEVER = 1e15  -- 'due' when nothing can lapse
-- A whole number as Redis's argument: Lua would write it with '%.17g', several times slower (and
-- write 0 - 0 as "-0", which HINCRBY refuses).
local function int(x) return string.format('%d', x) end
-- The wallet's fields 'bal', 'held', 'pend', 'due' and, per voucher id in ARGV[first], ARGV[first + 2],
-- …, its 'r:', 'h:' and 'p:' (one HMGET): the table v has them as numbers, by field name; then the
-- raw 'ver' (false: Redis does not know the wallet). ('due', whole seconds, is a time no hold or
-- pending charge lapses before; 0 or absent: none known.)
local function read(first, n)
  local names = {'bal', 'held', 'pend', 'due', 'ver'}
  for i = 0, n - 1 do
    local vid = ARGV[first + 2 * i]
    names[#names + 1] = 'r:' .. vid
    names[#names + 1] = 'h:' .. vid
    names[#names + 1] = 'p:' .. vid
  end
  local got = redis.call('HMGET', w, unpack(names))
  local v = {}
  for i, name in ipairs(names) do v[name] = tonumber(got[i] or '0') end
  return v, got[5]
end
-- A hold or pending charge that lapses at *e* is added: 'due' must stay no later.
local function lapses_at(v, e)
  if e < v.due then redis.call('HSET', w, 'due', int(e)) end
end
-- Forget one hold (h/hx, 'held', 'h:') or pending charge (p/px, 'pend', 'p:') and its money.
local function drop(hash, zset, id, total, prefix)
  local rec = redis.call('HGET', hash, id)
  if not rec then return false end
  local parts = {}
  for x in string.gmatch(rec, '[^,]+') do parts[#parts + 1] = x end
  redis.call('HINCRBY', w, total, int(0 - tonumber(parts[1])))
  for i = 2, #parts, 2 do redis.call('HINCRBY', w, prefix .. parts[i], int(0 - tonumber(parts[i + 1]))) end
  redis.call('HDEL', hash, id)
  redis.call('ZREM', zset, id)
  return true
end

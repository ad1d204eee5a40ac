-- Hold a call's money across its eligible vouchers and the own balance, taking its rate limits in
-- the same script (after limits.lua and wallet.lua). Built by dizuo.billing.shared.ReserveArgs.
-- KEYS: the wallet's five, then the rate limits' subjects (if any).
-- ARGV: now, expires_at, hold_id, amount, n, then n × (voucher id, co-pay in ten-thousandths), the
--   eligible vouchers soonest-expiring first, then the limits' arguments (limits_check's).
-- Reply (the first element is dizuo.billing.shared.Reserved):
--   {1, own, v1 part, v2 part, …, then the limits' levels}   parts in ARGV order: taken
--   {0, own needed, vouchers' part, free}                     the own balance cannot pay
--   {2, subject index, kind, seconds}                         a rate limit refuses (before the
--                                                             wallet is asked: a 429 comes first)
--   {-1}                                                      Redis does not know the wallet
--   Only {1} takes anything.
local now = tonumber(ARGV[1])
local amount = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
local v, ver = read(6, n)
if not ver then return {-1} end
if v.due <= now then
  -- Something may have lapsed (a crashed replica's): free it, and note when the next may lapse.
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', hx, '-inf', now)) do drop(h, hx, id, 'held', 'h:') end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', px, '-inf', now)) do drop(p, px, id, 'pend', 'p:') end
  local due = NEVER
  for _, z in ipairs({hx, px}) do
    local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
    if first[2] then due = math.min(due, tonumber(first[2])) end
  end
  redis.call('HSET', w, 'due', int(due))
  v = read(6, n)
end
-- The split of billing/split.py: each voucher pays its co-pay share of the part of the charge not yet
-- covered, soonest expiry first, until one covers the rest. While that part is a whole number the
-- arithmetic is exact integers (round half up, as in Python); after a voucher ran out mid-charge it
-- may be fractional, and the hold rounds the voucher's part up and the own part up by one micro-yuan,
-- so a hold is never smaller than the exact split settle computes.
local rest, whole = amount, true
local parts, paid = {}, 0
for i = 0, n - 1 do
  local vid, c = ARGV[6 + 2 * i], tonumber(ARGV[7 + 2 * i])
  local avail = v['r:' .. vid] - v['h:' .. vid] - v['p:' .. vid]
  local part = 0
  if rest > 0 and avail > 0 then
    local wanted
    if whole then wanted = math.floor((rest * c + 5000) / 10000) else wanted = math.ceil(rest * c / 10000) end
    if wanted <= avail then
      part, rest = wanted, 0
    else
      part = avail
      if whole and (avail * 10000) % c ~= 0 then whole = false end
      rest = rest - avail * 10000 / c
    end
  end
  parts[i + 1] = part
  paid = paid + part
end
local own = amount - paid
if not whole then own = own + 1 end
local free = v.bal - v.held - v.pend
local m, la = #KEYS - 5, 5 + 2 * n
local ok, seen = limits_check(5, la, m)
if not ok then return {2, seen[1], seen[2], seen[3]} end
if own > free then return {0, own, paid, math.max(free, 0)} end
local rec = {int(own)}
redis.call('HINCRBY', w, 'held', rec[1])
for i = 0, n - 1 do
  if parts[i + 1] > 0 then
    local part = int(parts[i + 1])
    redis.call('HINCRBY', w, 'h:' .. ARGV[6 + 2 * i], part)
    rec[#rec + 1] = ARGV[6 + 2 * i]
    rec[#rec + 1] = part
  end
end
redis.call('HSET', h, ARGV[3], table.concat(rec, ','))
redis.call('ZADD', hx, ARGV[2], ARGV[3])
lapses_at(v, tonumber(ARGV[2]))
limits_take(5, la, m, seen, parts)
table.insert(parts, 1, own)
table.insert(parts, 1, 1)
return parts

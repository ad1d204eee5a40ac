-- Charge a call against its hold: a pending charge until the journal commits it, the usage record
-- staged on the stream when asked, the rate limits given back (after limits.lua and wallet.lua).
-- Built by dizuo.billing.shared.SettleArgs.
-- KEYS: the wallet's five, the stream, then the limits' subjects (if any).
-- ARGV: hold_id, own wanted, own held, pending id, expires_at ('+inf': staged, never lapses), n,
--   then n × (voucher id, paid), then the usage record to stage ('' when not staging), then the
--   limits' arguments (limits_give_back's).
-- The stream entry: p: pending id, m: what was charged (own, then voucher id, part, … as in the
--   pending record), r: the record.
-- Reply: {own charged, each voucher's part, in ARGV order}.
local found = drop(h, hx, ARGV[1], 'held', 'h:')
local n = tonumber(ARGV[6])
local v = read(7, n)
local rec = {}
local pays = {}
local short = 0
for i = 0, n - 1 do
  local vid, paid = ARGV[7 + 2 * i], tonumber(ARGV[8 + 2 * i])
  local pay = math.min(paid, math.max(v['r:' .. vid] - v['h:' .. vid] - v['p:' .. vid], 0))
  short = short + paid - pay
  if pay > 0 then
    local part = int(pay)
    redis.call('HINCRBY', w, 'p:' .. vid, part)
    rec[#rec + 1] = vid
    rec[#rec + 1] = part
  end
  pays[#pays + 1] = pay
end
local free = math.max(v.bal - v.held - v.pend, 0)
-- A hold still in place is honoured in full even if a brief double count hides its money.
if found then free = math.max(free, tonumber(ARGV[3])) end
local charged = math.min(tonumber(ARGV[2]) + short, free)
table.insert(rec, 1, int(charged))
redis.call('HINCRBY', w, 'pend', rec[1])
local m = table.concat(rec, ',')
redis.call('HSET', p, ARGV[4], m)
if ARGV[5] ~= '+inf' then  -- staged: never lapses
  redis.call('ZADD', px, ARGV[5], ARGV[4])
  lapses_at(v, tonumber(ARGV[5]))
end
local record = ARGV[7 + 2 * n]
if record ~= '' then redis.call('XADD', KEYS[6], '*', 'p', ARGV[4], 'm', m, 'r', record) end
limits_give_back(6, 7 + 2 * n, #KEYS - 6)
table.insert(pays, 1, charged)
return pays

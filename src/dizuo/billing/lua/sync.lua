-- Push a wallet's committed state (unless Redis has a newer one) and drop the charges it contains
-- from 'pend' (after wallet.lua). Built by dizuo.billing.shared._sync_args.
-- ARGV: version, balance, n, then n × (voucher id, remaining), then the pending ids now committed.
-- Reply: 1.
local n = tonumber(ARGV[3])
if tonumber(ARGV[1]) > tonumber(redis.call('HGET', w, 'ver') or '-1') then
  redis.call('HSET', w, 'ver', ARGV[1], 'bal', ARGV[2])
  for i = 0, n - 1 do redis.call('HSET', w, 'r:' .. ARGV[4 + 2 * i], ARGV[5 + 2 * i]) end
end
for i = 4 + 2 * n, #ARGV do drop(p, px, ARGV[i], 'pend', 'p:') end
return 1

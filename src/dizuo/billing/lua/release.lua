-- Drop a hold and give back the rate limits taken with it (after limits.lua and wallet.lua).
-- KEYS: the wallet's five, then the limits' subjects (if any). ARGV: hold_id, then the limits'
-- arguments (limits_give_back's). Reply: 1.
drop(h, hx, ARGV[1], 'held', 'h:') limits_give_back(5, 1, #KEYS - 5) return 1

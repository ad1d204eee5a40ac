-- Take a call's rate limits from every subject, or from none (after limits.lua).
-- KEYS: per subject its hash. ARGV: as limits_check's, from 1.
-- Reply: {0, subject index, kind, seconds to wait} (Acquired.REFUSED), or {1, then what
-- limits_take appends} (Acquired.TAKEN).
local ok, seen = limits_check(0, 0, #KEYS)
if not ok then return {0, seen[1], seen[2], seen[3]} end
local out = {1}
limits_take(0, 0, #KEYS, seen, out)
return out

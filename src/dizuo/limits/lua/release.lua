-- Give back a call's concurrency slots and correct its token estimate (after limits.lua).
-- KEYS: per subject its hash. ARGV: as limits_give_back's, from 1. Reply: 1.
limits_give_back(0, 0, #KEYS) return 1

-- Rate limits shared by every replica (dizuo.limits.shared): Lua functions that the limiter's own
-- scripts (acquire.lua, release.lua) and the wallet's (dizuo/billing/lua) run, so that a call's
-- limits and its hold are taken in one round trip.
--
-- A subject's state is one hash (few Redis commands per call: each costs a script 1–2 µs). Its field
-- 'b' is "requests tokens stamp rpm tpm n due until", all whole numbers (formatting a fraction costs
-- Lua ten times more): the buckets' levels in thousandths at the stamp (Redis's clock, milliseconds),
-- the capacities they were filled for (-1 where a limit is absent), the concurrency slots taken, a
-- time no slot lapses before (milliseconds; 0: none known) and when the key's TTL ends (seconds). Each
-- slot is a field of its own, the permit id, valued when it lapses (milliseconds). The TTL is renewed
-- only when it would end less than a slot's life (or a minute, for the buckets) from now, so at most
-- about every two minutes.
--
-- Arguments (built by dizuo.limits.shared.taking and giving_back):
--   KEYS[k + 1 …]   per subject, its hash
--   limits_check, limits_take: ARGV[a + 1 …] = tokens, permit id, slot seconds, then per subject
--                   (rpm, tpm, concurrency), -1 where absent
--   limits_give_back: ARGV[a + 1 …] = permit id, token correction, then the same triples
-- Replies:
--   limits_check(k, a, m)  false, {subject index (0-based), kind, seconds to wait} when a limit
--                          refuses (kind: 1 requests, 2 tokens, 3 concurrency: LimitKind), else
--                          true and the state seen
--   limits_take(k, a, m, seen, out)  appends per subject (requests left, ms until the requests
--                          bucket is full, tokens left, ms until the tokens bucket is full) to out
local clock, ms  -- Redis's clock: seconds, and whole milliseconds; read by the first limit function
local function tick()
  if ms then return end
  local t = redis.call('TIME')
  ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  clock = ms / 1000
end
-- The subject's state now: {requests, tokens, slots, due, until}, the buckets full when new or when
-- their capacity changed, else refilled since the stamp.
local function state(key, rpm, tpm)
  local rl, tl, n, due, untl = rpm, tpm, 0, 0, 0
  local v = redis.call('HGET', key, 'b')
  if v then
    local r, t, stamp, rc, tc, sn, sd, su = string.match(v, '(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)')
    local since = (ms - tonumber(stamp)) / 1000
    if rpm >= 0 and tonumber(rc) == rpm then rl = math.min(rpm, tonumber(r) / 1000 + since * rpm / 60) end
    if tpm >= 0 and tonumber(tc) == tpm then tl = math.min(tpm, tonumber(t) / 1000 + since * tpm / 60) end
    n, due, untl = tonumber(sn), tonumber(sd), tonumber(su)
  end
  return {rl, tl, n, due, untl}
end
-- Write the state s (and one slot, lapsing at *lapses* ms, when given); keep the key at least *keep*
-- seconds more.
local function store(key, s, rpm, tpm, keep, slot, lapses)
  local renew = s[5] < clock + keep
  if renew then s[5] = math.ceil(clock + keep + 120) end
  local b = string.format('%d %d %d %d %d %d %d %d',
    math.floor(s[1] * 1000 + 0.5), math.floor(s[2] * 1000 + 0.5), ms, rpm, tpm, s[3], s[4], s[5])
  if slot then
    redis.call('HSET', key, 'b', b, slot, string.format('%d', lapses))
  else
    redis.call('HSET', key, 'b', b)
  end
  if renew then redis.call('EXPIREAT', key, string.format('%d', s[5])) end
end
-- Forget the subject's lapsed slots: its state s gets the true count and earliest lapse.
local function sweep(key, s)
  local all, gone = redis.call('HGETALL', key), {}
  local n, due = 0, 0
  for j = 1, #all, 2 do
    if all[j] ~= 'b' then
      local lapses = tonumber(all[j + 1])
      if lapses <= ms then
        gone[#gone + 1] = all[j]
      else
        n = n + 1
        if due == 0 or lapses < due then due = lapses end
      end
    end
  end
  if #gone > 0 then redis.call('HDEL', key, unpack(gone)) end
  s[3], s[4] = n, due
end
local function limits_check(k, a, m)
  if m == 0 then return true, {} end
  tick()
  local seen = {}
  for i = 0, m - 1 do
    local rpm, tpm, conc = tonumber(ARGV[a + 4 + 3 * i]), tonumber(ARGV[a + 5 + 3 * i]), tonumber(ARGV[a + 6 + 3 * i])
    local key = KEYS[k + 1 + i]
    local s = state(key, rpm, tpm)
    if rpm >= 0 and s[1] < 1 then return false, {i, 1, tostring((1 - s[1]) * 60 / math.max(rpm, 1))} end
    if tpm >= 0 and s[2] <= 0 then return false, {i, 2, tostring((1 - s[2]) * 60 / math.max(tpm, 1))} end
    if conc >= 0 and s[3] >= conc then
      if s[4] <= ms then  -- full, and a slot may have lapsed: forget those first
        local n = s[3]
        sweep(key, s)
        if s[3] ~= n then store(key, s, rpm, tpm, 0) end
      end
      if s[3] >= conc then return false, {i, 3, '1'} end
    end
    seen[i] = s
  end
  return true, seen
end
local function limits_take(k, a, m, seen, out)
  local tokens, permit, life = tonumber(ARGV[a + 1]), ARGV[a + 2], tonumber(ARGV[a + 3])
  for i = 0, m - 1 do
    local rpm, tpm, conc = tonumber(ARGV[a + 4 + 3 * i]), tonumber(ARGV[a + 5 + 3 * i]), tonumber(ARGV[a + 6 + 3 * i])
    local s = seen[i]
    s[1], s[2] = s[1] - 1, s[2] - tokens
    if conc >= 0 then
      local lapses = ms + math.floor(life * 1000)
      if s[3] == 0 then s[4] = lapses elseif s[4] > 0 and lapses < s[4] then s[4] = lapses end
      s[3] = s[3] + 1
      store(KEYS[k + 1 + i], s, rpm, tpm, math.max(life, 61), permit, lapses)
    else
      store(KEYS[k + 1 + i], s, rpm, tpm, 61)
    end
    local rl, tl = s[1], s[2]
    out[#out + 1] = math.floor(rl)
    out[#out + 1] = math.ceil((math.max(rpm, 1) - rl) * 60000 / math.max(rpm, 1))
    out[#out + 1] = math.floor(tl)
    out[#out + 1] = math.ceil((math.max(tpm, 1) - tl) * 60000 / math.max(tpm, 1))
  end
end
local function limits_give_back(k, a, m)
  if m == 0 then return end
  tick()
  local correction = tonumber(ARGV[a + 2])
  for i = 0, m - 1 do
    local rpm, tpm, conc = tonumber(ARGV[a + 3 + 3 * i]), tonumber(ARGV[a + 4 + 3 * i]), tonumber(ARGV[a + 5 + 3 * i])
    local key = KEYS[k + 1 + i]
    local freed = conc >= 0 and redis.call('HDEL', key, ARGV[a + 1]) == 1
    local corrected = tpm >= 0 and correction ~= 0
    if freed or corrected then
      local s = state(key, rpm, tpm)
      if corrected then s[2] = math.min(tpm, s[2] - correction) end
      if freed then s[3] = math.max(s[3] - 1, 0) end
      store(key, s, rpm, tpm, 61)
    end
  end
end

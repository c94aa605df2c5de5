--[[
  lib/throughput: count finished jobs per queue and minute, for the last hour's throughput.
  One HINCRBY and one EXPIRE per script call (per batch, not per job); the per-minute hash
  expires by itself, so the series stays bounded. `tpPrefix` comes from KEYS (the queue's
  hash tag); the minute is Redis's clock, like every other time a script writes.
]]
local THROUGHPUT_TTL_S = 3720
local function countThroughput(tpPrefix, now, field, n)
  if n <= 0 then return end
  local key = tpPrefix .. math.floor(now / 60000)
  redis.call("HINCRBY", key, field, n)
  redis.call("EXPIRE", key, THROUGHPUT_TTL_S)
end

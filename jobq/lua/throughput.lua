--[[
  throughput: read one queue's per-minute finished counts for the last `window` minutes, in one
  call (the overview draws every queue's hour: one call per queue instead of one per minute).
  Read only. The per-minute hashes are written by lib/throughput (complete, fail).

  KEYS[1] throughput key prefix (per-minute hash = prefix .. minute since the epoch)

  ARGV[1] window (minutes, the current one included)

  Returns {nowMs, completed1, failed1, completed2, failed2, ...}, oldest minute first, on
  Redis's clock; a minute with no hash counts 0.
]]
--- @include "lib/clock"
local tpPrefix = KEYS[1]
local window = tonumber(ARGV[1])
local rcall = redis.call
local now = redisNowMs()

local thisMinute = math.floor(now / 60000)
local out = {now}
for minute = thisMinute - window + 1, thisMinute do
  local f = rcall("HMGET", tpPrefix .. minute, "completed", "failed")
  out[#out + 1] = tonumber(f[1]) or 0
  out[#out + 1] = tonumber(f[2]) or 0
end
return out

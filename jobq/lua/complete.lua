--[[
  complete: mark leased jobs completed (fenced by token, R3) and trim old ones (R12). Batched.

  KEYS[1] active zset
  KEYS[2] completed zset        (score = finishedAt, ms)
  KEYS[3] job hash key prefix
  KEYS[4] throughput key prefix (per-minute hash = prefix .. minute; field "completed")

  ARGV[1] completed jobs to keep (count)
  ARGV[2] completed jobs' maximum age (ms)
  ARGV[3..] jobId, token, result (JSON) triples

  Returns one integer per triple: 1 completed, -1 lease lost (the write was refused).
]]
--- @include "lib/clock"
--- @include "lib/codes"
--- @include "lib/attempt"
--- @include "lib/trim"
--- @include "lib/throughput"
local activeKey, completedKey, jobPrefix, tpPrefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local keep, maxAgeMs = tonumber(ARGV[1]), tonumber(ARGV[2])
local rcall = redis.call
local now = redisNowMs()

local out, completed = {}, 0
for i = 3, #ARGV, 3 do
  local jobId, token, result = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local jobKey = jobPrefix .. jobId
  local f = rcall("HMGET", jobKey, "token", "attempts")
  if f[1] == token then
    closeAttempt(activeKey, jobKey, jobId, f[2], now, "completed", nil)
    rcall("HSET", jobKey, "state", "completed", "finishedAt", now, "result", result)
    -- An earlier attempt's error stays in its history entry, not on a job that succeeded.
    rcall("HDEL", jobKey, "failedReason")
    rcall("ZADD", completedKey, now, jobId)
    out[#out + 1] = DONE
    completed = completed + 1
  else
    out[#out + 1] = LEASE_LOST
  end
end

countThroughput(tpPrefix, now, "completed", completed)
trimFinished(completedKey, jobPrefix, keep, maxAgeMs, now)
return out

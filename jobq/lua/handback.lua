--[[
  handback: return unfinished jobs to the front of `waiting` on shutdown without spending an
  attempt (R9). Fenced by token: a job whose lease was already lost is left alone. The attempt's
  history entry moves to "b:<n>" (n counts the job's hand-backs) with its end time, its attempt
  number and handedBack = true: the history shows it, and the number is free for the next run.
  A job whose cancel was requested while it ran ends `cancelled` (as end_cancelled does) instead.

  KEYS[1] active zset
  KEYS[2] wait list             (workers RPOP; lib/waiting puts a job first in line)
  KEYS[3] job hash key prefix
  KEYS[4] cancelled zset        (score = finishedAt, ms)

  ARGV[1..] jobId, token pairs

  Returns the number of jobs handed back or, cancel requested, ended cancelled.
]]
--- @include "lib/clock"
--- @include "lib/attempt"
--- @include "lib/slots"
local activeKey, waitKey, jobPrefix, cancelledKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local base = queueBase(jobPrefix, ":job:")
local rcall = redis.call
local now = redisNowMs()

local handed = 0
for i = 1, #ARGV, 2 do
  local jobId, token = ARGV[i], ARGV[i + 1]
  local jobKey = jobPrefix .. jobId
  local f = rcall("HMGET", jobKey, "token", "attempts", "cancelRequested", "priority", "concKey")
  if f[1] == token and f[3] then
    closeAttempt(activeKey, jobKey, jobId, f[2], now, "cancelled", "cancelled on request")
    releaseSlot(base, f[5], jobId)
    rcall("HSET", jobKey, "state", "cancelled", "finishedAt", now)
    rcall("ZADD", cancelledKey, now, jobId)
    handed = handed + 1
  elseif f[1] == token then
    local raw = rcall("HGET", jobKey, "h:" .. f[2])
    local entry = raw and cjson.decode(raw) or {}
    entry["end"], entry["handedBack"], entry["attempt"] = now, true, tonumber(f[2])
    rcall("HSET", jobKey, "b:" .. rcall("HINCRBY", jobKey, "handbacks", 1), cjson.encode(entry))
    rcall("HDEL", jobKey, "h:" .. f[2])
    rcall("HINCRBY", jobKey, "attempts", -1)
    rcall("HSET", jobKey, "state", "waiting", "token", "", "readyAt", now)
    rcall("ZREM", activeKey, jobId)
    releaseSlot(base, f[5], jobId)
    pushWaiting(base, jobId, f[4], true)
    handed = handed + 1
  end
end
return handed

--[[
  handback: return unfinished jobs to the front of `waiting` on shutdown without spending an
  attempt (R9). Fenced by token: a job whose lease was already lost is left alone.

  KEYS[1] active zset
  KEYS[2] wait list             (workers RPOP, so RPUSH puts a job first in line)
  KEYS[3] job hash key prefix

  ARGV[1..] jobId, token pairs

  Returns the number of jobs handed back.
]]
--- @include "lib/clock"
local activeKey, waitKey, jobPrefix = KEYS[1], KEYS[2], KEYS[3]
local rcall = redis.call
local now = redisNowMs()

local handed = 0
for i = 1, #ARGV, 2 do
  local jobId, token = ARGV[i], ARGV[i + 1]
  local jobKey = jobPrefix .. jobId
  local f = rcall("HMGET", jobKey, "token", "attempts")
  if f[1] == token then
    rcall("HDEL", jobKey, "h:" .. f[2])
    rcall("HINCRBY", jobKey, "attempts", -1)
    rcall("HSET", jobKey, "state", "waiting", "token", "", "readyAt", now)
    rcall("ZREM", activeKey, jobId)
    rcall("RPUSH", waitKey, jobId)
    handed = handed + 1
  end
end
return handed

--[[
  put_back: return prefetched jobs that never started to the front of their priority's line, as
  if never claimed: the attempt count, history entry and first-claim time (`processedAt`) the
  claim wrote are undone, nothing is counted as a hand-back (a later shutdown hand-back is not
  charged for it, R9), and the concurrency slot goes back (R17). A job whose cancel was
  requested meanwhile ends `cancelled` (lib/give_back, R16). Fenced by token: a job whose lease is no longer that token is left
  alone. See worker/prefetch.py.

  KEYS[1] active zset
  KEYS[2] wait list             (lib/waiting names the other priorities' lists)
  KEYS[3] job hash key prefix
  KEYS[4] cancelled zset        (score = finishedAt, ms)

  ARGV[1..] jobId, token pairs

  Returns the number of jobs put back or ended cancelled. Run twice (R22): the second execution
  finds no token current and changes nothing.
]]
--- @include "lib/clock"
--- @include "lib/give_back"
local activeKey, jobPrefix, cancelledKey = KEYS[1], KEYS[3], KEYS[4]
local base = queueBase(KEYS[2], ":wait")
local rcall = redis.call
local now = redisNowMs()
local count = 0
for i = 1, #ARGV, 2 do
  local jobId, token = ARGV[i], ARGV[i + 1]
  local jobKey = jobPrefix .. jobId
  local f = rcall("HMGET", jobKey, "token", "attempts", "cancelRequested", "priority", "concKey")
  if f[1] == token then
    if f[3] then
      giveBack(base, activeKey, cancelledKey, jobId, token, now)
    else
      rcall("HDEL", jobKey, "h:" .. f[2])
      if rcall("HINCRBY", jobKey, "attempts", -1) == 0 then
        rcall("HDEL", jobKey, "processedAt")  -- set by its first claim: it never started
      end
      rcall("HSET", jobKey, "state", "waiting", "token", "")
      rcall("ZREM", activeKey, jobId)
      releaseSlot(base, f[5], jobId)
      pushWaiting(base, jobId, f[4], true)
    end
    count = count + 1
  end
end
return count

--[[
  cancel: cancel a job. A waiting or delayed job becomes `cancelled` here and never runs; a
  running job is only marked: its worker learns it at the next lease renewal, cancels the
  handler and ends the attempt through `end_cancelled`.

  KEYS[1] job hash
  KEYS[2] wait list
  KEYS[3] delayed zset
  KEYS[4] cancelled zset        (score = finishedAt, ms)
  KEYS[5] job hash key prefix   (for trimming old cancelled jobs)

  ARGV[1] jobId
  ARGV[2] cancelled jobs to keep (count)
  ARGV[3] cancelled jobs' maximum age (ms)

  Returns 1 cancelled now, 2 cancel requested (the job is running), -3 no such job,
  -5 the job has finished already (completed, failed or cancelled).
]]
--- @include "lib/clock"
--- @include "lib/codes"
--- @include "lib/trim"
local jobKey, waitKey, delayedKey, cancelledKey, jobPrefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local jobId, keep, maxAgeMs = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local rcall = redis.call
local now = redisNowMs()

local state = rcall("HGET", jobKey, "state")
if not state then return NOT_FOUND end
if state == "active" then
  rcall("HSET", jobKey, "cancelRequested", now)
  return CANCEL_REQUESTED
end
if state == "waiting" then
  rcall("LREM", waitKey, -1, jobId)  -- from the tail, where the next jobs to run are
elseif state == "delayed" then
  rcall("ZREM", delayedKey, jobId)
else
  return FINISHED
end
rcall("HSET", jobKey, "state", "cancelled", "finishedAt", now, "cancelRequested", now)
rcall("ZADD", cancelledKey, now, jobId)
trimFinished(cancelledKey, jobPrefix, keep, maxAgeMs, now)
return DONE

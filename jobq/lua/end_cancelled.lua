--[[
  end_cancelled: end a running attempt whose job was cancelled (fenced by token, R3). The
  attempt's outcome is "cancelled" and the job becomes `cancelled`: terminal, not a failure,
  no retry and no DLQ entry.

  KEYS[1] active zset
  KEYS[2] cancelled zset        (score = finishedAt, ms)
  KEYS[3] job hash key prefix
  KEYS[4] job event stream      (a "cancelled" entry, lib/events)

  ARGV[1] jobId
  ARGV[2] lease token
  ARGV[3] cancelled jobs to keep (count)
  ARGV[4] cancelled jobs' maximum age (ms)

  Returns 1 done (also when this very call ran already), -1 lease lost (the write was refused).
]]
--- @include "lib/clock"
--- @include "lib/codes"
--- @include "lib/attempt"
--- @include "lib/trim"
--- @include "lib/events"
--- @include "lib/slots"
--- @include "lib/workflow_outbox"
local activeKey, cancelledKey, jobPrefix, eventsKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local jobId, token, keep, maxAgeMs = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local rcall = redis.call
local now = redisNowMs()
local jobKey = jobPrefix .. jobId

local f = rcall("HMGET", jobKey, "token", "attempts", "concKey", "endToken", "state")
if f[1] ~= token then
  if f[4] == token and f[5] == "cancelled" then return DONE end  -- ran already (R22)
  return LEASE_LOST
end
closeAttempt(activeKey, jobKey, jobId, f[2], now, "cancelled", "cancelled on request", token)
releaseSlot(queueBase(jobPrefix, ":job:"), f[3], jobId)
rcall("HSET", jobKey, "state", "cancelled", "finishedAt", now)
rcall("ZADD", cancelledKey, now, jobId)
workflowOutcome(jobPrefix, jobId, "C", "cancelled on request", now)
jobEvent(eventsKey, "cancelled", {jobId})
trimFinished(cancelledKey, jobPrefix, keep, maxAgeMs, now)
return DONE

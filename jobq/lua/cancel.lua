--[[
  cancel: cancel a job. A waiting or delayed job becomes `cancelled` here and never runs; a
  running job is only marked, and the queue's cancel counter bumped: a worker holding leases
  in the queue sees the counter move within a fraction of a second, renews at once, learns
  from `renew` which job it is, cancels the handler and ends the attempt (`end_cancelled`).

  KEYS[1] job hash
  KEYS[2] wait list
  KEYS[3] delayed zset
  KEYS[4] cancelled zset        (score = finishedAt, ms)
  KEYS[5] job hash key prefix   (for trimming old cancelled jobs)
  KEYS[6] cancel counter        (bumped when a running job is asked to cancel)
  KEYS[7] job event stream      (a "cancelled" entry when cancelled now, lib/events)

  ARGV[1] jobId
  ARGV[2] cancelled jobs to keep (count)
  ARGV[3] cancelled jobs' maximum age (ms)
  ARGV[4] this request's nonce (kept on the job as "cancelNonce")

  A waiting job woken for a free concurrency slot, or held by its rate limit after that, would
  take the wake with it: the next parked job of its key is woken instead (lib/slots).
  Run twice (R22): the second execution finds its own nonce and answers as the first did.

  Returns 1 cancelled now, 2 cancel requested (the job is running), -3 no such job,
  -5 the job has finished already (completed, failed or cancelled).
]]
--- @include "lib/clock"
--- @include "lib/codes"
--- @include "lib/trim"
--- @include "lib/events"
--- @include "lib/slots"
--- @include "lib/workflow_outbox"
local jobKey, waitKey, delayedKey, cancelledKey, jobPrefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local cancelsKey, eventsKey = KEYS[6], KEYS[7]
local jobId, keep, maxAgeMs, nonce = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local rcall = redis.call
local now = redisNowMs()

local f = rcall("HMGET", jobKey, "state", "priority", "heldBy", "concKey", "concMax",
  "cancelNonce")
local state = f[1]
local base = queueBase(jobPrefix, ":job:")
if not state then return NOT_FOUND end
if f[6] == nonce then return state == "active" and CANCEL_REQUESTED or DONE end
if state == "active" then
  rcall("HSET", jobKey, "cancelRequested", now, "cancelNonce", nonce)
  rcall("INCR", cancelsKey)
  return CANCEL_REQUESTED
end
if state == "waiting" and f[3] == "concurrency" then  -- parked by its concurrency limit (lib/limits)
  if rcall("LREM", f[4] .. ":parked", -1, jobId) > 0 then
    rcall("DECR", base .. ":parked")
  end
elseif state == "waiting" then  -- from the tail of its priority's list, where the next jobs are
  rcall("LREM", waitLevelKey(base, tonumber(f[2]) or DEFAULT_PRIORITY), -1, jobId)
  passWake(base, f[4], f[5])
elseif state == "delayed" then
  if rcall("ZREM", delayedKey, jobId) == 1 and f[3] == "rate" then  -- held by a rate limit
    rcall("DECR", base .. ":limited")
  end
  passWake(base, f[4], f[5])
else
  return FINISHED
end
rcall("HSET", jobKey, "state", "cancelled", "finishedAt", now, "cancelRequested", now,
  "cancelNonce", nonce)
rcall("ZADD", cancelledKey, now, jobId)
workflowOutcome(jobPrefix, jobId, "C", "cancelled on request", now)
jobEvent(eventsKey, "cancelled", {jobId})
trimFinished(cancelledKey, jobPrefix, keep, maxAgeMs, now)
return DONE

--[[
  handback: return unfinished jobs to the front of `waiting` on shutdown without spending an
  attempt (R9, lib/give_back). Fenced by token: a job whose lease was already lost is left
  alone. A job whose cancel was requested while it ran ends `cancelled` instead.
  Hand-backs are free only up to a limit: a job longer than the shutdown grace on a queue that
  is scaled down or redeployed often would otherwise be handed back for ever. Past the limit a
  hand-back spends the attempt (outcome "interrupted"): the job waits first in line for its
  next attempt, or is dead-lettered when it has none left.

  KEYS[1] active zset
  KEYS[2] wait list             (workers RPOP; lib/waiting puts a job first in line)
  KEYS[3] job hash key prefix
  KEYS[4] cancelled zset        (score = finishedAt, ms)
  KEYS[5] failed zset           (score = finishedAt, ms)
  KEYS[6] dlq zset              (score = failedAt, ms; member = dlqId)
  KEYS[7] dlq sequence counter
  KEYS[8] dlq entry key prefix
  KEYS[9] throughput key prefix
  KEYS[10] job event stream

  ARGV[1] free hand-backs per job (0 = no limit)
  ARGV[2] queue name (for a DLQ id)
  ARGV[3] failed jobs to keep (count)
  ARGV[4] failed jobs' maximum age (ms)
  ARGV[5] DLQ entries' maximum age (ms; 0 = keep them forever)
  ARGV[6..] jobId, token pairs

  Returns the number of jobs handed back, ended cancelled or, past the limit, ended their
  attempt. Run twice (R22): the second execution finds no token current and changes nothing.
]]
--- @include "lib/clock"
--- @include "lib/give_back"
--- @include "lib/dead_letter"
local activeKey, waitKey, jobPrefix, cancelledKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local freeHandbacks, queue = tonumber(ARGV[1]), ARGV[2]
local base = queueBase(waitKey, ":wait")
local rcall = redis.call
local now = redisNowMs()

-- The attempt ends as interrupted: spent, like a failure, without a backoff.
local function interrupt(jobId, token, f)
  local jobKey = jobPrefix .. jobId
  local reason = "interrupted: handed back " .. f[5] .. " times already (shutdown grace too short?)"
  closeAttempt(activeKey, jobKey, jobId, f[2], now, "interrupted", reason, token)
  releaseSlot(base, f[4], jobId)
  rcall("HSET", jobKey, "failedReason", reason)
  if tonumber(f[2]) < tonumber(f[3]) then
    rcall("HSET", jobKey, "state", "waiting", "readyAt", now)
    pushWaiting(base, jobId, f[6], true)
    return
  end
  deadLetter({failed = KEYS[5], dlq = KEYS[6], dlqSeq = KEYS[7], dlqPrefix = KEYS[8],
              jobPrefix = jobPrefix, tpPrefix = KEYS[9], events = KEYS[10]},
    queue, jobId, f[7], f[8], reason, tonumber(f[2]), now, tonumber(ARGV[3]), tonumber(ARGV[4]),
    tonumber(ARGV[5]))
end

local handed = 0
for i = 6, #ARGV, 2 do
  local jobId, token = ARGV[i], ARGV[i + 1]
  local f = rcall("HMGET", jobPrefix .. jobId, "token", "attempts", "maxAttempts", "concKey",
    "handbacks", "priority", "type", "payload", "cancelRequested")
  if f[1] == token and not f[9] and freeHandbacks > 0
      and (tonumber(f[5]) or 0) >= freeHandbacks then
    interrupt(jobId, token, f)
    handed = handed + 1
  elseif giveBack(base, activeKey, cancelledKey, jobId, token, now) then
    handed = handed + 1
  end
end
return handed

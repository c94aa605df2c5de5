--[[
  lib/complete_jobs: mark leased jobs completed, fenced by their token (R3), and trim old ones
  (R12). Shared by complete and complete_claim, so a completion is the same whichever call
  carries it.

  `k` holds the keys: active, completed (score = finishedAt, ms), jobPrefix, tpPrefix
  (per-minute throughput hash = prefix .. minute; field "completed"), events (one "completed"
  entry per call, lib/events). `argv[from..]` are jobId, token, result (JSON) triples.

  Returns one integer per triple: DONE, or LEASE_LOST (the write was refused). A completion
  that already went through with the same token answers DONE again and changes nothing.
]]
--- @include "lib/clock"
--- @include "lib/codes"
--- @include "lib/attempt"
--- @include "lib/trim"
--- @include "lib/throughput"
--- @include "lib/events"
--- @include "lib/slots"
--- @include "lib/workflow_outbox"
local function completeJobs(k, keep, maxAgeMs, argv, from)
  local rcall = redis.call
  local now = redisNowMs()
  local out, finished = {}, {}
  for i = from, #argv, 3 do
    local jobId, token, result = argv[i], argv[i + 1], argv[i + 2]
    local jobKey = k.jobPrefix .. jobId
    local f = rcall("HMGET", jobKey, "token", "attempts", "concKey", "endToken", "state", "wf")
    if f[1] == token then
      closeAttempt(k.active, jobKey, jobId, f[2], now, "completed", nil, token)
      releaseSlot(queueBase(k.jobPrefix, ":job:"), f[3], jobId)
      rcall("HSET", jobKey, "state", "completed", "finishedAt", now, "result", result)
      -- An earlier attempt's error stays in its history entry, not on a job that succeeded.
      rcall("HDEL", jobKey, "failedReason")
      rcall("ZADD", k.completed, now, jobId)
      workflowOutcome(k.jobPrefix, jobId, "S", result, now, f[6])
      out[#out + 1] = DONE
      finished[#finished + 1] = jobId
    elseif f[4] == token and f[5] == "completed" then
      out[#out + 1] = DONE  -- this very completion ran already (a re-sent call, R22)
    else
      out[#out + 1] = LEASE_LOST
    end
  end
  countThroughput(k.tpPrefix, now, "completed", #finished)
  jobEvent(k.events, "completed", finished)
  trimFinished(k.completed, k.jobPrefix, keep, maxAgeMs, now)
  return out
end

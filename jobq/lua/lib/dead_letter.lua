--[[
  lib/dead_letter: end a job `failed` with exactly one DLQ entry, in the same step (R6). Shared
  by fail (attempts used up, or a permanent error) and handback (a job handed back past its
  limit on its last attempt), so every dead letter is written alike. Then old failed records
  and DLQ entries past their retention are trimmed, a bounded batch per call.

  `k` holds the keys: failed, dlq, dlqSeq, dlqPrefix, jobPrefix, tpPrefix, events. Returns the
  new dlqId ("<queue>-<n>").
]]
--- @include "lib/trim"
--- @include "lib/throughput"
--- @include "lib/events"
--- @include "lib/workflow_outbox"
local function deadLetter(k, queue, jobId, jobType, payload, reason, attempts, now, keep,
                          maxAgeMs, dlqMaxAgeMs)
  local rcall = redis.call
  local jobKey = k.jobPrefix .. jobId
  local dlqId = queue .. "-" .. rcall("INCR", k.dlqSeq)
  rcall("HSET", k.dlqPrefix .. dlqId, "dlqId", dlqId, "originalJobId", jobId, "type", jobType,
    "queue", queue, "payload", payload, "failedReason", reason, "attempts", attempts,
    "failedAt", now)
  -- The job's trace carrier goes with its entry, which outlives the job's record: a replay
  -- links to the original's creation whenever it comes (R25).
  local tc = rcall("HGET", jobKey, "tc")
  if tc then rcall("HSET", k.dlqPrefix .. dlqId, "tc", tc) end
  -- A workflow node's entry names its node and epoch: a replay reopens the node (wf_reopen).
  local wf = rcall("HGET", jobKey, "wf")
  if wf then rcall("HSET", k.dlqPrefix .. dlqId, "wf", wf) end
  rcall("ZADD", k.dlq, now, dlqId)
  rcall("HSET", jobKey, "state", "failed", "finishedAt", now, "deadLetterId", dlqId)
  rcall("ZADD", k.failed, now, jobId)
  workflowOutcome(k.jobPrefix, jobId, "F", reason, now, wf or false)
  countThroughput(k.tpPrefix, now, "failed", 1)
  jobEvent(k.events, "failed", {jobId})
  -- Old failed job records go; their DLQ entries outlive them.
  trimFinished(k.failed, k.jobPrefix, keep, maxAgeMs, now)
  if dlqMaxAgeMs > 0 then
    for _, id in ipairs(rcall("ZRANGEBYSCORE", k.dlq, "-inf", now - dlqMaxAgeMs, "LIMIT", 0, 100)) do
      rcall("DEL", k.dlqPrefix .. id, k.dlqPrefix .. id .. ":replays")
      rcall("ZREM", k.dlq, id)
    end
  end
  return dlqId
end

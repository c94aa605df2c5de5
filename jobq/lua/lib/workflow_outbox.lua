--[[
  lib/workflow_outbox: the final outcome of a job that is a workflow node (its hash has "wf" =
  "<workflow id>|<node index>|<epoch>", written by wf_release) goes to its queue's outbox, in
  the same script that ends the job, so only an outcome that passed the lease's fence (R3) and
  is final (completed, dead-lettered, cancelled) ever reaches the workflow (R24). Retries,
  lease expiries and hand-backs end no job and never come here.

    <base>:wfout      hash, jobId -> JSON {w = wf field, o = "S" | "F" | "C", d = result/reason}
    <base>:wfout:due  zset, jobId -> when a relay may take it (ms): first the finish time, then
                      a relay's lease on it (jobq/workflows/relay.py; wf_take)
    <base>:wfout:wake list of one token at most: wakes a relay blocked on it (BLPOP,
                      worker/workflows.py) at once, instead of at its next poll; it expires
                      when no relay takes it (a queue no worker serves)

  Both keys are named from the queue's base, like lib/flow_keys's, so the finish scripts keep
  their KEYS. `wf`: the job's "wf" field when the caller read it already (false = none), or
  nil to read it here. Writing twice (a re-sent call) leaves one entry.
]]
--- @include "lib/flow_keys"
local function workflowOutcome(jobPrefix, jobId, outcome, data, now, wf)
  local jobKey = jobPrefix .. jobId
  if wf == nil then wf = redis.call("HGET", jobKey, "wf") end
  if not wf or wf == "" then return end
  local base = queueBase(jobPrefix, ":job:")
  redis.call("HSET", base .. ":wfout", jobId, cjson.encode({w = wf, o = outcome, d = data or ""}))
  redis.call("ZADD", base .. ":wfout:due", "NX", now, jobId)
  local wake = base .. ":wfout:wake"
  if redis.call("LLEN", wake) == 0 then
    redis.call("LPUSH", wake, "1")
    redis.call("PEXPIRE", wake, 60000)
  end
end

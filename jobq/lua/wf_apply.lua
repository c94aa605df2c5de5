--[[
  wf_apply: move a workflow on, in its slot. Three modes:
  - "apply": node ARGV[2] of epoch ARGV[3] ended with ARGV[4] (S, F or C; data ARGV[5]: result
    or reason), read from a queue's outbox. Applied only when the node is released (or
    waiting, for a cancel) and the epoch matches: each (node, epoch) moves once, so an entry
    applied twice, a duplicate delivery or an old epoch's outcome changes nothing (R24).
    Then its dependents are settled (lib/workflow_state), and on a failure with fail fast the
    rest is cancelled.
  - "cancel": cancel the workflow (waiting nodes at once, released ones through their jobs).
  - "pending": nothing; only the answer.
  Then the workflow ends if nothing waits or runs.

  KEYS[1] meta hash (the other keys of the workflow are named from it, lib/workflow_state)
  KEYS[2] the workflow's key prefix "<prefix>:{wf:<id>}:" (never exists: the slot-migration
          fence of scripts that name keys, tests/test_script_fences.py)

  ARGV[1] mode
  ARGV[2] node index     (apply)
  ARGV[3] node epoch     (apply)
  ARGV[4] outcome letter (apply)
  ARGV[5] result JSON or failure reason (apply)
  ARGV[6] most ready and kill entries answered
  ARGV[7] most dependency edges settled by this call (lib/workflow_state's settleSome; the
          rest stays on the settle list for the next "pending" call: bounded script time)

  Returns {applied (1 | 0), workflow state ("" = no such workflow), number of ready entries,
  then index, node spec JSON each, number of kill entries, then index, node spec JSON each,
  then the settle backlog (entries left on the settle list: the caller calls "pending" again
  while it is above 0)}.
]]
--- @include "lib/clock"
--- @include "lib/workflow_state"
local k = wfKeys(KEYS[1], KEYS[2])
local mode, most = ARGV[1], tonumber(ARGV[6])
local settleBudget = tonumber(ARGV[7]) or 1000
local state = redis.call("HGET", k.meta, "state")
if not state then return {0, ""} end
local now = redisNowMs()
local applied = 0

if mode == "apply" then
  applied = applyOutcome(k, state, ARGV[2], ARGV[3], ARGV[4], ARGV[5], settleBudget)
elseif mode == "cancel" then
  if state == "running" then
    redis.call("HSET", k.meta, "state", "cancelling", "cancelled", now)
    haltAll(k, "cancelled: workflow cancelled")
    applied = 1
  end
end
-- A large fan-out goes on settling here, while the ready list is short (bounded memory).
if mode == "pending" and redis.call("LLEN", k.ready) < most then settleSome(k, settleBudget) end
finishIfDone(k, now)
dropSettleIfEnded(k)
local answer = followUps(k, applied, most)
answer[#answer + 1] = settleBacklog(k)
return answer

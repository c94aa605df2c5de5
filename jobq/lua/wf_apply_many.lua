--[[
  wf_apply_many: wf_apply's "apply" for several outcomes of one workflow in one call (the
  entries one relay took from a queue's outbox), so that a fan-in of N children costs N/50
  calls, not N. Each outcome is guarded exactly as in wf_apply: applied only when its node is
  released (or waiting, for a cancel) and of that epoch, so each (node, epoch) moves once
  however often, and in whichever batches, its entry comes (R24). Then the workflow ends if
  nothing waits or runs.

  KEYS[1] meta hash (the other keys of the workflow are named from it, lib/workflow_state)
  KEYS[2] the workflow's key prefix "<prefix>:{wf:<id>}:" (never exists: the slot-migration
          fence of scripts that name keys, tests/test_script_fences.py)

  ARGV[1] most ready and kill entries answered
  ARGV[2] most dependency edges settled in this call (the rest: the relay's "pending" calls)
  ARGV[3..] per outcome: node index, node epoch, outcome letter (S, F or C), result JSON or
          failure reason

  Returns as wf_apply (the settle backlog last), with the number of outcomes applied first.
]]
--- @include "lib/clock"
--- @include "lib/workflow_state"
local k = wfKeys(KEYS[1], KEYS[2])
local most, settleBudget = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call("HGET", k.meta, "state")
if not state then return {0, ""} end
local now = redisNowMs()
local applied = 0

for i = 3, #ARGV, 4 do
  local moved, used = applyOutcome(k, state, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
    math.max(settleBudget, 1))
  applied = applied + moved
  settleBudget = settleBudget - used
end
finishIfDone(k, now)
dropSettleIfEnded(k)
local answer = followUps(k, applied, most)
answer[#answer + 1] = settleBacklog(k)
return answer

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
  local idx, epoch, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local cur = redis.call("HGET", k.st, idx)
  local ep = redis.call("HGET", k.ep, idx) or "0"
  if ep == epoch and (cur == "R" or (cur == "W" and outcome == "C")) then
    setNodeState(k, idx, cur, outcome)
    redis.call("HSET", outcome == "S" and k.res or k.err, idx, ARGV[i + 3])
    applied = applied + 1
    settleLater(k, idx, outcome)
    if outcome ~= "S" and state == "running"
        and redis.call("HGET", k.meta, "failFast") == "1" then
      redis.call("HSET", k.meta, "halted", idx)
      haltAll(k, "cancelled: fail fast after " .. (redis.call("HGET", k.names, idx) or idx),
        true)
    end
  end
end
settleSome(k, settleBudget)
finishIfDone(k, now)
dropSettleIfEnded(k)
local answer = followUps(k, applied, most)
answer[#answer + 1] = settleBacklog(k)
return answer

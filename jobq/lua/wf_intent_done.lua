--[[
  wf_intent_done: drop a workflow from its intent shard once the work the intent announced is
  done, unless someone announced new work since (the score changed): an intent is removed
  only by the caller that saw it. Safe to run twice.

  KEYS[1] intent shard zset     (workflow id -> when work was announced, ms)

  ARGV[1] workflow id
  ARGV[2] the score the caller saw

  Returns 1 removed, 0 kept (newer work announced, or gone already).
]]
local score = redis.call("ZSCORE", KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call("ZREM", KEYS[1], ARGV[1])
end
return 0
